"""Does a recurrent model's flow estimate motion? Known global shifts, the flow read back.

A Vid4 GT frame (default: calendar, frame 0) is cropped twice, the second crop moved by (dx, dy) HR pixels;
both crops are made LR with MATLAB bicubic x1/4 (BI), so the true motion is (dx, dy) / 4 LR pixels. The
model's flow module (`net.flow(ref, sup)`, in pixels of its feature grid, LR / `down`) is run on the pair
and its median over the interior is compared with the truth (flow_warp(sup, flow) ~ ref, so the expected
flow is minus the shift). A flow that reads the same whatever the shift has learned no motion. The
parameter-free classical flow is probed the same way as a reference.

    .venv/bin/python benchmarks/flow_probe.py --model quality-x4 [--model runs/X/last.pt ...] \
        --json benchmarks/results/flow_probe.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from videosr.eval.protocol import find_clips, load_clip
from videosr.models.recurrent import ClassicalFlow
from videosr.models.resolve import load_model
from videosr.resample import imresize

VID4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "Vid4" / "GT"
SHIFTS = [(0, 0), (2, 0), (4, 0), (8, 0), (0, 6), (16, 8), (-12, 4)]  # HR pixels


def probe(flow: torch.nn.Module, down: int, hr: torch.Tensor) -> list[dict]:
    """(3, H, W) HR frame -> one row per shift: truth and the flow's median, in feature-grid pixels."""
    m = 24  # HR margin, > the largest shift
    h, w = hr.shape[-2:]
    rows = []
    for dx, dy in SHIFTS:
        ref = hr[:, m : h - m, m : w - m]
        sup = hr[:, m + dy : h - m + dy, m + dx : w - m + dx]  # sup(x) = ref(x + shift)
        lr_ref, lr_sup = imresize(ref[None], 0.25), imresize(sup[None], 0.25)  # (1, 3, h, w) each
        with torch.no_grad():
            f = flow(lr_ref, lr_sup)[0]  # (2, h', w')
        inner = f[:, 2:-2, 2:-2]
        want = (-dx / 4 / down, -dy / 4 / down)
        got = (float(inner[0].median()), float(inner[1].median()))
        rows.append(
            {
                "shift_hr": [dx, dy],
                "expected": [round(v, 4) for v in want],
                "median": [round(v, 4) for v in got],
                "error": round(((got[0] - want[0]) ** 2 + (got[1] - want[1]) ** 2) ** 0.5, 4),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="registered recurrent model or checkpoint")
    ap.add_argument("--data", default=str(VID4))
    ap.add_argument("--clip", default="calendar")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    clips, _ = find_clips(a.data)
    hr = load_clip(next(c for c in clips if c.name == a.clip), 1)[0]  # (3, H, W)
    root = Path(__file__).resolve().parents[1]
    out = {"data": f"{os.path.relpath(a.data, root)}/{a.clip} frame 0", "shifts_hr": SHIFTS, "models": []}
    for name in a.model:
        net = load_model(name, None)
        if not hasattr(net, "flow"):
            raise SystemExit(f"{name} has no flow module (not a recurrent model)")
        kind = type(net.flow).__name__
        rows = probe(net.flow, net.down, hr)
        out["models"].append(
            {
                "model": name,
                "flow": kind,
                "down": net.down,
                "rows": rows,
                "mean_error": round(sum(r["error"] for r in rows) / len(rows), 4),
            }
        )
        print(f"{name} ({kind}, down {net.down}): mean error {out['models'][-1]['mean_error']:.3f} grid px")
        for r in rows:
            print(f"  shift {r['shift_hr']} HR px: expected {r['expected']}, median {r['median']}")
    if any(m["flow"] == "ClassicalFlow" for m in out["models"]):
        return _write(out, a.json)
    rows = probe(ClassicalFlow(down=2), 2, hr)
    out["models"].append(
        {
            "model": "classical flow (reference)",
            "flow": "ClassicalFlow",
            "down": 2,
            "rows": rows,
            "mean_error": round(sum(r["error"] for r in rows) / len(rows), 4),
        }
    )
    print(f"classical (down 2): mean error {out['models'][-1]['mean_error']:.3f} grid px")
    _write(out, a.json)


def _write(out: dict, path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
