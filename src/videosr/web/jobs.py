"""The job store and queue behind `videosr serve` (no Gradio here: unit-testable on its own).

Layout under the jobs folder ROOT::

    ROOT/uploads/<32 hex>.<ext>      checked uploads not yet turned into jobs (removed when a job takes them)
    ROOT/jobs/<12 hex>/job.json      one job: its state, options, progress and result
    ROOT/jobs/<12 hex>/input.<ext>   the job's input (moved in from uploads/)
    ROOT/jobs/<12 hex>/<name>_x<s>.<ext>   the finished output (the pipeline's resume state and lock sit beside it
                                          while it runs)

Nothing from a request becomes a path except through :func:`JobStore.job_dir` / :func:`JobStore.upload_path`,
which accept only ids of hex digits, and :func:`safe_stem` / :func:`safe_ext`, which keep ``[A-Za-z0-9._-]``.

States: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. A server that stops (Ctrl-C, crash,
power loss) leaves its running job ``running`` (or ``queued``); the next :meth:`JobQueue.start` queues those
again and the pipeline continues them from their committed segments (``upscale(resume=True)``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

JOB_ID = re.compile(r"[0-9a-f]{12}")
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
VIDEO_EXTS = (
    "mp4",
    "m4v",
    "mov",
    "mkv",
    "webm",
    "avi",
    "ts",
    "mts",
    "m2ts",
    "flv",
    "mpg",
    "mpeg",
    "wmv",
    "ogv",
    "3gp",
    "y4m",
    "gif",
)
OUTPUT_EXT = {"libvpx-vp9": ".webm", "ffv1": ".mkv"}  # other codecs: .mp4


class JobError(Exception):
    """A request the job store refuses (unknown id, bad option): its message is shown as is."""


class JobCancelled(Exception):
    """Raised inside the running job (from its progress callback) to stop it."""


class _Shutdown(KeyboardInterrupt):
    """Raised inside the running job when the server stops: the job stays queued and resumes next start."""


def safe_stem(name: str | None, default: str = "video") -> str:
    """A file-name stem from an uploaded name: its last path component without the extension, with anything
    but ``A-Z a-z 0-9 . _ -`` replaced by ``_``, no leading dot or dash, at most 60 characters."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip(".-_")[:60].rstrip("._-")
    return stem or default


