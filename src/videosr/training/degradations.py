"""Degradations for training (the protocol's, BI/BD, are in :mod:`videosr.eval.degrade`).

Same convention as :mod:`videosr.eval.degrade`: tensors ``(..., C, H, W)``, float; every random function
takes an explicit ``torch.Generator`` and draws nothing from global state.

* :func:`realistic_degrade`: random blur, downscale, noise, JPEG and H.264/H.265 for real-footage training.
* :func:`codec_degrade`: compression in the training loop (random codec, CRF and preset, optional noise),
  clips encoded in groups as one mosaic video.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..eval.degrade import add_noise, check_codec, crop_to_multiple, gaussian_blur, quantize, video_compress
from ..resample import imresize

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


# --------------------------------------------------------------------------------------------------
# Compression in the training loop
# --------------------------------------------------------------------------------------------------


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
