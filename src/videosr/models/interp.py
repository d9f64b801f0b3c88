"""Interpolation baselines: the ``bicubic`` and ``lanczos`` models (no weights, MIT).

MATLAB-compatible integer-scale upsampling (:func:`videosr.resample.upsample`), so ``bicubic`` reproduces
the bicubic rows of published SR tables. An image model: each frame is upscaled on its own.

A fixed linear filter applied to each channel alone commutes with the affine RGB <-> YUV matrices, so
``upsample_plane`` may be given the Y, U and V planes of a video frame directly: the upscaling pipeline
does this for 8-bit planar YUV video and skips converting every HR frame to RGB and back (the same
results up to rounding, clamping and the chroma planes being filtered at their own resolution, as
FFmpeg's scaler does).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from ..resample import upsample
from .registry import Variant, register_arch, register_variant


@register_arch("interp")
class Interp(nn.Module):
    """Fixed-kernel upsampling. ``kernel``: "cubic" (MATLAB bicubic, a = -0.5) or "lanczos" (lanczos3)."""

    context = 0
    causal = True
    any_scale = True  # any integer scale: `create_model("bicubic", scale=2)`

    def __init__(self, scale: int = 4, kernel: str = "cubic") -> None:
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise UsageError(f"interpolation needs a positive integer scale, got {scale}")
        if kernel not in ("cubic", "lanczos"):
            raise UsageError(f"interp kernel must be 'cubic' or 'lanczos', got {kernel!r}")
        self.scale = int(scale)
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = x.reshape(b * t, c, h, w)  # (B, T, C, H, W) -> (B*T, C, H, W)
        y = upsample(y, self.scale, self.kernel)  # (B*T, C, sH, sW)
        return y.reshape(b, t, c, h * self.scale, w * self.scale)  # -> (B, T, C, sH, sW)

    def upsample_plane(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H, W) float -> (..., sH, sW): the same filter on planes of any colour basis (see above)."""
        return upsample(x, self.scale, self.kernel)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, kernel={self.kernel!r}"


register_variant(
    Variant(
        name="bicubic",
        arch="interp",
        scale=4,
        kwargs={"kernel": "cubic"},
        license="MIT",
        description="MATLAB-compatible bicubic interpolation (a = -0.5); the baseline of SR tables",
    )
)
register_variant(
    Variant(
        name="lanczos",
        arch="interp",
        scale=4,
        kwargs={"kernel": "lanczos"},
        license="MIT",
        description="Lanczos3 interpolation (MATLAB lanczos3 kernel)",
    )
)
