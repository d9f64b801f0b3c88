"""What compression in the training loop costs per step (issue 13 item 2).

Times one training batch's data work on one thread, the way the DataLoader worker does it: the clean part
(``TrainClips.batch_at`` without ``[data.codec]``: crop, augment, BI degradation) and the same batches with
``[data.codec]`` as in configs/quality-x4-compressed.toml (x264 at CRF 15..40, presets veryfast..slow,
85 % of the clips encoded, 10 % noisy), for clips grouped 1, 2 or 4 to an encoded mosaic.

    .venv/bin/python benchmarks/codec_cost.py [--data datasets/vsr] [--steps 40] [--json benchmarks/results/codec_cost.json]

The worker overlaps with the training step, so the codec only slows training when the worker's time per
batch exceeds the model's. The JSON records the CPU and the load average (other work on the machine
inflates every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from videosr.training.config import CodecCfg
from videosr.training.data import ClipStore, TrainClips


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="datasets/vsr")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--json", default="benchmarks/results/codec_cost.json")
    a = ap.parse_args()
    if not Path(a.data).is_dir():
        raise SystemExit(f"{a.data} is absent: build it with python scripts/build_dataset.py {a.data}")
    torch.set_num_threads(1)
    store = ClipStore.load(a.data)
    rows = []
    for group in (None, 1, 2, 4):
        params = (
            None
            if group is None
            else CodecCfg(prob=0.85, crf=[15, 40], noise_prob=0.1, noise_sigma=[1.0, 8.0], group=group)._params()
        )
        ds = TrainClips(store, scale=4, patch=32, frames=7, batch=a.batch, codec_params=params, seed=1)
        ds.batch_at(0)  # warm-up
        t = time.perf_counter()
        for step in range(1, a.steps + 1):
            ds.batch_at(step)
        ms = (time.perf_counter() - t) / a.steps * 1000
        rows.append({"codec": group is not None, "group": group, "ms_per_batch": round(ms, 1)})
        print(rows[-1], flush=True)
    clean = rows[0]["ms_per_batch"]
    for r in rows[1:]:
        r["codec_ms_per_batch"] = round(r["ms_per_batch"] - clean, 1)
    doc = {
        "cpu": cpu_name(),
        "loadavg_1min": os.getloadavg()[0],
        "batch": a.batch,
        "frames": 7,
        "lr_patch": 32,
        "steps": a.steps,
        "rows": rows,
        "command": "python benchmarks/codec_cost.py --data " + a.data,
    }
    Path(a.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
