#!/usr/bin/env python3
"""How far is tiled inference (`--tile N`) from untiled, per shipped x4 model? (issue 18: a doc claimed "to float
rounding")

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tile_equivalence.py [--data ../shared/data/Vid4/GT]
        [--clip calendar] [--frames 10] [--tile 64] [--json benchmarks/results/tile_equivalence.json]

The first ``--frames`` GT frames of a Vid4 clip, BI x4 LR (the `videosr eval` protocol); each model upscales them
whole and in tiles of ``--tile`` LR pixels with the engine's default overlap (fp32). Reports the largest difference
in 8-bit levels, the share of output values that differ after rounding to 8 bits, and PSNR-Y against the GT of both.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from videosr.engine import Engine
from videosr.eval.degrade import LRRecipe, make_lr
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.models import create_model

MODELS = ("fast-x4", "quality-x4", "quality-x4-full", "online-x4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/Vid4/GT"))
    ap.add_argument("--clip", default="calendar")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    clip = next(c for c in find_clips(a.data)[0] if c.name == a.clip)
    gt = load_clip(clip, a.frames)
    gt = gt[..., : gt.shape[-2] // 4 * 4, : gt.shape[-1] // 4 * 4]
    lr = make_lr(gt, 4, LRRecipe.make("BI"), clip.name)
    rows = {}
    for name in a.model or MODELS:
        t0 = time.time()
        m = create_model(name).eval()
        whole = Engine(m, device="cpu", precision="fp32").run_clip(lr).clamp(0, 1)
        tiled = Engine(m, device="cpu", precision="fp32", tile=a.tile).run_clip(lr).clamp(0, 1)
        w8, t8 = (whole * 255).round(), (tiled * 255).round()
        rows[name] = {
            "max_abs_diff_levels": round(float((whole - tiled).abs().max() * 255), 4),
            "share_of_8bit_values_differing": round(float((w8 != t8).float().mean()), 6),
            "psnr_y_whole": round(float(psnr(w8 / 255, gt).mean()), 4),
            "psnr_y_tiled": round(float(psnr(t8 / 255, gt).mean()), 4),
            "seconds": round(time.time() - t0, 1),
        }
        print(name, rows[name])
    out = {
        "clip": clip.name,
        "frames": a.frames,
        "lr_size": list(lr.shape[-2:]),
        "tile": a.tile,
        "tile_overlap": Engine.tile_overlap,
        "models": rows,
    }
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
