"""One video across many workers, and many videos, on Ray (the ``[ray]`` extra; ``docs/distributed.md``).

A distributed run writes *the same segments* a single-process run writes (:mod:`videosr.resume`,
:mod:`videosr.io.segments`), only each is made by a Ray task instead of the loop of a single-process run
(:func:`videosr.pipeline.upscale`; both run the stages of :func:`videosr.pipeline.run_stages`):

* The driver takes OUTPUT's lock, opens (or resumes) the same resume state, loads the model once to
  compute the same options (model, weights hash, chunk, context, precision, codec ...) and the same
  segment length (a multiple of the engine's chunk), and plans one task per segment.
* It reads the video stream's packets (no decoding) for the frame count and the keyframes: a task starts
  decoding at the last keyframe at or before its first warm-up frame when every later packet (in decode
  order) shows a later timestamp (a closed GOP: seeking there yields exactly the frames a decode from the
  start yields from that point), else it decodes from the start and discards.
* A task decodes its range plus the model's warm-up frames (``context`` before, and after for non-causal
  models), runs ``Engine.stream(first=, start=)`` exactly as a resumed run does (so every output frame
  comes from the same input clip as in one pass: pixel-identical), encodes its segment with a fresh
  encoder configured for the final container, and returns the *encoded* segment file (bytes). Decoded and
  upscaled frames never leave the worker.
* The driver writes each returned segment into the state folder (fsync, rename) and lists it in the
  manifest: contiguous ones as ``segments``, the others as ``ahead`` (so a killed driver's rerun with
  ``--resume`` reuses every finished segment, in or out of order). At the end it joins them and
  stream-copies audio/subtitles exactly like a single-process run (:func:`videosr.pipeline.join_segments`).

Faults: a task whose worker dies (SIGKILL, OOM killer, a lost node) is retried by Ray (``max_retries``);
tasks are idempotent (a result is accepted once per segment), so no frame is lost or written twice.

Threads: a task sets torch's intra-op threads to the CPUs Ray granted it (``num_cpus`` per task), so
N tasks on a machine never oversubscribe it. ``--workers N`` on the local runtime gives each task
``cores // N`` CPUs (at least 1).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import InputChangedError, InputError, Interrupted, ModelError, ResumeError, UsageError, VideosrError
from .job import JobOptions

RAY_HINT = "pip install -e '.[ray]'"
LOCAL_OBJECT_STORE = 256 << 20  # the embedded runtime's object store: segments are small encoded files
FAULT_DIR_ENV = "VIDEOSR_FAULT_DIR"  # tests: a file kill-<start> there makes the task for that segment SIGKILL itself


def import_ray():
    """``ray``, or a UsageError (exit 2) saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise UsageError(
            f"distributed runs (--workers, --ray-address, videosr batch) need Ray: {RAY_HINT} (the [ray] extra)"
        ) from None
    return ray


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


# ------------------------------------------------------------------------------------------------ runtime
class Runtime:
    """A connection to Ray: the embedded local runtime (``workers``) or a cluster (``address``).
    ``cpus``: CPUs each task asks for (its torch threads); ``slots``: tasks kept in flight (None: as many
    as the cluster takes)."""

    def __init__(self, ray, cpus: int, slots: int | None, local: bool, owned: bool):
        self.ray, self.cpus, self.slots, self.local, self.owned = ray, cpus, slots, local, owned

    def describe(self) -> str:
        if self.local:
            return f"{self.slots} local worker{'s' if self.slots != 1 else ''} x {self.cpus} CPU"
        try:
            total = int(self.ray.cluster_resources().get("CPU", 0))
            nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        except Exception:  # noqa: BLE001 - only a description
            total, nodes = 0, 0
        return f"Ray cluster: {nodes} node(s), {total} CPUs, {self.cpus} CPU per task"


