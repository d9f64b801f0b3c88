"""What the RGB clamp costs the model planes path (docs/models.md, "model planes").

CPU time of this thread (one torch thread, so other jobs on the machine matter less than for wall time) of
``forward_planes`` for one kept frame, 480x270 -> 1920x1080 (x4), from real frames (the sample clip resized),
with ``layers.clamp_cells`` and with it skipped (the unclamped planes of before), interleaved; median of
``--rounds``; and how many cells the clamp rebuilt::

    .venv/bin/python benchmarks/planes_clamp_cost.py --model fast-x4 --precision bf16 --first 0
"""

from __future__ import annotations

import argparse
import os
import time

import av
import numpy as np
import torch

import videosr.models.fastvsr as fastvsr
import videosr.models.recurrent as recurrent
from videosr.io._pixfmt import rgb_to_yuv
from videosr.models import create_model
from videosr.models.layers import clamp_cells

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "videosr", "assets",
                      "sample.mp4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fast-x4")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    ap.add_argument("--first", type=int, default=0, help="first of the 5 sample frames used (the kept one: +2)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    net = create_model(a.model).eval().to(memory_format=torch.channels_last)
    with av.open(SAMPLE) as c:
        frames = [f.reformat(width=480, height=270, format="rgb24", interpolation="LANCZOS").to_ndarray()
                  for _, f in zip(range(a.first + 5), c.decode(video=0))][-5:]
    x = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])[None].contiguous()
    m = torch.tensor(rgb_to_yuv(1, 1))
    rebuilt: list[int] = []

    def counting(*args, **kw):
        rebuilt.append(clamp_cells(*args, **kw))
        return rebuilt[-1]

    fns = {"clamped": counting, "unclamped": lambda *args, **kw: 0}
    times: dict[str, list[float]] = {k: [] for k in fns}
    ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if a.precision == "bf16"
           else torch.autocast("cpu", enabled=False))
    try:
        with torch.inference_mode(), ctx:
            for _ in range(a.rounds + 1):  # the first round warms up
                for label, fn in fns.items():
                    fastvsr.clamp_cells = recurrent.clamp_cells = fn
                    t = time.thread_time()
                    net.forward_planes(x, m, keep=(2, 3))
                    times[label].append(time.thread_time() - t)
    finally:
        fastvsr.clamp_cells = recurrent.clamp_cells = clamp_cells
    med = {k: float(np.median(v[1:])) * 1000 for k, v in times.items()}
    print(f"{a.model} {a.precision}, sample frame {a.first + 2}: forward_planes {med['clamped']:.0f} ms CPU with the "
          f"clamp, {med['unclamped']:.0f} without; {rebuilt[-1]} cells rebuilt")


if __name__ == "__main__":
    main()
