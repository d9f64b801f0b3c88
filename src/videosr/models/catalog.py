"""A description of every registered model: what `videosr models` prints."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from .registry import WEIGHTS_DIR, Variant, create_model, list_models

STATS = "model_stats.json"  # package data written by benchmarks/model_flops.py
STATS_H, STATS_W, STATS_T = 270, 480, 8  # the input the GFLOPs are counted for (per output frame, 8-frame clip)


@cache
def stats_table() -> dict[str, dict[str, Any]]:
    """The committed rows of ``weights/model_stats.json`` by model name ({} if absent)."""
    p = WEIGHTS_DIR / STATS
    return json.loads(p.read_text()).get("models", {}) if p.is_file() else {}


def stats_row(v: Variant, flops: bool = True) -> dict[str, Any]:
    """Count a variant's parameters (and, with ``flops``, GFLOPs per output frame at 480x270: up to a minute
    and GBs for the classical-flow models) as benchmarks/model_flops.py commits them."""
    from .flops import count_flops, count_flops_meta, count_params

    m = create_model(v.name, pretrained=False)
    row: dict[str, Any] = {
        "arch": v.arch,
        "scale": v.scale,
        "kwargs": dict(v.kwargs),
        "params": count_params(m),
        "context": int(getattr(m, "context", 0)),
        "causal": bool(getattr(m, "causal", False)),
    }
    if flops:
        meta = count_flops_meta(m, STATS_H, STATS_W, STATS_T)
        f = meta if meta is not None else count_flops(m, STATS_H, STATS_W, STATS_T)
        row["gflops_480x270"] = round(f / 1e9, 2)
        row["counted_on"] = "meta" if meta is not None else "cpu"
    return row


def committed_stats(v: Variant) -> dict[str, Any] | None:
    """The committed row of ``v`` while its architecture, scale and hyperparameters still match, else None."""
    row = stats_table().get(v.name)
    if row is None or (row.get("arch"), row.get("scale"), row.get("kwargs")) != (
        v.arch,
        v.scale,
        json.loads(json.dumps(dict(v.kwargs))),
    ):
        return None
    return row


def describe_models(flops: bool = True) -> list[dict[str, Any]]:
    """One dict per registered model. Parameters and GFLOPs come from ``weights/model_stats.json`` (made by
    benchmarks/model_flops.py, checked against a fresh count by a test); a variant without a current row
    is instantiated to count its parameters and shows no GFLOPs (None)."""
    rows = []
    for v in list_models():
        st = committed_stats(v) or stats_row(v, flops=False)
        gflops = st.get("gflops_480x270") if flops else None
        rows.append(
            {
                "name": v.name,
                "arch": v.arch,
                "scale": v.scale,
                "params": st["params"],
                "gflops_480x270": gflops,
                "context": st["context"],
                "causal": st["causal"],
                "vid4_psnr_y": v.vid4_psnr_y,
                "vid4_degradation": v.vid4_degradation if v.vid4_eval else None,
                "weights": v.weights,
                "sha256": v.sha256,
                "training_data": v.training_data,
                "degradation": v.degradation,
                "license": v.license,
                "precision": v.precision,
                "description": v.description,
                "card": v.card,
            }
        )
    return rows
