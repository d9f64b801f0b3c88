"""Inference engine shared by `upscale`, `eval` and `bench` (chunking, tiling, precision: being written)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def run_clip(model: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """Upscale a whole clip: (T, C, H, W) float RGB [0, 1] -> (T, C, sH, sW), clamped to [0, 1]."""
    return model(frames[None]).clamp_(0, 1)[0]