def safe_ext(name: str | None) -> str:
    """``.mp4`` etc. for a known video extension of ``name``, else ``.video`` (FFmpeg probes the content)."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return f".{ext}" if ext in VIDEO_EXTS else ".video"


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JobStore:
    """Jobs on disk under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.jobs_dir = os.path.join(self.root, "jobs")
        self.uploads_dir = os.path.join(self.root, "uploads")
        os.makedirs(self.jobs_dir, exist_ok=True)
        os.makedirs(self.uploads_dir, exist_ok=True)
        self._lock = threading.RLock()

    def prune_uploads(self, max_age: float = 86400.0) -> int:
        """Remove uploads not turned into jobs for ``max_age`` seconds (run at start); returns how many."""
        n, now = 0, time.time()
        for e in os.scandir(self.uploads_dir):
            if e.is_file(follow_symlinks=False) and now - e.stat(follow_symlinks=False).st_mtime > max_age:
                try:
                    os.unlink(e.path)
                    n += 1
                except OSError:
                    pass
        return n

    # -- paths (the only way a request reaches the file system) --------------------------------------
    def job_dir(self, job_id: str) -> str:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise JobError(f"no such job: {str(job_id)[:40]!r}")
        d = os.path.join(self.jobs_dir, job_id)
        if not os.path.isdir(d) or os.path.islink(d):
            raise JobError(f"no such job: {job_id}")
        return d

    def new_upload_path(self, original_name: str | None) -> tuple[str, str]:
        """(upload id, path) for a new upload: a random name with a whitelisted extension."""
        uid = uuid.uuid4().hex
        return uid, os.path.join(self.uploads_dir, uid + safe_ext(original_name))

    def upload_path(self, upload_id: str) -> str:
        if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
            raise JobError("no such upload (upload a video first)")
        for name in os.listdir(self.uploads_dir):
            if name.split(".", 1)[0] == upload_id:
                p = os.path.join(self.uploads_dir, name)
                if os.path.isfile(p) and not os.path.islink(p):
                    return p
        raise JobError("no such upload (upload a video first)")

    def output_path(self, job_id: str) -> str:
        """The finished output file of a done job (always inside the job's folder)."""
        job = self.get(job_id)
        if job["state"] != "done":
            raise JobError(f"job {job_id} is {job['state']}: no output to download yet")
        p = os.path.join(self.job_dir(job_id), job["output_name"])
        if not os.path.isfile(p):
            raise JobError(f"job {job_id}: its output file is missing")
        return p

    # -- records ---------------------------------------------------------------------------------------
    def create(self, upload_id: str, *, name: str, options: dict[str, Any], info: dict[str, Any]) -> dict:
        """A queued job taking over the upload ``upload_id`` (moved into the job's folder)."""
        src = self.upload_path(upload_id)
        with self._lock:
            job_id = uuid.uuid4().hex[:12]
            d = os.path.join(self.jobs_dir, job_id)
            os.makedirs(d)
            ext = os.path.splitext(src)[1]
            inp = os.path.join(d, "input" + ext)
            os.replace(src, inp)
            scale = options.get("scale") or 4
            out_ext = OUTPUT_EXT.get(options.get("codec") or "libx264", ".mp4")
            job = {
                "id": job_id,
                "state": "queued",
                "name": safe_stem(name),
                "input_name": "input" + ext,
                "output_name": f"{safe_stem(name)}_x{scale}{out_ext}",
                "options": dict(options),
                "info": dict(info),
                "created": time.time(),
                "started": None,
                "finished": None,
                "error": None,
                "result": None,
                "resumed_from": 0,
                "runs": 0,
            }
            _write_json(os.path.join(d, "job.json"), job)
        return job

    def get(self, job_id: str) -> dict:
        d = self.job_dir(job_id)
        try:
            with open(os.path.join(d, "job.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise JobError(f"job {job_id}: its record is unreadable") from None

    def update(self, job_id: str, **fields: Any) -> dict:
        with self._lock:
            job = self.get(job_id)
            job.update(fields)
            _write_json(os.path.join(self.job_dir(job_id), "job.json"), job)
        return job

    def list(self) -> list[dict]:
        """All jobs, oldest first (unreadable folders skipped)."""
        out = []
        for name in os.listdir(self.jobs_dir):
            if JOB_ID.fullmatch(name):
                try:
                    out.append(self.get(name))
                except JobError:
                    continue
        return sorted(out, key=lambda j: j.get("created", 0))


def run_upscale(input_path: str, output_path: str, options: dict, on_frame: Callable[[int], None]) -> dict:
    """The default runner: the library's whole-clip job, always resumable."""
    from ..pipeline import upscale

    return upscale(
        input_path,
        output_path,
        scale=options.get("scale"),
        model=options.get("model") or "auto",
        quality=options.get("quality") or "auto",
        codec=options.get("codec") or "libx264",
        crf=options.get("crf"),
        preset=options.get("preset") or None,
        resume=True,
        overwrite=True,
        progress=False,
        on_frame=on_frame,
        segment=options.get("segment"),
    )


class JobQueue:
    """Runs the store's queued jobs, ``workers`` at a time (default one: a CPU is best used by one job)."""

    def __init__(
        self,
        store: JobStore,
        workers: int = 1,
        runner: Callable[[str, str, dict, Callable[[int], None]], dict] = run_upscale,
    ) -> None:
        self.store = store
        self.workers = max(1, int(workers))
        self.runner = runner
        self._q: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._cancel: set[str] = set()
        self._stopping = threading.Event()
        self._progress: dict[str, dict] = {}
        self._lock = threading.Lock()

    def start(self) -> list[str]:
        """Queue the jobs a previous server left queued or running (oldest first) and start the workers;
        returns the ids queued again."""
        again = []
        self.store.prune_uploads()
        for job in self.store.list():
            if job["state"] in ACTIVE:
                if job["state"] == "running":
                    self.store.update(job["id"], state="queued")
                self._q.put(job["id"])
                again.append(job["id"])
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"videosr-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return again

    def submit(self, upload_id: str, *, name: str, options: dict, info: dict) -> dict:
        job = self.store.create(upload_id, name=name, options=options, info=info)
        self._q.put(job["id"])
        return job

    def cancel(self, job_id: str) -> str:
        """Cancel a queued or running job; returns a message for the page."""
        job = self.store.get(job_id)
        if job["state"] == "queued":
            with self._lock:
                self._cancel.add(job_id)
            self.store.update(job_id, state="cancelled", finished=time.time())
            self._cleanup(job_id, job)
            return f"job {job_id} cancelled (it had not started)"
        if job["state"] == "running":
            with self._lock:
                self._cancel.add(job_id)
            return f"job {job_id}: cancelling"
        return f"job {job_id} is {job['state']}: nothing to cancel"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers as a server shutdown would: a running job stops at its next frame and stays
        queued (its committed segments are kept for the next start)."""
        self._stopping.set()
        for _ in self._threads:
            self._q.put(None)
        for t in self._threads:
            t.join(timeout)

    def progress(self, job_id: str) -> dict:
        """``{"done", "total", "fps", "eta", "elapsed"}`` of a running job (frames over the whole clip)."""
        with self._lock:
            p = dict(self._progress.get(job_id) or {})
        if not p:
            return {}
        elapsed = time.monotonic() - p.pop("t0")
        run_done = p["done"] - p["resumed_from"]
        fps = run_done / elapsed if elapsed > 0 and run_done else None
        total = p.get("total")
        eta = (total - p["done"]) / fps if fps and total else None
        return {
            "done": p["done"],
            "total": total,
            "fps": fps,
            "eta": eta,
            "elapsed": elapsed,
            "resumed_from": p["resumed_from"],
        }

    def idle(self) -> bool:
        return self._q.unfinished_tasks == 0

    def wait(self, job_id: str, timeout: float = 120.0) -> dict:
        """Block until the job leaves the queued/running states (tests, scripts)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.store.get(job_id)
            if job["state"] not in ACTIVE:
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {self.store.get(job_id)['state']} after {timeout} s")

    # -- worker ------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job_id = self._q.get()
            try:
                if job_id is None or self._stopping.is_set():
                    return
                self._run(job_id)
            except Exception as e:  # noqa: BLE001 - a broken record must not kill the worker
                try:
                    self.store.update(
                        job_id,
                        state="failed",
                        finished=time.time(),
                        error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                    )
                except Exception:  # noqa: BLE001 - the record itself is unusable
                    pass
            finally:
                self._q.task_done()

    def _run(self, job_id: str) -> None:
        from ..resume import State, state_dir

        job = self.store.get(job_id)
        with self._lock:
            if job_id in self._cancel or job["state"] != "queued":
                self._cancel.discard(job_id)
                return
        d = self.store.job_dir(job_id)
        inp = os.path.join(d, job["input_name"])
        out = os.path.join(d, job["output_name"])
        sdir = state_dir(out)
        resumed = 0
        if os.path.isdir(sdir):
            try:
                resumed = State.load(sdir).done_frames
            except Exception:  # noqa: BLE001 - the pipeline judges the state; this is only for the display
                resumed = 0
        total = job.get("info", {}).get("frames")
        job = self.store.update(
            job_id,
            state="running",
            started=time.time(),
            resumed_from=resumed,
            runs=int(job.get("runs") or 0) + 1,
            error=None,
        )
        with self._lock:
            self._progress[job_id] = {"done": resumed, "total": total, "resumed_from": resumed, "t0": time.monotonic()}

        def on_frame(n: int) -> None:
            with self._lock:
                self._progress[job_id]["done"] = resumed + n
                cancelled = job_id in self._cancel
            if self._stopping.is_set():
                raise _Shutdown()
            if cancelled:
                raise JobCancelled()

        try:
            summary = self.runner(inp, out, job["options"], on_frame)
        except BaseException as e:  # noqa: BLE001 - every outcome is recorded
            cancelled = job_id in self._cancel or isinstance(e, JobCancelled)
            if self._stopping.is_set() and not cancelled:
                self.store.update(job_id, state="queued")  # resumes at the next start
            elif cancelled:
                self.store.update(job_id, state="cancelled", finished=time.time())
                self._cleanup(job_id, job)
            else:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                self.store.update(job_id, state="failed", finished=time.time(), error=msg)
                self._cleanup(job_id, job)
            if isinstance(e, (KeyboardInterrupt, SystemExit)) and not isinstance(e, _Shutdown):
                raise
        else:
            size = os.path.getsize(out) if os.path.isfile(out) else None
            self.store.update(
                job_id,
                state="done",
                finished=time.time(),
                result={
                    "frames": summary.get("frames"),
                    "model": summary.get("model"),
                    "reason": summary.get("reason"),
                    "scale": summary.get("scale"),
                    "seconds": summary.get("seconds"),
                    "fps": summary.get("fps"),
                    "bytes": size,
                },
            )
        finally:
            with self._lock:
                self._progress.pop(job_id, None)
                self._cancel.discard(job_id)

    def _cleanup(self, job_id: str, job: dict) -> None:
        """A cancelled or failed job keeps its record and input, not its partial output or resume state."""
        from ..resume import state_dir

        d = self.store.job_dir(job_id)
        out = os.path.join(d, job["output_name"])
        sdir = state_dir(out)
        if os.path.isdir(sdir) and not os.path.islink(sdir):
            shutil.rmtree(sdir, ignore_errors=True)