@contextlib.contextmanager
def ray_runtime(workers: int | None = None, address: str | None = None, cpus_per_worker: int | None = None):
    """Connect to Ray for the ``with`` block. ``address``: an existing cluster (``ray start --head`` prints
    it; ``auto`` finds a local one); else a local runtime started in this process with ``workers`` task
    slots (default: one per core) that is shut down at the end. An already initialised Ray (a library
    caller, tests) is used as it is and left running."""
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1")
    if cpus_per_worker is not None and cpus_per_worker < 1:
        raise UsageError("--worker-cpus must be at least 1")
    ray = import_ray()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if ray.is_initialized():
        ctx_local = address is None
        cpus = cpus_per_worker or 1
        yield Runtime(ray, cpus, workers, ctx_local and workers is not None, owned=False)
        return
    if address is not None:
        _check_reachable(address)
        _init(ray, address=address)
        yield_rt = Runtime(ray, cpus_per_worker or 1, workers, local=False, owned=True)
    else:
        n = workers or cores
        cpus = cpus_per_worker or max(1, cores // n)
        # address "local": always a new runtime of our own, never a `ray start` cluster found on this machine
        _init(ray, address="local", num_cpus=n * cpus, object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False)
        yield_rt = Runtime(ray, cpus, n, local=True, owned=True)
    try:
        yield yield_rt
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` address must accept a connection within ``timeout`` (Ray itself retries for minutes)."""
    import socket

    if "://" in address or ":" not in address or address in ("auto", "local"):
        return
    host, _, port = address.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise UsageError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto") from None
    try:
        with socket.create_connection((host.strip("[]"), port_n), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({e.strerror or e}): is `ray start --head` "
            f"running there, and is the port open?"
        ) from None


def _init(ray, **kw) -> None:
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (nothing outside is reached)
    _ray_notes_to_stderr()
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        ray.init(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True, **kw)
    except ConnectionError as e:
        raise UsageError(f"cannot connect to the Ray cluster at {kw.get('address')}: {e}") from None
    except Exception as e:  # noqa: BLE001 - Ray raises many types when a runtime cannot start
        what = "a local Ray runtime" if kw.get("address") == "local" else f"the Ray cluster at {kw['address']}"
        raise VideosrError(
            f"cannot start {what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    finally:
        # Ray's core worker installs its own SIGTERM handler (it logs and ends the process): keep ours, so
        # SIGTERM stops a run like Ctrl-C does (resume state kept, exit 130)
        for sig, h in handlers.items():
            if h is not None:
                signal.signal(sig, h)


def _ray_notes_to_stderr() -> None:
    """Ray prints the cluster's notes to the driver ("(raylet) Task ... failed ... will be retried") on stdout;
    stdout is the output of `--json` (and of y4m pipes): send them to stderr."""
    try:
        from ray._private import worker as w
    except ImportError:
        return
    orig = w.print_to_stdstream
    if getattr(orig, "videosr", False):
        return

    def to_stderr(data, ignore_prefix, *a, **kw):
        return orig({**data, "is_err": True}, ignore_prefix, *a, **kw)

    to_stderr.videosr = True  # type: ignore[attr-defined]
    w.print_to_stdstream = to_stderr


def _unwrap(ray, e: BaseException) -> BaseException:
    """A task's own exception (a VideosrError keeps its exit code), else the Ray error itself."""
    if isinstance(e, ray.exceptions.RayTaskError):
        cause = getattr(e, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return e


# ------------------------------------------------------------------------------------------------ planning
def probe_packets(path: str) -> dict | None:
    """The video stream's packets without decoding: ``{"frames", "pts" (presentation order), "seek"}``
    where ``seek`` maps a frame index to its keyframe pts for every keyframe it is exact to seek to (closed
    GOP: no earlier packet shows a later timestamp, no later one an earlier). None where the source gives
    no such plan (no timestamps, repeated ones, an image folder, y4m): tasks then decode from the start."""
    if os.path.isdir(path):
        return None
    import av

    try:
        with av.open(path, metadata_errors="replace") as c:
            if c.format.name == "yuv4mpegpipe":
                return None
            vs = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            if not vs:
                return None
            s = vs[0]
            pk: list[tuple[int | None, bool]] = []
            for p in c.demux(s):
                if p.size:
                    pk.append((p.pts, bool(p.is_keyframe)))
    except (av.error.FFmpegError, OSError):
        return None
    if not pk or any(pts is None for pts, _ in pk):
        return {"frames": len(pk), "pts": None, "seek": {}} if pk else None
    order = sorted(pts for pts, _ in pk)
    if len(set(order)) != len(order):
        return {"frames": len(pk), "pts": None, "seek": {}}
    rank = {p: i for i, p in enumerate(order)}
    n = len(pk)
    suffix_min = [0] * (n + 1)
    suffix_min[n] = None  # type: ignore[call-overload]
    for j in range(n - 1, -1, -1):
        nxt = suffix_min[j + 1]
        suffix_min[j] = pk[j][0] if nxt is None else min(pk[j][0], nxt)
    seek: dict[int, int] = {}
    prefix_max = None
    for j, (pts, key) in enumerate(pk):
        later = suffix_min[j + 1]
        if key and (prefix_max is None or prefix_max < pts) and (later is None or later > pts):
            seek[rank[pts]] = pts
        prefix_max = pts if prefix_max is None else max(prefix_max, pts)
    return {"frames": n, "pts": order, "seek": seek}


# ------------------------------------------------------------------------------------------------ the task
_MODELS: dict[tuple, Any] = {}  # per worker process: models loaded by earlier tasks (weights stay pinned)


def _granted_cpus(default: int = 1) -> int:
    """CPUs Ray granted this task (its ``num_cpus``), else ``default``."""
    try:
        import ray

        got = ray.get_runtime_context().get_assigned_resources().get("CPU")
        if got:
            return max(1, int(math.floor(got)))
    except Exception:  # noqa: BLE001 - not in a Ray task
        pass
    return default


def _materialize(name: str, sha: str, data: bytes) -> str:
    """Bytes the driver shipped (input, weights), as a file in this worker's cache (by content hash)."""
    d = os.path.join(tempfile.gettempdir(), "videosr-shipped")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{sha[:16]}-{os.path.basename(name)}")
    if not (os.path.isfile(path) and os.path.getsize(path) == len(data)):
        tmp = f"{path}.{os.getpid()}.part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


def _same_input(local: dict, driver: dict) -> list[str]:
    keys = ("size", "head_sha256", "tail_sha256", "listing_sha256", "folder")
    return [k for k in keys if local.get(k) != driver.get(k)]


def _load_net(spec: dict, weights_path: str | None, model_path: str | None):
    from .models.resolve import load_model

    model = model_path or spec["model"]
    key = (model, spec["scale"], weights_path, spec["backend"])
    net = _MODELS.get(key)
    if net is None:
        net = load_model(model, spec["scale"], weights_path, backend=spec["backend"])
        _MODELS.clear()  # one model per worker process at a time
        _MODELS[key] = net
    net.display_name = spec["display_name"]  # a checkpoint shipped to another path is still that model
    return net


class _TaskState:
    """What :class:`videosr.io.segments.SegmentSink` needs of a resume state, inside a task: segments are
    written to a scratch folder, read back and returned (the driver owns the real state)."""

    def __init__(self, d: str, job: str):
        self.dir, self.job, self.last_pts = d, job, None
        self.done: list[dict] = []

    def segment_path(self, number: int) -> str:
        from .resume import segment_name

        return os.path.join(self.dir, segment_name(number))

    def commit(self, record: dict) -> None:
        path = os.path.join(self.dir, record["file"])
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        self.done.append({"record": record, "data": data})


class _Bounded:
    """The reader, from its current position up to frame ``stop`` (None: the end), remembering the pts of
    frame ``want`` (the last frame before the task's first output: the previous segment's last)."""

    def __init__(self, reader, stop: int | None, want: int, known: dict[int, int]):
        self.reader, self.info, self.stop, self.want = reader, reader.info, stop, want
        self.pts: dict[int, int] = dict(known)
        self.ended = False
        self.planes = getattr(reader, "planes", False)

    def __iter__(self):
        return self

    def __next__(self):
        r = self.reader
        if self.stop is not None and r.position >= self.stop:
            raise StopIteration
        try:
            f = next(r)
        except StopIteration:
            self.ended = True
            raise
        if f.index == self.want:
            self.pts[f.index] = f.pts
        return f


class _Limited:
    """An engine that stops after ``n`` outputs (a task's last chunk: its lookahead frames are not upscaled)."""

    def __init__(self, engine, n: int | None):
        self.engine, self.n = engine, n
        self.chunk, self.context = engine.chunk, engine.context

    def stream(self, frames, first: int = 0, start: int | None = None):
        import itertools

        it = self.engine.stream(frames, first=first, start=start)
        return it if self.n is None else itertools.islice(it, self.n)


def _seek(reader, plan: dict | None, target: int) -> int:
    """Put ``reader`` (just opened, at frame 0) at the last exact keyframe at or before ``target``; returns
    that frame index (0: not moved; -1: the seek failed, read from the start). The first frame decoded there
    must carry the planned timestamp (:meth:`videosr.io.VideoReader.seek_keyframe`)."""
    if not plan or not plan.get("seek") or target <= 0 or not hasattr(reader, "seek_keyframe"):
        return 0
    keys = [i for i in plan["seek"] if i <= target]
    if not keys:
        return 0
    k = max(keys)
    if k == 0:
        return 0
    return k if reader.seek_keyframe(k, plan["seek"][k]) else -1


def run_segments(
    spec: dict, input_data: bytes | None = None, model_data: bytes | None = None, weights_data: bytes | None = None
) -> dict:
    """The Ray task: make segments ``spec["numbers"]`` (``[a, b)``; b None: to the end of the video).
    Returns ``{"segments": [{"record", "data"}...], "frames", "ended", "pid", "node", "threads"}``."""
    import torch

    from .io import image_to_tensor, open_input
    from .io.segments import SegmentSink, SegmentWriter
    from .pipeline import build_stages, output_options, run_stages
    from .progress import Progress
    from .resume import input_fingerprint

    threads = _granted_cpus(spec.get("cpus", 1))
    torch.set_num_threads(threads)
    path = spec["input"]
    if input_data is not None:
        path = _materialize(path, spec["input_fp"].get("head_sha256", "input"), input_data)
    else:
        try:
            local = input_fingerprint(path)
        except OSError as e:
            raise InputError(
                f"{path}: not readable on worker node {_node()} ({e.strerror or e}): put the input "
                f"on storage every node mounts at the same path, or use --ship-input"
            ) from None
        diff = _same_input(local, spec["input_fp"])
        if diff:
            raise InputChangedError(
                f"{path}: the file on worker node {_node()} differs from the driver's "
                f"({', '.join(diff)}): put the input on shared storage or use --ship-input"
            )
    weights = _materialize(spec["weights"], spec["weights_sha"], weights_data) if weights_data is not None else None
    model_path = _materialize(spec["model"], spec["model_sha"], model_data) if model_data is not None else None
    net = _load_net(spec, weights, model_path)
    if not any(True for _ in net.parameters()):
        threads = 1  # as pipeline._job: a resampler is memory-bound
        torch.set_num_threads(1)
    a, b = spec["numbers"]
    seg_len = spec["segment_frames"]
    S = a * seg_len
    fault = _fault_hook(S)
    with open_input(path, **({"fps": spec["fps"]} if spec.get("fps") is not None else {})) as reader:
        info = reader.info
        plan = spec["output_plan"]  # the driver's: every segment is encoded as the joined output will be
        engine, stage_engine, to_input = build_stages(
            net,
            reader,
            plan.pix_fmt,
            spec["planes"],
            image_to_tensor,
            device=spec["device"],
            precision=spec["precision"],
            tile=spec["tile"],
            chunk=spec["chunk_arg"],
            compile=spec["compile"],
        )
        opts = output_options(
            net,
            engine,
            scale=engine.scale,
            plan=plan,
            pix_fmt=spec["pix_fmt"],
            backend=spec["backend"],
            tile=spec["tile"],
            planes=stage_engine is not engine or engine.planes is not None,
        )
        if spec.get("fps") is not None:
            opts["fps"] = str(info.fps)
        diff = [k for k in sorted(set(opts) | set(spec["options"])) if opts.get(k) != spec["options"].get(k)]
        if diff:
            raise ModelError(
                f"worker node {_node()} would make a different output than the driver ("
                + ", ".join(f"{k}: {opts.get(k)!r} here, {spec['options'].get(k)!r} there" for k in diff[:4])
                + "): install the same videosr, model weights and libraries on every node"
            )
        ctx = stage_engine.context
        causal = bool(getattr(stage_engine, "causal", getattr(engine, "causal", False))) or ctx == 0
        first = max(0, S - ctx)
        pos = min(first, S - 1) if S > 0 else 0
        at = _seek(reader, spec.get("plan"), pos)
        if at < 0:  # the keyframe did not decode as planned: decode from the start (always exact)
            reader.close()
            return run_segments({**spec, "plan": None}, input_data, model_data, weights_data)
        known = {}
        skipped = reader.skip(pos - at) if pos > at else []
        for i, p in enumerate(skipped, at):
            known[i] = p
        extra = reader.skip(first - pos) if first > pos else []
        for i, p in enumerate(extra, pos):
            known[i] = p
        out = {
            "segments": [],
            "frames": 0,
            "ended": False,
            "pid": os.getpid(),
            "node": _node(),
            "threads": threads,
            "seeked": at > 0,
        }
        if len(skipped) + len(extra) < first - at:
            out["ended"] = True  # the video ends before this segment
            return out
        stop = None if b is None else b * seg_len + (0 if causal else ctx)
        src = _Bounded(reader, stop, S - 1, known)
        _sweep_scratch()
        with tempfile.TemporaryDirectory(prefix=f"videosr-task-{os.getpid()}-") as scratch:
            st = _TaskState(scratch, spec["job"])
            fixed = "last_pts_fixed" in spec  # a resubmission: the previous segment's real last output pts
            st.last_pts = spec.get("last_pts_fixed")
            primed: dict[str, int | None] = {}

            def writer(seg_path, plan, inf, *, last_pts, tag):
                wr = SegmentWriter(seg_path, plan, inf, last_pts=last_pts, tag=tag)
                if last_pts is None and tag["start"] == S and S > 0 and not fixed:
                    # the previous segment's last output pts as a single pass would have it (the source pts of
                    # frame S-1 through the same writer); the driver checks it against that segment's record
                    prev = src.pts.get(S - 1)
                    if prev is not None:
                        from .io import Frame

                        wr.advance_pts(Frame(image=None, pts=prev, time_base=inf.time_base, index=S - 1))
                if tag["start"] == S:
                    primed["prev_out_pts"] = wr.last_pts
                return wr

            sink = SegmentSink(st, seg_len, plan, info, writer)
            write = sink.write if fault is None else fault(sink.write)
            limited = _Limited(stage_engine, None if b is None else (b - a) * seg_len)
            bar = Progress(None, enabled=False)
            try:
                n = run_stages(
                    src,
                    limited,
                    to_input,
                    bar,
                    None,
                    write=write,
                    finish=sink.finish,
                    first=first,
                    start=S,
                    allow_empty=True,
                )
            except BaseException:
                sink.abort()
                raise
            out["frames"] = n
            # the video ends in this task's range (not merely in its lookahead frames past the range)
            out["ended"] = src.ended and (b is None or reader.position <= b * seg_len)
            if st.done:
                st.done[0]["record"]["prev_out_pts"] = primed.get("prev_out_pts")
            out["segments"] = st.done
    return out


def _sweep_scratch() -> None:
    """Remove the scratch folders of tasks whose worker process died (SIGKILL, OOM killer) on this node."""
    import shutil

    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or not name.startswith("videosr-task-") or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        try:
            os.kill(pid, 0)
            continue  # alive (or not ours to judge)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def _node() -> str:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # noqa: BLE001
        import socket

        return socket.gethostname()


def _fault_hook(start: int):
    """Tests only: with VIDEOSR_FAULT_DIR set and a file ``kill-<start>`` in it, the task for the segment
    starting at ``start`` removes the file and SIGKILLs its own worker process after its first frame (so the
    retried attempt runs normally)."""
    d = os.environ.get(FAULT_DIR_ENV)
    if not d:
        return None
    marker = os.path.join(d, f"kill-{start}")
    if not os.path.exists(marker):
        return None

    def wrap(write):
        def w(src, hr):
            write(src, hr)
            try:
                os.unlink(marker)
            except FileNotFoundError:
                return
            with open(os.path.join(d, f"killed-{start}-{os.getpid()}"), "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)

        return w

    return wrap


# ------------------------------------------------------------------------------------------------ the driver
def _write_segment(sdir: str, name: str, data: bytes) -> None:
    from .io.segments import fsync_dir

    path = os.path.join(sdir, name)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(sdir)


def _valid_ahead(st, seg_len: int) -> list[dict]:
    """The state's ``ahead`` records (segments finished out of order) whose files are intact."""
    from .resume import segment_name, segment_problem, sha256_file

    good = []
    done = st.done_frames
    for rec in st.manifest.get("ahead", []) if isinstance(st.manifest.get("ahead"), list) else []:
        if not isinstance(rec, dict) or not isinstance(rec.get("start"), int) or rec["start"] % seg_len:
            continue
        k = rec["start"] // seg_len
        if rec["start"] < done or segment_problem(k, rec, rec["start"], seg_len, True):
            continue
        p = os.path.join(st.dir, segment_name(k))
        if (
            os.path.isfile(p)
            and not os.path.islink(p)
            and os.path.getsize(p) == rec["size"]
            and sha256_file(p) == rec["sha256"]
        ):
            good.append(rec)
    return sorted(good, key=lambda r: r["start"])


DISTRIBUTED_EXCLUDE = frozenset({"untrained"})  # JobOptions a distributed run does not take (its models are trained)


def upscale(
    input,
    output,
    *,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_worker: int | None = None,
    ship_input: bool = False,
    max_retries: int = 3,
    on_frames: Callable[[int], None] | None = None,
    **options,
) -> dict[str, Any]:
    """:func:`videosr.pipeline.upscale` with the segments made by Ray tasks (``workers`` local task slots, or
    the cluster at ``address``); same output, pixel for pixel, and the same resume state. ``options``: the
    keywords of :func:`videosr.pipeline.upscale` (scale, model, weights, tile, device, precision, chunk, codec,
    crf, preset, pix_fmt, format, overwrite, progress, backend, resume, segment, planes, compile, quality, fps:
    :class:`videosr.job.JobOptions`) except ``untrained`` and ``on_frame``; another keyword is a TypeError.
    Returns upscale's summary plus ``workers`` (a description), ``segments``, ``reused`` (segments an earlier run
    made), ``remade`` (segments made again to chain repaired timestamps), ``nodes`` (Ray node ids that made
    segments), ``threads`` (the torch thread counts the tasks ran with) and ``seeked`` (tasks that started
    decoding at a keyframe instead of the first frame).
    ``on_frames(n)``: called with the frames of each finished segment (batch progress)."""
    opts = JobOptions.of("upscale", options, exclude=DISTRIBUTED_EXCLUDE)
    _check_job(input, output, opts.format, ship_input, opts.compile, opts.backend)  # before starting Ray (seconds)
    with ray_runtime(workers, address, cpus_per_worker) as rt:
        return run_job(rt, input, output, opts, ship_input=ship_input, max_retries=max_retries, on_frames=on_frames)


def upscale_on(
    rt: Runtime,
    input,
    output,
    *,
    ship_input=False,
    max_retries=3,
    on_frames=None,
    stop: threading.Event | None = None,
    **options,
) -> dict[str, Any]:
    """:func:`upscale` on a runtime already connected (``videosr batch`` runs several of these at once);
    ``options``: as for :func:`upscale`."""
    opts = JobOptions.of("upscale_on", options, exclude=DISTRIBUTED_EXCLUDE)
    return run_job(
        rt, input, output, opts, ship_input=ship_input, max_retries=max_retries, on_frames=on_frames, stop=stop
    )


def run_job(
    rt: Runtime,
    input,
    output,
    opts: JobOptions,
    *,
    ship_input: bool = False,
    max_retries: int = 3,
    on_frames: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """:func:`upscale_on` with its options as one :class:`videosr.job.JobOptions` (``opts.untrained`` is not
    taken: a distributed run's model must be trained)."""
    from .io.writer import check_encoder_options, check_not_input, sweep_temps
    from .lock import output_lock
    from .pipeline import memory_errors, resolve_model
    from .resume import state_dir_for_run

    t0 = time.perf_counter()
    kind = _check_job(input, output, opts.format, ship_input, opts.compile, opts.backend)
    check_encoder_options(opts.codec, opts.crf, opts.preset)
    input, output = os.fspath(input), os.fspath(output)
    check_not_input(input, output, kind)
    with output_lock(output), memory_errors(opts.tile):
        sweep_temps(output)
        sdir = state_dir_for_run(output, opts.resume, opts.overwrite)
        model, reason = resolve_model(
            input, opts.model, opts.scale, opts.quality, opts.weights, sdir, backend=opts.backend
        )
        res = _drive(
            rt,
            input,
            output,
            sdir,
            opts.replace(model=model),
            ship_input=ship_input,
            max_retries=max_retries,
            on_frames=on_frames,
            header=f"model {model}: {reason}" if reason else None,
            stop=stop,
        )
    seconds = time.perf_counter() - t0
    frames = res["frames"]
    return {
        "input": input,
        "output": output,
        "model": res["model"],
        "reason": reason,
        "scale": res["scale"],
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 3) if seconds > 0 else None,
        "workers": rt.describe(),
        "segments": res["segments"],
        "reused": res["reused"],
        "remade": res["retried"],
        "nodes": res["nodes"],
        "threads": res["threads"],
        "seeked": res["seeked"],
    }


def _check_job(input, output, format, ship_input: bool, compile: bool, backend: str) -> str:
    """UsageError for what a distributed run cannot do; returns OUTPUT's kind."""
    from .io.reader import is_stream
    from .io.writer import output_kind

    kind = output_kind(output, format) if isinstance(output, (str, os.PathLike)) else "-"
    if is_stream(input) or kind in ("-", "null", "png", "yuv4mpegpipe"):
        raise UsageError(
            "a distributed run (--workers, --ray-address, batch) needs an input file or folder and a "
            "video file output (.mp4/.mkv/.mov/.webm): not stdin, stdout, y4m, /dev/null or PNGs"
        )
    if ship_input and os.path.isdir(input):
        raise UsageError("--ship-input sends one file: put an image-folder input on storage every node mounts")
    if compile and backend != "torch":
        raise UsageError("--compile is for the torch backend")
    return kind


def _file_ref(ray, path: str | None) -> tuple[Any, str | None]:
    if path is None or not os.path.isfile(path):
        return None, None
    from .resume import sha256_file

    with open(path, "rb") as f:
        data = f.read()
    return ray.put(data), sha256_file(path)


def _drive(
    rt: Runtime,
    input,
    output,
    sdir,
    opts: JobOptions,
    *,
    ship_input,
    max_retries,
    on_frames,
    header,
    stop,
) -> dict:
    from .io import image_to_tensor, open_input
    from .models.resolve import default_model_name, load_model, require_trained
    from .pipeline import MAX_OUTPUT_PIXELS, build_stages, join_segments, prepare_state
    from .progress import Progress, announce

    ray = rt.ray
    o = opts
    with open_input(input, **o.input_args()) as reader:
        info = reader.info
        announce(header or "", enabled=o.progress and bool(header))
        announce(f"loading model {o.model or default_model_name(o.scale or 4)} ...", enabled=o.progress)
        net = load_model(o.model, o.scale, o.weights, backend=o.backend)
        require_trained(net)
        s = net.scale
        out_w, out_h = info.width * s, info.height * s
        out_plan = o.plan_output(output, info, out_w, out_h)
        engine, stage_engine, _ = build_stages(
            net,
            reader,
            out_plan.pix_fmt,
            o.planes,
            image_to_tensor,
            **o.engine_args(),
        )
        if out_w * out_h > MAX_OUTPUT_PIXELS:
            raise UsageError(
                f"output frames would be {out_w}x{out_h}; the limit is "
                f"{MAX_OUTPUT_PIXELS / 1e6:.0f} Mpixels per frame (use a smaller --scale)"
            )
        p = prepare_state(reader, input, output, sdir, net, engine, stage_engine, out_plan, o)
        st = p.st
        if p.published:
            return {
                "model": net.display_name,
                "scale": s,
                "frames": st.manifest["frames"],
                "segments": len(st.manifest["segments"]),
                "reused": len(st.manifest["segments"]),
                "retried": 0,
                "nodes": [],
                "threads": [],
                "seeked": 0,
            }
    plan = probe_packets(input)
    fp, out_opts, seg_len = p.fp, p.opts, p.seg_len
    reused = len(st.manifest["segments"])
    retried, nodes, threads, seeked = 0, [], [], 0
    bar = None
    try:
        if not st.manifest["finished"]:
            ahead = {r["start"] // seg_len: r for r in _valid_ahead(st, seg_len)}
            st.manifest["ahead"] = sorted(ahead.values(), key=lambda r: r["start"])
            reused += len(ahead)
            est = (plan or {}).get("frames") or info.frames or 0
            n_seg = max(1, math.ceil(est / seg_len), len(st.manifest["segments"]) + 1, (max(ahead) + 1) if ahead else 0)
            last_ended = bool(ahead and ahead[max(ahead)].get("eof"))
            if ahead and not last_ended:
                n_seg = max(n_seg, max(ahead) + 2)  # the video may go on after the last segment made
            todo = [k for k in range(len(st.manifest["segments"]), n_seg) if k not in ahead]
            spec = {
                "input": os.path.abspath(input),
                "input_fp": fp,
                "output_plan": out_plan,
                "model": o.model if o.model is not None else net.display_name,
                "display_name": net.display_name,
                "scale": s,
                "backend": o.backend,
                "device": engine.device.type,
                "precision": engine.precision,
                "tile": o.tile,
                "chunk_arg": o.chunk,
                "compile": o.compile,
                "planes": o.planes,
                "pix_fmt": o.pix_fmt,
                "options": out_opts,
                "segment_frames": seg_len,
                "job": st.job,
                "fps": o.fps,
                "plan": {"seek": plan["seek"]} if plan and plan.get("seek") else None,
                "cpus": rt.cpus,
                "weights": o.weights,
                "weights_sha": None,
                "model_sha": None,
            }
            input_ref = None
            if ship_input:
                with open(input, "rb") as f:
                    input_ref = ray.put(f.read())
            weights_ref, spec["weights_sha"] = _file_ref(ray, o.weights)
            model_file = o.model if (o.model is not None and os.path.isfile(o.model)) else None
            model_ref, spec["model_sha"] = _file_ref(ray, model_file)
            task = ray.remote(run_segments).options(
                num_cpus=rt.cpus, max_retries=max_retries, retry_exceptions=False, name="videosr-segment"
            )
            done0 = st.done_frames + sum(r["end"] - r["start"] for r in ahead.values())
            left = max(0, est - done0) if est else None
            bar = Progress(
                left,
                label=(
                    f"upscale on {rt.describe()}"
                    if not done0
                    else f"upscale on {rt.describe()} (resumed: {reused} segments reused)"
                ),
                enabled=o.progress,
                header=header,
                warmup=1,
            )
            bar.begin()
            retried, nodes, threads, seeked = _schedule(
                ray,
                rt,
                task,
                spec,
                todo,
                n_seg,
                st,
                ahead,
                seg_len,
                sdir,
                bar,
                on_frames,
                input_ref,
                model_ref,
                weights_ref,
                stop,
            )
            st.manifest.pop("ahead", None)
            st.finish(st.done_frames)
            bar.close()
            bar = None
        total = st.manifest["frames"]
        join_segments(st, input, output, info, out_plan, overwrite=o.overwrite, total=total)
    except KeyboardInterrupt as e:
        if bar is not None:
            bar.close()
        raise Interrupted(f"interrupted; rerun with --resume to continue (state kept in {sdir})") from e
    except BaseException as e:
        if bar is not None:
            bar.close()
        if isinstance(e, InputChangedError):
            pass
        elif not st.manifest.get("segments") and not st.manifest.get("ahead") and not st.manifest.get("finished"):
            st.remove()
        elif o.resume and isinstance(e, VideosrError) and not isinstance(e, ResumeError):
            e.args = (f"{e}; resume state kept in {sdir}: rerun with --resume to continue",)
        elif not o.resume:
            st.remove()
        raise
    n_segs = len(st.manifest["segments"])
    st.remove()
    return {
        "model": net.display_name,
        "scale": s,
        "frames": total,
        "segments": n_segs,
        "reused": reused,
        "retried": retried,
        "nodes": nodes,
        "threads": threads,
        "seeked": seeked,
    }


def _schedule(
    ray, rt, task, spec, todo, n_seg, st, ahead, seg_len, sdir, bar, on_frames, input_ref, model_ref, weights_ref, stop
) -> int:
    """Run the tasks for segments ``todo`` (the last planned one runs to the end of the video), write and list
    each returned segment (``ahead`` until the ones before it are in), and return how many segments were
    remade because their timestamps had to chain onto a repaired previous segment."""
    from .resume import segment_name

    pending = list(todo)
    inflight: dict[Any, int] = {}
    last = n_seg - 1
    end_at: int | None = None  # first segment number past the end of the video
    remade = 0
    nodes: set[str] = set()
    threads: set[int] = set()
    seeked = 0

    def submit(k: int, **extra) -> None:
        sp = dict(spec, numbers=(k, None if k == last else k + 1), **extra)
        inflight[task.remote(sp, input_ref, model_ref, weights_ref)] = k

    def fill() -> None:
        while pending and (rt.slots is None or rt.local or len(inflight) < rt.slots):
            submit(pending.pop(0))

    def save_ahead() -> None:
        st.manifest["ahead"] = sorted(ahead.values(), key=lambda r: r["start"])
        st.save()

    def commit_ready() -> bool:
        """List the contiguous segments; False when one had to be remade (its task was resubmitted)."""
        while True:
            k = len(st.manifest["segments"])
            rec = ahead.get(k)
            if rec is None:
                return True
            prev = st.last_pts
            if k > 0 and rec.get("prev_out_pts", prev) != prev:
                # the previous segment's timestamps were repaired (non-increasing input pts): remake this one
                # on the real chain, as a single pass makes it
                del ahead[k]
                save_ahead()
                submit(k, last_pts_fixed=prev)
                return False
            del ahead[k]
            st.manifest["segments"].append({kk: v for kk, v in rec.items() if kk not in ("prev_out_pts", "eof")})
            save_ahead()

    try:
        fill()
        while True:
            if not inflight:
                if not commit_ready():
                    remade += 1
                    continue
                break
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            if not ready:
                continue
            ref = ready[0]
            k = inflight.pop(ref)
            try:
                res = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task's own error, or Ray giving up on it
                err = _unwrap(ray, e)
                if isinstance(err, VideosrError):
                    raise err from None
                raise VideosrError(
                    f"segment {k} failed on the cluster: {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}"
                ) from None
            segs = res["segments"]
            nodes.add(res["node"])
            threads.add(res["threads"])
            seeked += bool(res["seeked"])
            for j, item in enumerate(segs):
                rec = dict(item["record"])
                name = segment_name(rec["start"] // seg_len)
                if rec["file"] != name or rec["start"] % seg_len:
                    raise ResumeError(f"the task for segment {k} returned {rec['file']} at frame {rec['start']}")
                if j == len(segs) - 1 and res["ended"]:
                    rec["eof"] = True
                _write_segment(sdir, name, item["data"])
                ahead[rec["start"] // seg_len] = rec
            if segs:
                save_ahead()
            if res["frames"]:
                bar.update(res["frames"])
                if on_frames is not None:
                    on_frames(res["frames"])
            if res["ended"]:
                end_k = k + len(segs)  # no frame at or past this segment
                end_at = end_k if end_at is None else min(end_at, end_k)
                pending[:] = [p for p in pending if p < end_at]
            if not commit_ready():
                remade += 1
            fill()
    except BaseException:
        for r in inflight:
            with contextlib.suppress(Exception):
                ray.cancel(r, force=True)
        raise
    if ahead:
        k = min(ahead)
        raise ResumeError(
            f"segment {k} (frame {ahead[k]['start']}) came back, but an earlier one is missing "
            f"(the input decodes to fewer frames than its packets say): rerun without --workers"
        )
    if not st.manifest["segments"]:
        from .errors import EmptyInputError

        raise EmptyInputError(f"{spec['input']}: no frames could be decoded")
    if end_at is None and not (st.manifest["segments"] and _ended_before(st, seg_len)):
        raise ResumeError(f"{spec['input']}: the last segment task did not reach the end of the video")
    return remade, sorted(nodes), sorted(threads), seeked


def _ended_before(st, seg_len: int) -> bool:
    """The committed segments end with a short one: the video ended there (a resumed run with nothing to do)."""
    last = st.manifest["segments"][-1]
    return last["end"] - last["start"] < seg_len
