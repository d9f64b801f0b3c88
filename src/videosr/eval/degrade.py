"""How the evaluation protocol makes LR from GT (resampling kernels: :mod:`videosr.resample`).

Convention (everything in this module): images are torch tensors shaped ``(..., C, H, W)`` (any leading
dimensions: a single image, a clip ``(T, C, H, W)`` or a batch), float, in whatever range the caller uses
(the resamplers are linear; functions that quantise say so and take [0, 1]). Random functions take an
explicit ``torch.Generator`` and draw nothing from global state.

* :func:`bi_degrade`: the "BI" protocol: crop to a multiple of s, ``imresize(1/s)``, optionally rounded
  to 8 bits like an LR image saved by MATLAB.
* :func:`bd_degrade`: the "BD" protocol: 9x9 Gaussian blur (sigma 1.6), then every s-th pixel.
* :func:`video_compress`: a codec round trip (x264 / x265 / VP9 at a CRF, yuv420p, deterministic): the
  compressed-LR evaluation protocol (also compression in the training loop,
  :func:`videosr.training.degradations.codec_degrade`).
* :class:`LRRecipe` and :func:`make_lr`: the protocol's LR of a GT clip: the degradation rounded to 8 bits,
  optional seeded noise (:func:`add_noise`, :func:`noise_seed`), optional codec round trip.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..resample import imresize, sym_pad

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
# Video codec round trip and noise
# --------------------------------------------------------------------------------------------------


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
    FFmpeg's defaults decode slightly dark, docs/reliability.md "Colour exactness"), otherwise as
    ``ffmpeg -pix_fmt yuv420p`` does with RGB input). ``preset``: x264/x265 preset (default "medium" for
    x264, "fast" for x265) or libvpx-vp9's ``cpu-used`` ("0".."8", default "4"). ``threads=1`` makes the
    encoder deterministic: the same bytes on every run and machine of one FFmpeg build (with glibc's heap
    filled during the encode, see :func:`_filled_heap`).

    Odd sizes, and sides under 16 px (x264, vp9) / 64 px (x265, which refuses or misbehaves on tiny frames:
    non-deterministic output, heap corruption) are padded by edge replication for the encoder and
    cropped back. Returns float32.
    """
    import av

    from ..io import SWS_FROM_RGB, SWS_TO_RGB

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


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise of std ``sigma`` (0..255 scale) on [0, 1] data, per element, clamped to [0, 1]."""
    return (x + torch.randn(x.shape, generator=generator) * (sigma / 255)).clamp_(0, 1)


# --------------------------------------------------------------------------------------------------
# LR made from the GT: degradation, optional noise, optional codec round trip
# --------------------------------------------------------------------------------------------------

DEGRADATIONS = ("BI", "BD")
LR_FPS = 25
LR_PIX_FMT = "yuv420p"
# the preset each codec gets when --lr-preset is not given (video_compress's defaults, recorded)
DEFAULT_PRESETS = {"libx264": "medium", "libx265": "fast", "libvpx-vp9": "4"}


@dataclass(frozen=True)
class LRRecipe:
    """How the LR of the protocol is made from the (cropped) GT, in this order: ``degradation`` (BI or
    BD), rounded to 8 bits; Gaussian noise of std ``noise`` (0..255 scale, seeded from the clip name,
    :func:`noise_seed`), rounded to 8 bits again; a round trip through ``codec`` at ``crf`` / ``preset``
    (yuv420p, 25 fps, BT.601 limited range, one encoder thread: :func:`video_compress`).
    Build it with :meth:`make`, which validates and resolves the default preset."""

    degradation: str = "BI"
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    noise: float = 0.0

    @classmethod
    def make(
        cls,
        degradation: str = "BI",
        codec: str | None = None,
        crf: int | None = None,
        preset: str | None = None,
        noise: float | None = None,
    ) -> LRRecipe:
        degradation = str(degradation).upper()
        if degradation not in DEGRADATIONS:
            raise UsageError(f"unknown degradation {degradation!r} (use BI or BD)")
        if codec is None:
            if crf is not None:
                raise UsageError("--lr-crf needs --lr-codec (e.g. --lr-codec libx264 --lr-crf 25)")
            if preset is not None:
                raise UsageError(
                    "--lr-preset needs --lr-codec (e.g. --lr-codec libx264 --lr-crf 25 --lr-preset medium)"
                )
        else:
            if crf is None:
                raise UsageError(f"--lr-codec {codec} needs --lr-crf N (the quality: lower is better)")
            check_codec(codec, crf, preset)
            preset = preset if preset is not None else DEFAULT_PRESETS[codec]
        noise = 0.0 if noise is None else noise
        if (
            isinstance(noise, bool)
            or not isinstance(noise, (int, float))
            or not math.isfinite(noise)
            or not 0 <= noise <= 255
        ):
            raise UsageError(f"--lr-noise must be a standard deviation in 0..255 (8-bit levels), got {noise!r}")
        return cls(degradation, codec, crf, preset, float(noise))

    @property
    def compressed(self) -> bool:
        return self.codec is not None

    def to_dict(self) -> dict:
        """The JSON form: ``{"degradation"}`` for clean LR; with ``"noise"`` when there is noise; with
        ``"codec", "crf", "preset", "noise", "fps", "pix_fmt"`` when the LR is compressed."""
        d: dict = {"degradation": self.degradation}
        if self.codec is not None:
            d.update(
                codec=self.codec,
                crf=self.crf,
                preset=self.preset,
                noise=_num(self.noise),
                fps=LR_FPS,
                pix_fmt=LR_PIX_FMT,
            )
        elif self.noise:
            d["noise"] = _num(self.noise)
        return d

    def describe(self) -> str:
        """One line for the table header: ``BI``, ``BI + noise 5 + libx264 CRF 25 medium (yuv420p, 25 fps)``."""
        parts = [self.degradation]
        if self.noise:
            parts.append(f"noise {_num(self.noise)}")
        if self.codec is not None:
            parts.append(f"{self.codec} CRF {self.crf} {self.preset} ({LR_PIX_FMT}, {LR_FPS} fps)")
        return " + ".join(parts)


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def noise_seed(clip_name: str) -> int:
    """The seed of a clip's LR noise: the first 8 bytes of SHA-256("videosr-lr-noise:" + name), 63 bits.
    The same clip gets the same noise on every run and machine, and at every sigma (the same pattern,
    scaled)."""
    digest = hashlib.sha256(f"videosr-lr-noise:{clip_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _degrade(
    gt: torch.Tensor, scale: int, degradation: str, recipe: LRRecipe | None = None, clip_name: str = ""
) -> torch.Tensor:
    """The LR of ``gt`` (T, 3, H, W), H and W multiples of ``scale``: ``degradation`` rounded to 8 bits,
    then (``recipe``) noise and the codec round trip. float32 in [0, 1], exactly on the 8-bit grid."""
    if degradation == "BI":
        lr = bi_degrade(gt, scale, quantize_lr=True, matlab_uint8=True).float()
    else:
        lr = bd_degrade(gt, scale, quantize_lr=True).float()
    if recipe is None:
        return lr
    if recipe.noise:
        g = torch.Generator().manual_seed(noise_seed(clip_name))
        lr = quantize(add_noise(lr, recipe.noise, g))
    if recipe.codec is not None:
        lr = video_compress(lr, recipe.codec, recipe.crf, fps=LR_FPS, preset=recipe.preset, threads=1)
    return lr


def make_lr(gt: torch.Tensor, scale: int, recipe: LRRecipe, clip_name: str) -> torch.Tensor:
    """The protocol's LR for the GT clip ``gt`` (T, 3, H, W) [0, 1] named ``clip_name`` (the noise seed):
    ``gt`` is cropped to a multiple of ``scale`` first. float32 (T, 3, H / s, W / s)."""
    gt = gt[..., : gt.shape[-2] - gt.shape[-2] % scale, : gt.shape[-1] - gt.shape[-1] % scale]
    return _degrade(gt, scale, recipe.degradation, recipe, clip_name)
