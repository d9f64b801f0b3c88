"""A description of every registered model: what `videosr models` prints."""

from __future__ import annotations

from typing import Any

from .flops import count_flops, count_params
from .registry import create_model, list_models


def describe_models(flops: bool = True) -> list[dict[str, Any]]:
    rows = []
    for v in list_models():
        m = create_model(v.name, pretrained=False)
        gflops = count_flops(m, 270, 480) / 1e9 if flops else None
        rows.append({
            "name": v.name, "arch": v.arch, "scale": v.scale, "params": count_params(m),
            "gflops_480x270": None if gflops is None else round(gflops, 2),
            "context": int(getattr(m, "context", 0)), "causal": bool(getattr(m, "causal", False)),
            "vid4_psnr_y": v.vid4_psnr_y, "vid4_degradation": v.vid4_degradation if v.vid4_eval else None,
            "weights": v.weights, "sha256": v.sha256,
            "training_data": v.training_data, "degradation": v.degradation, "license": v.license,
            "precision": v.precision, "description": v.description, "card": v.card,
        })
    return rows
