"""`videosr.upscale`: decode -> model (chunked, tiled) -> encode, streaming, with overlapping stages.

Three stages run concurrently in threads, joined by bounded queues so memory stays bounded by a few
frames: a decoder (PyAV releases the GIL while decoding), the model (torch releases it while
computing) and an encoder. The calling thread only waits, so Ctrl-C/SIGTERM are handled within a
fraction of a second even while a long model call is running. Any failure in a stage stops the others.

Video file outputs are written as resumable segments (see :mod:`videosr.resume` and
``docs/reliability.md``): encoded packets of ``segment`` frames each, committed to a hidden state folder
beside OUTPUT, joined into OUTPUT (stream copy, no re-encode) at the end, then the state is removed.
An interrupted run keeps the state and ``--resume`` continues it; a failed run removes it (unless it
was a ``--resume`` run, or the input changed). Other outputs (PNG folders, y4m/stdout, /dev/null) and
stdin input are single-pass. Either way a failed run never leaves a file at OUTPUT.

Every run on a file or folder OUTPUT holds that output's lock (:mod:`videosr.lock`) from before it looks
at the resume state until it is done, so two runs never write (or clean up) the same OUTPUT. Before the
join, the segments must cover exactly the input's frames, the input must still be the file the state was
made from, and the joined video must hold exactly that many frames.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import InputChangedError, Interrupted, ResumeError, UsageError, VideosrError
from .io import Frame
from .job import JobOptions
from .progress import Progress, announce

_END = object()
SEGMENT_SECONDS = 4.0  # resumable segments: about this much video each (a multiple of the chunk)
MAX_OUTPUT_PIXELS = 1 << 28  # per output frame (16384 x 16384): refused before any frame is upscaled
STOP_GRACE = 1.0  # seconds the stages get to stop after an interrupt before we give up on them
# memory a recurrent model's clip takes per LR pixel per frame (quality-x4 in forward_planes, bf16 and fp32
# alike; a one-off measurement of 48- against 32-frame clips; benchmarks/peak_memory.py measures whole runs); the
# planes path lengthens the chunk only while the extra frames stay under LONGER_CHUNK_BYTES
CLIP_BYTES_PER_LR_PIXEL = 400
LONGER_CHUNK_BYTES = 128 << 20


def resolve_model(
    input,
    model: str | None,
    scale: int | None,
    quality: str = "auto",
    weights: str | None = None,
    sdir: str | None = None,
    backend: str = "torch",
) -> tuple[str | None, str | None]:
    """``--model auto`` (also ``None``, the default): the model for this input on this CPU and why
    (:mod:`videosr.models.auto`), among the models ``backend`` runs; a resumed run keeps the model its state was
    made with. An explicit model comes back as given, with no reason. ``quality`` (auto, fast, best) only
    applies to auto. A model the backend cannot run is refused here, before anything loads (exit 2)."""
    from .models import auto
    from .models.resolve import check_backend, check_scale

    if quality not in auto.QUALITIES:
        raise UsageError(f"unknown --quality {quality!r} (use {', '.join(auto.QUALITIES)})")
    if model not in (None, "auto"):
        if quality != "auto":
            raise UsageError(
                "--quality picks among the shipped models: use it with --model auto (the default), "
                "not with --model NAME"
            )
        check_backend(model, scale, backend)
        return model, None
    if weights is not None:
        raise UsageError("--weights needs --model NAME (the architecture the weights are for)")
    check_scale(scale)
    if sdir is not None and os.path.isdir(sdir):
        from .models import VARIANTS
        from .resume import State

        kept = State.load(sdir).manifest.get("options", {}).get("model")
        if isinstance(kept, str) and kept in VARIANTS:  # an edited manifest may hold any JSON here
            check_backend(kept, scale, backend)
            return kept, "the model of the run being resumed"
    src = auto.probe_source(input) if isinstance(input, (str, os.PathLike)) else auto.probe_source("-")
    choice = auto.choose(scale or 4, src, quality, backend=backend)
    check_backend(choice.model, scale, backend)
    return choice.model, f"{choice.reason}; input: {src.note}"


def _precheck(output, opts: JobOptions) -> None:
    """The mistakes found without loading anything (a bad scale or model name, a model without weights, an
    existing OUTPUT), raised before the "loading model ..." line so that such an error is the only line."""
    from .models import VARIANTS, create_model
    from .models.resolve import check_scale, refuse_untrained, variant_for

    model, scale = opts.model, opts.scale
    check_scale(scale)
    if model is not None and not (model not in VARIANTS and os.path.exists(model)):
        name, _ = variant_for(model, scale)
        v = VARIANTS[name]
        if (
            not opts.untrained
            and opts.weights is None
            and v.weights is None
            and any(True for _ in create_model(name, pretrained=False).parameters())
        ):
            refuse_untrained(name, v.scale)
    if opts.resume or not isinstance(output, (str, os.PathLike)) or output == "-":
        return  # a resumed run may find its OUTPUT already published (then it only cleans up)
    from .io.writer import check_output_path

    check_output_path(output, opts.format, opts.overwrite)


def _check_output_size(output, info, opts: JobOptions) -> None:
    """The encoder must take frames of the output's size: refused before the model loads (one line). The
    encoder is the one the output's plan (:func:`videosr.io.plan_output`) takes, as the job's writer will."""
    from .io.writer import check_encoder_size, output_kind
    from .models import VARIANTS

    if not isinstance(output, (str, os.PathLike)) or output == "-":
        return
    if output_kind(output, opts.format) in ("null", "png", "yuv4mpegpipe"):
        return
    s = opts.scale
    if s is None and opts.model in VARIANTS:
        s = VARIANTS[opts.model].scale
    w, h = getattr(info, "width", 0) or 0, getattr(info, "height", 0) or 0
    if s and w and h and max(w, h) * s > 8192:  # small sizes always open: spare the probe
        plan = opts.plan_output(output, info, w * s, h * s)
        if plan.codec is not None:
            check_encoder_size(plan.codec, w * s, h * s)


class Stage(threading.Thread):
    """A daemon thread whose exception is kept and re-raised in the caller."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e


