"""What the page shows about a clip and the models (no Gradio here): probe, model facts and run-time estimates
from the committed measurements, and single-frame previews through the library's engine."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3]  # the source checkout (docs/, benchmarks/) in an editable install
RESULTS = ROOT / "benchmarks" / "results"
PREVIEW_CONTEXT = 4  # frames each side a preview feeds a temporal model at most (recurrent models warm up on 8)
CROP = 256  # side of the 1:1 crop, in output pixels


def probe(path: str) -> dict[str, Any]:
    """The clip's facts for the page; raises :class:`videosr.errors.InputError` (a clear message) for anything
    that is not a decodable video."""
    from ..io import open_input

    with open_input(path) as r:
        i = r.info
    _check_complete(path, i.frames)
    fps = float(i.fps) if i.fps else None
    frames = i.frames or (int(round(i.duration * fps)) if i.duration and fps else None)
    return {
        "width": i.width,
        "height": i.height,
        "fps": round(fps, 3) if fps else None,
        "duration": round(i.duration, 3) if i.duration else None,
        "frames": frames,
        "codec": i.codec,
        "pix_fmt": i.pix_fmt,
        "bit_depth": i.bit_depth,
        "audio_streams": i.audio_streams,
        "subtitle_streams": i.subtitle_streams,
        "rotation": i.rotation,
    }


def _check_complete(path: str, declared: int | None) -> None:
    """An mp4/mov whose index declares more frames than its data holds (cut after a front index) is refused
    now, not at the end of a job: its video packets are counted (read, not decoded)."""
    import av

    from ..errors import InputError

    if not declared:
        return
    n = 0
    try:
        with av.open(path, "r", metadata_errors="replace") as c:
            if not c.format.name.startswith("mov"):
                return
            size = os.path.getsize(path)
            for pkt in c.demux(c.streams.video[0]):
                if pkt.size:
                    if pkt.pos is not None and pkt.pos >= 0 and pkt.pos + pkt.size > size:
                        break
                    n += 1
    except (av.error.FFmpegError, OSError, IndexError):
        pass
    if n < declared:
        raise InputError(f"truncated or corrupt: its index declares {declared} frames, the file holds {n}")


def describe(info: dict[str, Any]) -> str:
    """One Markdown line for a probe."""
    dur = f"{info['duration']:.2f} s" if info.get("duration") else "unknown duration"
    fps = f"{info['fps']:g} fps" if info.get("fps") else "unknown fps"
    frames = f"{info['frames']} frames" if info.get("frames") else "frame count unknown"
    return (
        f"**{info['width']}x{info['height']}**, {fps}, {dur} ({frames}), video codec **{info['codec']}** "
        f"({info['pix_fmt']}), {info['audio_streams']} audio stream(s), {info['subtitle_streams']} subtitle "
        f"stream(s)"
    )


# -- models -------------------------------------------------------------------------------------------------
def models_for(scale: int) -> list[str]:
    """Models the page offers at ``scale``: shipped trained models of that scale, then the resamplers."""
    from ..models import ARCHS, list_models

    trained = [v.name for v in list_models() if v.scale == scale and v.weights]
    resamplers = [v.name for v in list_models() if getattr(ARCHS[v.arch], "any_scale", False)]
    return trained + resamplers


@cache
def floor_fps() -> dict[str, dict[str, tuple[float, int, str]]]:
    """Per CPU kind and benchmarked model: (fps of a plain FFmpeg x4 upscale of a 480x270 clip measured alongside
    that model, output pixels per frame, source file), from the committed `videosr bench` JSONs that
    ``weights/speed.json`` was made from (a later file wins, as there); key ``""``: the last file's floor."""
    from ..models.auto import committed_table

    out: dict[str, dict[str, tuple[float, int, str]]] = {}
    for kind, files in (committed_table("speed.json").get("sources") or {}).items():
        for name in files:
            try:
                d = json.loads((RESULTS / name).read_text())
                w, h = (int(x) for x in d["size"].split("x"))
                row = (float(d["floor_fps"]), w * h * int(d["scale"]) ** 2, name)
            except (OSError, ValueError, KeyError):
                continue
            table = out.setdefault(kind, {})
            table[""] = row
            for m in d.get("models", []):
                table[m.get("model")] = row
    return out


def _floor(name: str, kind: str) -> tuple[float, int, str] | None:
    """The floor measured with model ``name`` (or the benchmarked variant sharing its architecture)."""
    from ..models import VARIANTS

    table = floor_fps().get(kind) or {}
    if name in table:
        return table[name]
    v = VARIANTS.get(name)
    for other, row in table.items():
        o = VARIANTS.get(other)
        if v is not None and o is not None and (o.arch, dict(o.kwargs), o.scale) == (v.arch, dict(v.kwargs), v.scale):
            return row
    return table.get("")


