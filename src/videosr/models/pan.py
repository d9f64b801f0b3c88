"""PAN: pixel attention network (Zhao et al., "Efficient Image Super-Resolution Using Pixel Attention",
ECCV Workshops 2020, github.com/zhaohengyuan1/PAN).

An image model (context 0): every frame is upscaled on its own. Module and parameter names follow the
original code, so the published checkpoints (PANx{2,3,4}_DF2K.pth) load strictly:

    conv_first -> 16 x SCPA -> trunk_conv (+ skip) -> [nearest x2 -> upconv -> PA -> HRconv] x (1 or 2)
    -> conv_last, + bilinear-upsampled input

Input and output are RGB in [0, 1], as in the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Variant, register_arch, register_variant


class PA(nn.Module):
    """Pixel attention: x * sigmoid(conv1x1(x)), one weight per pixel and channel."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """3x3 convolution gated by pixel attention, then another 3x3 convolution."""

    def __init__(self, nf: int, k_size: int = 3) -> None:
        super().__init__()
        self.k2 = nn.Conv2d(nf, nf, 1)  # attention branch
        self.k3 = nn.Conv2d(nf, nf, k_size, padding=(k_size - 1) // 2, bias=False)
        self.k4 = nn.Conv2d(nf, nf, k_size, padding=(k_size - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention: two half-width branches, one plain 3x3, one PAConv."""

    def __init__(self, nf: int, reduction: int = 2) -> None:
        super().__init__()
        gw = nf // reduction
        self.conv1_a = nn.Conv2d(nf, gw, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, gw, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(gw, gw, 3, padding=1, bias=False))
        self.PAConv = PAConv(gw)
        self.conv3 = nn.Conv2d(gw * reduction, nf, 1, bias=False)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))  # (N, gw, H, W)
        b = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))  # (N, gw, H, W)
        return x + self.conv3(torch.cat([a, b], dim=1))  # (N, nf, H, W)


@register_arch("pan")
class PAN(nn.Module):
    scale: int
    context: int = 0
    causal: bool = True  # frame t depends on frame t only

    def __init__(
        self, scale: int = 4, nf: int = 40, unf: int = 24, nb: int = 16, in_nc: int = 3, out_nc: int = 3
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"PAN supports scale 2, 3 or 4, not {scale}")
        self.scale = scale
        # feature extraction
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.SCPA_trunk = nn.Sequential(*[SCPA(nf) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        # reconstruction: one nearest-neighbour upsampling stage (x2, x3) or two (x2 each, for x4)
        self.upconv1 = nn.Conv2d(nf, unf, 3, 1, 1)
        self.att1 = PA(unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, 1, 1)
        self.stage_scales = [2, 2] if scale == 4 else [scale]
        if scale == 4:
            self.upconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
            self.att2 = PA(unf)
            self.HRconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
        self.conv_last = nn.Conv2d(unf, out_nc, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 3, sH, sW)."""
        fea = self.conv_first(x)  # (N, nf, H, W)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))  # (N, nf, H, W)
        stages = [(self.upconv1, self.att1, self.HRconv1)]
        if self.scale == 4:
            stages.append((self.upconv2, self.att2, self.HRconv2))
        for s, (up, att, hr) in zip(self.stage_scales, stages):
            fea = up(F.interpolate(fea, scale_factor=s, mode="nearest"))  # (N, unf, s*h, s*w)
            fea = self.lrelu(att(fea))
            fea = self.lrelu(hr(fea))
        out = self.conv_last(fea)  # (N, 3, sH, sW)
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = self.forward_image(x.reshape(b * t, c, h, w))  # (B*T, 3, sH, sW)
        return y.reshape(b, t, c, h * self.scale, w * self.scale)  # (B, T, 3, sH, sW)


for _s in (2, 3, 4):
    register_variant(
        Variant(
            name=f"pan-x{_s}",
            arch="pan",
            scale=_s,
            kwargs={"nf": 40, "unf": 24, "nb": 16},
            weights=None,
            training_data="DF2K (published checkpoint, not shipped)",
            degradation="BI",
            license="weights not shipped; published checkpoints have no licence: comparison use only",
            description=f"PAN x{_s} (Zhao et al. 2020), image model, 0.26-0.27 M params; "
            f"load ../shared/peers/PAN/PANx{_s}_DF2K.pth with weights=...",
        )
    )
