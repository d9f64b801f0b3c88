"""`videosr batch`: many videos on one Ray runtime (local or a cluster), one output per input.

Inputs are files, folders (the video files directly inside, in name order) and globs. Each input's output
is ``OUT_DIR/<name>.<ext>``; an output already there (and no resume state beside it) counts as done and is
skipped, so a rerun only does what is left, and an interrupted output is resumed (every batch run is a
``--resume`` run). Several files are in progress at once (``jobs``), each a distributed upscale
(:func:`videosr.distributed.upscale_on`) whose segments share the runtime's workers; a file that fails is
reported with its error and exit code and the others go on.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import Interrupted, UsageError, VideosrError

VIDEO_EXTS = (
    ".mp4",
    ".mkv",
    ".mov",
    ".webm",
    ".avi",
    ".m4v",
    ".ts",
    ".mts",
    ".m2ts",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".y4m",
    ".ogv",
    ".3gp",
)
OUT_EXTS = ("mp4", "mkv", "mov", "webm")


def expand(inputs: list[str]) -> list[str]:
    """Files, folders (their video files, not recursive) and globs -> input files, in order, each once."""
    out: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(item, n)
                for n in os.listdir(item)
                if n.lower().endswith(VIDEO_EXTS) and os.path.isfile(os.path.join(item, n))
            )
        elif os.path.exists(item):
            found = [item]
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
        else:
            found = [item]  # reported as that file's error (missing)
        if not found and not os.path.isfile(item):
            raise UsageError(f"{item}: no video files {'in that folder' if os.path.isdir(item) else 'match'}")
        out.extend(found)
    seen, unique = set(), []
    for p in out:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_names(files: list[str], out_dir: str, ext: str | None) -> list[str]:
    """``OUT_DIR/<stem>.<ext>``; stems that repeat get ``-2``, ``-3`` ... in input order."""
    if ext is not None and ext.lstrip(".").lower() not in OUT_EXTS:
        raise UsageError(f"--ext {ext}: use one of {', '.join(OUT_EXTS)}")
    names, used = [], set()
    for f in files:
        stem, e = os.path.splitext(os.path.basename(f))
        e = (ext or e).lstrip(".").lower()
        if e not in OUT_EXTS:
            e = "mkv"
        name, n = f"{stem}.{e}", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.{e}"
        used.add(name)
        names.append(os.path.join(out_dir, name))
    return names


def _done(output: str) -> bool:
    from .resume import state_dir

    return os.path.isfile(output) and not os.path.lexists(state_dir(output))


class _Display:
    """One progress line over all files: frames done of the planned total, files done, failures."""

    def __init__(self, total_frames: int, files: int, enabled: bool):
        from .progress import Progress

        self.files, self.finished, self.failed = files, 0, 0
        self.bar = Progress(total_frames or None, label=self._label(), enabled=enabled, warmup=1)
        self.lock = threading.Lock()

    def _label(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"batch {self.finished}/{self.files} files{failed}"

    def frames(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def file_done(self, ok: bool, skipped_frames: int = 0) -> None:
        with self.lock:
            self.finished += 1
            self.failed += 0 if ok else 1
            self.bar.label = self._label()
            self.bar.update(skipped_frames)

    def close(self) -> None:
        with self.lock:
            self.bar.close()


def batch(
    inputs: list[str],
    out_dir: str,
    *,
    ext: str | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_worker: int | None = None,
    ship_input: bool = False,
    progress: bool = True,
    **options,
) -> list[dict[str, Any]]:
    """Upscale every input into ``out_dir``; returns one record per input: ``input, output, status`` (done,
    skipped, failed, interrupted), ``frames, seconds, fps, model, error, exit_code``. ``options``: those of
    :func:`videosr.distributed.upscale` (model, scale, codec, ...) but ``resume`` (every batch run resumes);
    another keyword is a TypeError."""
    from .distributed import DISTRIBUTED_EXCLUDE, probe_packets, ray_runtime, run_job
    from .job import JobOptions

    opts = JobOptions.of("batch", options, exclude=DISTRIBUTED_EXCLUDE | {"resume"}).replace(
        resume=True, overwrite=overwrite, progress=False
    )
    files = expand(list(inputs))
    if not files:
        raise UsageError("no inputs")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        from .errors import OutputError

        raise OutputError(f"{out_dir}: cannot create the output folder ({e.strerror or e})") from None
    outputs = output_names(files, out_dir, ext)
    planned = []
    for f, _o in zip(files, outputs):
        p = probe_packets(f) if os.path.isfile(f) else None
        planned.append((p or {}).get("frames") or 0)
    results: list[dict[str, Any]] = [
        {
            "input": f,
            "output": o,
            "status": "pending",
            "frames": None,
            "seconds": None,
            "fps": None,
            "model": None,
            "error": None,
            "exit_code": 0,
        }
        for f, o in zip(files, outputs)
    ]
    stop = threading.Event()
    with ray_runtime(workers, address, cpus_per_worker) as rt:
        slots = rt.slots or 4
        n_jobs = max(1, min(len(files), jobs or min(8, slots)))
        display = _Display(sum(planned), len(files), progress)
        if progress:
            print(f"batch: {len(files)} file(s) on {rt.describe()}, {n_jobs} at a time", file=__import__("sys").stderr)
        display.bar.begin()

        def one(i: int) -> None:
            r = results[i]
            if stop.is_set():
                r["status"] = "interrupted"
                return
            if not overwrite and _done(r["output"]):
                r["status"] = "skipped"
                display.file_done(True, planned[i])
                return
            t0 = time.perf_counter()
            got = [0]

            def on_frames(n: int) -> None:
                got[0] += n
                display.frames(n)

            try:
                s = run_job(rt, r["input"], r["output"], opts, on_frames=on_frames, stop=stop, ship_input=ship_input)
            except Interrupted as e:
                r.update(status="interrupted", error=str(e), exit_code=e.exit_code)
                return
            except VideosrError as e:
                r.update(status="failed", error=str(e), exit_code=e.exit_code)
                display.file_done(False, max(0, planned[i] - got[0]))
                return
            except Exception as e:  # noqa: BLE001 - one file's bug must not stop the others
                r.update(status="failed", error=f"internal error: {type(e).__name__}: {e}", exit_code=70)
                display.file_done(False, max(0, planned[i] - got[0]))
                return
            r.update(
                status="done",
                frames=s["frames"],
                seconds=round(time.perf_counter() - t0, 3),
                fps=s["fps"],
                model=s["model"],
                segments=s["segments"],
                reused=s["reused"],
            )
            display.file_done(True, max(0, s["frames"] - got[0]) if s["reused"] else 0)

        pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="videosr-batch")
        futures = [pool.submit(one, i) for i in range(len(files))]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.1)  # the main thread only waits: Ctrl-C/SIGTERM land here
        except KeyboardInterrupt:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            display.close()
            for r in results:
                if r["status"] == "pending":
                    r["status"] = "interrupted"
            raise Interrupted(
                "interrupted; rerun the same command to continue (finished outputs are skipped, "
                "interrupted ones resumed)"
            ) from None
        pool.shutdown(wait=True)
        display.close()
    for f in futures:
        f.result()
    return results


def table(results: list[dict[str, Any]]) -> str:
    """The summary: one row per input, then the totals."""
    rows = [("status", "frames", "seconds", "fps", "output / error")]
    for r in results:
        if r["status"] in ("done", "skipped"):
            what = r["output"]
        else:  # errors mostly name the input already
            what = r["error"] if r["input"] in (r["error"] or "") else f"{r['input']}: {r['error']}"
        rows.append(
            (
                r["status"],
                "" if r["frames"] is None else str(r["frames"]),
                "" if r["seconds"] is None else f"{r['seconds']:.1f}",
                "" if r["fps"] is None else f"{r['fps']:.2f}",
                what,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row[:4], widths))) + "  " + row[4]
        for row in rows
    ]
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items()) + f" of {len(results)} file(s)")
    return "\n".join(lines)
