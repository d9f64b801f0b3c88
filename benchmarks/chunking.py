"""Temporal chunking check: chunked inference vs whole-clip inference on Vid4 (BI x4), PSNR-Y per clip.

The engine cuts long videos into chunks of `--chunk` frames with `model.context` warm-up frames on each
side (discarded), so memory stays bounded; this measures what that costs in quality against running each
whole Vid4 clip in one piece. Target: |difference| <= 0.05 dB.

    .venv/bin/python benchmarks/chunking.py --model quality-x4 --json benchmarks/results/chunking_quality-x4.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from videosr.engine import Engine
from videosr.eval.degrade import LRRecipe, make_lr, quantize
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.models import create_model

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "Vid4" / "GT"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="quality-x4")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--chunk", type=int, default=None, help="default: the engine's choice for the model")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = create_model(a.model)
    clips, _ = find_clips(a.data)
    rows = {}
    for clip in clips:
        gt = load_clip(clip)  # (T, 3, H, W)
        lr = make_lr(gt, model.scale, LRRecipe("BI"), clip.name)
        gt = gt[..., : lr.shape[-2] * model.scale, : lr.shape[-1] * model.scale]
        chunked = Engine(model, device="cpu", precision="fp32", chunk=a.chunk)
        whole = Engine(model, device="cpu", precision="fp32", chunk=lr.shape[0])
        t0 = time.perf_counter()
        out_c = quantize(chunked.run_clip(lr))
        t1 = time.perf_counter()
        out_w = quantize(whole.run_clip(lr))
        p_c = float(psnr(out_c, gt).mean())
        p_w = float(psnr(out_w, gt).mean())
        rows[clip.name] = {
            "frames": int(lr.shape[0]),
            "chunk": chunked.chunk,
            "context": chunked.context,
            "psnr_y_chunked": round(p_c, 4),
            "psnr_y_whole": round(p_w, 4),
            "difference_db": round(p_c - p_w, 4),
            "seconds_chunked": round(t1 - t0, 2),
        }
        print(clip.name, rows[clip.name], flush=True)
    mean_c = sum(r["psnr_y_chunked"] for r in rows.values()) / len(rows)
    mean_w = sum(r["psnr_y_whole"] for r in rows.values()) / len(rows)
    result = {
        "benchmark": "chunking",
        "model": a.model,
        "data": a.data,
        "clips": rows,
        "mean": {
            "psnr_y_chunked": round(mean_c, 4),
            "psnr_y_whole": round(mean_w, 4),
            "difference_db": round(mean_c - mean_w, 4),
        },
        "max_abs_clip_difference_db": max(abs(r["difference_db"]) for r in rows.values()),
    }
    print(json.dumps(result["mean"]), "max |clip diff|", result["max_abs_clip_difference_db"])
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
