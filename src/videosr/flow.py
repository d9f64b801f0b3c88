"""Classical dense optical flow in torch (no OpenCV): coarse-to-fine Lucas-Kanade with warping.

Convention: images are (B, C, H, W) float tensors (any range; RGB is reduced to grey); a flow is
(B, 2, H, W) float in pixels, channel 0 = x (right), channel 1 = y (down). The flow returned by
:func:`estimate_flow` (ref, sup) warps ``sup`` onto ``ref``::

    flow_warp(sup, flow)[b, :, y, x] ~= sup[b, :, y + flow[b, 1, y, x], x + flow[b, 0, y, x]] ~= ref[b, :, y, x]

so for content that moved by +d from ref to sup (sup(x) = ref(x - d)), the flow is +d.

Method: a Gaussian pyramid (factor 2, down to ~24 px); at each level, from the coarser flow, a few
Gauss-Newton steps of dense Lucas-Kanade: warp ``sup`` by the current flow, solve for each pixel the
2x2 system of Gaussian-weighted (window sigma ``window_sigma``) gradient products, Tikhonov-regularised
so flat regions keep the coarse flow, then smooth the flow a little. Bicubic warping (bilinear biases sub-pixel
estimates towards half pixels) with border padding. A 480x270 pair took 36 ms on one core of a Xeon with AMX
(benchmarks/results/dis_vs_lk.json, ``lk``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import UsageError


def _gauss1d(sigma: float, dtype=torch.float32) -> torch.Tensor:
    r = max(1, int(math.ceil(2.5 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def sep_filter(x: torch.Tensor, g: torch.Tensor, padding: str | None = "replicate") -> torch.Tensor:
    """Correlate (..., H, W) with the 1-D kernel ``g`` along W then H (a separable 2-D filter).

    ``padding``: an ``F.pad`` mode keeping the size, or None for the 'valid' region only. Written as
    shifted multiply-adds: on CPU this is several times faster than a depthwise conv2d.
    """
    taps = [float(v) for v in g]
    k = len(taps)
    r = k // 2
    if padding is not None:
        shape = x.shape
        x4 = x.reshape(-1, 1, *shape[-2:])
        x = F.pad(x4, (r, k - 1 - r, 0, 0), mode=padding).reshape(*shape[:-2], shape[-2], shape[-1] + k - 1)
    w = x.shape[-1] - k + 1
    y = x[..., 0:w] * taps[0]
    for i in range(1, k):
        y.add_(x[..., i : i + w], alpha=taps[i])
    if padding is not None:
        shape = y.shape
        y = F.pad(y.reshape(-1, 1, *shape[-2:]), (0, 0, r, k - 1 - r), mode=padding)
        y = y.reshape(*shape[:-2], shape[-2] + k - 1, shape[-1])
    h = y.shape[-2] - k + 1
    z = y[..., 0:h, :] * taps[0]
    for i in range(1, k):
        z.add_(y[..., i : i + h, :], alpha=taps[i])
    return z


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (radius ceil(2.5 sigma)) of (..., H, W), replicate padding, same size."""
    return sep_filter(x, _gauss1d(sigma, torch.float64), "replicate")


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) float32: BT.601 luma weights for 3 channels, the mean otherwise."""
    x = x.float()
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    return x.mean(1, keepdim=True)


def _base_grid(b: int, h: int, w: int, dtype, device) -> torch.Tensor:
    ys = torch.arange(h, dtype=dtype, device=device)
    xs = torch.arange(w, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=0).expand(b, 2, h, w)  # (B, 2, H, W) pixel coordinates


def flow_warp(
    x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border", mode: str = "bilinear"
) -> torch.Tensor:
    """Backward warp: out[:, :, y, x] = x sampled at (x + flow_x, y + flow_y).

    ``x`` (B, C, H, W), ``flow`` (B, 2, H, W) in pixels; ``padding_mode`` "border" (default), "zeros" or
    "reflection" for samples outside the image; ``mode`` "bilinear" (default) or "bicubic"
    (grid_sample, align_corners=True: pixel centres). Positions and samples in float32 (float64 kept) whatever
    the inputs' dtype: in bf16 (8-bit mantissa) a position near the right edge of a 240-pixel-wide grid would be
    off by up to half a pixel. The one warp of the package: the models' alignment (models.layers re-exports
    it), the classical flow and the temporal metrics.
    """
    if (
        x.ndim != 4
        or flow.ndim != 4
        or flow.shape[1] != 2
        or x.shape[0] != flow.shape[0]
        or x.shape[-2:] != flow.shape[-2:]
    ):
        raise UsageError(
            f"flow_warp needs x (B, C, H, W) and flow (B, 2, H, W), got {tuple(x.shape)}, {tuple(flow.shape)}"
        )
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    b, _, h, w = x.shape
    pos = _base_grid(b, h, w, dtype, x.device) + flow.to(dtype)  # (B, 2, H, W) absolute sample positions
    gx = 2.0 * pos[:, 0] / max(w - 1, 1) - 1.0  # (B, H, W) normalised to [-1, 1]
    gy = 2.0 * pos[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of (N, 1, H, W), replicate border."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (xp[..., 1:-1, 2:] - xp[..., 1:-1, :-2])
    gy = 0.5 * (xp[..., 2:, 1:-1] - xp[..., :-2, 1:-1])
    return gx, gy


def _downsample2(x: torch.Tensor) -> torch.Tensor:
    """Blur (sigma 1) then 2x2 average: one pyramid level down (ceil sizes via replicate padding)."""
    x = _blur(x, 0.8)
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def _resize_flow(flow: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Upsample a flow field to (h, w), scaling its values by the size ratio."""
    fh, fw = flow.shape[-2:]
    up = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=True)
    sx = (w - 1) / max(fw - 1, 1)
    sy = (h - 1) / max(fh - 1, 1)
    return up * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)


