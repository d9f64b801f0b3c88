"""Quality metrics of the SR evaluation protocol.

Convention (every function here): inputs are torch tensors, float RGB in [0, 1], shaped (..., C, H, W):
an image (C, H, W) or a stack of images / a clip (T, C, H, W). Images are compared one by one over the
last three dimensions; the result is a float64 tensor with the leading shape (a 0-d tensor for one
image: ``float(psnr(a, b))``). Computation is in float64 on the 0..255 scale, as the MATLAB reference
code and BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (``test_y_channel=True``) do.

* ``y_channel=True``: compare BT.601 luma :func:`rgb_to_y` (Y = 16 + 65.481 R + 128.553 G + 24.966 B on
  [0, 1] RGB, not rounded), the protocol of SR papers; ``False``: all channels, averaged.
* ``crop_border``: pixels removed on each of the four sides before measuring (image SR tables use the
  scale; video SR tables 0).
* The evaluation rounds outputs to 8 bits before measuring (:func:`videosr.eval.degrade.quantize`); these
  functions measure what they are given.

Temporal metrics (clips (T, C, H, W), flow from :mod:`videosr.flow`): :func:`tof` (TecoGAN tOF) and
:func:`warping_error` (no-reference).
"""

from __future__ import annotations

import math

import torch

from ..errors import UsageError

_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [0, 1] RGB (..., 3, H, W) -> (..., 1, H, W) float64 on the 0..255 scale (16..235)."""
    if x.shape[-3] != 3:
        raise UsageError(f"rgb_to_y needs 3 channels in dim -3, got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    r, g, b = x.unbind(-3)
    return (16.0 + _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b).unsqueeze(-3)


def _prepare(a: torch.Tensor, b: torch.Tensor, crop_border: int, y_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise UsageError(f"images to compare differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim < 3:
        raise UsageError(f"metrics need (..., C, H, W), got shape {tuple(a.shape)}")
    if crop_border < 0:
        raise UsageError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        h, w = a.shape[-2:]
        if 2 * crop_border >= min(h, w):
            raise UsageError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and a.shape[-3] == 3:
        return rgb_to_y(a), rgb_to_y(b)
    if y_channel and a.shape[-3] == 1:  # grey: Y of R = G = B
        return rgb_to_y(a.expand(*a.shape[:-3], 3, *a.shape[-2:])), rgb_to_y(b.expand(*b.shape[:-3], 3, *b.shape[-2:]))
    return a.to(torch.float64) * 255.0, b.to(torch.float64) * 255.0


def mse(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """Mean squared error on the 0..255 scale per image (see the module convention)."""
    a, b = _prepare(a, b, crop_border, y_channel)
    return ((a - b) ** 2).mean(dim=(-3, -2, -1))


def psnr(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """PSNR in dB, 10 log10(255^2 / MSE) on the 0..255 scale; +inf for identical images."""
    m = mse(a, b, crop_border, y_channel)
    return 10.0 * torch.log10(255.0**2 / m)  # m == 0 -> inf


def _gauss1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of (..., H, W) by the 1-D kernel g on both axes -> (..., H - 10, W - 10)."""
    from ..flow import sep_filter

    return sep_filter(x, g, None)


