"""Reproduce the published PAN numbers with videosr's `pan-xS` variants and the authors' checkpoints.

    .venv/bin/python benchmarks/pan_repro.py [--scale 4] [--sets Set5 Set14] [--shared ../shared]

PSNR on the Y channel (BT.601: 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on [0, 255] RGB), output
rounded to uint8, HR cropped to LR*scale, border of `scale` pixels cropped: the protocol of the PAN/mmsr code.
Exits 0 with a message when ../shared is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from videosr.models import create_model

PUBLISHED = {
    (4, "Set5"): 32.13,
    (4, "Set14"): 28.61,
    (3, "Set5"): 34.40,
    (3, "Set14"): 30.36,
    (2, "Set5"): 38.00,
    (2, "Set14"): 33.59,
}


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float64 Y in [16, 235]."""
    x = rgb.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    a = y_channel(sr)[border:-border, border:-border]
    b = y_channel(hr)[border:-border, border:-border]
    mse = np.mean((a - b) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@torch.no_grad()
def evaluate(model: torch.nn.Module, root: Path, scale: int) -> dict[str, float]:
    scores = {}
    for hr_path in sorted((root / "HR").glob("*.png")):
        lr_path = root / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        lr = np.array(Image.open(lr_path).convert("RGB"))
        hr = np.asarray(Image.open(hr_path).convert("RGB"))
        x = torch.from_numpy(lr).permute(2, 0, 1).float().div(255)[None, None]  # (1, 1, 3, h, w)
        y = model(x)[0, 0]  # (3, sh, sw)
        sr = y.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        hr = hr[: sr.shape[0], : sr.shape[1]]
        scores[hr_path.stem] = psnr_y(sr, hr, scale)
    return scores


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    p.add_argument("--shared", default=str(Path(__file__).resolve().parents[1].parent / "shared"))
    args = p.parse_args()
    shared = Path(args.shared)
    ckpt = shared / "peers" / "PAN" / f"PANx{args.scale}_DF2K.pth"
    if not ckpt.is_file():
        print(f"skipped: {ckpt} not found")
        return 0
    torch.set_num_threads(2)
    model = create_model(f"pan-x{args.scale}", weights=ckpt)
    out = {}
    for name in args.sets:
        scores = evaluate(model, shared / "data" / name, args.scale)
        mean = sum(scores.values()) / len(scores)
        out[name] = {
            "mean": round(mean, 3),
            "published": PUBLISHED.get((args.scale, name)),
            "per_image": {k: round(v, 3) for k, v in scores.items()},
        }
    print(json.dumps({"model": f"pan-x{args.scale}", "weights": str(ckpt), **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