@torch.no_grad()
def estimate_flow(
    ref: torch.Tensor,
    sup: torch.Tensor,
    *,
    levels: int | None = None,
    iterations: int = 2,
    fine_iterations: int = 1,
    window_sigma: float = 2.0,
    smooth_sigma: float = 1.0,
    reg: float = 1e-4,
    min_size: int = 24,
) -> torch.Tensor:
    """Dense flow (B, 2, H, W) that warps ``sup`` onto ``ref`` (both (B, C, H, W)); see the module doc.

    ``levels``: pyramid levels (default: halve while the short side stays >= ``min_size``);
    ``iterations``: Lucas-Kanade steps per level, ``fine_iterations`` on the full-resolution level (the
    most expensive; the coarser levels have already converged to within a fraction of a pixel);
    ``window_sigma``: std of the Gaussian LK window;
    ``smooth_sigma``: std of the smoothing applied to the flow after each step (0: none); ``reg``:
    Tikhonov weight relative to the image's mean squared gradient. Intensities are normalised to
    [0, 1]-like grey (values are used as given, so pass both frames on the same scale).
    """
    if ref.shape != sup.shape or ref.ndim != 4:
        raise UsageError(
            f"estimate_flow needs two (B, C, H, W) tensors of one shape, got {tuple(ref.shape)}, {tuple(sup.shape)}"
        )
    a, b = _grey(ref), _grey(sup)  # (B, 1, H, W)
    h, w = a.shape[-2:]
    if levels is None:
        levels = 1
        while min(h, w) / 2**levels >= min_size:
            levels += 1
    pyr = [(a, b)]
    for _ in range(levels - 1):
        pyr.append((_downsample2(pyr[-1][0]), _downsample2(pyr[-1][1])))
    flow = torch.zeros(a.shape[0], 2, *pyr[-1][0].shape[-2:], dtype=a.dtype)
    for lvl in range(levels - 1, -1, -1):
        ra, sb = pyr[lvl]
        lh, lw = ra.shape[-2:]
        if flow.shape[-2:] != (lh, lw):
            flow = _resize_flow(flow, lh, lw)
        rgx, rgy = _gradients(ra)
        # regularisation scale: the mean squared gradient of the reference at this level (per sample)
        eps = reg * (rgx * rgx + rgy * rgy).mean(dim=(1, 2, 3), keepdim=True) + 1e-12
        for _ in range(fine_iterations if lvl == 0 else iterations):
            # bicubic: bilinear sampling blurs most at half-pixel offsets, which biases sub-pixel flow
            warped = flow_warp(sb, flow, mode="bicubic")  # sup sampled at x + flow, (B, 1, h, w)
            wgx, wgy = _gradients(warped)
            ix, iy = 0.5 * (rgx + wgx), 0.5 * (rgy + wgy)  # symmetric gradient
            it = warped - ra
            prods = _blur(torch.cat([ix * ix, ix * iy, iy * iy, ix * it, iy * it], dim=1), window_sigma)
            sxx, sxy, syy, sxt, syt = prods.unbind(1)  # each (B, h, w)
            sxx = sxx + eps[:, 0]
            syy = syy + eps[:, 0]
            det = sxx * syy - sxy * sxy
            du = -(syy * sxt - sxy * syt) / det
            dv = -(sxx * syt - sxy * sxt) / det
            flow = flow + torch.stack([du, dv], dim=1)
            if smooth_sigma > 0 and lvl > 0:  # the finest level keeps its detail
                flow = _blur(flow, smooth_sigma)
    return flow


