"""Degradations for the evaluation protocol and for training (resampling: :mod:`videosr.resample`).

Convention (everything in this module): images are torch tensors shaped ``(..., C, H, W)`` (any leading
dimensions: a single image, a clip ``(T, C, H, W)`` or a batch), float, in whatever range the caller uses
(the resamplers are linear; functions that quantise say so and take [0, 1]). Random functions take an
explicit ``torch.Generator`` and draw nothing from global state.

* :func:`bi_degrade`: the "BI" protocol: crop to a multiple of s, ``imresize(1/s)``, optionally rounded
  to 8 bits like an LR image saved by MATLAB.
* :func:`bd_degrade`: the "BD" protocol: 9x9 Gaussian blur (sigma 1.6), then every s-th pixel.
* :func:`video_compress`: a codec round trip (x264 / x265 / VP9 at a CRF, yuv420p, deterministic): the
  compressed-LR evaluation protocol and :func:`codec_degrade`, compression in the training loop.
* :func:`realistic_degrade`: random blur, downscale, noise, JPEG and H.264/H.265 for real-footage training.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UsageError
from .resample import imresize, sym_pad

# --------------------------------------------------------------------------------------------------
# Protocol degradations
# --------------------------------------------------------------------------------------------------


def crop_to_multiple(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop (..., H, W) at the bottom/right to a multiple of ``scale`` (the protocol's GT crop)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def quantize(x: torch.Tensor, levels: int = 255, mode: str = "round") -> torch.Tensor:
    """Quantise [0, 1] data to ``levels`` + 1 grey levels and back to [0, 1], as saving an 8-bit image does.

    ``mode``: "round" (MATLAB's ``uint8()`` and Pillow) or "floor" (numpy ``astype(np.uint8)``)."""
    if mode == "round":
        q = (x * levels).round_()
    elif mode == "floor":
        q = (x * levels + 1e-7).floor_()  # + 1e-7: k / 255 * 255 must stay k
    else:
        raise UsageError(f"quantize mode must be 'round' or 'floor', got {mode!r}")
    return q.clamp_(0, levels) / levels


def bi_degrade(hr: torch.Tensor, scale: int, *, quantize_lr: bool = False, matlab_uint8: bool = False) -> torch.Tensor:
    """BI degradation: crop ``hr`` (..., C, H, W) to a multiple of ``scale``, MATLAB ``imresize(1/scale)``.

    ``quantize_lr``: round the LR to 8 bits (input in [0, 1]), as an LR PNG saved by MATLAB is; the
    evaluation protocol uses it. ``matlab_uint8`` also rounds between the two passes, as MATLAB does on
    uint8 input (needs ``quantize_lr``; [0, 1] input). With both set, the result reproduces the shipped
    ``LR_bicubic`` images (see tests/test_degrade.py).
    """
    hr = crop_to_multiple(hr, scale)
    if matlab_uint8:
        lr = imresize(hr * 255, 1 / scale, round_between=True) / 255
    else:
        lr = imresize(hr, 1 / scale)
    return quantize(lr) if quantize_lr else lr


def gaussian_kernel2d(size: int = 13, sigma: float = 1.6, dtype=torch.float64) -> torch.Tensor:
    """Normalised isotropic Gaussian, size x size, centred at (size - 1) / 2."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).to(dtype)


BD_SIGMA = 1.6
BD_KERNEL_SIZE = 9
BD_PADDING = "replicate"
BD_PHASE = 0
BD_ROUNDING = "floor"


def gaussian_blur(x: torch.Tensor, kernel: torch.Tensor, padding: str = "replicate") -> torch.Tensor:
    """Filter (..., C, H, W) by a 2-D ``kernel`` (kh, kw) per channel, output the same size.

    ``padding``: "replicate" (edge pixel repeated), "reflect" (mirror without the edge pixel, scipy
    ``mirror``), "symmetric" (mirror with the edge pixel, MATLAB/scipy ``reflect``), "constant" (zeros).
    """
    shape = x.shape
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    y = x.to(dt).reshape(-1, 1, *shape[-2:])  # (..., C, H, W) -> (N, 1, H, W)
    if padding == "symmetric":
        y = sym_pad(sym_pad(y, ph, 2), pw, 3)
    elif padding in ("replicate", "reflect", "constant", "circular"):
        y = F.pad(y, (pw, kw - 1 - pw, ph, kh - 1 - ph), mode=padding)
    else:
        raise UsageError(f"unknown padding {padding!r}")
    y = F.conv2d(y, kernel.to(dt)[None, None])  # (N, 1, H, W); conv2d is correlation: kernel as given
    return y.reshape(shape)


def bd_degrade(
    hr: torch.Tensor,
    scale: int = 4,
    sigma: float = BD_SIGMA,
    *,
    kernel_size: int = BD_KERNEL_SIZE,
    padding: str = BD_PADDING,
    phase: int = BD_PHASE,
    quantize_lr: bool = False,
    rounding: str = BD_ROUNDING,
) -> torch.Tensor:
    """BD degradation: Gaussian blur then every ``scale``-th pixel.

    ``hr`` (..., C, H, W) is first cropped to a multiple of ``scale``. The blur is a ``kernel_size`` x
    ``kernel_size`` normalised Gaussian of std ``sigma``, centred, applied with ``padding`` (see
    :func:`gaussian_blur`); then LR[i, j] = blur(HR)[phase + s i, phase + s j]. ``quantize_lr`` rounds
    the LR to 8 bits with ``rounding`` ("floor" or "round"; [0, 1] input).

    The defaults (9 x 9, sigma 1.6, replicate padding, phase 0, floor) reproduce the shipped Vid4
    ``LR_BDx4/calendar`` from the GT exactly (41 frames, 0 or a handful of pixels off by one level).
    BasicSR's ``duf_downsample`` convention is ``kernel_size=13, padding="reflect"`` (also phase 0): it
    differs from the shipped LR by 0.5 grey levels on average with rounding, 0.13 with floor.
    """
    hr = crop_to_multiple(hr, scale)
    dt = hr.dtype if hr.dtype in (torch.float32, torch.float64) else torch.float32
    y = gaussian_blur(hr, gaussian_kernel2d(kernel_size, sigma, dt), padding)
    y = y[..., phase::scale, phase::scale]
    return quantize(y, mode=rounding) if quantize_lr else y


# --------------------------------------------------------------------------------------------------
# Realistic degradations (training for real footage)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealisticParams:
    """Ranges of :func:`realistic_degrade`. Each step happens with its probability; ranges are
    inclusive and sampled uniformly (``*_log`` ranges uniformly in log space). Pixel values are [0, 1];
    noise levels are given on the 0..255 scale."""

    # 1. blur of the HR frames (before downscaling)
    blur_prob: float = 0.8
    blur_kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)  # odd, square
    blur_sigma: tuple[float, float] = (0.2, 3.0)  # std of each axis, HR pixels
    anisotropic_prob: float = 0.5  # else isotropic; anisotropic: two sigmas and a random rotation
    # 2. downscale by the scale factor with a random kernel
    resize_kernels: tuple[str, ...] = ("bicubic", "bilinear", "area")  # MATLAB imresize / area average
    # 3. noise (after downscaling)
    noise_prob: float = 0.8
    poisson_prob: float = 0.4  # else Gaussian
    gaussian_sigma: tuple[float, float] = (1.0, 20.0)  # std on the 0..255 scale
    poisson_peak_log: tuple[float, float] = (1.5, 3.5)  # log10 of photons at full white (30..3000)
    grey_noise_prob: float = 0.4  # the same noise on R, G and B (luma noise) instead of per channel
    # 4. JPEG of every frame (Pillow, 4:2:0)
    jpeg_prob: float = 0.4
    jpeg_quality: tuple[int, int] = (35, 95)
    # 5. video compression of the clip (PyAV, yuv420p, preset "medium" for x264 / "fast" for x265)
    video_prob: float = 0.5
    video_codecs: tuple[str, ...] = ("libx264", "libx265")
    crf: tuple[int, int] = (18, 36)

    def __post_init__(self) -> None:
        for name in (
            "blur_prob",
            "anisotropic_prob",
            "noise_prob",
            "poisson_prob",
            "grey_noise_prob",
            "jpeg_prob",
            "video_prob",
        ):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise UsageError(f"RealisticParams.{name} must be in [0, 1], got {v}")
        for name in ("blur_sigma", "gaussian_sigma", "poisson_peak_log", "jpeg_quality", "crf"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise UsageError(f"RealisticParams.{name}: empty range {lo}..{hi}")
        if any(k % 2 == 0 or k < 1 for k in self.blur_kernel_sizes) or not self.blur_kernel_sizes:
            raise UsageError("RealisticParams.blur_kernel_sizes must be odd positive sizes")
        if self.blur_sigma[0] <= 0:
            raise UsageError("RealisticParams.blur_sigma must be > 0")
        bad = [k for k in self.resize_kernels if k not in ("bicubic", "bilinear", "area")] or not self.resize_kernels
        if bad:
            raise UsageError(f"RealisticParams.resize_kernels: unknown {bad}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise UsageError("RealisticParams.jpeg_quality must be within 1..100")
        if not 0 <= self.crf[0] <= self.crf[1] <= 51:
            raise UsageError("RealisticParams.crf must be within 0..51")
        if any(c not in ("libx264", "libx265") for c in self.video_codecs) or not self.video_codecs:
            raise UsageError("RealisticParams.video_codecs: use libx264 and/or libx265")


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _choice(g: torch.Generator, seq):
    return seq[int(torch.randint(len(seq), (), generator=g))]


def _chance(g: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=g, dtype=torch.float64)) < p


def anisotropic_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, dtype=torch.float64
) -> torch.Tensor:
    """Normalised (size, size) Gaussian with axis stds ``sigma_x``, ``sigma_y`` rotated by ``theta`` (rad)."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).to(dtype)


def jpeg_compress(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip (Pillow, 4:2:0) of (..., 3, H, W) [0, 1] frames; returns [0, 1] float32."""
    from PIL import Image

    shape = x.shape
    frames = x.reshape(-1, *shape[-3:])
    out = []
    for f in frames:
        a = (f.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (3, H, W) -> (H, W, 3)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(a)).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as im:
            b = np.asarray(im.convert("RGB"))
        out.append(torch.from_numpy(b.copy()).permute(2, 0, 1))
    return (torch.stack(out).float() / 255).reshape(shape)


VIDEO_CODECS = ("libx264", "libx265", "libvpx-vp9")
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libvpx-vp9": (0, 63)}


def check_codec(codec: str, crf: int, preset: str | None = None) -> None:
    """One clear UsageError for a codec / CRF / preset this module cannot encode with."""
    if codec not in VIDEO_CODECS:
        raise UsageError(f"unknown LR codec {codec!r} (use {', '.join(VIDEO_CODECS)})")
    lo, hi = CRF_RANGE[codec]
    if isinstance(crf, bool) or not isinstance(crf, int) or not lo <= crf <= hi:
        raise UsageError(f"CRF {crf!r} is out of range for {codec} ({lo}..{hi})")
    if preset is not None:
        ok = X26X_PRESETS if codec != "libvpx-vp9" else tuple(str(i) for i in range(9))
        if preset not in ok:
            raise UsageError(f"unknown {codec} preset {preset!r} (use {', '.join(ok)})")


_M_PERTURB = -6  # glibc mallopt parameter


@contextlib.contextmanager
def _filled_heap():
    """Within the block, glibc fills every heap block it hands out with one fixed byte (and freed ones
    with another): ``mallopt(M_PERTURB)``, what ``MALLOC_PERTURB_`` does, for this block only.

    Why: with one thread, the encoder (x264 here, PyAV 18 / libavcodec 62) still reads some memory it has
    not written, and the value of that recycled heap memory sometimes changes a decision: in a loop of
    the same Vid4 calendar encode (41 frames at 180x144, CRF 25, medium), 0.3 to 11 % of the runs gave
    another bitstream (one of a few alternatives, from some frame on); zeroing the input frames' padding
    did not help. With the heap filled, 900 of 900 runs were identical, and equal to the usual result.
    Elsewhere than glibc this does nothing."""
    libc = _libc()
    if libc is None:
        yield
        return
    try:
        before = int(os.environ.get("MALLOC_PERTURB_", "0") or 0)
    except ValueError:
        before = 0
    libc.mallopt(_M_PERTURB, 165)
    try:
        yield
    finally:
        libc.mallopt(_M_PERTURB, before)


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # glibc only (musl has no M_PERTURB)
            return None
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def video_compress(
    clip: torch.Tensor,
    codec: str = "libx264",
    crf: int = 23,
    fps: int = 25,
    preset: str | None = None,
    threads: int = 1,
) -> torch.Tensor:
    """Encode a clip (T, 3, H, W) [0, 1] with ``codec`` at ``crf`` (yuv420p, in memory) and decode it back.

    The frames are rounded to 8 bits first (RGB -> yuv420p by FFmpeg's swscale, BT.601 limited range, with the
    same exact-rounding conversions as videosr's reader and writer, ``io.SWS_FROM_RGB`` / ``io.SWS_TO_RGB``;
    FFmpeg's defaults decode about 1.1 levels dark), otherwise as
    ``ffmpeg -pix_fmt yuv420p`` does with RGB input). ``preset``: x264/x265 preset (default "medium" for
    x264, "fast" for x265) or libvpx-vp9's ``cpu-used`` ("0".."8", default "4"). ``threads=1`` makes the
    encoder deterministic: the same bytes on every run and machine of one FFmpeg build (with glibc's heap
    filled during the encode, see :func:`_filled_heap`).

    Odd sizes, and sides under 16 px (x264, vp9) / 64 px (x265, which refuses or misbehaves on tiny frames:
    non-deterministic output, heap corruption) are padded by edge replication for the encoder and
    cropped back. Returns float32.
    """
    import av

    from .io import SWS_FROM_RGB, SWS_TO_RGB

    check_codec(codec, int(crf), preset)
    t, c, h, w = clip.shape
    least = 64 if codec == "libx265" else 16
    ph, pw = max(h % 2, least - h), max(w % 2, least - w)
    x = F.pad(clip.float(), (0, pw, 0, ph), mode="replicate") if (ph or pw) else clip.float()
    frames_u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
    buf = io.BytesIO()
    with _filled_heap(), av.open(buf, "w", format="matroska") as out:  # see _filled_heap
        st = out.add_stream(codec, rate=fps)
        st.width, st.height = w + pw, h + ph
        st.pix_fmt = "yuv420p"
        st.codec_context.thread_count = int(threads)
        if codec == "libvpx-vp9":
            opts = {
                "crf": str(int(crf)),
                "b": "0",
                "deadline": "good",
                "cpu-used": preset or "4",
                "row-mt": "0",
                "auto-alt-ref": "1",
            }
            st.bit_rate = 0
        else:
            opts = {"crf": str(int(crf)), "preset": preset or ("medium" if codec == "libx264" else "fast")}
        if codec == "libx264":
            opts["threads"] = str(int(threads))
        if codec == "libx265":
            opts["x265-params"] = f"log-level=error:pools={int(threads)}:frame-threads={int(threads)}"
        st.options = opts
        for a in frames_u8:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            vf = vf.reformat(format="yuv420p", interpolation=SWS_FROM_RGB)  # 2x2-average chroma, exact rounding
            for pkt in st.encode(vf):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    buf.seek(0)
    dec = []
    with av.open(buf, "r") as inp:
        for fr in inp.decode(video=0):
            dec.append(torch.from_numpy(fr.to_ndarray(format="rgb24", interpolation=SWS_TO_RGB)).permute(2, 0, 1))
    if len(dec) != t:
        raise RuntimeError(f"video_compress: {len(dec)} frames decoded for {t} encoded")
    y = torch.stack(dec).float() / 255
    return y[..., :h, :w]


@dataclass(frozen=True)
class CodecParams:
    """Compression in the training loop (:func:`codec_degrade`): a share ``prob`` of the clips is encoded
    with a codec drawn from ``codecs`` at a CRF uniform in ``crf`` (inclusive) and a preset from
    ``presets`` (x264/x265 names; vp9 uses cpu-used 4); the rest stay clean (8-bit). Before encoding,
    with probability ``noise_prob``, Gaussian noise of std uniform in ``noise_sigma`` (0..255 scale), per
    channel, new for every frame (low-light cameras). Clips are drawn and encoded in groups of ``group``
    (:func:`codec_degrade`)."""

    prob: float = 0.85
    codecs: tuple[str, ...] = ("libx264",)
    crf: tuple[int, int] = (15, 40)
    presets: tuple[str, ...] = ("veryfast", "faster", "fast", "medium", "slow")
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 10.0)
    group: int = 4  # clips per encoded mosaic (one recipe per group)
    pad: int = 8  # edge padding around each clip in the mosaic

    def __post_init__(self) -> None:
        if self.group < 1 or self.pad < 0:
            raise UsageError(f"codec.group must be >= 1 and codec.pad >= 0, got {self.group}, {self.pad}")
        for name in ("prob", "noise_prob"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise UsageError(f"codec.{name} must be in [0, 1], got {v}")
        if not self.codecs:
            raise UsageError("codec.codecs is empty")
        if len(self.crf) != 2 or self.crf[0] > self.crf[1]:
            raise UsageError(f"codec.crf must be a range [lo, hi], got {list(self.crf)}")
        if len(self.noise_sigma) != 2 or not 0 <= self.noise_sigma[0] <= self.noise_sigma[1]:
            raise UsageError(f"codec.noise_sigma must be a range [lo, hi] >= 0, got {list(self.noise_sigma)}")
        if not self.presets:
            raise UsageError("codec.presets is empty")
        for codec in self.codecs:
            for crf in self.crf:
                check_codec(codec, int(crf), None)
            if codec != "libvpx-vp9":
                for pr in self.presets:
                    check_codec(codec, int(self.crf[0]), pr)


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of std ``sigma`` (0..255 scale) on [0, 1] data, per element, clamped to [0, 1]."""
    return (x + torch.randn(x.shape, generator=generator) * (sigma / 255)).clamp_(0, 1)


def _tile(clips: torch.Tensor, pad: int) -> tuple[torch.Tensor, int]:
    """(G, T, 3, h, w) -> one mosaic clip (T, 3, rows*(h+2pad), cols*(w+2pad)) of edge-padded tiles."""
    g = clips.shape[0]
    cols = math.ceil(math.sqrt(g))
    rows = math.ceil(g / cols)
    x = F.pad(clips.flatten(0, 1), (pad, pad, pad, pad), mode="replicate").unflatten(0, clips.shape[:2])
    if rows * cols > g:  # fill the grid with copies
        x = torch.cat([x, x[: rows * cols - g]])
    t, c, th, tw = x.shape[1:]
    m = x.reshape(rows, cols, t, c, th, tw).permute(2, 3, 0, 4, 1, 5).reshape(t, c, rows * th, cols * tw)
    return m, cols


def _untile(m: torch.Tensor, g: int, cols: int, h: int, w: int, pad: int) -> torch.Tensor:
    t, c = m.shape[:2]
    th, tw = h + 2 * pad, w + 2 * pad
    rows = m.shape[-2] // th
    x = m.reshape(t, c, rows, th, cols, tw).permute(2, 4, 0, 1, 3, 5).reshape(rows * cols, t, c, th, tw)
    return x[:g, ..., pad : pad + h, pad : pad + w]


def codec_degrade(
    lr: torch.Tensor, generator: torch.Generator, params: CodecParams = CodecParams(), *, return_params: bool = False
):
    """Compression of 8-bit LR clips ``lr`` (..., T, 3, h, w) in [0, 1] (see :class:`CodecParams`): clips
    are taken in groups of ``params.group``; each group draws one recipe and, when encoded, is encoded as
    one video whose frames are a mosaic of the group's clips, each edge-padded by ``params.pad`` pixels
    (x264 costs about the same for 16 small clips in one mosaic as for one of them alone; the padding keeps
    deblocking and motion search from mixing neighbouring clips). Each clip is a video, so there is
    inter-frame coding. All randomness comes from ``generator``. Returns float32 [0, 1] (and the recipes,
    one per clip)."""
    lead = lr.shape[:-4]
    clips = lr.reshape(-1, *lr.shape[-4:]).float()
    h, w = clips.shape[-2:]
    out, drawn = [], []
    p = params
    for i in range(0, clips.shape[0], p.group):
        grp = clips[i : i + p.group]
        rec: dict = {}
        if _chance(generator, p.noise_prob):
            rec["noise"] = _uniform(generator, *p.noise_sigma)
            grp = quantize(add_noise(grp, rec["noise"], generator))
        if _chance(generator, p.prob):
            rec["codec"] = str(_choice(generator, p.codecs))
            rec["crf"] = int(torch.randint(p.crf[0], p.crf[1] + 1, (), generator=generator))
            rec["preset"] = None if rec["codec"] == "libvpx-vp9" else str(_choice(generator, p.presets))
            m, cols = _tile(grp, p.pad)
            m = video_compress(m, rec["codec"], rec["crf"], preset=rec["preset"])
            grp = _untile(m, grp.shape[0], cols, h, w, p.pad)
        out.append(grp)
        drawn += [rec] * grp.shape[0]
    y = torch.cat(out).reshape(*lead, *lr.shape[-4:])
    return (y, drawn) if return_params else y


def realistic_degrade(
    hr_clip: torch.Tensor,
    scale: int,
    generator: torch.Generator,
    params: RealisticParams = RealisticParams(),
    *,
    return_params: bool = False,
):
    """Random real-world degradation of an HR clip (T, C, H, W) in [0, 1] -> LR (T, C, H/s, W/s) float32.

    Steps (each with its probability from ``params``; one draw per clip, so every frame of the clip
    gets the same kernel, noise level, quality and codec): (1) Gaussian blur, isotropic or anisotropic
    with a random rotation, reflect padding; (2) downscale by ``scale`` with a random kernel (MATLAB
    bicubic / bilinear with antialiasing, or area averaging), after cropping to a multiple of
    ``scale``; (3) Gaussian or Poisson noise, per channel or grey (new noise for every frame at the same
    level); (4) 8-bit rounding; (5) JPEG at a random quality; (6) H.264/H.265 at a random CRF (the clip
    as a video, so there is inter-frame coding). All randomness comes from ``generator``.
    ``return_params``: also return a dict of what was drawn.
    """
    if hr_clip.ndim != 4 or hr_clip.shape[1] != 3:
        raise UsageError(f"realistic_degrade needs an RGB clip (T, 3, H, W), got {tuple(hr_clip.shape)}")
    scale = int(scale)
    g = generator
    p = params
    drawn: dict = {}
    x = crop_to_multiple(hr_clip.float(), scale)
    if x.shape[-1] < scale or x.shape[-2] < scale:
        raise UsageError(f"clip {tuple(hr_clip.shape)} is smaller than the scale {scale}")
    # 1. blur
    if _chance(g, p.blur_prob):
        size = int(_choice(g, p.blur_kernel_sizes))
        if _chance(g, p.anisotropic_prob):
            sx, sy = _uniform(g, *p.blur_sigma), _uniform(g, *p.blur_sigma)
            theta = _uniform(g, 0.0, math.pi)
        else:
            sx = sy = _uniform(g, *p.blur_sigma)
            theta = 0.0
        k = anisotropic_gaussian_kernel(size, sx, sy, theta, torch.float32)
        pad_mode = "reflect" if min(x.shape[-2:]) > size // 2 else "replicate"
        x = gaussian_blur(x, k, pad_mode)
        drawn["blur"] = {"size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta}
    # 2. downscale
    kern = str(_choice(g, p.resize_kernels))
    if kern == "area":
        x = F.avg_pool2d(x, scale)
    else:
        x = imresize(x, 1 / scale, kernel="cubic" if kern == "bicubic" else "linear").float()
    drawn["resize"] = kern
    # 3. noise
    if _chance(g, p.noise_prob):
        grey = _chance(g, p.grey_noise_prob)
        if _chance(g, p.poisson_prob):
            peak = 10 ** _uniform(g, *p.poisson_peak_log)
            base = x.clamp(0, 1)
            if grey:
                y = 0.299 * base[:, 0:1] + 0.587 * base[:, 1:2] + 0.114 * base[:, 2:3]
                noise = torch.poisson(y * peak, generator=g) / peak - y
            else:
                noise = torch.poisson(base * peak, generator=g) / peak - base
            drawn["noise"] = {"type": "poisson", "peak": peak, "grey": grey}
        else:
            sigma = _uniform(g, *p.gaussian_sigma) / 255
            shape = (x.shape[0], 1, *x.shape[-2:]) if grey else x.shape
            noise = torch.randn(shape, generator=g) * sigma
            drawn["noise"] = {"type": "gaussian", "sigma": sigma * 255, "grey": grey}
        x = x + noise  # (T, 1, h, w) grey noise broadcasts over channels
    # 4. 8 bits
    x = quantize(x.clamp(0, 1))
    # 5. JPEG
    if _chance(g, p.jpeg_prob):
        q = int(torch.randint(p.jpeg_quality[0], p.jpeg_quality[1] + 1, (), generator=g))
        x = jpeg_compress(x, q)
        drawn["jpeg"] = q
    # 6. video codec
    if _chance(g, p.video_prob):
        codec = str(_choice(g, p.video_codecs))
        crf = int(torch.randint(p.crf[0], p.crf[1] + 1, (), generator=g))
        x = video_compress(x, codec, crf)
        drawn["video"] = {"codec": codec, "crf": crf}
    return (x, drawn) if return_params else x
