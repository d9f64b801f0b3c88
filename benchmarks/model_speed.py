"""Model-alone speed at 480x270 -> x`scale`, per frame, on the CPU: fp32 vs fp32+channels_last vs bf16+channels_last.

    .venv/bin/python benchmarks/model_speed.py [--models fast-x4 quality-x4 ...] [--frames 8] [--threads 2]
        [--repeats 5] [--modes fp32 fp32_cl bf16_cl] [--json benchmarks/results/model_speed.json]

Untrained weights (speed does not depend on them). Each measurement runs the model on a clip of
`--frames` frames (recurrent and sliding-window models amortise per-clip work), after one warm-up run;
reports the best of `--repeats` runs in ms per frame (the machine is shared: the best run is the one
least disturbed by other processes), and the CPU time per frame divided by the thread count. Also records parameters and GFLOPs per frame.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from videosr.bench import machine
from videosr.models import create_model, list_models
from videosr.models.flops import count_flops, count_params

MODES = ("fp32", "fp32_cl", "bf16_cl")


def time_model(model: torch.nn.Module, x: torch.Tensor, mode: str, repeats: int) -> tuple[float, float]:
    """(best wall time, best process CPU time) in seconds of model(x) under `mode`.

    The CPU time (all threads together) is less sensitive to other processes than the wall time:
    divided by the thread count it estimates the wall time on an idle machine (slightly high: OpenMP
    threads spin while they wait).
    """
    cl = mode.endswith("_cl")
    m = model.to(memory_format=torch.channels_last) if cl else model.to(memory_format=torch.contiguous_format)
    walls, cpus = [], []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode.startswith("bf16")):
        m(x)  # warm-up: oneDNN primitive creation, allocator
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            m(x)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> int:
    from videosr._alloc import keep_freed_memory

    keep_freed_memory()  # as the videosr CLI runs (videosr._alloc): freed frames reused, not page-faulted in
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="*", default=None, help="default: every registered model")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=270)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--json", default=None, help="write the results here as well")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or [v.name for v in list_models()]
    x = torch.rand(1, args.frames, 3, args.height, args.width)
    results = []
    for name in names:
        model = create_model(name, pretrained=False)
        row = {
            "model": name,
            "params": count_params(model),
            "gflops_per_frame": round(count_flops(model, args.height, args.width, args.frames) / 1e9, 2),
        }
        for mode in args.modes:
            wall, cpu = time_model(model, x, mode, args.repeats)
            row[f"ms_per_frame_{mode}"] = round(1e3 * wall / args.frames, 1)
            row[f"cpu_ms_per_frame_{mode}"] = round(1e3 * cpu / args.frames / args.threads, 1)
        results.append(row)
        print(json.dumps(row), flush=True)
    out = {
        "threads": args.threads,
        "input": f"{args.width}x{args.height}",
        "frames_per_run": args.frames,
        "repeats": args.repeats,
        "results": results,
        "machine": {**machine(), "load_average": [round(v, 2) for v in os.getloadavg()]},
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
