"""Write ``src/videosr/weights/model_stats.json``: parameters and GFLOPs per output frame (480x270 input) of
every registered model, the figures `videosr models` prints (package data: counting FLOPs takes a minute and
gigabytes of memory for the models whose classical flow cannot run on the meta device, so the CLI reads them).

Each row keeps the variant's architecture, scale and hyperparameters: `videosr models` uses a row only while
they still match the registered variant (else it shows "-"), and tests/test_first_hour.py recounts the models
that count on the meta device and compares. Rerun after adding or changing a variant::

    .venv/bin/python benchmarks/model_flops.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "videosr" / "weights" / "model_stats.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="recount these models, keep the other rows")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from videosr.models import list_models
    from videosr.models.catalog import STATS_H, STATS_T, STATS_W, stats_row

    out = Path(a.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    rows = dict(old.get("models", {})) if a.only else {}
    for v in list_models():
        if a.only and v.name not in a.only:
            continue
        t0 = time.perf_counter()
        rows[v.name] = stats_row(v, flops=True)
        print(
            f"{v.name}: {rows[v.name]['params']:,} params, {rows[v.name]['gflops_480x270']} GFLOPs/frame "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
    data = {
        "input": f"{STATS_W}x{STATS_H}",
        "frames": STATS_T,
        "torch": torch.__version__,
        "note": "written by benchmarks/model_flops.py; GFLOPs per output frame (convs and matmuls, "
        "2 FLOPs per multiply-add, torch.utils.flop_counter)",
        "models": {k: rows[k] for k in sorted(rows)},
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
