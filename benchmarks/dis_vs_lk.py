"""Which aligner for the recurrent models: OpenCV's DIS optical flow (presets ultrafast / fast / medium) or the
hand-written Lucas-Kanade (`videosr.flow.estimate_flow`, the "classical" flow)? Issue 14, item 2.

For each aligner, on the same machine in one run:

* **known shifts**: `flow_probe.probe` (a Vid4 calendar frame moved by known HR shifts, made LR by BI): the
  error of the flow's median against the truth, in LR pixels;
* **real motion**: each Vid4 clip's BI LR frames, frame t+1 warped onto frame t by the flow (`flow_warp`):
  PSNR of the warped frame against frame t (the photometric fit the models' alignment relies on), mean over
  the pairs of the first ``--pairs`` frames of each clip, next to no warp at all;
* **cost**: milliseconds per frame pair at 480x270 (the shipped sample clip, resized), one thread, median;
* **Vid4 dB**: `videosr eval`'s protocol (`eval.protocol.evaluate`, BI x4, all frames, fp32) of quality-x4-full
  with its aligner swapped at inference (its weights were trained with Lucas-Kanade: a lower bound for DIS
  until a model is trained with it).

    .venv/bin/python benchmarks/dis_vs_lk.py --json benchmarks/results/dis_vs_lk.json

Needs ../shared/data/Vid4 and opencv-python-headless.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import av
import torch

from videosr.bench import machine
from videosr.eval.degrade import LRRecipe, make_lr
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.flow import DIS_PRESETS, flow_warp
from videosr.models import recurrent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_probe import probe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VID4 = ROOT.parent / "shared" / "data" / "Vid4" / "GT"
SAMPLE = ROOT / "src" / "videosr" / "assets" / "sample.mp4"


def aligners() -> dict[str, torch.nn.Module]:
    """name -> flow module at the LR grid (down=1)."""
    out = {"lk": recurrent.ClassicalFlow(down=1)}
    for p in DIS_PRESETS:
        out[f"dis-{p}"] = recurrent.DISFlow(down=1, dis_preset=p)
    return out


def sample_pair(width: int = 480, height: int = 270) -> tuple[torch.Tensor, torch.Tensor]:
    frames = []
    with av.open(str(SAMPLE)) as c:
        for f in c.decode(video=0):
            a = f.reformat(width, height, format="rgb24").to_ndarray()
            frames.append(torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255)
            if len(frames) == 2:
                break
    return frames[0], frames[1]


def warp_psnr(flow: torch.nn.Module | None, lr: torch.Tensor) -> float:
    """Mean PSNR (RGB, 0..1) of frame t+1 warped onto frame t over the pairs of ``lr`` (T, 3, h, w)."""
    vals = []
    for t in range(lr.shape[0] - 1):
        ref, sup = lr[t : t + 1], lr[t + 1 : t + 2]
        warped = sup if flow is None else flow_warp(sup, flow(ref, sup))
        vals.append(float(psnr(warped.clamp(0, 1), ref, 4)))  # 4 LR pixels of border: out-of-frame motion
    return statistics.fmean(vals)


def vid4_db(name: str, preset: str | None, data: Path) -> float:
    """quality-x4-full's Vid4 BI x4 PSNR-Y (eval protocol) with its aligner: LK (preset None) or DIS."""
    from videosr.eval.protocol import evaluate

    real = recurrent.FLOWS["classical"]
    if preset is not None:
        recurrent.FLOWS["classical"] = lambda down=2, **kw: recurrent.DISFlow(down=down, dis_preset=preset)
    try:
        r = evaluate([name], str(data), scale=4, degradation="BI", progress=False, precision="fp32")
    finally:
        recurrent.FLOWS["classical"] = real
    return round(r[0]["mean"]["psnr_y"], 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(VID4))
    ap.add_argument("--pairs", type=int, default=10, help="frames per clip for the real-motion fit")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="quality-x4-full", help="a classical-flow model to swap the aligner of")
    ap.add_argument("--no-eval", action="store_true", help="skip the Vid4 evaluations (the slow part)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = Path(a.data)
    clips, _ = find_clips(data)
    hr0 = load_clip(next(c for c in clips if c.name == "calendar"), 1)[0]
    lrs = {c.name: make_lr(load_clip(c, a.pairs), 4, LRRecipe.make("BI"), c.name) for c in clips}
    ref, sup = sample_pair()
    rows = []
    with torch.no_grad():
        for name, flow in aligners().items():
            shifts = probe(flow, 1, hr0)
            times = []
            for _ in range(a.rounds):
                t = time.perf_counter()
                flow(ref, sup)
                times.append(1000 * (time.perf_counter() - t))
            fit = {c: round(warp_psnr(flow, lr), 3) for c, lr in lrs.items()}
            row = {
                "aligner": name,
                "shift_error_lr_px": round(statistics.fmean(r["error"] for r in shifts), 4),
                "shifts": shifts,
                "warp_psnr": fit,
                "warp_psnr_mean": round(statistics.fmean(fit.values()), 3),
                "ms_per_pair_480x270": round(statistics.median(times), 2),
                "ms_rounds": [round(t, 2) for t in times],
            }
            if not a.no_eval:
                row["vid4_psnr_y_" + a.model] = vid4_db(a.model, None if name == "lk" else name[4:], data)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("shifts", "ms_rounds")}), flush=True)
        still = {c: round(warp_psnr(None, lr), 3) for c, lr in lrs.items()}
    out = {
        "benchmark": "dis_vs_lk",
        "data": os.path.relpath(data, ROOT),
        "pairs_per_clip": a.pairs - 1,
        "threads": 1,
        "no_warp_psnr": still,
        "no_warp_psnr_mean": round(statistics.fmean(still.values()), 3),
        "aligners": rows,
        "machine": machine(),
        "load_avg": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
