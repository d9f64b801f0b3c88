"""Parameter and FLOP counts for registered models (docs/models.md; `videosr models` reads them from
``weights/model_stats.json``, which benchmarks/model_flops.py writes with these functions)."""

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
    flops = count_flops_meta(model, h, w, t)
    if flops is not None:
        return flops
    x = torch.zeros(1, t, 3, h, w)
    return _count(model, x) / t


def count_flops_meta(model: nn.Module, h: int = 270, w: int = 480, t: int = 8) -> float | None:
    """:func:`count_flops` on the meta device only (no memory, a fraction of a second); None when the model
    cannot run there (e.g. the classical flow's iterative solver): the real count takes a minute and GBs."""
    t = max(int(t), 1)
    try:
        m = copy.deepcopy(model).to("meta")
        x = torch.zeros(1, t, 3, h, w, device="meta")
        return _count(m, x) / t
    except (NotImplementedError, RuntimeError):
        return None


def _count(model: nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())
