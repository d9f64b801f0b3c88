"""What the exact RGB clamp of the 4:2:0 planes path costs: ms per frame of a model's ``forward_planes``
with and without ``clamp_cells``, and how many trunk cells it rebuilds, on the first frames of the shipped
sample clip at 480x270 (the speed benchmark's content and size).

    .venv/bin/python benchmarks/clamp_cost.py --model fast-x4 --frames 8 --json benchmarks/results/clamp_cost.json
    .venv/bin/python benchmarks/clamp_cost.py --model quality-x4 --frames 8 \
        --json benchmarks/results/clamp_cost_quality-x4.json
    .venv/bin/python benchmarks/clamp_cost.py --model fast-x4-causal --content live \
        --json benchmarks/results/clamp_cost_live.json   # the live benchmark's moving pattern

Times are comparable only within one run on one machine; the JSON records the CPU and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import av
import torch

import videosr.models.fastvsr as fastvsr
import videosr.models.recurrent as recurrent
from videosr._alloc import keep_freed_memory
from videosr.bench import machine
from videosr.io import rgb_to_yuv
from videosr.models import create_model

SAMPLE = Path(__file__).resolve().parent.parent / "src" / "videosr" / "assets" / "sample.mp4"


def sample_frames(n: int, width: int = 480, height: int = 270) -> torch.Tensor:
    """The first ``n`` frames of the sample clip, resized: (1, n, 3, H, W) RGB float in [0, 1]."""
    frames = []
    with av.open(str(SAMPLE)) as c:
        for f in c.decode(video=0):
            a = f.reformat(width, height, format="rgb24").to_ndarray()
            frames.append(torch.from_numpy(a).permute(2, 0, 1).float() / 255)
            if len(frames) == n:
                break
    return torch.stack(frames)[None]


def live_frames(n: int, width: int = 480, height: int = 270) -> torch.Tensor:
    """The first ``n`` frames of benchmarks/live_latency.py's moving test pattern: (1, n, 3, H, W) in [0, 1]."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from live_latency import pattern

    return torch.stack([torch.from_numpy(pattern(i, width, height)).permute(2, 0, 1).float() / 255 for i in range(n)])[
        None
    ]


def main() -> None:
    keep_freed_memory()  # as the videosr CLI runs: freed frames reused, not page-faulted in again
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fast-x4")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--content",
        choices=["sample", "live"],
        default="sample",
        help="the shipped sample clip, or the live latency benchmark's test pattern",
    )
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = sample_frames(a.frames) if a.content == "sample" else live_frames(a.frames)
    m = create_model(a.model, pretrained=True).eval()
    matrix = torch.tensor(rgb_to_yuv(1, 1))  # BT.709 limited range, as an HD output
    original = fastvsr.clamp_cells
    modules = (fastvsr, recurrent)  # the model files that call it
    spent = {"s": 0.0, "cells": 0, "of": 0}

    def timed(*args, **kwargs):
        t = time.perf_counter()
        n = original(*args, **kwargs)
        spent["s"] += time.perf_counter() - t
        spent["cells"] += n
        feats, conv = args[1], args[2]  # (N, C, h' + k - 1, w' + k - 1) through a k x k conv: N h' w' cells
        k = conv.kernel_size[0] - 1
        spent["of"] += feats.shape[0] * (feats.shape[-2] - k) * (feats.shape[-1] - k)
        return n

    rounds = []
    try:
        with torch.no_grad():
            for _ in range(a.rounds):
                spent["s"], spent["cells"], spent["of"] = 0.0, 0, 0
                for mod in modules:
                    mod.clamp_cells = timed
                t = time.perf_counter()
                m.forward_planes(x, matrix)
                total = time.perf_counter() - t
                for mod in modules:
                    mod.clamp_cells = lambda *args, **kwargs: 0
                t = time.perf_counter()
                m.forward_planes(x, matrix)
                bare = time.perf_counter() - t
                rounds.append(
                    {
                        "ms_per_frame": 1000 * total / a.frames,
                        "clamp_ms_per_frame": 1000 * spent["s"] / a.frames,
                        "without_clamp_ms_per_frame": 1000 * bare / a.frames,
                        "cells_rebuilt": spent["cells"],
                        "cells": spent["of"],
                    }
                )
    finally:
        for mod in modules:
            mod.clamp_cells = original
    with torch.no_grad():  # the floor: cells whose RGB output really leaves [0, 1]
        rgb = m(x)[0]  # (T, 3, sH, sW), unclamped
    P = round((rgb.shape[-2] * rgb.shape[-1] * a.frames / spent["of"]) ** 0.5)  # output pixels per cell side
    out_cells = ((rgb < 0) | (rgb > 1)).any(1).unflatten(1, (-1, P)).unflatten(3, (-1, P)).any(4).any(2)
    out = {
        "benchmark": "clamp_cost",
        "cells_out_of_range": int(out_cells.sum()),
        "model": a.model,
        "content": a.content,
        "frames": a.frames,
        "size": [480, 270],
        "threads": a.threads,
        "rounds": rounds,
        "machine": machine(),
        "load_avg": os.getloadavg(),
    }
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
