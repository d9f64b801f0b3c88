"""`videosr upscale --live`: low-latency upscaling of a live stream, frame by frame, under a latency bound.

Three threads joined by bounded queues, as in :mod:`videosr.pipeline`, but built for latency, not for every frame:

* the source (:mod:`videosr.io.live`) decodes frames as they arrive and stamps each with its arrival time; it
  hands them over through a queue of ``QUEUE_FRAMES`` frames where the newest wins: when the model stage is
  not there to take a frame, the oldest waiting one is dropped (counted), never queued without bound;
* the model stage upscales each frame with a causal model, streaming (:class:`Streamer`: no look-ahead, one
  output per input frame, the model's state carried from frame to frame). Before each frame it predicts, from
  the measured per-frame times of the model, of the cheap base and of the sink, when the frame would be sent:

  - the model runs when the frame would still make the bound (``max_latency``), so would the frame waiting
    behind it, and the frames arriving meanwhile fit in the queue (a model slower than ``QUEUE_FRAMES`` frame
    intervals never runs: it would make the queue drop frames);
  - else the frame is passed through by the cheap base (FFmpeg's bicubic on the source's own 4:2:0 planes,
    8-bit: a few ms for 1080p), when that makes the bound;
  - else it is dropped (counted).

  An estimate that is not refreshed (the model did not run) decays by 1% a frame, so the model is tried again
  (every few seconds) in case the machine has freed up;
* the sink encodes and sends each frame at once, timestamps following the source's.

Latency is measured from a frame's arrival (decoded) to its being sent (encoded and written); the summary gives
its percentiles and the counts: frames in and out, upscaled, passed through, dropped (late, at the queue, or in
flight when the run was stopped), damaged packets and size changes. A change of frame size mid-stream resets
the model's state (a fresh window or recurrence at the new size); the sink keeps the size it opened with and
each later frame is scaled to it (documented in docs/live.md). Live runs keep no resume state. Ctrl-C (SIGTERM
in the CLI) stops a run cleanly: the summary says ``"ended": "interrupted"``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import queue
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .errors import UsageError
from .progress import announce

DEFAULT_MAX_LATENCY_MS = 200.0
DEFAULT_TIMEOUT_S = 10.0
QUEUE_FRAMES = 2  # decoded frames waiting for the model stage; the newest wins
SINK_FRAMES = 1  # upscaled frames waiting for the encoder
STATUS_SECONDS = 5.0  # a status line this often (progress on)
DECAY = 0.99  # per frame the model did not run: its time estimate shrinks by this factor (a retry in ~3 s)
STOP_GRACE = 2.0  # seconds the threads get to stop


# -- models --------------------------------------------------------------------------------------------------


def is_causal(net: nn.Module) -> bool:
    return bool(getattr(net, "causal", False))


def causal_variants(scale: int | None = None) -> list[str]:
    """Registered models whose output at t needs frames up to t only, for ``scale`` (default: any)."""
    return list(_causal_variants(scale))


def _causal_variants(scale: int | None) -> tuple[str, ...]:
    from .models import ARCHS, list_models

    return tuple(
        v.name
        for v in list_models()
        if (scale is None or v.scale == scale or getattr(ARCHS[v.arch], "any_scale", False)) and _variant_causal(v.name)
    )


@functools.cache
def _variant_causal(name: str) -> bool:
    """Asked of an instance without weights: some architectures set ``causal`` from their arguments."""
    from .models import create_model

    return is_causal(create_model(name, pretrained=False))


def live_candidates(scale: int) -> list[str]:
    """The causal models with shipped weights for ``scale``, best first: those with a Vid4 BI figure by PSNR,
    then the others."""
    from .models import list_models

    trained = [v for v in list_models() if v.weights and v.scale == scale and _variant_causal(v.name)]
    measured = sorted(
        (v for v in trained if v.vid4_eval is not None and v.vid4_degradation == "BI"), key=lambda v: -v.vid4_psnr_y
    )
    return [v.name for v in measured] + [v.name for v in trained if v not in measured]


def choose_live_model(scale: int) -> tuple[str, str]:
    """``--model auto`` with ``--live``: the best of :func:`live_candidates`, else bicubic; and why. The live run
    then times it on the first frame and, where it cannot keep the stream's frame rate on this machine, the next
    candidate, then bicubic."""
    names = live_candidates(scale)
    if not names:
        return "bicubic", f"live: no causal model ships weights for x{scale} yet"
    return names[0], f"live: the best measured causal model with weights for x{scale}"


def load_live_model(model: str | None, scale: int | None, weights: str | None) -> tuple[nn.Module, str | None]:
    """The model a live run uses and why (``--model auto``); a model that looks ahead is a UsageError (exit 2)
    naming the causal ones, a learned one without weights a ModelError (exit 7)."""
    from .models.resolve import check_scale, load_model, require_trained

    check_scale(scale)
    reason = None
    if model in (None, "auto"):
        if weights is not None:
            raise UsageError("--weights needs --model NAME (the architecture the weights are for)")
        model, reason = choose_live_model(scale or 4)
    net = load_model(model, scale, weights)
    if not is_causal(net):
        names = ", ".join(causal_variants(int(net.scale)))
        raise UsageError(
            f"--live needs a causal model (no look-ahead), and {net.display_name} uses future frames; "
            f"causal models for x{net.scale}: {names}"
        )
    require_trained(net)
    return net, reason


class Streamer:
    """A causal model run on a stream, one frame in, one frame out, in order (call :meth:`reset` to start again,
    e.g. at a new frame size). Three ways, by what the model offers:

    * a per-channel resampler (``upsample_plane``: bicubic, lanczos): the source's Y, U, V planes directly;
    * a recurrent model with ``stream_step``: the hidden state is carried from frame to frame;
    * any other causal model (a window of ``context`` past frames and the current one: fast-x4-causal; image
      models, context 0): the window is kept in a ring buffer, filled with the first frame at the start as the
      whole-clip pass replicates a clip's first frame, and the model reconstructs the window's last frame only
      (``forward_planes(keep=...)`` where the model has the planes path, else ``forward``).

    Frames go in as :class:`videosr.io.live.LiveFrame`; out come 4:2:0 planes (a tuple of float (h, w) tensors) or
    a (3, sH, sW) RGB float tensor, unclamped (the sink's quantization clamps)."""

    def __init__(
        self,
        net: nn.Module,
        *,
        device: str = "auto",
        precision: str = "auto",
        colorspace: int | None = None,
        color_range: int | None = None,
    ) -> None:
        from .engine import Engine
        from .io import rgb_to_yuv

        engine = Engine(net, device=device, precision=precision, chunk=1, clamp=False)
        self.net, self.device, self.precision = engine.model, engine.device, engine.precision
        self.scale = int(net.scale)
        self.colorspace, self.color_range = colorspace, color_range
        self.context = int(getattr(net, "context", 0))
        if hasattr(net, "upsample_plane") and self.device.type == "cpu":
            self.kind = "planes"
        elif hasattr(net, "stream_step"):
            self.kind = "recurrent"
        else:
            self.kind = "window"
        self.yuv = torch.tensor(rgb_to_yuv(colorspace, color_range), dtype=torch.float32, device=self.device)
        self.reset()

    def reset(self) -> None:
        self._window: collections.deque = collections.deque(maxlen=self.context + 1)
        self._state = None

    def _autocast(self):
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def __call__(self, lf) -> tuple[torch.Tensor, ...] | torch.Tensor:
        from .io.live import frame_planes, frame_rgb

        if self.kind == "planes":
            return tuple(self.net.upsample_plane(p) for p in frame_planes(lf.frame))
        rgb = frame_rgb(lf.frame, self.colorspace, self.color_range).to(self.device)
        with self._autocast():
            if self.kind == "recurrent":
                y, self._state = self.net.stream_step(rgb[None], self._state)
                return y[0].float().cpu()
            if not self._window:
                self._window.extend([rgb] * (self.context + 1))  # the clip's first frame, replicated
            else:
                self._window.append(rgb)
            x = torch.stack(list(self._window))[None]  # (1, context + 1, 3, H, W)
            n = x.shape[1]
            if getattr(self.net, "supports_planes", False) and hasattr(self.net, "forward_planes"):
                planes = self.net.forward_planes(x, self.yuv, keep=(n - 1, n))
                return tuple(p[0, 0].float().cpu() for p in planes)
            return self.net(x)[0, -1].float().cpu()


# -- the run ---------------------------------------------------------------------------------------------------


class _Latest:
    """A queue of at most ``size`` frames where the newest wins: putting into a full queue drops the oldest."""

    def __init__(self, size: int) -> None:
        self._q: collections.deque = collections.deque()
        self._size = size
        self._cv = threading.Condition()
        self.closed = False

    def put(self, item) -> bool:
        """Add ``item``; True when an older frame was dropped to make room."""
        with self._cv:
            dropped = len(self._q) >= self._size
            if dropped:
                self._q.popleft()
            self._q.append(item)
            self._cv.notify()
            return dropped

    def get(self, timeout: float):
        """The oldest frame, or None after ``timeout`` s (or at once when closed and empty)."""
        with self._cv:
            if not self._q and not self.closed:
                self._cv.wait(timeout)
            return self._q.popleft() if self._q else None

    def peek(self):
        with self._cv:
            return self._q[0] if self._q else None

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        with self._cv:
            return len(self._q)


class _Stats:
    def __init__(self) -> None:
        self.frames_in = self.upscaled = self.passed = self.late = self.queue = self.resets = 0
        self.latency = array("d")  # seconds, per frame sent
        self.first_sent = self.last_sent = None
        self.lock = threading.Lock()

    def percentiles(self) -> dict[str, float | None]:
        lat = sorted(self.latency)
        if not lat:
            return {"p50": None, "p95": None, "p99": None, "max": None}

        def pick(q: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, max(0, math.ceil(q * len(lat)) - 1))], 1)

        return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": round(1000 * lat[-1], 1)}


