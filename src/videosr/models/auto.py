"""``--model auto``: the model for this input on this machine, and why.

Two measured tables decide, both shipped as package data and made by scripts from committed benchmark JSONs
(never typed in by hand):

* ``weights/speed.json`` (``benchmarks/auto_tables.py``): each benchmarked model's end-to-end speed as a
  fraction of the floor (a plain FFmpeg upscale of the same clip) on each CPU kind: ``amx`` (Intel Xeon with
  AMX, where bf16 convolutions are several times fp32) and ``no-amx``. A variant that shares its
  architecture and hyperparameters with a benchmarked one has its speed.
* ``weights/quality.json`` (``benchmarks/auto_tables.py`` too, from ``benchmarks/results/compressed/``):
  Vid4 x4 PSNR-Y of each model on clean BI LR and on LR encoded with x264 at CRF 15, 25 and 35 (the
  ``videosr eval --lr-codec`` protocol), the x264 CRF -> bits-per-pixel curve of that LR, and the bits
  x265 and VP9 spend for the same LR PSNR-Y relative to x264 (``benchmarks/input_quality.py``; other
  codecs are placed as if they were H.264).

The rule: among trained models of the scale (not those for another degradation, BD), keep those at or
above ``MIN_FLOOR_FRACTION`` of the floor on this CPU kind (``quality="auto"``; ``"best"`` keeps all,
``"fast"`` takes the fastest), and take the one with the highest PSNR measured for input like this one:
clean input (a lossless codec, raw video, an image folder of lossless images) uses the clean column;
compressed input is placed on the CRF axis by its bits per pixel (:func:`probe_source`) and each model's
PSNR is interpolated there.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .registry import VARIANTS, WEIGHTS_DIR, Variant, list_models

MIN_FLOOR_FRACTION = 0.25  # the default: the best model that runs at >= 0.25x a plain FFmpeg upscale
QUALITIES = ("auto", "fast", "best")
LOSSLESS_CODECS = frozenset(
    {
        "rawvideo",
        "ffv1",
        "huffyuv",
        "ffvhuff",
        "utvideo",
        "png",
        "apng",
        "qtrle",
        "magicyuv",
        "v210",
        "v410",
        "r210",
        "bmp",
        "tiff",
        "pam",
        "ppm",
        "pgm",
        "qoi",
        "flashsv",
        "zlib",
        "lagarith",
        "yuv4",
    }
)
LOSSLESS_IMAGES = frozenset({".png", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm", ".webp"})
PROBE_FRAMES = 48  # frames of the input decoded to measure its quantiser / bits per pixel


@dataclass(frozen=True)
class Source:
    """What the input tells about its quality: ``crf`` is None for clean (lossless) input, else the x264
    CRF that spends as many H.264-equivalent bits per pixel."""

    codec: str
    bpp: float | None  # bits per pixel per frame (packet sizes)
    crf: float | None
    note: str
    qp: float | None = None  # mean H.264 quantiser of the probed frames


@dataclass(frozen=True)
class Choice:
    model: str
    reason: str


def cpu_kind() -> str:
    from ..engine import cpu_has_fast_bf16, cpu_has_native_bf16

    return "amx" if (cpu_has_native_bf16() and cpu_has_fast_bf16()) else "no-amx"


@cache
def committed_table(name: str) -> dict:
    """A committed measurement table of the weights folder (speed.json, quality.json), {} when absent."""
    p = WEIGHTS_DIR / name
    return json.loads(p.read_text()) if p.is_file() else {}


def speed(v: Variant, kind: str) -> float | None:
    """End-to-end fraction of the floor on this CPU kind: measured for ``v`` or a variant with the same
    architecture and hyperparameters; None if never measured."""
    table = committed_table("speed.json").get(kind, {})
    if v.name in table:
        return float(table[v.name])
    for name, frac in table.items():
        o = VARIANTS.get(name)
        if o is not None and o.arch == v.arch and dict(o.kwargs) == dict(v.kwargs) and o.scale == v.scale:
            return float(frac)
    return None


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def crf_from_qp(qp: float) -> float:
    """The x264 CRF whose Vid4 x4 LR has this mean H.264 quantiser (linear between measured points)."""
    curve = committed_table("quality.json").get("x264_qp", {})  # {"crf": [...], "qp": [...]}
    if not curve.get("crf"):
        return qp
    pts = sorted(zip(curve["qp"], curve["crf"]))
    return _interp(qp, [a for a, _ in pts], [b for _, b in pts])


def crf_from_bpp(bpp: float, codec: str) -> float:
    """The x264 CRF whose Vid4 x4 LR spends ``bpp`` H.264-equivalent bits per pixel (log-linear between the
    measured points, clamped to them)."""
    curve = committed_table("quality.json").get("x264_bpp", {})  # {"crf": [...], "bpp": [...]}
    crfs, bpps = curve.get("crf"), curve.get("bpp")
    if not crfs:
        return 25.0
    eq = bpp / (committed_table("quality.json").get("bits_vs_x264", {}).get(codec) or 1.0)
    pts = sorted(zip((-math.log2(b) for b in bpps), crfs))  # bits fall as the CRF rises
    return _interp(-math.log2(max(eq, 1e-6)), [p[0] for p in pts], [p[1] for p in pts])


def _frame_qp(sd: bytes) -> float | None:
    """Mean quantiser of one frame from FFmpeg's AVVideoEncParams side data (H.264: per-macroblock QP, the
    frame's base QP plus each block's delta; layout of libavutil/video_enc_params.h on 64-bit)."""
    import struct

    if len(sd) < 32:
        return None
    nb, off, size = struct.unpack_from("<IxxxxQQ", sd, 0)
    kind, qp = struct.unpack_from("<ii", sd, 24)
    if kind != 1:  # AV_VIDEO_ENC_PARAMS_H264 only: other codecs use other scales
        return None
    if nb == 0 or size < 20 or off + nb * size > len(sd):
        return float(qp)
    return qp + sum(struct.unpack_from("<i", sd, off + i * size + 16)[0] for i in range(nb)) / nb


def probe_source(path, frames: int = PROBE_FRAMES) -> Source:
    """Read what the input says about its quality. For H.264 the mean quantiser (QP) of the first
    ``frames`` frames (decoded with FFmpeg's ``export_side_data=venc_params``), placed on the CRF axis by
    the x264 CRF -> QP curve measured on Vid4; for other codecs the bits per pixel of those frames' packets.
    Streams (``-``, pipes) and image folders are judged by codec / file type alone."""
    if path == "-" or hasattr(path, "read"):
        return Source("rawvideo", None, None, "y4m stream: raw (uncompressed) frames")
    p = Path(os.fspath(path))
    if p.is_dir():
        exts = {q.suffix.lower() for q in p.iterdir() if q.is_file() and not q.name.startswith(".")}
        if exts and exts <= LOSSLESS_IMAGES:
            return Source("image", None, None, "a folder of lossless images")
        return Source("mjpeg", None, 30.0, "a folder of JPEG (or mixed) images: taken as compressed (~CRF 30)")
    if not p.is_file():
        return Source("unknown", None, None, "not a regular file: not measured (taken as clean)")
    import av

    sizes: list[int] = []
    qps: list[float] = []
    try:
        with av.open(str(p), "r", metadata_errors="replace") as c:
            s = c.streams.video[0]
            codec = s.codec_context.name if s.codec_context is not None else "unknown"
            w, h = s.codec_context.width, s.codec_context.height
            if codec in LOSSLESS_CODECS:
                return Source(codec, None, None, f"{codec}: a lossless codec")
            s.codec_context.options = {"export_side_data": "venc_params"}
            for pkt in c.demux(s):
                if pkt.size:
                    sizes.append(pkt.size)
                for f in pkt.decode():
                    for sd in f.side_data:
                        if sd.type.name == "VIDEO_ENC_PARAMS":
                            q = _frame_qp(bytes(sd))
                            if q is not None:
                                qps.append(q)
                if len(sizes) >= frames:
                    break
    except (av.error.FFmpegError, OSError, IndexError, ValueError):
        return Source("unknown", None, 25.0, "could not measure its bits (taken as CRF 25)")
    bpp = 8 * sum(sizes) / (len(sizes) * w * h) if sizes and w and h else None
    if qps:
        qp = sum(qps) / len(qps)
        crf = crf_from_qp(qp)
        return Source(codec, bpp, crf, f"{codec}, mean QP {qp:.1f} (~x264 CRF {crf:.0f})", qp)
    if bpp is None:
        return Source(codec, None, 25.0, f"{codec}: nothing measured (taken as CRF 25)")
    crf = crf_from_bpp(bpp, codec)
    return Source(codec, bpp, crf, f"{codec} at {bpp:.3f} bits/pixel (~x264 CRF {crf:.0f})")


def expected_psnr(v: Variant, src: Source | None) -> float | None:
    """The model's Vid4 x4 PSNR-Y measured for input like ``src`` (interpolated along the CRF axis);
    None where it was not measured."""
    row = committed_table("quality.json").get("vid4_x4", {}).get(v.name)
    if src is None or src.crf is None:
        if row and "clean" in row:
            return float(row["clean"])
        return v.vid4_psnr_y if v.vid4_degradation == "BI" else None
    if not row:
        return None
    pts = sorted((float(k), float(val)) for k, val in row.items() if k != "clean")
    if not pts:
        return None
    return _interp(src.crf, [p[0] for p in pts], [p[1] for p in pts])


def choose(
    scale: int, src: Source | None = None, quality: str = "auto", kind: str | None = None, backend: str = "torch"
) -> Choice:
    """The model ``--model auto`` runs for input ``src`` at ``scale`` on this CPU kind, and why; with
    ``backend="onnxruntime"``, among the models that backend runs (:func:`.onnx_backend.served`)."""
    from ..errors import UsageError

    if quality not in QUALITIES:
        raise UsageError(f"unknown --quality {quality!r} (use {', '.join(QUALITIES)})")
    kind = kind or cpu_kind()
    cands = [v for v in list_models() if v.scale == scale and v.weights and v.vid4_degradation == "BI"]
    if backend == "onnxruntime":
        from .onnx_backend import served

        cands = [v for v in cands if served(v.name)]
    if not cands:
        have = sorted({v.scale for v in list_models() if v.weights and v.vid4_degradation == "BI"})
        return Choice(
            "bicubic",
            f"no trained x{scale} model ships, so plain bicubic interpolation (no learned detail; "
            f"trained models ship for {', '.join(f'x{s}' for s in have) or 'no scale'})",
        )
    what = "clean input" if src is None or src.crf is None else f"input at ~x264 CRF {src.crf:.0f}"
    fast = {v.name: speed(v, kind) for v in cands}
    if quality == "fast":
        known = [v for v in cands if fast[v.name] is not None]
        v = max(known or cands, key=lambda o: (fast[o.name] or 0, expected_psnr(o, src) or 0))
        return Choice(
            v.name, f"--quality fast: the fastest trained x{scale} model on this CPU ({kind}{_frac(fast[v.name])})"
        )
    pool = cands
    bar = ""
    if quality == "auto" and all(f is None for f in fast.values()):
        # Nothing measured on this CPU kind: a model below the bar on AMX, which runs every model measured on
        # both kinds faster (speed.json), is below it without AMX too; the others stay candidates.
        over = {v.name: speed(v, "amx") if kind != "amx" else None for v in cands}
        slow = [v for v in cands if over[v.name] is not None and over[v.name] < MIN_FLOOR_FRACTION]
        if slow and len(slow) < len(cands):
            pool = [v for v in cands if v not in slow]
            bar = (
                f" (no x{scale} speed measured on this CPU kind, {kind}; left out: "
                f"{', '.join(f'{v.name} ({over[v.name]:.2f}x on amx)' for v in slow)}, below "
                f"{MIN_FLOOR_FRACTION}x the floor even where it runs fastest)"
            )
        else:
            bar = f" (no x{scale} speed measured on this CPU kind, {kind}: speed not weighed)"
    elif quality == "auto":
        pool = [v for v in cands if (fast[v.name] or 0) >= MIN_FLOOR_FRACTION]
        bar = f" among models at >= {MIN_FLOOR_FRACTION}x the floor on this CPU ({kind})"
        if not pool:
            known = [v for v in cands if fast[v.name] is not None] or cands
            v = max(known, key=lambda o: fast[o.name] or 0)
            return Choice(
                v.name,
                f"no model reaches {MIN_FLOOR_FRACTION}x the floor on this CPU ({kind}): the "
                f"fastest{_frac(fast[v.name])}",
            )
    scored = [(expected_psnr(v, src), v) for v in pool]
    measured = [(s, v) for s, v in scored if s is not None]
    if not measured:  # nothing measured for this kind of input: the best on clean input
        measured = [(expected_psnr(v, None) or 0.0, v) for v in pool]
        what = f"clean input (nothing measured for {what})"
    # PSNR differences below 0.01 dB are below what Vid4 resolves: such ties go to the faster model
    s, v = max(measured, key=lambda sv: (round(sv[0], 2), fast[sv[1].name] or 0.0))
    return Choice(v.name, f"best measured Vid4 PSNR-Y for {what} ({s:.2f} dB){bar}{_frac(fast[v.name], ', ')}")


def _frac(f: float | None, sep: str = ": ") -> str:
    return f"{sep}{f:.2f}x the floor" if f is not None else ""
