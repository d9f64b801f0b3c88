"""`videosr bench`: end-to-end upscaling speed per model, per stage, against a no-network floor.

For each model:
* ``decode``: decode the clip and convert frames to tensors (alone);
* ``model``: the inference engine on the decoded frames (alone, precision as `upscale` would choose);
* ``encode``: convert the model's outputs to frames and encode them (alone);
  all three the way `upscale` runs them (``path``): "rgb" frames, "source planes" (a resampler scales the
  decoded Y, U, V planes) or "model planes" (the model reconstructs the output's 4:2:0 planes);
* ``total``: the real pipeline (`videosr.upscale`, stages overlapping in threads), end to end.
The floor is the same clip through PyAV decode + FFmpeg's lanczos scaler + the same encoder settings,
with no network: no upscaler can beat it, so ``total_fps / floor_fps`` is the share of the floor a model
keeps.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from .errors import UsageError

SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.mp4"


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size must look like 480x270, not {text!r}") from None
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise UsageError(f"size {w}x{h} is out of range (8..8192 per side)")
    return w, h


def make_clip(path: str | Path, frames: int, width: int = 480, height: int = 270, fps: int = 24) -> str:
    """A realistic test clip: the shipped sample's photographic content resized (lanczos) to
    width x height and played back and forth (no jump cuts) to ``frames`` frames; H.264 crf 16."""
    src = []
    with av.open(str(SAMPLE)) as c:
        for f in c.decode(video=0):
            src.append(f.reformat(width=width, height=height, format="yuv420p", interpolation="LANCZOS").to_ndarray())
    period = 2 * len(src) - 2
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps, options={"crf": "16", "preset": "medium"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            k = i % period
            f = av.VideoFrame.from_ndarray(src[k if k < len(src) else period - k], format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def scale_encode(clip: str, out: str, scale: int, crf: int, preset: str, flags: str = "lanczos") -> tuple[float, int]:
    """PyAV decode + FFmpeg's scale filter (libavfilter, ``flags``) + libx264 with the given settings:
    (fps, frames). With lanczos this is `videosr bench`'s floor."""
    t0 = time.perf_counter()
    n = 0
    with av.open(clip) as inp, av.open(out, "w") as oc:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        os_ = oc.add_stream("libx264", rate=vs.average_rate, options={"crf": str(crf), "preset": preset})
        os_.width, os_.height, os_.pix_fmt = vs.width * scale, vs.height * scale, "yuv420p"
        graph = av.filter.Graph()
        buf = graph.add_buffer(template=vs)
        sc = graph.add("scale", f"iw*{scale}:ih*{scale}:flags={flags}")
        sink = graph.add("buffersink")
        buf.link_to(sc)
        sc.link_to(sink)
        graph.configure()
        for frame in inp.decode(vs):
            graph.push(frame)
            for p in os_.encode(graph.pull()):
                oc.mux(p)
            n += 1
        for p in os_.encode():
            oc.mux(p)
    return n / (time.perf_counter() - t0), n


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def bench_model(
    name: str,
    clip: str,
    workdir: str,
    scale: int,
    crf: int,
    preset: str,
    device: str = "auto",
    precision: str = "auto",
    pretrained: bool = True,
    compile: bool = False,
) -> dict[str, Any]:
    import torch

    from .engine import set_threads
    from .io import Frame, image_to_tensor, open_input, open_planned, plan_output
    from .models.resolve import load_model
    from .pipeline import build_stages

    set_threads()
    net = load_model(name, scale)
    if not any(True for _ in net.parameters()):
        set_threads(1)  # as upscale does for parameter-free resamplers
    out = os.path.join(workdir, "enc.mp4")
    with open_input(clip) as r:
        info = r.info
        plan = plan_output(
            out, info, info.width * net.scale, info.height * net.scale, codec="libx264", crf=crf, preset=preset
        )
        engine, stage, to_input = build_stages(
            net,
            r,
            plan.pix_fmt,
            True,
            image_to_tensor,
            device=device,
            precision=precision,
            tile=None,
            chunk=None,
            compile=compile,
        )
        path = "source planes" if stage is not engine else ("model planes" if engine.planes is not None else "rgb")
        t_dec, frames = _timed(lambda: [(f, to_input(f.image)) for f in r])
    n = len(frames)
    with torch.inference_mode():
        for _ in stage.stream(iter([frames[0][1]])):  # warm-up (one-time allocation, autotuning)
            pass
        t_model, outs = _timed(lambda: list(stage.stream(t for _, t in frames)))

    def encode() -> None:
        with open_planned(out, info, plan, overwrite=True) as w:
            for (f, _), img in zip(frames, outs):
                w.write(Frame(image=img, pts=f.pts, time_base=f.time_base, index=f.index))

    t_enc, _ = _timed(encode)
    frames.clear()  # free before the end-to-end run: outputs are (C, sH, sW) floats, 25 MB per 1080p frame
    outs.clear()
    return {
        "model": name,
        "trained": bool(getattr(net, "trained", True)),
        "precision": engine.precision,
        "compile": compile,
        "path": path,
        "frames": n,
        "decode_fps": round(n / t_dec, 2),
        "model_fps": round(n / t_model, 2),
        "model_ms_per_frame": round(1000 * t_model / n, 2),
        "encode_fps": round(n / t_enc, 2),
        "total_fps": end_to_end_fps(name, clip, workdir, scale, crf, preset, device, precision, compile),
    }


