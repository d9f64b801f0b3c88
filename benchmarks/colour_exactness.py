"""Colour exactness of `videosr upscale` (issue 19, item 3), on the real executable.

For one model and clip: the default video output (the model planes path where it applies), the same with
``--tile`` (the RGB path), PNG output and the default x264 mp4. Reports the mean luma of each (video: the
decoded Y plane; PNG: Y' of its RGB by the BT.709 tv-range matrix the writer uses) against the source's
Y plane, and how far the video paths are apart per pixel. Lossless ffv1 for the path comparisons.
Writes JSON (default benchmarks/results/colour_exactness_<model>.json)::

    .venv/bin/python benchmarks/colour_exactness.py [--model fast-x4] [--input src/videosr/assets/sample.mp4]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import av
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VIDEOSR = os.path.join(os.path.dirname(sys.executable), "videosr")


def run(src: str, out: str, model: str, *extra: str) -> None:
    r = subprocess.run(
        [VIDEOSR, "upscale", src, out, "--model", model, "--overwrite", "--quiet", *extra],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        sys.exit(f"videosr upscale {out} failed ({r.returncode}): {r.stderr.strip()}")


def y_planes(path: str) -> np.ndarray:
    with av.open(path) as c:
        return np.stack(
            [
                np.frombuffer(f.planes[0], np.uint8).reshape(f.height, f.planes[0].line_size)[:, : f.width]
                for f in c.decode(video=0)
            ]
        ).astype(np.float64)


def png_luma(folder: str) -> np.ndarray:
    from videosr.io import rgb_to_yuv

    m = np.array(rgb_to_yuv(1, 1))[0]
    return np.stack(
        [
            (np.asarray(Image.open(p).convert("RGB"), np.float64) / 255 @ m[:3] + m[3]) * 255
            for p in sorted(glob.glob(os.path.join(folder, "*.png")))
        ]
    )


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a - b)
    return {"max": float(d.max()), "frac_over_1": float(np.mean(d > 1)), "mean_diff": float(np.mean(a - b))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fast-x4")
    ap.add_argument("--input", default=os.path.join(ROOT, "src", "videosr", "assets", "sample.mp4"))
    ap.add_argument("--tile", default="64")
    ap.add_argument("--out")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda name: os.path.join(tmp, name)  # noqa: E731
        run(a.input, p("planes.mkv"), a.model, "--codec", "ffv1")
        run(a.input, p("tile.mkv"), a.model, "--codec", "ffv1", "--tile", a.tile)
        run(a.input, p("png"), a.model, "--format", "png")
        run(a.input, p("x264.mp4"), a.model)
        src, planes, tile, x264 = (y_planes(x) for x in (a.input, p("planes.mkv"), p("tile.mkv"), p("x264.mp4")))
        png = png_luma(p("png"))
    res = {
        "model": a.model,
        "input": os.path.relpath(a.input, ROOT),
        "frames": len(planes),
        "tile": int(a.tile),
        "mean_luma": {
            "source": src.mean(),
            "video": planes.mean(),
            "video_tile": tile.mean(),
            "video_x264": x264.mean(),
            "png": png.mean(),
        },
        "video_vs_tile": compare(planes, tile),
        "video_vs_png": compare(planes, np.round(png)),
        "tile_vs_png": compare(tile, np.round(png)),
    }
    res["mean_luma"] = {k: round(float(v), 3) for k, v in res["mean_luma"].items()}
    out = a.out or os.path.join(HERE, "results", f"colour_exactness_{a.model}.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
