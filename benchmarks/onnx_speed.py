"""ONNX Runtime vs PyTorch on the CPU: model-alone ms per frame at 480x270 -> x`scale`.

    .venv/bin/python benchmarks/onnx_speed.py [--models fast-x4] [--frames 8] [--threads 2] [--repeats 7]
        [--json benchmarks/results/onnx_speed.json]

Backends: ``torch_fp32`` (eval, inference_mode), ``torch_bf16`` (CPU autocast bf16 + channels_last, as the
Engine runs bf16), ``onnxruntime_fp32`` (the graph `videosr export` writes, ORT CPU provider, all
optimisations, ``--threads`` intra-op threads). Untrained weights (speed does not depend on them). Each
measurement runs one clip of ``--frames`` frames after a warm-up run; reports the median and the best of
``--repeats`` runs in ms per frame, and the median process CPU time per frame divided by the thread count
(less sensitive to other processes on a shared machine). Prints one JSON object; ``machine`` is
`videosr bench`'s description of the machine (``videosr.bench.machine``: CPU, cores, AMX, versions).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from videosr.bench import machine
from videosr.models import create_model
from videosr.models.export import export_onnx
from videosr.models.onnx_backend import load_onnx

BACKENDS = ("torch_fp32", "torch_bf16", "onnxruntime_fp32")


def measure(fn, repeats: int) -> tuple[list[float], list[float]]:
    fn()  # warm-up: oneDNN primitives / ORT allocations
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus


def bench_model(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).eval()
    x = torch.rand(1, args.frames, 3, args.height, args.width)
    t0 = time.perf_counter()
    path = tmp / f"{name}.onnx"
    export_onnx(model, path)
    export_s = time.perf_counter() - t0
    onnx_net = load_onnx(path, threads=args.threads)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run_torch_fp32():
        with torch.inference_mode():
            model(x)

    def run_torch_bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            cl(x)

    def run_ort():
        onnx_net(x)

    fns = {"torch_fp32": run_torch_fp32, "torch_bf16": run_torch_bf16, "onnxruntime_fp32": run_ort}
    with torch.inference_mode():
        ref = model(x)
    rows = {}
    for backend in args.backends:
        walls, cpus = measure(fns[backend], args.repeats)
        per = 1000.0 / args.frames
        rows[backend] = {
            "ms_per_frame_median": round(statistics.median(walls) * per, 2),
            "ms_per_frame_best": round(min(walls) * per, 2),
            "cpu_ms_per_frame_per_thread": round(statistics.median(cpus) * per / args.threads, 2),
        }
    diff = float((onnx_net(x) - ref).abs().max())
    return {
        "model": name,
        "export_seconds": round(export_s, 2),
        "onnx_bytes": path.stat().st_size,
        "onnx_vs_torch_max_abs": diff,
        "backends": rows,
    }


def main() -> int:
    from videosr._alloc import keep_freed_memory

    keep_freed_memory()  # as the videosr CLI runs (videosr._alloc): freed frames reused, not page-faulted in
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["fast-x4"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--height", type=int, default=270)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--json", default=None, help="write the results here as well")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_model(n, args, Path(tmp)) for n in args.models]
    out = {
        "benchmark": "onnx_speed",
        "size": f"{args.width}x{args.height}",
        "frames_per_clip": args.frames,
        "threads": args.threads,
        "repeats": args.repeats,
        "machine": machine(),
        "onnxruntime": onnxruntime.__version__,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "results": results,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