class _Estimate:
    """An exponential moving average of a stage's time per frame, in seconds."""

    def __init__(self, value: float = 0.0, alpha: float = 0.3) -> None:
        self.value, self.alpha = value, alpha

    def add(self, seconds: float) -> None:
        self.value = seconds if self.value == 0.0 else (1 - self.alpha) * self.value + self.alpha * seconds


def live_upscale(
    input,
    output,
    *,
    scale: int | None = None,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    max_latency: float = DEFAULT_MAX_LATENCY_MS,
    timeout: float = DEFAULT_TIMEOUT_S,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    progress: bool = True,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Upscale a live INPUT to a live OUTPUT (see the module docstring and :mod:`videosr.io.live`) until the
    source ends, falls silent for ``timeout`` seconds, or Ctrl-C; returns the summary: ``input``, ``output``,
    ``model``, ``reason``, ``scale``, ``live``, ``frames_in``, ``frames_out``, ``upscaled``, ``passed_through``,
    ``dropped`` (with ``dropped_late``, ``dropped_queue``, ``dropped_at_stop``), ``corrupt_packets``,
    ``concealed_frames``, ``missing_frames`` (gaps in the source's timestamps), ``size_changes``, ``latency_ms`` (``p50``, ``p95``, ``p99``, ``max``),
    ``max_latency_ms``, ``model_ms`` (measured per frame), ``seconds``, ``fps`` (frames sent per second),
    ``ended`` (why it stopped) and ``stuck`` (a thread did not stop in time: end the process soon).

    ``max_latency``: milliseconds from a frame's arrival to its being sent, which the model stage keeps to by
    passing frames through the cheap base or dropping them. ``timeout``: seconds to wait for the first frame
    (then :class:`InputError`, exit 3) and of silence that ends the stream."""
    from .io.live import check_live_sink

    if not (isinstance(max_latency, (int, float)) and 0 < max_latency <= 60000):
        raise UsageError(f"--max-latency takes milliseconds above 0 (at most 60000), not {max_latency}")
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= 3600):
        raise UsageError(f"--timeout takes seconds above 0 (at most 3600), not {timeout}")
    check_live_sink(output)
    if codec not in ("libx264", "h264", "x264"):
        raise UsageError(f"--live encodes MPEG-TS with libx264 (low latency), not {codec}")
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        return _live_upscale(
            input,
            output,
            scale=scale,
            model=model,
            weights=weights,
            device=device,
            precision=precision,
            max_latency=max_latency,
            timeout=timeout,
            crf=crf,
            preset=preset,
            progress=progress,
            on_status=on_status,
            t0=t0,
        )
    finally:
        torch.set_num_threads(threads)


def _live_upscale(
    input,
    output,
    *,
    scale,
    model,
    weights,
    device,
    precision,
    max_latency,
    timeout,
    crf,
    preset,
    progress,
    on_status,
    t0,
) -> dict[str, Any]:
    from .engine import set_threads
    from .io.live import open_live_sink, open_live_source

    # one intra-op thread: the stages run in parallel (decode, model, encode), and on a loaded 2-core machine
    # OpenMP's second thread spun at its barriers: MATLAB bicubic of a 1080p frame's planes ran many times
    # slower with two threads than with one (a one-off measurement, docs/live.md)
    set_threads(1)
    net, reason = load_live_model(model, scale, weights)
    s = int(net.scale)
    name = getattr(net, "display_name", str(model))
    announce(f"model {name}" + (f": {reason}" if reason else "") + f"; waiting for {input} ...", enabled=progress)
    source = open_live_source(input, timeout=timeout)
    sink = None
    try:
        w, h = source.width, source.height
        streamer = Streamer(
            net, device=device, precision=precision, colorspace=source.colorspace, color_range=source.color_range
        )
        out = (s * w, s * h, source.colorspace, source.color_range)
        sink = open_live_sink(
            output,
            s * w,
            s * h,
            source.fps,
            codec="libx264",
            crf=crf,
            preset=preset,
            colorspace=source.colorspace,
            color_range=source.color_range,
        )
        est_model, est_base, est_sink = _warm_up(streamer, out, source.first)
        interval = 1.0 / float(source.fps or 25)
        if reason is not None:  # --model auto weighs speed: the best causal model that keeps the stream's rate
            # here (one that keeps up only in part would alternate learned and bicubic frames), else bicubic
            slow = []
            for cand in [c for c in live_candidates(s) if c != name] + ["bicubic"]:
                if name == "bicubic" or est_model.value <= interval:
                    break
                slow.append(f"{name} took {1000 * est_model.value:.0f} ms")
                net, _ = load_live_model(cand, s, None)
                name = getattr(net, "display_name", cand)
                streamer = Streamer(
                    net,
                    device=device,
                    precision=precision,
                    colorspace=source.colorspace,
                    color_range=source.color_range,
                )
                est_model, est_base, est_sink = _warm_up(streamer, out, source.first)
            if slow:
                reason = (
                    f"live: {', '.join(slow)} a frame here, over the stream's {1000 * interval:.0f} ms; {name} keeps up"
                )
                announce(f"model {name}: {reason}", enabled=progress)
        announce(
            f"live: {input} {w}x{h} -> {output} {s * w}x{s * h} with {name}, latency bound {max_latency:g} ms",
            enabled=progress,
        )
        stats = _Stats()
        ended, stuck = _run(
            source,
            sink,
            streamer,
            out,
            stats,
            max_latency / 1000.0,
            est_model,
            est_base,
            est_sink,
            progress,
            on_status,
            (w, h),
        )
    except BaseException:
        if sink is not None:
            sink.abort()
        source.close()
        raise
    if not stuck:
        sink.close()
        source.close()
    seconds = time.perf_counter() - t0
    out = stats.upscaled + stats.passed
    span = (stats.last_sent - stats.first_sent) if stats.first_sent is not None else 0.0
    at_stop = max(0, stats.frames_in - out - stats.late - stats.queue)
    return {
        "input": str(input),
        "output": str(output),
        "model": name,
        "reason": reason,
        "scale": s,
        "live": True,
        "size_in": f"{w}x{h}",
        "size_out": f"{s * w}x{s * h}",
        "frames_in": stats.frames_in,
        "frames_out": out,
        "upscaled": stats.upscaled,
        "passed_through": stats.passed,
        "dropped": stats.late + stats.queue + at_stop,
        "dropped_late": stats.late,
        "dropped_queue": stats.queue,
        "dropped_at_stop": at_stop,
        "corrupt_packets": source.corrupt_packets,
        "concealed_frames": source.concealed_frames,
        "missing_frames": source.missing_frames,
        "size_changes": stats.resets,
        "latency_ms": stats.percentiles(),
        "max_latency_ms": max_latency,
        "model_ms": round(1000 * est_model.value, 1),
        "seconds": round(seconds, 3),
        "fps": round((out - 1) / span, 2) if out > 1 and span > 0 else None,
        "ended": ended,
        "stuck": stuck,
    }


def _warm_up(streamer: Streamer, out: tuple, first) -> tuple[_Estimate, _Estimate, _Estimate]:
    """Run the model and the base on the first frame (oneDNN builds its kernels on a first call), then time
    them; the model's state is reset after."""
    from .io.live import scale_frame, to_video_frame

    to_video_frame(streamer(first), *out)
    times = []
    for _ in range(3):  # the median of three: one call can catch a busy moment
        t = time.perf_counter()
        to_video_frame(streamer(first), *out)
        times.append(time.perf_counter() - t)
    model = _Estimate(sorted(times)[1])
    scale_frame(first.frame, out[0], out[1])
    t = time.perf_counter()
    scale_frame(first.frame, out[0], out[1])
    cheap = _Estimate(time.perf_counter() - t)
    streamer.reset()
    return model, cheap, _Estimate(0.0)


def _run(
    source,
    sink,
    streamer: Streamer,
    out: tuple,
    stats: _Stats,
    budget: float,
    est_model: _Estimate,
    est_base: _Estimate,
    est_sink: _Estimate,
    progress: bool,
    on_status,
    size: tuple[int, int],
) -> tuple[str, bool]:
    """The three threads until the source ends or KeyboardInterrupt; returns (why it ended, stuck). ``out``: the
    sink's width, height, colour space and range."""
    from .io.live import scale_frame, to_video_frame
    from .pipeline import Stage, drain, put

    stop = threading.Event()
    frames = _Latest(QUEUE_FRAMES)
    sent: queue.Queue = queue.Queue(maxsize=SINK_FRAMES)
    end = object()
    clock = {"pts0": None}
    fps = float(source.fps or 25)
    interval = 1.0 / fps

    def read() -> None:
        try:
            for lf in source:
                if stop.is_set():
                    return
                with stats.lock:
                    stats.frames_in += 1
                if frames.put(lf):
                    with stats.lock:
                        stats.queue += 1
        finally:
            frames.close()

    def seconds(lf) -> float:
        t = lf.pts if lf.pts is not None else lf.index / fps
        if clock["pts0"] is None:
            clock["pts0"] = t
        return t - clock["pts0"]

    sink_busy = [0.0]  # monotonic time the sink should be done with the frame it is sending

    def sent_at(done: float) -> float:
        """When a frame the model stage is done with at ``done`` would be sent: after the frames ahead of it."""
        return max(done, sink_busy[0] + sent.qsize() * est_sink.value) + est_sink.value

    def run_model() -> None:
        cur = size
        while not stop.is_set():
            lf = frames.get(0.1)
            if lf is None:
                if frames.closed and not len(frames):
                    put(sent, end, stop)
                    return
                continue
            if lf.size != cur:  # a new frame size: the model starts again at it
                streamer.reset()
                cur = lf.size
                stats.resets += 1
            now = time.monotonic()
            behind = frames.peek()
            # the frames arriving while the model runs must fit in the queue, or they are dropped there
            room = (QUEUE_FRAMES - len(frames)) * interval >= est_model.value
            fits = room and sent_at(now + est_model.value) - lf.arrival <= budget
            next_fits = behind is None or (
                sent_at(now + 2 * est_model.value) + est_sink.value - behind.arrival <= budget
            )
            t = time.perf_counter()
            if fits and next_fits:
                image, kind = to_video_frame(streamer(lf), *out), "upscaled"
                est_model.add(time.perf_counter() - t)
            elif sent_at(now + est_base.value) - lf.arrival <= budget:
                image, kind = scale_frame(lf.frame, out[0], out[1]), "passed"
                est_base.add(time.perf_counter() - t)
                est_model.value *= DECAY
            else:
                with stats.lock:
                    stats.late += 1
                est_model.value *= DECAY
                continue
            if not put(sent, (image, seconds(lf), lf.arrival, kind), stop):
                return

    def write() -> None:
        last = time.monotonic()
        for image, secs, arrival, kind in drain(sent, stop, end):
            t = time.perf_counter()
            sink_busy[0] = time.monotonic() + est_sink.value
            sink.write(image, secs)
            est_sink.add(time.perf_counter() - t)
            now = sink_busy[0] = time.monotonic()
            with stats.lock:
                stats.latency.append(now - arrival)
                if kind == "upscaled":
                    stats.upscaled += 1
                else:
                    stats.passed += 1
                if stats.first_sent is None:
                    stats.first_sent = now
                stats.last_sent = now
            if now - last >= STATUS_SECONDS:
                last = now
                _status(stats, progress, on_status)

    threads = (
        Stage(read, "videosr-live-source"),
        Stage(run_model, "videosr-live-model"),
        Stage(write, "videosr-live-sink"),
    )
    for th in threads:
        th.start()
    ended = None
    try:
        while threads[2].is_alive():
            for th in threads:
                if th.error is not None:
                    raise th.error
            threads[2].join(0.05)
        for th in threads:
            if th.error is not None:
                raise th.error
        ended = source.ended or "end of input"
    except KeyboardInterrupt:
        ended = "interrupted"
    finally:
        stop.set()
        frames.close()
        deadline = time.monotonic() + STOP_GRACE
        for th in (threads[2], threads[1], threads[0]):
            th.join(max(0.0, deadline - time.monotonic()))
    return ended, any(th.is_alive() for th in threads)


def _status(stats: _Stats, progress: bool, on_status) -> None:
    with stats.lock:
        p = stats.percentiles()
        line = {
            "frames_in": stats.frames_in,
            "upscaled": stats.upscaled,
            "passed_through": stats.passed,
            "dropped": stats.late + stats.queue,
            "latency_ms": p,
        }
    if on_status is not None:
        on_status(line)
    announce(
        f"live: {line['frames_in']} in, {line['upscaled']} upscaled, {line['passed_through']} passed "
        f"through, {line['dropped']} dropped; latency p50 {p['p50']} ms, p95 {p['p95']} ms",
        enabled=progress,
    )


def summary_line(summary: dict[str, Any]) -> str:
    """The summary as one line for the terminal."""
    p = summary["latency_ms"]
    fps = f"{summary['fps']:.1f}" if summary.get("fps") else "-"
    return (
        f"live {summary['ended']}: {summary['frames_in']} frames in, {summary['frames_out']} out "
        f"({summary['upscaled']} upscaled x{summary['scale']} with {summary['model']}, "
        f"{summary['passed_through']} passed through, {summary['dropped']} dropped) at {fps} fps; latency "
        f"p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms (bound {summary['max_latency_ms']:g} ms)"
        + (f"; {summary['corrupt_packets']} damaged packets skipped" if summary["corrupt_packets"] else "")
        + (f"; {summary['missing_frames']} frames missing from the source" if summary.get("missing_frames") else "")
        + (
            f"; frame size changed {summary['size_changes']} times (model state reset)"
            if summary["size_changes"]
            else ""
        )
    )


__all__ = [
    "DEFAULT_MAX_LATENCY_MS",
    "DEFAULT_TIMEOUT_S",
    "Streamer",
    "causal_variants",
    "choose_live_model",
    "live_candidates",
    "live_upscale",
    "load_live_model",
    "summary_line",
]
