"""Small building blocks shared by the video models (not architectures themselves)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3, plus identity (EDSR/BasicVSR style, no batch norm)."""

    def __init__(self, width: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)  # in place on a fresh conv output: one memory pass less
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))  # (N, width, H, W)
        return y.add_(x) if self.res_scale == 1.0 else x + self.res_scale * y


def _bilinear_taps(scale: int) -> torch.Tensor:
    """(scale, 3) weights on LR offsets (-1, 0, +1) for each of the `scale` output phases.

    Matches F.interpolate(mode="bilinear", align_corners=False): output pixel s*i + p samples the
    LR coordinate i + (p + 0.5) / s - 0.5; PyTorch clamps at the borders, which replicate padding reproduces.
    """
    taps = torch.zeros(scale, 3, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        if d < 0:
            taps[p, 0], taps[p, 1] = -d, 1 + d
        else:
            taps[p, 1], taps[p, 2] = 1 - d, d
    return taps


def flow_warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp x (N, C, H, W) by flow (N, 2, H, W) in pixels (channel 0: dx, channel 1: dy).

    out[n, :, y, x] = x[n, :, y + flow_y, x + flow_x], bilinear, sampled with grid_sample.
    """
    n, _, h, w = x.shape
    # sampled and positioned in float32 (float64 kept) whatever x's dtype: in bf16 (8-bit mantissa) a position
    # near the right edge of a 240-pixel-wide grid would be off by up to half a pixel; grid_sample wants x
    # and grid in one dtype, and autocast runs it in float32 anyway
    x = x if x.dtype == torch.float64 else x.float()
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")  # (H, W) each
    fx = gx + flow[:, 0].to(x.dtype)  # (N, H, W)
    fy = gy + flow[:, 1].to(x.dtype)  # (N, H, W)
    grid = torch.stack([2.0 * fx / max(w - 1, 1) - 1.0, 2.0 * fy / max(h - 1, 1) - 1.0], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def _bicubic_taps(scale: int) -> torch.Tensor:
    """(scale, 5) MATLAB bicubic (a = -0.5) weights on LR offsets -2..+2 for each output phase.

    Output pixel x = s*i + p samples the LR line at u = i + (p + 0.5)/s - 0.5; its four taps are the
    cubic kernel at distances u - (i + o), normalised to sum to 1 as MATLAB's imresize does."""
    def cubic(v: float) -> float:
        v = abs(v)
        if v <= 1:
            return 1.5 * v ** 3 - 2.5 * v ** 2 + 1
        if v < 2:
            return -0.5 * v ** 3 + 2.5 * v ** 2 - 4 * v + 2
        return 0.0

    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        for o in range(-2, 3):
            taps[p, o + 2] = cubic(d - o)
        taps[p] /= taps[p].sum()
    return taps


def bicubic_upsample_conv(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, sH, sW): MATLAB bicubic upsampling (symmetric boundary) as two 1-D polyphase
    convolutions. The same values as :func:`videosr.degrade.upsample` up to float rounding, built only from
    ops the ONNX exporter knows (that one's block matmuls use ``unfold``, which it cannot export)."""
    taps = _bicubic_taps(scale).to(x.dtype).to(x.device)  # (s, 5)
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)  # (NC, 1, H, W)
    for axis in (3, 2):  # columns, then rows
        lo = y.narrow(axis, 0, 2).flip(axis)  # MATLAB mirrors with the edge pixel repeated
        hi = y.flip(axis).narrow(axis, 0, 2)  # (no size arithmetic: a traced graph stays size-generic)
        yp = torch.cat([lo, y, hi], dim=axis)  # (NC, 1, ., .) padded by 2
        k = taps.view(scale, 1, 1, 5) if axis == 3 else taps.view(scale, 1, 5, 1)
        y = F.conv2d(yp, k)  # (NC, s, H', W'): one channel per output phase
        if axis == 3:
            y = y.permute(0, 2, 3, 1).reshape(n * c, 1, y.shape[2], -1)  # (NC, 1, H, sW): phases interleaved
        else:
            y = y.permute(0, 3, 2, 1).reshape(n * c, 1, y.shape[3], -1).transpose(2, 3)  # (NC, 1, sH, sW)
    return y.reshape(n, c, h * scale, w * scale)


def _taps(kind: str, scale: int) -> torch.Tensor:
    """(scale, 5) weights on LR offsets (-2, -1, 0, +1, +2) for each output phase of a fixed upsampler."""
    if kind == "bicubic":
        return _bicubic_taps(scale)
    if kind == "bilinear":
        return F.pad(_bilinear_taps(scale), (1, 1))
    if kind == "nearest":
        return torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64).expand(scale, 5).clone()
    raise ValueError(f"unknown fixed upsampler {kind!r} (bicubic, bilinear, nearest)")