def speed_class(frac: float | None) -> str:
    if frac is None:
        return "speed not measured"
    if frac >= 0.5:
        return f"fast ({frac:.2f}x the floor)"
    if frac >= 0.25:
        return f"medium ({frac:.2f}x the floor)"
    if frac >= 0.1:
        return f"slow ({frac:.2f}x the floor)"
    return f"very slow ({frac:.2f}x the floor)"


def estimate_seconds(name: str, info: dict[str, Any] | None, scale: int, kind: str | None = None) -> float | None:
    """Run time of the whole clip with model ``name`` on this CPU kind: the floor measured for a 480x270 x4
    clip, scaled by output pixels, times the model's measured fraction of it. None where not measured."""
    from ..models import VARIANTS
    from ..models.auto import cpu_kind, speed

    if not info or not info.get("frames") or name not in VARIANTS:
        return None
    kind = kind or cpu_kind()
    frac = speed(VARIANTS[name], kind)
    floor = _floor(name, kind)
    if frac is None or floor is None:
        return None
    fps0, pixels0, _ = floor
    fps = fps0 * pixels0 / max(1, info["width"] * info["height"] * scale * scale) * frac
    return info["frames"] / fps if fps > 0 else None


def model_facts(scale: int, info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per offered model: Vid4 PSNR-Y, measured speed class on this CPU kind, estimated run time."""
    from ..models import VARIANTS
    from ..models.auto import cpu_kind, expected_psnr, speed

    kind = cpu_kind()
    rows = []
    for name in models_for(scale):
        v = VARIANTS[name]
        psnr = v.vid4_psnr_y if v.vid4_eval else (expected_psnr(v, None) if v.scale == scale else None)
        frac = speed(v, kind) if v.scale == scale else None
        est = estimate_seconds(name, info, scale, kind) if v.scale == scale else None
        rows.append(
            {
                "model": name,
                "vid4_psnr_y": None if psnr is None else round(psnr, 2),
                "degradation": v.vid4_degradation,
                "speed": frac,
                "speed_class": speed_class(frac),
                "estimate_s": None if est is None else round(est, 1),
                "kind": kind,
            }
        )
    return rows


def model_label(row: dict[str, Any]) -> str:
    psnr = f"Vid4 {row['vid4_psnr_y']:.2f} dB" if row["vid4_psnr_y"] is not None else "Vid4 not measured"
    if row["degradation"] == "BD" and row["vid4_psnr_y"] is not None:
        psnr += " (BD)"
    est = f", ~{fmt_seconds(row['estimate_s'])} for this clip" if row["estimate_s"] is not None else ""
    return f"{row['model']} — {psnr}, {row['speed_class']}{est}"


def fmt_seconds(s: float | None) -> str:
    if s is None or s != s:
        return "--:--"
    s = int(math.ceil(s))
    if s < 60:
        return f"{s} s"
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


# -- previews -----------------------------------------------------------------------------------------------
class _Engines:
    """A few engines of loaded models, least recently used dropped first (a model's RGB engine and its planes
    engines share its weights)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._d: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, scale: int, yuv: tuple | None = None):
        """The engine of model ``name`` at ``scale``: on RGB frames, or with ``yuv`` (the (3, 4) RGB -> YUV map
        of the output, as nested tuples) reconstructing 4:2:0 planes (``Engine.planes``)."""
        import torch

        from ..engine import Engine
        from ..models.resolve import load_model

        key = (name, scale, yuv)
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
            net = next((e.model for k, e in self._d.items() if k[:2] == (name, scale)), None)
        if net is None:
            net = load_model(name, scale)
        planes = None if yuv is None else torch.tensor(yuv, dtype=torch.float32)
        # chunk 1: a preview wants one output frame (with its context frames), not a chunk of them
        eng = Engine(net, device="cpu", precision="auto", clamp=True, chunk=1, planes=planes)
        with self._lock:
            self._d[key] = eng
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return eng


ENGINES = _Engines()


SEEK_AFTER = 240  # frames: a preview further into the clip seeks to the keyframe before it instead of decoding
# every frame from the start (a preview 50 minutes into a 25 fps video would decode 75,000 frames)


