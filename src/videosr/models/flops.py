"""Parameter and FLOP counts for registered models (used by docs/models.md and `videosr models`)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, h: int = 270, w: int = 480, t: int = 8) -> float:
    """FLOPs per output frame for an LR input of h x w, averaged over a clip of t frames.

    Counts convolutions and matrix products (2 FLOPs per multiply-add, torch.utils.flop_counter's
    convention); elementwise ops, interpolation, grid_sample and pixel shuffle are not counted. Runs on the
    meta device (no memory, no compute) when the model allows it, else on a real zero input.
    Divide by 1e9 for GFLOPs.
    """
    t = max(int(t), 1)
    try:
        m = copy.deepcopy(model).to("meta")
        x = torch.zeros(1, t, 3, h, w, device="meta")
        return _count(m, x) / t
    except (NotImplementedError, RuntimeError):
        x = torch.zeros(1, t, 3, h, w)
        return _count(model, x) / t


def _count(model: nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())