def ssim(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, y_channel: bool = True) -> torch.Tensor:
    """SSIM as the MATLAB reference (Wang et al. 2004) and BasicSR ``calculate_ssim``.

    11x11 Gaussian window (sigma 1.5), 'valid' region only (no padding), C1 = (0.01 * 255)^2,
    C2 = (0.03 * 255)^2 on the 0..255 scale, mean of the SSIM map; with ``y_channel=False`` the mean over
    channels of per-channel SSIM. Images must be at least 11x11 after cropping.
    """
    if a.shape != b.shape:
        raise UsageError(f"images to compare differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim > 3:  # one image at a time: the five filtered maps of a frame stay in cache (faster)
        lead = a.shape[:-3]
        fa, fb = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
        vals = [ssim(fa[i], fb[i], crop_border, y_channel) for i in range(fa.shape[0])]
        return torch.stack(vals).reshape(lead) if vals else torch.zeros(lead, dtype=torch.float64)
    a, b = _prepare(a, b, crop_border, y_channel)
    c, h, w = a.shape[-3:]
    if h < 11 or w < 11:
        raise UsageError(f"SSIM needs images of at least 11x11, got {h}x{w}")
    return ssim_map(a, b).mean(dim=(-2, -1)).mean()


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """The SSIM map of images (..., H, W) on a 0..``data_range`` scale: 11x11 Gaussian window (sigma 1.5),
    'valid' region (..., H - 10, W - 10), C1 = (0.01 data_range)^2, C2 = (0.03 data_range)^2. Pure and
    differentiable: :func:`ssim` (float64, 0..255) and the training loss (float32, 0..1) share it."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    stats = _filter_valid(torch.stack([a, b, a * a, b * b, a * b]), _gauss1d())  # (5, ..., h', w')
    mu1, mu2, s11, s22, s12 = stats.unbind(0)
    mu1_mu2, mu1_sq, mu2_sq = mu1 * mu2, mu1 * mu1, mu2 * mu2
    sigma1_sq, sigma2_sq, sigma12 = s11 - mu1_sq, s22 - mu2_sq, s12 - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def psnr_from_mse(m: float) -> float:
    return math.inf if m == 0 else 10.0 * math.log10(255.0**2 / m)


# --------------------------------------------------------------------------------------------------
# Temporal metrics
# --------------------------------------------------------------------------------------------------


def _check_clip(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise UsageError(f"{name} must be a clip (T, C, H, W), got shape {tuple(x.shape)}")


@torch.no_grad()
def clip_flows(frames: torch.Tensor, batch: int = 4, backward: bool = False) -> torch.Tensor:
    """Flows between consecutive frames of a clip (T, C, H, W) -> (T - 1, 2, H, W) float32.

    ``flows[t]`` = :func:`videosr.flow.estimate_flow` (frames[t], frames[t + 1]): it warps frame t + 1
    onto frame t (for content moving by +d, flow = +d). ``backward=True``: estimate_flow(frames[t + 1],
    frames[t]) instead. Computed ``batch`` pairs at a time.
    """
    from ..flow import estimate_flow

    _check_clip(frames, "frames")
    out = []
    for s in range(0, frames.shape[0] - 1, batch):
        e = min(s + batch, frames.shape[0] - 1)
        a, b = frames[s:e].float(), frames[s + 1 : e + 1].float()  # (n, C, H, W) each
        out.append(estimate_flow(b, a) if backward else estimate_flow(a, b))
    if not out:
        return frames.new_zeros((0, 2, *frames.shape[-2:]), dtype=torch.float32)
    return torch.cat(out)


@torch.no_grad()
def tof(
    outputs: torch.Tensor, gts: torch.Tensor | None = None, *, gt_flows: torch.Tensor | None = None, batch: int = 4
) -> torch.Tensor:
    """TecoGAN's tOF: how far the motion of the output is from the motion of the ground truth.

    For each pair of consecutive frames, the flow of the output pair and of the GT pair
    (:func:`clip_flows`, our pyramidal Lucas-Kanade rather than OpenCV's Farneback, so values are
    comparable between models measured here, not with papers' tables) and the mean over pixels of the
    length of their difference vector, in pixels; then the mean over pairs. Lower is better; 0 for
    identical clips. ``outputs``, ``gts``: (T, C, H, W) with T >= 2; ``gt_flows``: the GT's
    :func:`clip_flows`, when already computed (several models on one clip). Returns a 0-d float64 tensor.
    """
    _check_clip(outputs, "outputs")
    if outputs.shape[0] < 2:
        raise UsageError("tOF needs clips of at least 2 frames")
    if gt_flows is None:
        if gts is None:
            raise UsageError("tof needs gts or gt_flows")
        if gts.shape != outputs.shape:
            raise UsageError(f"outputs and gts differ in shape: {tuple(outputs.shape)} vs {tuple(gts.shape)}")
        gt_flows = clip_flows(gts, batch)
    if gt_flows.shape != (outputs.shape[0] - 1, 2, *outputs.shape[-2:]):
        raise UsageError(
            f"gt_flows has shape {tuple(gt_flows.shape)}, expected {(outputs.shape[0] - 1, 2, *outputs.shape[-2:])}"
        )
    of = clip_flows(outputs, batch)
    per_pair = (of.double() - gt_flows.double()).pow(2).sum(1).sqrt().mean(dim=(-2, -1))  # (T - 1,)
    return per_pair.mean()


@torch.no_grad()
def warping_error(
    outputs: torch.Tensor, inputs: torch.Tensor, *, batch: int = 4, alpha: float = 0.01, beta: float = 0.5
) -> torch.Tensor:
    """No-reference temporal consistency: mean |out_t - warp(out_{t+1})| over non-occluded pixels.

    The motion is estimated on the ``inputs`` (T, C, h, w), the LR frames (upsampled with MATLAB
    bicubic to the output size; the output size must be an integer multiple) or frames of the output
    size, so the metric does not reward outputs for their own flicker. For each consecutive pair: the
    flow warping t + 1 onto t and back, occlusions and out-of-frame pixels masked by forward-backward
    consistency (:func:`videosr.flow.occlusion_mask`), output frame t + 1 warped onto t (bilinear), the
    mean absolute difference over unmasked pixels and channels on the 0..255 scale; then the mean over
    pairs. Returns a 0-d float64 tensor.
    """
    from ..flow import flow_warp, occlusion_mask
    from ..resample import upsample

    _check_clip(outputs, "outputs")
    _check_clip(inputs, "inputs")
    t, c, h, w = outputs.shape
    if t < 2:
        raise UsageError("warping_error needs clips of at least 2 frames")
    if inputs.shape[0] != t:
        raise UsageError(f"outputs have {t} frames, inputs {inputs.shape[0]}")
    ih, iw = inputs.shape[-2:]
    if (ih, iw) != (h, w):
        if h % ih or w % iw or h // ih != w // iw:
            raise UsageError(f"output size {h}x{w} is not an integer multiple of the input size {ih}x{iw}")
    errs = []
    for s in range(0, t - 1, batch):
        e = min(s + batch, t - 1)
        inp = inputs[s : e + 1].float()
        if (ih, iw) != (h, w):
            inp = upsample(inp, h // ih).clamp_(0, 1)  # (n + 1, C, H, W)
        fw = clip_flows(inp, batch=e - s)  # (n, 2, H, W): warps t + 1 onto t
        bw = clip_flows(inp, batch=e - s, backward=True)  # warps t onto t + 1
        mask = occlusion_mask(fw, bw, alpha, beta)  # (n, 1, H, W)
        warped = flow_warp(outputs[s + 1 : e + 1].float(), fw)  # (n, C, H, W)
        diff = (outputs[s:e].double() - warped.double()).abs().mean(1, keepdim=True) * 255.0
        m = mask.double()
        errs.append((diff * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0))
    return torch.cat(errs).mean()
