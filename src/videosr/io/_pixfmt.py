"""Pixel-format helpers: bit depth / chroma layout of FFmpeg pix_fmts, output pix_fmt choice."""

from __future__ import annotations

import functools

import av

# AVColorSpace values swscale understands as matrices (others fall back to its default, BT.601).
_SWS_COLORSPACES = {1, 4, 5, 6, 7, 9, 10}
UNSPECIFIED = 2  # AVCOL_PRI/TRC/SPC_UNSPECIFIED


@functools.cache
def bit_depth(pix_fmt: str) -> int:
    try:
        fmt = av.VideoFormat(pix_fmt)
        bits = max((c.bits for c in fmt.components), default=8)
    except Exception:  # unknown/hw format
        return 8
    return int(bits) if bits else 8


@functools.cache
def chroma(pix_fmt: str) -> str:
    """'420', '422', '444', '440', '411', '410' or 'gray'."""
    n = pix_fmt
    if n.startswith(("gray", "ya", "monob", "monow", "y")) and not n.startswith(("yuv", "yuyv", "yvyu")):
        return "gray"
    for key in ("420", "422", "444", "440", "411", "410"):
        if key in n:
            return key
    if n.startswith(("nv12", "nv21", "p010", "p012", "p016")):
        return "420"
    if n.startswith(("nv16", "nv20", "yuyv", "uyvy", "yvyu", "p210", "p216")):
        return "422"
    if n.startswith(("nv24", "nv42", "p410", "p416", "vuya", "xv3", "ayuv")):
        return "444"
    return "444"  # rgb/gbr/pal formats


def _sws_flags(algorithm: str, *flags: str):
    """A swscale ``interpolation`` for PyAV's ``reformat``: the algorithm with ``flags`` or'ed in (the algorithm
    alone on a PyAV without the flag names)."""
    from av.video.reformatter import Interpolation

    out = getattr(Interpolation, algorithm)
    for f in flags:
        if not hasattr(Interpolation, f):
            return out
        out |= getattr(Interpolation, f)
    return out


# The swscale conversions between RGB and YUV. Without ACCURATE_RND and full-resolution chroma, swscale's
# YUV -> RGB fast path is biased: decoding the sample clip (4:2:0 BT.709) it gave RGB a mean 1.1 code values
# below the exact inverse of the matrix (every network model's input, and so its output, 1.1 Y levels
# darker than the source); with these flags +0.01. RGB -> YUV: Y was already exact; AREA + full-resolution
# input chroma makes 4:2:0 chroma the 2x2 average of each block (to 0.51 code values; swscale's default
# filter was up to 2.8 off it), as the models' planes output computes it (tests/test_colour.py).
SWS_TO_RGB = _sws_flags("BILINEAR", "ACCURATE_RND", "FULL_CHR_H_INT")
SWS_FROM_RGB = _sws_flags("AREA", "ACCURATE_RND", "FULL_CHR_H_INP")


def sws_colorspace(cs: int | None) -> int | None:
    """An AVColorSpace usable as a swscale matrix, else None (swscale default)."""
    return cs if cs in _SWS_COLORSPACES else None


@functools.cache
def encoder_formats(codec: str) -> tuple[str, ...]:
    try:
        c = av.codec.Codec(codec, "w")
    except Exception:
        return ()
    return tuple(f.name for f in (c.video_formats or ()))


def yuv_name(layout: str, depth: int) -> str:
    base = "gray" if layout == "gray" else f"yuv{layout}p"
    if depth <= 8:
        return base
    return f"{base}{depth}le"


def choose_pix_fmt(codec: str, info_pix_fmt: str, depth: int, layout: str) -> str:
    """Default encoder pix_fmt.

    * ffv1: the source pix_fmt when ffv1 supports it (keeps chroma layout and bit depth),
      else the closest yuv layout at 8/10/12/16 bits.
    * lossy codecs: 4:2:0 at the source bit depth when the encoder supports it
      (8 -> yuv420p, 10 -> yuv420p10le, 12 -> yuv420p12le for x265 else 10-bit), else 8-bit.
    """
    formats = encoder_formats(codec)
    if not formats:
        return "yuv420p10le" if depth > 8 else "yuv420p"
    if codec == "ffv1":
        if info_pix_fmt in formats:
            return info_pix_fmt
        lay = layout if layout in ("420", "422", "444", "gray") else "444"
        for d in [8] if depth <= 8 else [depth, 10, 12, 16]:
            name = yuv_name(lay, d)
            if lay == "gray" and d == 16:
                name = "gray16le"
            if name in formats:
                return name
        return "yuv444p16le" if depth > 8 else "yuv444p"
    if depth > 8:
        for d in (depth, 10, 12):
            if d >= 10 and f"yuv420p{d}le" in formats:
                return f"yuv420p{d}le"
    return "yuv420p"


# 8-bit planar YUV formats whose planes a per-channel linear resampler (bicubic, lanczos) can scale directly,
# with the chroma subsampling (log2 w, log2 h) of each.
PLANAR_YUV8 = {
    "yuv420p": (1, 1),
    "yuvj420p": (1, 1),
    "yuv422p": (1, 0),
    "yuvj422p": (1, 0),
    "yuv444p": (0, 0),
    "yuvj444p": (0, 0),
}


def plane_sizes(pix_fmt: str, width: int, height: int) -> list[tuple[int, int]] | None:
    """(h, w) of the Y, U, V planes of an 8-bit planar YUV format, or None when ``pix_fmt`` is not one of
    :data:`PLANAR_YUV8` or the size does not subsample evenly (odd width or height for 4:2:0)."""
    sub = PLANAR_YUV8.get(pix_fmt)
    if sub is None:
        return None
    sw, sh = sub
    if width % (1 << sw) or height % (1 << sh):
        return None
    c = (height >> sh, width >> sw)
    return [(height, width), c, c]


# (Kr, Kb) of the AVColorSpace matrices swscale knows; anything else converts as BT.601, swscale's default.
_KR_KB = {
    1: (0.2126, 0.0722),
    4: (0.30, 0.11),
    5: (0.299, 0.114),
    6: (0.299, 0.114),
    7: (0.212, 0.087),
    9: (0.2627, 0.0593),
    10: (0.2627, 0.0593),
}


def rgb_to_yuv(colorspace: int | None, color_range: int | None) -> list[list[float]]:
    """The affine RGB -> Y'CbCr map the writer's conversion applies, as a (3, 4) list ``[matrix | offset]``
    on values in [0, 1] (code value / 255): matrix from ``colorspace`` (AVColorSpace), limited range
    (Y 16..235, C 16..240) unless ``color_range`` is 2 (full, JPEG)."""
    kr, kb = _KR_KB.get(colorspace, (0.299, 0.114))
    kg = 1.0 - kr - kb
    full = color_range == 2
    ys, cs = (255.0, 255.0) if full else (219.0, 224.0)
    y0 = 0.0 if full else 16.0
    cb = [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5]
    cr = [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]
    return [
        [kr * ys / 255, kg * ys / 255, kb * ys / 255, y0 / 255],
        [v * cs / 255 for v in cb] + [128 / 255],
        [v * cs / 255 for v in cr] + [128 / 255],
    ]
