"""Do the video models use their neighbouring frames? Vid4 x4 PSNR-Y (BI, or --degradation BD) three ways:

* ``video``: as `videosr eval` runs it (the engine over the whole clip);
* ``zero_flow`` (recurrent models): the same, with every estimated flow replaced by zero (no alignment);
* ``single_frame``: every frame upscaled alone (a clip of one frame: a sliding-window model sees the
  frame itself as its neighbours, a recurrent model starts from a zero hidden state).

If ``video`` is not above ``single_frame``, the model gains nothing from time; if ``zero_flow`` equals
``video``, its alignment does nothing. Same protocol as `videosr eval` (MATLAB bicubic LR, 8-bit output,
Y channel, no border crop, mean over frames then clips; fp32 inference).

    .venv/bin/python benchmarks/temporal_use.py --model fast-x4 --model quality-x4 \
        --json benchmarks/results/temporal_use.json [--update: replace only these models' rows]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from videosr.engine import run_clip
from videosr.eval.degrade import LRRecipe, make_lr, quantize
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.models.resolve import load_model

VID4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "Vid4" / "GT"


class _ZeroFlow(torch.nn.Module):
    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    def forward(self, ref: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
        return ref.new_zeros(ref.shape[0], 2, -(-ref.shape[-2] // self.down), -(-ref.shape[-1] // self.down))


def score(net, clips, mode: str) -> dict:
    per = {}
    for name, gt, lr in clips:
        with torch.inference_mode():
            if mode == "single_frame":
                out = torch.cat([run_clip(net, lr[i : i + 1], precision="fp32") for i in range(len(lr))])
            else:
                out = run_clip(net, lr, precision="fp32")
        per[name] = float(psnr(quantize(out.float().clamp(0, 1)), gt).mean())
    return {"clips": per, "mean": sum(per.values()) / len(per)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="registered name or training checkpoint")
    ap.add_argument("--data", default=str(VID4))
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--degradation", default="BI", choices=["BI", "BD"])
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--update", action="store_true", help="keep the --json file's rows of other models (same data and degradation)"
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    items, _ = find_clips(a.data)
    clips = []
    for c in items:
        gt = load_clip(c, a.max_frames)
        gt = gt[..., : gt.shape[-2] // 4 * 4, : gt.shape[-1] // 4 * 4]
        clips.append((c.name, gt, make_lr(gt, 4, LRRecipe(a.degradation), c.name)))
    results = []
    for name in a.model:
        net = load_model(name, 4)
        row = {"model": name}
        if getattr(net, "train_step", None) is not None:  # a training checkpoint: say what it is
            row["checkpoint"] = {"step": net.train_step, "flow": type(getattr(net, "flow", None)).__name__}
        t0 = time.perf_counter()
        row["video"] = score(net, clips, "video")
        if hasattr(net, "flow"):
            real = net.flow
            net.flow = _ZeroFlow(net.down)
            row["zero_flow"] = score(net, clips, "video")
            net.flow = real
        row["single_frame"] = score(net, clips, "single_frame")
        row["gain_from_time_db"] = round(row["video"]["mean"] - row["single_frame"]["mean"], 4)
        if "zero_flow" in row:
            row["gain_from_alignment_db"] = round(row["video"]["mean"] - row["zero_flow"]["mean"], 4)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: v.get("mean", v) if isinstance(v, dict) else v for k, v in row.items()}), flush=True)
        results.append(row)
    out = {
        "benchmark": "temporal_use",
        "data": a.data,
        "scale": 4,
        "degradation": a.degradation,
        "max_frames": a.max_frames,
        "models": results,
    }
    if a.json and a.update and Path(a.json).exists():
        old = json.loads(Path(a.json).read_text())
        same = {k: old.get(k) for k in ("data", "degradation", "max_frames")}
        if same != {"data": a.data, "degradation": a.degradation, "max_frames": a.max_frames}:
            raise SystemExit(f"--update: {a.json} was measured with {same}; rerun all its models instead")
        fresh = {r["model"]: r for r in results}  # replace these models' rows in place, append the others
        out["models"] = [fresh.pop(r["model"], r) for r in old["models"]] + list(fresh.values())
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
