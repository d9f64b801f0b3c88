"""Learned vs classical optical flow in quality-x4: quality per CPU-second, training and inference.

Reads the validation rows (Vid4 subset PSNR-Y, the training config's [val]) of two training runs of
configs/quality-x4.toml that differ only in ``model.kwargs.flow``, and times, on this machine and in the
same run, (a) training steps per second of each (``--steps`` steps, one thread, as the config) and
(b) inference ms per 480x270 -> 1920x1080 frame of each (a 10-frame clip, two threads).

    videosr train configs/quality-x4.toml --set out_dir=runs/qx4-classical --set 'model.kwargs.flow="classical"'
    .venv/bin/python benchmarks/flow_compare.py --learned-log checkpoints/quality-x4/log.csv \
        --classical-log runs/qx4-classical/log.csv --json benchmarks/results/flow_compare.json
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def val_rows(path: str) -> dict[int, float]:
    out = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            v = row.get("val_psnr_y") or ""
            if v and not v.startswith("bicubic"):
                out[int(row["step"])] = float(v)
    return out


def train_speed(flow: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = [
            sys.executable,
            "-m",
            "videosr",
            "train",
            str(ROOT / "configs" / "quality-x4.toml"),
            "--set",
            f"out_dir={d}",
            "--set",
            f"optim.steps={steps}",
            "--set",
            "val.every=0",
            "--set",
            "ckpt.every=100000",
            "--set",
            f'model.kwargs.flow="{flow}"',
            "--set",
            f"data.root={ROOT / 'datasets' / 'vsr'}",
        ]
        subprocess.run(cmd + ["--set", "optim.steps=20"], check=True, capture_output=True)  # warm caches
        t0 = time.perf_counter()
        subprocess.run(cmd + ["--set", f"out_dir={d}/timed"], check=True, capture_output=True)
        return steps / (time.perf_counter() - t0)  # includes start-up: a few seconds


def infer_ms(flow: str) -> float:
    from videosr._alloc import keep_freed_memory
    from videosr.engine import Engine
    from videosr.models import create_model

    keep_freed_memory()
    torch.set_num_threads(2)
    m = Engine(create_model("quality-x4", pretrained=False, flow=flow), clamp=False).model
    x = torch.rand(1, 10, 3, 270, 480)
    with torch.inference_mode():
        m(x)
        t0 = time.perf_counter()
        m(x)
        m(x)
    return (time.perf_counter() - t0) / 20 * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learned-log", required=True)
    ap.add_argument("--classical-log", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    lv, cv = val_rows(a.learned_log), val_rows(a.classical_log)
    common = sorted(set(lv) & set(cv))
    res = {
        "benchmark": "flow_compare",
        "model": "quality-x4",
        "config": "configs/quality-x4.toml",
        "val": [
            {"step": s, "learned": lv[s], "classical": cv[s], "classical_minus_learned": round(cv[s] - lv[s], 4)}
            for s in common
        ],
    }
    res["train_steps_per_s"] = {f: round(train_speed(f, a.steps), 3) for f in ("learned", "classical")}
    res["infer_ms_per_frame"] = {f: round(min(infer_ms(f) for _ in range(2)), 1) for f in ("learned", "classical")}
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