DIS_PRESETS = ("ultrafast", "fast", "medium")


def dis_flow(ref: torch.Tensor, sup: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Dense flow (B, 2, H, W) that warps ``sup`` onto ``ref`` (both (B, C, H, W), [0, 1]), as
    :func:`estimate_flow`, by OpenCV's DIS optical flow (Kroeger et al. 2016) on the 8-bit grey frames:
    ``preset`` ultrafast / fast / medium (OpenCV's). Needs ``opencv-python-headless``; float32, on the CPU."""
    if preset not in DIS_PRESETS:
        raise UsageError(f"DIS preset must be one of {', '.join(DIS_PRESETS)}, got {preset!r}")
    if ref.shape != sup.shape or ref.ndim != 4:
        raise UsageError(
            f"dis_flow needs two (B, C, H, W) tensors of one shape, got {tuple(ref.shape)}, {tuple(sup.shape)}"
        )
    try:
        import cv2
    except ImportError as e:
        raise UsageError(f"DIS optical flow needs OpenCV: pip install opencv-python-headless ({e})") from None
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    a = (_grey(ref)[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()  # (B, H, W)
    b = (_grey(sup)[:, 0] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    out = [torch.from_numpy(dis.calc(a[i], b[i], None)).permute(2, 0, 1) for i in range(a.shape[0])]  # (2, H, W)
    return torch.stack(out).to(ref.device)  # ref(x) ~ sup(x + flow): what flow_warp(sup, flow) samples


def occlusion_mask(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01, beta: float = 0.5
) -> torch.Tensor:
    """Forward-backward consistency: 1 where a pixel is visible in both frames, 0 where occluded.

    ``flow_fw`` (B, 2, H, W) warps frame 2 onto frame 1 (``estimate_flow(f1, f2)``), ``flow_bw`` frame 1
    onto frame 2. A pixel is consistent when |fw + bw(x + fw)|^2 < alpha (|fw|^2 + |bw(x + fw)|^2) + beta
    (Sundaram et al. 2010 / UnFlow). Also 0 where x + fw falls outside the image. (B, 1, H, W) float.
    """
    bw_at = flow_warp(flow_bw, flow_fw)  # backward flow sampled where each pixel lands
    diff = ((flow_fw + bw_at) ** 2).sum(1, keepdim=True)
    mag = (flow_fw**2).sum(1, keepdim=True) + (bw_at**2).sum(1, keepdim=True)
    ok = diff < alpha * mag + beta
    b, _, h, w = flow_fw.shape
    pos = _base_grid(b, h, w, flow_fw.dtype, flow_fw.device) + flow_fw
    inside = (pos[:, :1] >= 0) & (pos[:, :1] <= w - 1) & (pos[:, 1:] >= 0) & (pos[:, 1:] <= h - 1)
    return (ok & inside).to(flow_fw.dtype)