def upsample_weights(kind: str, scale: int, down: int, k: int) -> torch.Tensor:
    """Fixed conv weights (3*(s*d)^2, 3*d^2, k, k) for upsampling by `scale` from a pixel-unshuffled input.

    Input: F.pixel_unshuffle(lr, d), replicate-padded by k//2 cells (pad lr by d*(k//2) pixels before
    unshuffling). Output, after F.pixel_shuffle(., s*d): F.interpolate(lr, scale_factor=s, mode=kind)
    (align_corners=False). Raises ValueError when a k x k cell window cannot reach the needed LR pixels.
    """
    sd, r = scale * down, k // 2
    taps = _taps(kind, scale)  # (s, 5)
    w1 = torch.zeros(sd, down, k, dtype=torch.float64)  # (HR phase P, LR sub-position j, cell offset)
    for P in range(sd):
        a, p = divmod(P, scale)  # LR sub-position in the cell, phase within that LR pixel
        for o in (-2, -1, 0, 1, 2):
            if taps[p, o + 2] == 0:
                continue
            cell, j = divmod(a + o, down)  # cell offset and sub-position of LR pixel a + o
            if abs(cell) > r:
                raise ValueError(f"{kind} upsampling from unshuffle({down}) needs a larger kernel than {k}")
            w1[P, j, cell + r] += taps[p, o + 2]
    w2 = w1[:, None, :, None, :, None] * w1[None, :, None, :, None, :]  # (Py, Px, jy, jx, ky, kx)
    w2 = w2.reshape(sd * sd, down * down, k, k)  # (HR phases, LR sub-positions, k, k)
    w = torch.zeros(3, sd * sd, 3, down * down, k, k, dtype=torch.float64)
    for c in range(3):
        w[c, :, c] = w2  # colour channels do not mix
    return w.reshape(3 * sd * sd, 3 * down * down, k, k).float()


def yuv420_fold(P: int, rgb_to_yuv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear map from the 3*P*P channels of an RGB pixel-shuffle tail (channel c*P*P + py*P + px:
    colour c of sub-pixel (py, px)) to P*P Y channels and 2 * (P/2)^2 chroma channels (U then V, each the
    2x2 average of its sub-pixels, as 4:2:0 video subsamples them), for ``rgb_to_yuv`` = (3, 4) [matrix |
    offset]. Returns (T (P*P*3/2, 3*P*P), offset (P*P*3/2,)) in float64: fold T into the tail's weights and
    biases, add the offset to its bias, and pixel-shuffle Y by P, U and V by P/2. P must be even."""
    if P % 2:
        raise ValueError(f"4:2:0 planes need an even sub-pixel factor, got {P}")
    m = rgb_to_yuv.to(torch.float64).cpu()
    n1, n2 = P * P, P * P // 4
    T = torch.zeros(n1 + 2 * n2, 3 * n1, dtype=torch.float64)
    py, px = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    p = (py * P + px).flatten()  # sub-pixel index within a colour channel
    q = ((py // 2) * (P // 2) + px // 2).flatten()  # the chroma sample it averages into
    for c in range(3):
        T[p, c * n1 + p] = m[0, c]
        T[n1 + q, c * n1 + p] += m[1, c] / 4
        T[n1 + n2 + q, c * n1 + p] += m[2, c] / 4
    offset = torch.cat([m[0, 3].expand(n1), m[1, 3].expand(n2), m[2, 3].expand(n2)])
    return T, offset


def full_precision(x: torch.Tensor):
    """A region that autocast leaves alone (float32 maths on ``x``'s device)."""
    return torch.autocast(x.device.type, enabled=False)


def rgb_to_yuv_image(x: torch.Tensor, rgb_to_yuv: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 3, H, W) Y, U, V in code units / 255 (offset included), float32 under
    autocast too: the planes' bases are built from it and then hold the whole image."""
    with full_precision(x):
        m = rgb_to_yuv.to(device=x.device, dtype=torch.float32)
        y = torch.einsum("oc,nchw->nohw", m[:, :3], x.float())  # (N, 3, H, W)
        return y.add_(m[:, 3].view(1, 3, 1, 1))


def add_planes(out: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, P: int) -> None:
    """Add a :func:`yuv420_fold`-ed tail's output ``out`` (N, P*P*3/2, h', w') into the planes Y (N, P h',
    P w'), U and V (N, P h'/2, P w'/2), in place: the pixel shuffle by P (Y) and P/2 (U, V) read straight
    from ``out`` (ideally channels-last), with no shuffled copy at the output size."""
    n1, n2, hh, ww = P * P, P * P // 4, out.shape[-2], out.shape[-1]
    o = out.permute(0, 2, 3, 1)  # (N, h', w', P*P*3/2)
    for plane, chans, f in ((y, o[..., :n1], P), (u, o[..., n1:n1 + n2], P // 2), (v, o[..., n1 + n2:], P // 2)):
        sub = chans.unflatten(-1, (f, f)).permute(0, 1, 3, 2, 4)  # (N, h', f, w', f): sub-pixel grid
        plane.view(-1, hh, f, ww, f).add_(sub)
