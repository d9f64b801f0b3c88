#!/usr/bin/env python3
"""Does classical restoration of compressed LR help before upscaling? (issue 13: what stands in the way)

    .venv/bin/python benchmarks/restore_probe.py [--data ../shared/data/Vid4/GT] [--max-frames 10]
        [--json benchmarks/results/restore_probe.json]

Vid4 x4, the `videosr eval --lr-codec libx264` LR (BI, 8 bits, x264 yuv420p preset medium at CRF 25 and 35,
decoded); each decoded LR frame is restored by OpenCV (fast non-local means on colour, h = 3 at CRF 25 and 6 at
CRF 35; a 5-pixel bilateral filter, sigma colour 20, space 3) or left as it is, then upscaled by the MATLAB
bicubic (the ``bicubic`` model), rounded to 8 bits and scored by PSNR-Y against the GT, as `videosr eval`
does. If the classical filters gain nothing, the signal the network could restore is not in the LR either.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from videosr.eval.degrade import LRRecipe, make_lr
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.resample import upsample

CLIPS = ("calendar", "city", "foliage", "walk")


def restore(lr: torch.Tensor, how: str, crf: int) -> torch.Tensor:
    if how == "none":
        return lr
    u8 = (lr * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if how == "nlm":
        h = 6 if crf >= 35 else 3
        out = [cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(f), None, h, h, 5, 15) for f in u8]
    else:
        out = [cv2.bilateralFilter(np.ascontiguousarray(f), 5, 20, 3) for f in u8]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/Vid4/GT"))
    ap.add_argument("--max-frames", type=int, default=10)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    clips = {c.name: c for c in find_clips(a.data)[0] if c.name in CLIPS}
    res: dict = {}
    for crf in (25, 35):
        recipe = LRRecipe.make("BI", "libx264", crf)
        scores: dict[str, list[float]] = {"none": [], "nlm": [], "bilateral": []}
        for name, clip in clips.items():
            gt = load_clip(clip, a.max_frames)
            gt = gt[..., : gt.shape[-2] // 4 * 4, : gt.shape[-1] // 4 * 4]
            lr = make_lr(gt, 4, recipe, name)
            for how in scores:
                sr = (upsample(restore(lr, how, crf), 4).clamp(0, 1) * 255).round() / 255
                scores[how].append(float(psnr(sr, gt).mean()))
        res[f"crf{crf}"] = {how: round(float(np.mean(v)), 4) for how, v in scores.items()}
        print(
            f"CRF {crf}: bicubic {res[f'crf{crf}']['none']:.2f} dB, after NLM {res[f'crf{crf}']['nlm']:.2f}, "
            f"after bilateral {res[f'crf{crf}']['bilateral']:.2f}"
        )
    out = {
        "what": "Vid4 x4 PSNR-Y of MATLAB bicubic on x264-compressed LR, with and without OpenCV restoration",
        "clips": sorted(clips),
        "max_frames": a.max_frames,
        "opencv": cv2.__version__,
        "results": res,
        "seconds": round(time.time() - t0, 1),
    }
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