def read_frames(path: str, index: int, before: int, after: int):
    """RGB frames ``index - before .. index + after`` (clipped to the clip), the position of ``index`` among
    them, the index actually read (the last frame when ``index`` is past the end) and the clip's VideoInfo."""
    from ..io import open_input

    if index - before > SEEK_AFTER:
        with open_input(path) as r:
            info = r.info
        got = _seek_frames(path, index, before, after, info)
        if got is not None:
            return (*got, info)

    first = max(0, index - before)
    with open_input(path) as r:
        skipped = len(r.skip(first))
        frames = []
        for f in r:
            frames.append(f.image)
            if len(frames) >= index - skipped + after + 1:
                break
        info = r.info
    if not frames:  # index past the end: take the last frames
        if not skipped:
            from ..errors import EmptyInputError

            raise EmptyInputError("the video has no frames")
        return read_frames(path, max(0, skipped - 1), before, after)
    at = min(index - skipped, len(frames) - 1)
    return frames, at, skipped + at, info


def _seek_frames(path: str, index: int, before: int, after: int, info):
    """As :func:`read_frames`, by seeking to the keyframe before frame ``index - before`` (frame numbers from
    timestamps at the clip's fps); None where that cannot be done (no fps, no timestamps, a decode error): the
    caller then decodes from the start."""
    import av

    from ..io import reader as _reader

    if not info.fps or info.bit_depth > 8:
        return None
    fps = float(info.fps)
    cs, rng = _pixfmt_colorspace(info), info.color_range
    try:
        with av.open(path, "r", metadata_errors="replace") as c:
            vs = next(s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic))
            tb, t0 = vs.time_base, vs.start_time or 0
            first_t = max(0.0, (index - before) / fps - 1.0)  # a second early: timestamps are not exact
            c.seek(int(first_t / tb) + t0, stream=vs, backward=True, any_frame=False)
            frames: list[tuple[int, np.ndarray]] = []
            for f in c.decode(vs):
                if f.pts is None:
                    return None
                i = int(round(float((f.pts - t0) * tb) * fps))
                if i < index - before:
                    continue
                if not frames and i > index - before:
                    return None  # the seek landed past the frames wanted
                frames.append((i, _reader.frame_to_array(f, False, cs, rng)))
                if i >= index + after:
                    break
    except (av.error.FFmpegError, OSError, StopIteration, ValueError, AttributeError):
        return None
    if not frames:
        return None
    at = max(k for k, (i, _) in enumerate(frames) if i <= index) if frames[0][0] <= index else 0
    return [img for _, img in frames], at, frames[at][0]


def _pixfmt_colorspace(info):
    from ..io import sws_colorspace

    return sws_colorspace(info.colorspace)


def upscale_frame(name: str, scale: int, frames: list[np.ndarray], at: int, info=None) -> np.ndarray:
    """Frame ``at`` of ``frames`` (8-bit RGB) upscaled by model ``name`` (its temporal neighbours as context).
    A model with ``supports_planes`` reconstructs the 4:2:0 planes of that one frame, as a job writes them, and
    FFmpeg converts them to RGB; other models run on RGB frames."""
    import torch

    from ..io import image_to_tensor, tensor_to_image

    eng = ENGINES.get(name, scale)
    ctx = min(eng.context, PREVIEW_CONTEXT)
    lo, hi = max(0, at - ctx), min(len(frames), at + ctx + 1)
    clip = [image_to_tensor(frames[k]) for k in range(lo, hi)]
    h, w = frames[at].shape[:2]
    planes = (
        info is not None
        and getattr(eng.model, "supports_planes", False)
        and eng.tile is None
        and frames[at].dtype == np.uint8
        and (w * eng.scale) % 2 == 0
        and (h * eng.scale) % 2 == 0
    )
    if not planes:
        with torch.inference_mode():
            out = next(iter(eng.stream(iter(clip), first=lo, start=at)))
        return tensor_to_image(out)
    import av

    from ..io import rgb_to_yuv, sws_colorspace
    from ..io.convert import tensors_to_frame_planes

    matrix = tuple(tuple(row) for row in rgb_to_yuv(info.colorspace, info.color_range))
    eng = ENGINES.get(name, scale, matrix)
    with torch.inference_mode():
        yuv = next(iter(eng.stream(iter(clip), first=lo, start=at)))
    frame = av.VideoFrame(w * eng.scale, h * eng.scale, "yuv420p")
    tensors_to_frame_planes(yuv, frame.planes)
    kw = {}
    cs = sws_colorspace(info.colorspace)
    if cs is not None:
        kw["src_colorspace"] = cs
    if info.color_range:
        kw["src_color_range"] = info.color_range
    return frame.to_ndarray(format="rgb24", **kw)