def end_to_end_fps(
    name: str,
    clip: str,
    workdir: str,
    scale: int,
    crf: int,
    preset: str,
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
) -> float:
    """Frames per second of ``videosr.upscale`` (decode, model and encode overlapping) on the clip; with
    ``compile``, torch.compile's start-up (from inductor's cache after the stage run) is part of it."""
    from .pipeline import upscale

    t_total, summary = _timed(
        lambda: upscale(
            clip,
            os.path.join(workdir, "e2e.mp4"),
            scale=scale,
            model=name,
            device=device,
            precision=precision,
            codec="libx264",
            crf=crf,
            preset=preset,
            overwrite=True,
            progress=False,
            compile=compile,
            untrained=True,
        )
    )  # speed does not depend on the weights
    return round(summary["frames"] / t_total, 2)


def bench(
    models: list[str],
    *,
    size: tuple[int, int] = (480, 270),
    scale: int = 4,
    frames: int = 72,
    crf: int = 18,
    preset: str = "veryfast",
    device: str = "auto",
    precision: str = "auto",
    clip: str | None = None,
    repeat: int = 1,
    compile: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time each model end to end and per stage, plus the floor, on the same clip in the same run.

    ``repeat`` rounds of (floor, then every model end to end), interleaved so that each round's ratio
    compares runs seconds apart: ``total_fps`` and ``floor_fps`` are medians over the rounds and
    ``fraction_of_floor`` is the median of the per-round ratios (machines like this one drift by 10-30 %
    between minutes). Per-stage timings come from the first round."""
    if repeat < 1:
        raise UsageError(f"repeat must be >= 1, got {repeat}")
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="videosr-bench-") as d:
        if clip is None:
            say(f"making a {size[0]}x{size[1]} clip of {frames} frames")
            clip = make_clip(os.path.join(d, "clip.mp4"), frames, *size)
        floors: list[float] = []
        rows: list[dict[str, Any]] = []
        for r in range(repeat):
            say(f"round {r + 1}/{repeat}: floor: decode + lanczos (FFmpeg) + encode")
            f_fps, n = scale_encode(clip, os.path.join(d, "floor.mp4"), scale, crf, preset)
            floors.append(f_fps)
            for k, name in enumerate(models):
                say(f"round {r + 1}/{repeat}: model {name}")
                if r == 0:
                    rows.append(
                        bench_model(
                            name, clip, d, scale, crf, preset, device=device, precision=precision, compile=compile
                        )
                    )
                    rows[k]["total_fps_runs"] = [rows[k]["total_fps"]]
                else:
                    rows[k]["total_fps_runs"].append(
                        end_to_end_fps(name, clip, d, scale, crf, preset, device, precision, compile)
                    )
        for row in rows:
            ratios = [t / f for t, f in zip(row["total_fps_runs"], floors)]
            row["total_fps"] = round(statistics.median(row["total_fps_runs"]), 2)
            row["fraction_of_floor"] = round(statistics.median(ratios), 3)
            row["fraction_of_floor_runs"] = [round(x, 3) for x in ratios]
    return {
        "size": f"{size[0]}x{size[1]}",
        "scale": scale,
        "frames": n,
        "repeat": repeat,
        "encoder": {"codec": "libx264", "preset": preset, "crf": crf},
        "floor_fps": round(statistics.median(floors), 2),
        "floor_fps_runs": [round(f, 2) for f in floors],
        "models": rows,
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """What a timing depends on: cores, CPU model, whether it has AMX (bf16 fast) or AVX512-BF16, the widest
    vector instruction set PyTorch's CPU kernels use here (``isa``: AVX2, AVX512, ...), versions."""
    import torch

    from .engine import cpu_has_fast_bf16

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        avx512_bf16 = bool(torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        avx512_bf16 = False
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": cpu or platform.processor(),
        "amx": cpu_has_fast_bf16(),
        "avx512_bf16": avx512_bf16,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "av": av.__version__,
        "threads": torch.get_num_threads(),
    }