def put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` into the bounded ``q``, waiting for room until ``stop`` is set; False if it was."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def drain(q: queue.Queue, stop: threading.Event, end: object) -> Iterator[Any]:
    """The items of ``q`` up to ``end`` (not yielded), or until ``stop`` is set (seen within 0.1 s): the loop
    of a stage that consumes a queue."""
    while True:
        try:
            item = q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is end or stop.is_set():
            return
        yield item


def segment_frames(fps, chunk: int, requested: int | None = None) -> int:
    """Frames per resumable segment: ``requested`` or about SEGMENT_SECONDS of video, rounded up to a
    multiple of ``chunk`` so a resumed run cuts the same temporal chunks as an uninterrupted one."""
    if requested is not None:
        if requested < 1:
            raise UsageError("--segment must be at least 1 frame")
        n = requested
    else:
        rate = float(fps) if fps else 25.0
        n = max(1, int(round(rate * SEGMENT_SECONDS)))
    return max(chunk, math.ceil(n / chunk) * chunk)


def upscale(
    input,
    output,
    *,
    scale: int | None = None,
    model: str | None = None,
    weights: str | None = None,
    tile: int | str | None = None,
    device: str = "auto",
    precision: str = "auto",
    chunk: int | None = None,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    backend: str = "torch",
    resume: bool = False,
    segment: int | None = None,
    planes: bool = True,
    compile: bool = False,
    on_frame: Callable[[int], None] | None = None,
    format: str | None = None,
    quality: str = "auto",
    untrained: bool = False,
    fps=None,
) -> dict[str, Any]:
    """Upscale INPUT to OUTPUT; returns ``{"input", "output", "model", "reason", "scale", "frames", "seconds",
    "fps"}`` (``reason``: why ``--model auto`` took that model, else None).

    ``model``: a registered name, a training checkpoint, or ``"auto"``/None: the best shipped model for this
    input at >= 0.25x the floor on this CPU (``quality="fast"``: the fastest; ``"best"``: no speed bar),
    see :mod:`videosr.models.auto`.

    INPUT: a video file, a folder of images, or ``-`` (y4m on stdin). OUTPUT: .mp4/.mkv/.mov/.webm/.y4m,
    a folder of PNGs (``format="png"``, a trailing ``/``, or a folder videosr wrote), ``/dev/null`` (or
    another character device: the frames are discarded), or ``-`` (y4m on stdout). Audio and subtitle
    streams, timestamps and colour metadata are kept. The output appears only when complete.
    ``overwrite`` replaces only a regular file or a folder videosr wrote (never the input, a folder
    videosr did not write, a FIFO, socket or device) and discards stale resume state of OUTPUT.

    Video file outputs from a file/folder input are resumable: ``resume=True`` continues the state an
    interrupted run left (or starts one); without it, leftover state raises :class:`ResumeError`.
    ``segment``: frames per resumable segment (default about 4 s, a multiple of the chunk).
    ``compile``: torch.compile the model (see videosr.engine: pays off on long videos only).
    ``planes``: skip the RGB round trip of every output frame where the maths allow: a per-channel
    resampler (bicubic, lanczos) scales the Y, U, V planes of 8-bit planar YUV video when the output has the
    same pix_fmt; a model with ``supports_planes`` reconstructs the output's 8-bit 4:2:0 planes (whole
    frames). False: always through RGB frames.
    ``fps``: the frame rate of an image-folder INPUT (default 25: images carry no timing); a UsageError for
    other inputs.
    ``untrained``: run a learned model that ships no weights with its random initial ones (``videosr bench``
    times architectures for speed); otherwise such a model without ``weights`` raises :class:`ModelError`.
    KeyboardInterrupt (Ctrl-C; the CLI maps SIGTERM to it) becomes :class:`Interrupted`.
    """
    from .io.writer import RESUMABLE, output_kind
    from .lock import output_lock

    t0 = time.perf_counter()
    opts = JobOptions(
        scale=scale,
        model=model,
        weights=weights,
        tile=tile,
        device=device,
        precision=precision,
        chunk=chunk,
        codec=codec,
        crf=crf,
        preset=preset,
        pix_fmt=pix_fmt,
        format=format,
        overwrite=overwrite,
        progress=progress,
        backend=backend,
        resume=resume,
        segment=segment,
        planes=planes,
        compile=compile,
        quality=quality,
        untrained=untrained,
        fps=fps,
    )
    from .io.live import is_live_sink, is_live_source

    if is_live_source(input) or is_live_sink(output):
        raise UsageError(
            f"{input if is_live_source(input) else output} is a live stream: upscale it with "
            "videosr.live.live_upscale (videosr upscale --live)"
        )
    kind = output_kind(output, format) if isinstance(output, (str, os.PathLike)) else "-"
    from .io.reader import is_stream

    file_input = not is_stream(input)  # stdin, a named pipe, <(cmd), /dev/stdin on a pipe: read once
    segmented = file_input and kind in RESUMABLE  # segments joined at the end: see io.segments
    if resume and not file_input:
        raise UsageError(
            f"--resume cannot be used with {'stdin' if input == '-' else input}: a pipe is read once, "
            "as it arrives, so an interrupted run could not continue where it stopped; run without "
            "--resume (the output still appears only when complete)"
        )
    if resume and not segmented:
        raise UsageError(
            "--resume needs an input file or folder and a video file output "
            "(.mp4/.mkv/.mov/.webm), not stdin, stdout, y4m, /dev/null or a PNG folder"
        )
    if compile and backend != "torch":
        raise UsageError("--compile is for the torch backend")
    if kind not in ("-", "null", "png", "yuv4mpegpipe"):
        from .io.writer import check_encoder_options

        check_encoder_options(codec, crf, preset)  # before any work: exit 2 naming the valid values
    writes = kind not in ("-", "null")
    if writes and file_input:
        from .io.writer import check_not_input

        check_not_input(input, output, kind)
    with output_lock(output) if writes else contextlib.nullcontext(), memory_errors(tile):
        if writes:
            from .io.writer import sweep_temps

            sweep_temps(output)  # temp files a killed run left beside OUTPUT (only ours, only stale)
        sdir = None
        if segmented:
            from .resume import state_dir_for_run

            sdir = state_dir_for_run(output, resume, overwrite)
        model, reason = resolve_model(input, model, scale, quality, weights, sdir, backend=backend)
        net, s, frames = _job(
            input,
            output,
            sdir,
            opts.replace(model=model),
            on_frame=on_frame,
            header=f"model {model}: {reason}" if reason else None,
        )
    seconds = time.perf_counter() - t0
    return {
        "input": str(input),
        "output": str(output),
        "model": getattr(net, "display_name", str(model)),
        "reason": reason,
        "scale": s,
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 3) if seconds > 0 else None,
    }


def _job(
    input,
    output,
    sdir,
    opts: JobOptions,
    *,
    on_frame: Callable[[int], None] | None,
    header: str | None,
):
    """Decode, upscale and write (under the output's lock) as ``opts`` (its model resolved) say; returns
    (model, scale, frames written)."""
    from .engine import set_threads
    from .io import image_to_tensor, open_input, open_planned
    from .models.resolve import default_model_name, load_model, require_trained

    o = opts
    set_threads()
    with open_input(input, **o.input_args()) as reader:
        info = reader.info
        _precheck(output, o)
        _check_output_size(output, info, o)
        _warn_dropped_streams(info, output, o.format, o.progress)
        # said at once: loading and warming up a model can take tens of seconds before the first frame
        announce(header or "", enabled=o.progress and bool(header))
        header = None
        announce(f"loading model {o.model or default_model_name(o.scale or 4)} ...", enabled=o.progress)
        net = load_model(o.model, o.scale, o.weights, backend=o.backend)
        if not o.untrained:
            require_trained(net)
        if not any(True for _ in net.parameters()):
            # parameter-free resamplers (bicubic, lanczos) are memory-bound: a second OpenMP thread only
            # spins against the encoder's threads (one thread cost less CPU per 1080p frame: a one-off measurement)
            set_threads(1)
        s = net.scale
        out_w, out_h = info.width * s, info.height * s
        plan = o.plan_output(output, info, out_w, out_h)
        engine, stage_engine, to_input = build_stages(
            net,
            reader,
            plan.pix_fmt,
            o.planes,
            image_to_tensor,
            **o.engine_args(),
        )
        if out_w * out_h > MAX_OUTPUT_PIXELS:
            raise UsageError(
                f"output frames would be {out_w}x{out_h} ({out_w * out_h / 1e6:.0f} Mpixels); the limit "
                f"is {MAX_OUTPUT_PIXELS / 1e6:.0f} Mpixels per frame (use a smaller --scale)"
            )
        if sdir is not None:
            frames = _upscale_segmented(
                reader,
                input,
                output,
                sdir,
                net,
                engine,
                stage_engine,
                to_input,
                plan,
                o,
                on_frame=on_frame,
                header=header,
            )
            return net, s, frames
        writer = open_planned(output, info, plan, overwrite=o.overwrite)
        try:
            bar = Progress(info.frames, label="upscale", enabled=o.progress, header=header, warmup=engine.chunk)
            frames = run_stages(
                reader,
                stage_engine,
                to_input,
                bar,
                on_frame,
                write=lambda src, hr: writer.write(
                    Frame(image=hr, pts=src.pts, time_base=src.time_base, index=src.index)
                ),
            )
            writer.close()
        except BaseException as e:
            _abort(writer, getattr(e, "stuck_io", False))
            if isinstance(e, KeyboardInterrupt):
                raise _interrupted(e, "interrupted") from None
            raise
    return net, s, frames


def _warn_dropped_streams(info, output, format, enabled: bool) -> None:
    """A PNG folder or y4m OUTPUT holds video only: say so when the input has audio or subtitles."""
    from .io.writer import output_kind

    kind = output_kind(output, format) if isinstance(output, (str, os.PathLike)) else "-"
    if kind not in ("png", "yuv4mpegpipe", "-"):
        return
    what = [
        f"{n} {name} stream{'s' if n > 1 else ''}"
        for n, name in ((info.audio_streams, "audio"), (info.subtitle_streams, "subtitle"))
        if n
    ]
    if what:
        into = "a PNG folder" if kind == "png" else "y4m"
        announce(
            f"warning: {' and '.join(what)} of the input will not be written: {into} holds video only "
            "(write a .mkv/.mp4 OUTPUT to keep them)",
            enabled=enabled,
        )


class _PlaneResampler:
    """Stands in for the Engine when a per-channel resampler scales the source's own Y, U, V planes."""

    chunk, context = 1, 0

    def __init__(self, net: nn.Module) -> None:
        self.net, self.scale = net, net.scale

    def stream(self, frames: Iterator[tuple], first: int = 0, start: int | None = None) -> Iterator[tuple]:
        start = first if start is None else start
        for i, planes in enumerate(frames, first):
            if i >= start:
                with torch.inference_mode():
                    yield tuple(self.net.upsample_plane(p) for p in planes)  # each (h, w) -> (s h, s w)


def build_stages(
    net, reader, out_pix_fmt: str | None, allowed: bool, image_to_tensor, *, device, precision, tile, chunk, compile
):
    """(engine, stage, decode conversion): the Engine for ``net``, made here once with its output decided (no
    clamp pass: the writer's quantization clamps), and what the stages run. Plane paths, which skip converting
    every HR frame to RGB float and back, where ``allowed`` and the output's pix_fmt ``out_pix_fmt`` (its
    :class:`videosr.io.OutputPlan`'s) take them: a per-channel resampler on the CPU when the reader's 8-bit
    planar YUV pix_fmt is the encoder's too (the stage scales the source's planes; the engine only describes the
    run); a model with ``supports_planes`` (whole frames) when the encoder takes 8-bit 4:2:0 (the engine
    reconstructs the output's planes). Else the engine on RGB frames."""
    from .engine import Engine, default_chunk, resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    yuv = None
    if allowed and out_pix_fmt is not None:
        if (
            hasattr(net, "upsample_plane")
            and dev.type == "cpu"
            and getattr(reader, "plane_format", None) == out_pix_fmt
        ):
            from .io.convert import planes_to_tensors

            engine = Engine(net, device=dev, precision=precision, tile=tile, chunk=chunk, clamp=False, compile=compile)
            reader.planes = True
            return engine, _PlaneResampler(net), planes_to_tensors
        info, s = reader.info, int(net.scale)
        if (
            getattr(net, "supports_planes", False)
            and tile is None
            and out_pix_fmt in ("yuv420p", "yuvj420p")
            and (s * info.width) % 2 == 0
            and (s * info.height) % 2 == 0
        ):
            from .io import rgb_to_yuv

            rng = 2 if out_pix_fmt == "yuvj420p" else info.color_range
            yuv = torch.tensor(rgb_to_yuv(info.colorspace, rng), dtype=torch.float32)
            context = int(getattr(net, "context", 0))
            if chunk is None and context:
                base, longer = default_chunk(context, dev), 4 * context
                if (longer - base) * info.width * info.height * CLIP_BYTES_PER_LR_PIXEL <= LONGER_CHUNK_BYTES:
                    # planes reconstruct one kept frame at a time, and a longer chunk spends less of its time on
                    # warm-up frames (quality-x4 ran faster end to end with 32 than 16: one-off), but the recurrent
                    # model holds features of every frame of the clip: only where those extra frames cost little
                    # memory (at 320x180 about a third of the run's peak RSS: benchmarks/peak_memory.py, entries
                    # before / after)
                    chunk = max(base, longer)
    engine = Engine(
        net, device=dev, precision=precision, tile=tile, chunk=chunk, clamp=False, compile=compile, planes=yuv
    )
    return engine, engine, image_to_tensor


def is_out_of_memory(e: BaseException) -> bool:
    """A failed allocation: MemoryError (also PyAV's ENOMEM), torch's OutOfMemoryError, or torch's CPU
    allocator's RuntimeError."""
    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or getattr(e, "errno", None) == 12:
        return True
    msg = str(e) if isinstance(e, RuntimeError) else ""
    return "can't allocate memory" in msg or "out of memory" in msg.lower()


def oom_hint(tile) -> str:
    import resource

    where = "memory"
    try:
        if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
            where = "memory (within the address-space limit, ulimit -v)"
    except (OSError, ValueError):
        pass
    if tile is None:
        fix = "use --tile auto or --tile 256"
    elif tile == "auto":
        fix = "use a fixed smaller --tile such as 128"
    else:
        fix = f"use a smaller --tile than {tile}"
    return f"out of {where}; {fix}, --chunk 1, a smaller --scale, or free some memory"


@contextlib.contextmanager
def memory_errors(tile):
    """Running out of memory anywhere in the job is one clear error (exit 9) with what to change (also around
    a distributed run's driver: :mod:`videosr.distributed`)."""
    try:
        yield
    except VideosrError:
        raise
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        from .errors import OutOfMemoryError

        detail = str(e).splitlines()[0].strip() if str(e) else type(e).__name__
        detail = detail.split("DefaultCPUAllocator: ", 1)[-1][:160]
        raise OutOfMemoryError(f"{oom_hint(tile)} ({detail})") from None


def _interrupted(e: BaseException, msg: str) -> Interrupted:
    out = Interrupted(msg)
    out.stuck = getattr(e, "stuck", False)  # type: ignore[attr-defined]
    return out


def _abort(writer, stuck_io: bool) -> None:
    """Remove a writer's temp output; if a stage may still be inside its container, only unlink."""
    if not stuck_io:
        writer.abort()
        return
    import shutil

    tmp, writer.tmp = getattr(writer, "tmp", None), None
    if tmp:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def output_options(net, engine, *, scale, plan, pix_fmt, backend, tile, planes: bool) -> dict[str, Any]:
    """Everything that changes the output's pixels or packets (compared on resume, and by a distributed run's
    tasks against the driver's): the model and how it runs, the encoder of ``plan`` (the output's
    :class:`videosr.io.OutputPlan`) and the ``pix_fmt`` asked for."""
    from .resume import model_fingerprint

    return {
        "model": getattr(net, "display_name", None),
        "weights_sha256": model_fingerprint(net),
        "scale": scale,
        "tile": tile,
        "chunk": engine.chunk,
        "context": engine.context,
        "precision": engine.precision,
        "device": engine.device.type,
        "backend": backend,
        "compile": engine.compile,
        "codec": plan.codec,
        "crf": plan.crf,
        "preset": plan.preset,
        "pix_fmt": pix_fmt,
        "planes": planes,
    }


@dataclass(frozen=True)
class Prepared:
    """What a segmented run (here, or across machines: :mod:`videosr.distributed`) starts from, made by
    :func:`prepare_state`: the resume state ``st`` (created, or loaded and checked against this input and these
    options), or ``published`` (OUTPUT already holds what a finished state made: nothing to do)."""

    st: Any  # resume.State
    published: bool
    fp: dict
    opts: dict
    seg_len: int


def prepare_state(
    reader,
    input,
    output,
    sdir,
    net,
    engine,
    stage_engine,
    plan,
    opts: JobOptions,
) -> Prepared:
    """The resume state of a segmented run to OUTPUT as ``plan`` (its :class:`videosr.io.OutputPlan`) says,
    with the model stages :func:`build_stages` made (``engine``, ``stage_engine``) and the job's options ``opts``
    (:class:`videosr.job.JobOptions`), and what it was made with: the input's fingerprint ``fp``, the options that
    change the output's pixels (``Prepared.opts``: :func:`output_options`, compared on resume), and the segment
    length ``seg_len``. A state killed before its first manifest is removed; one whose output was published
    (killed before its removal) is removed and ``published`` set. Anything the output will refuse fails here,
    before any work, as opening it does."""
    from .io import open_planned
    from .resume import State, input_fingerprint

    info = reader.info
    fp = input_fingerprint(input)
    out_opts = output_options(
        net,
        engine,
        scale=engine.scale,
        plan=plan,
        pix_fmt=opts.pix_fmt,
        backend=opts.backend,
        tile=opts.tile,
        planes=stage_engine is not engine or engine.planes is not None,
    )
    if opts.fps is not None:  # the output's timing: a resumed run must use the same (absent: 25 / the input's)
        out_opts["fps"] = str(info.fps)
    seg_len = segment_frames(info.fps, engine.chunk, opts.segment)
    made = dict(fp=fp, opts=out_opts, seg_len=seg_len, published=False)
    st = None
    if os.path.lexists(sdir):
        st = State.load(sdir)
        if not st.manifest:  # killed before its first manifest: nothing to keep
            st.remove()
            st = None
        else:
            st.check(fp, out_opts, seg_len)
            if st.manifest["finished"]:
                _check_plan(st, reader, input)
                if _published(st, output):
                    st.remove()  # killed after the output was published, before the state was removed
                    return Prepared(st=st, **{**made, "published": True})
    open_planned(output, info, plan, overwrite=opts.overwrite).abort()
    if st is None:
        try:
            st = State.create(sdir, fp, out_opts, seg_len)
        except OSError as e:
            from .io.writer import write_error

            raise write_error(e, output) from None
    else:
        st.verify_segments()  # keeps the files a distributed run's `ahead` lists (resume.State.verify_segments)
    return Prepared(st=st, **made)


def _upscale_segmented(
    reader,
    input,
    output,
    sdir,
    net,
    engine,
    stage_engine,
    to_input,
    plan,
    opts: JobOptions,
    *,
    on_frame,
    header=None,
) -> int:
    from .io.segments import SegmentSink

    info = reader.info
    p = prepare_state(reader, input, output, sdir, net, engine, stage_engine, plan, opts)
    st = p.st
    if p.published:
        return st.manifest["frames"]
    seg_len = p.seg_len
    try:
        if st.manifest["finished"]:
            total = st.manifest["frames"]  # _check_plan: the input has exactly these frames
        else:
            done = st.done_frames
            warm = max(0, done - engine.context)
            skipped = reader.skip(warm)
            _check_skipped(st, skipped, warm, input)
            sink = SegmentSink(st, seg_len, plan, info)
            left = info.frames - done if info.frames and info.frames > done else None
            bar = Progress(
                left,
                label="upscale" if not done else f"upscale (resumed at frame {done})",
                enabled=opts.progress,
                header=header,
                warmup=engine.chunk,
            )
            try:
                n = run_stages(
                    reader,
                    stage_engine,
                    to_input,
                    bar,
                    on_frame,
                    write=sink.write,
                    finish=sink.finish,
                    first=warm,
                    start=done,
                    allow_empty=done > 0,
                )
            except BaseException as e:
                if not getattr(e, "stuck_io", False):
                    sink.abort()  # else: its .part file stays in the state folder, removed on resume
                raise
            total = done + n  # the input was read to its end
            st.finish(total)
        join_segments(st, input, output, info, plan, overwrite=opts.overwrite, total=total)
    except KeyboardInterrupt as e:
        raise _interrupted(e, f"interrupted; rerun with --resume to continue (state kept in {sdir})") from None
    except BaseException as e:
        if isinstance(e, InputChangedError):
            pass  # the state is still good for the original input; the message says it was kept
        elif not st.manifest.get("segments") and not st.manifest.get("finished"):
            st.remove()  # no segment written: nothing to continue, and it must not block the next run
        elif opts.resume and isinstance(e, VideosrError) and not isinstance(e, ResumeError):
            e.args = (f"{e}; resume state kept in {sdir}: rerun with --resume to continue",)
        elif not opts.resume:
            st.remove()
        raise
    st.remove()
    return total


def _input_now(st, input, input_fingerprint) -> dict:
    """The input's identity now; an input moved away or deleted during the run is an input error (exit 3,
    state kept: put it back and resume)."""
    try:
        return input_fingerprint(input)
    except OSError as e:
        raise InputChangedError(
            f"{input}: the input is gone ({e.strerror or e}; moved or deleted during the "
            f"run); state kept in {st.dir}: put it back and rerun with --resume, or delete "
            f"it"
        ) from None


def join_segments(st, input, output, info, plan, *, overwrite: bool, total: int) -> None:
    """Join the segments into OUTPUT (as ``plan``, its :class:`videosr.io.OutputPlan`, says) once they cover
    exactly the input's ``total`` frames, the input is still the file the state was made from (its audio is
    copied by path now), and the joined video holds ``total`` frames."""
    from .io.segments import concat_segments, publish, quiet
    from .resume import input_fingerprint, sha256_file

    st.check_complete(total)
    st.check_input(_input_now(st, input, input_fingerprint))
    tmp = os.path.join(st.dir, "final.part" + os.path.splitext(output)[1].lower())
    with quiet():
        n = concat_segments(st.segment_files(), output, info, plan, tmp=tmp, expect=st.segment_expect())
    try:
        if n != total:
            raise ResumeError(
                f"{output}: the joined video has {n} frames, not the input's {total}; delete {st.dir} and start again"
            )
        st.check_input(_input_now(st, input, input_fingerprint))  # not replaced while its audio was copied
    except BaseException:
        os.unlink(tmp)
        raise
    st.manifest["final"] = {"size": os.path.getsize(tmp), "sha256": sha256_file(tmp)}
    st.save()
    publish(tmp, output, overwrite)


def _check_plan(st, reader, input) -> None:
    """A finished state is joined without running the model: the input must have exactly the frames its
    segments cover, with the recorded timestamps (decoded and discarded here)."""
    done = st.done_frames
    _check_skipped(st, reader.skip(done), done, input)
    if reader.skip(1):
        raise ResumeError(
            f"resume state at {st.dir} says the job finished at frame {done}, but {input} has "
            f"more frames; delete it and start again"
        )


def _published(st, output) -> bool:
    """OUTPUT is the file this state joined (its recorded size and sha256) with the job's frame count."""
    from .resume import sha256_file

    final = st.manifest.get("final")
    if (
        not final
        or not os.path.isfile(output)
        or os.path.getsize(output) != final["size"]
        or sha256_file(output) != final["sha256"]
    ):
        return False
    n = _video_packets(output)
    if n != st.manifest["frames"]:
        raise ResumeError(
            f"{output}: has {n} frames, not the {st.manifest['frames']} its resume state "
            f"records; delete {st.dir} and start again"
        )
    return True


def _video_packets(path: str) -> int:
    import av

    try:
        with av.open(path) as c:
            return sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    except (av.error.FFmpegError, IndexError, OSError):
        return -1


def _check_skipped(st, skipped: list[int], warm: int, input) -> None:
    """The frames skipped on resume must be there, with the timestamps the committed segments recorded."""
    if len(skipped) < warm:
        raise ResumeError(
            f"{input}: has {len(skipped)} frames, fewer than the {warm} the resume state says "
            f"were done; delete {st.dir} and start again"
        )
    for seg in st.manifest["segments"]:
        for i, key in ((seg["start"], "first_pts"), (seg["end"] - 1, "last_pts")):
            if i < len(skipped) and skipped[i] != seg[key]:
                raise ResumeError(
                    f"{input}: frame {i} has timestamp {skipped[i]}, not {seg[key]} as when the "
                    f"resume state was made; delete {st.dir} and start again"
                )


def run_stages(
    reader,
    engine,
    image_to_tensor,
    bar: Progress,
    on_frame: Callable[[int], None] | None,
    *,
    write: Callable[[Frame, torch.Tensor], None],
    finish: Callable[[], None] | None = None,
    first: int = 0,
    start: int = 0,
    allow_empty: bool = False,
) -> int:
    """Decode -> model -> encode with three threads; returns the number of frames written (from ``start``).
    Used by every non-live run, and by each task of a distributed one (:mod:`videosr.distributed`).

    ``write(src_frame, hr_tensor)`` and ``finish()`` run in the encoder thread. The frames the reader
    yields are numbered from ``first``; those before ``start`` are model warm-up only."""
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=max(4, engine.chunk + 2 * engine.context))
    encoded: queue.Queue = queue.Queue(maxsize=4)
    meta: deque = deque()  # Frame objects (timestamps) of outputs to come, in order
    count = [0]

    def decode() -> None:
        for frame in reader:
            if frame.index >= start:
                meta.append(frame)
            if not put(decoded, image_to_tensor(frame.image), stop):
                return
        put(decoded, _END, stop)

    def lr_frames() -> Iterator[torch.Tensor]:
        while not stop.is_set():
            try:
                item = decoded.get(timeout=0.1)
            except queue.Empty:
                if dec.error is not None:
                    raise dec.error from None
                if not dec.is_alive() and decoded.empty():
                    return
                continue
            if item is _END:
                return
            yield item

    def run_model() -> None:
        for hr in engine.stream(lr_frames(), first=first, start=start):
            if not put(encoded, (meta.popleft(), hr), stop):
                return
            count[0] += 1
            bar.update()
            if on_frame is not None:
                on_frame(count[0])
        put(encoded, _END, stop)

    def encode() -> None:
        for src, hr in drain(encoded, stop, _END):
            write(src, hr)  # the writer quantises the float (3, sH, sW) tensor straight into its planes
        if not stop.is_set() and finish is not None:  # the end of the frames, not a stop
            finish()

    dec = Stage(decode, "videosr-decode")
    mod = Stage(run_model, "videosr-model")
    enc = Stage(encode, "videosr-encode")
    stages = (dec, mod, enc)
    bar.begin()  # a first line (0 frames, "ETA after warm-up") before the model's first chunk is done
    for t in stages:
        t.start()
    try:
        # The calling thread only waits (with a timeout, so signals are handled promptly).
        while enc.is_alive():
            for t in stages:
                if t.error is not None:
                    raise t.error
            enc.join(0.05)
        for t in (enc, mod, dec):
            if t.error is not None:
                raise t.error
    except BaseException as e:
        stop.set()
        err = e
        raise
    else:
        err = None
    finally:
        # Stop every stage and wait for them (briefly) before the caller closes the reader and the
        # writer: a container must never be closed while another thread is inside it.
        stop.set()
        deadline = time.monotonic() + STOP_GRACE
        for t in (enc, dec, mod):
            t.join(max(0.0, deadline - time.monotonic()))
        bar.close()
        if err is not None and any(t.is_alive() for t in stages):
            # A stage is stuck (a long model call, or inside a container): the caller must not close
            # the containers that thread may be using, and the process should end soon (the CLI does).
            err.stuck = True  # type: ignore[attr-defined]
            err.stuck_io = enc.is_alive() or dec.is_alive()  # type: ignore[attr-defined]
    n = count[0]
    if n == 0 and not allow_empty:
        from .errors import EmptyInputError

        raise EmptyInputError(f"{reader.info.source or 'input'}: no frames could be decoded")
    return n