def crop(img: np.ndarray, cx: float, cy: float, size: int = CROP) -> np.ndarray:
    """A ``size`` x ``size`` 1:1 crop centred at (cx, cy), fractions of the width and height."""
    h, w = img.shape[:2]
    s = min(size, w, h)
    x = int(round(cx * w - s / 2))
    y = int(round(cy * h - s / 2))
    x, y = min(max(0, x), w - s), min(max(0, y), h - s)
    return img[y : y + s, x : x + s]


def side_by_side(a: np.ndarray, b: np.ndarray, gap: int = 4) -> np.ndarray:
    bar = np.full((a.shape[0], gap, 3), 255, dtype=a.dtype)
    return np.concatenate([a, bar, b], axis=1)


def preview(
    path: str, seconds: float, fps: float | None, model: str, compare: str, scale: int, cx: float = 0.5, cy: float = 0.5
) -> dict[str, Any]:
    """The frame at ``seconds`` by ``model`` and by ``compare``: ``{"compare", "model", "crop", "index",
    "seconds"}`` (RGB uint8 arrays; ``crop``: the two 1:1 crops side by side, compare left)."""
    import torch

    t0 = time.perf_counter()
    threads = preview_threads()
    torch.set_num_threads(threads)  # this handler thread's OpenMP team (a running job keeps its own)
    index = max(0, int(round(float(seconds) * (fps or 25.0))))
    e1, e2 = ENGINES.get(model, scale), ENGINES.get(compare, scale)
    ctx = min(max(e1.context, e2.context), PREVIEW_CONTEXT)
    frames, at, index, info = read_frames(path, index, ctx, ctx)
    t1 = time.perf_counter()
    hr = upscale_frame(model, scale, frames, at, info)
    base = upscale_frame(compare, scale, frames, at, info)
    t2 = time.perf_counter()
    both = side_by_side(crop(base, cx, cy), crop(hr, cx, cy))
    return {
        "compare": base,
        "model": hr,
        "crop": both,
        "index": index,
        "seconds": index / (fps or 25.0),
        "timing": {"decode_s": t1 - t0, "models_s": t2 - t1, "total_s": time.perf_counter() - t0, "threads": threads},
    }


def preview_threads() -> int:
    """Intra-op threads for a preview: every core on an idle machine, one when the cores are already busy (a job,
    other work): on the shared 2-core machine, two threads fighting other work for the cores made a fast-x4
    preview of one 480x270 frame several times slower than one thread (a one-off observation; the preview
    benchmark is benchmarks/web_preview.py)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        busy = os.getloadavg()[0] >= cpus - 0.5
    except OSError:
        busy = False
    return 1 if busy or cpus < 2 else cpus


def model_cards() -> list[tuple[str, str]]:
    """(name, Markdown) of each model card under docs/models/ of the source checkout."""
    d = ROOT / "docs" / "models"
    if not d.is_dir():
        return []
    return [(p.stem, p.read_text(errors="replace")) for p in sorted(d.glob("*.md"))]


def tables_markdown() -> str:
    """The PSNR and speed tables of every shipped model (from the committed measurements)."""
    from ..models import list_models
    from ..models.auto import committed_table, cpu_kind, speed

    kind = cpu_kind()
    q = committed_table("quality.json").get("vid4_x4", {})
    lines = [
        "### Vid4 PSNR-Y (dB)",
        "",
        "| model | scale | own degradation | x4 clean | x264 CRF 15 | CRF 25 | CRF 35 |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in list_models():
        if not (v.weights or v.name in q):
            continue
        own = f"{v.vid4_psnr_y:.2f} ({v.vid4_degradation})" if v.vid4_eval else "-"
        row = q.get(v.name, {})
        cols = [f"{row[k]:.2f}" if k in row else "-" for k in ("clean", "15", "25", "35")]
        lines.append(f"| {v.name} | x{v.scale} | {own} | " + " | ".join(cols) + " |")
    floors = floor_fps()
    lines += [
        "",
        "### Speed (end-to-end, fraction of a plain FFmpeg upscale of the same clip)",
        "",
        "| model | AMX CPU | CPU without AMX |",
        "|---|---|---|",
    ]
    for v in list_models():
        a, n = speed(v, "amx"), speed(v, "no-amx")
        if a is None and n is None:
            continue
        lines.append(f"| {v.name} | {'-' if a is None else f'{a:.3f}'} | {'-' if n is None else f'{n:.3f}'} |")
    src = "; ".join(
        f"{k}: " + ", ".join(sorted({f"{r[2]} (floor {r[0]:.1f} fps at 480x270 x4)" for r in t.values()}))
        for k, t in floors.items()
    )
    lines += [
        "",
        f"This CPU: **{kind}**. Sources: `src/videosr/weights/speed.json`, `quality.json`"
        + (f"; {src}" if src else "")
        + ".",
    ]
    return "\n".join(lines)
