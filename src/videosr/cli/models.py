"""`videosr models`: the registered models with scale, parameters, GFLOPs per 480x270 frame and Vid4 PSNR.

Parameters and GFLOPs come from the committed table ``weights/model_stats.json`` (counting FLOPs on every call
took 87 s of CPU and 2.8 GiB of peak RSS: benchmarks/results/peak_memory.json, ``models/before``): the command
costs little more than importing torch."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--no-flops", action="store_true", help="leave out the GFLOPs column")
    p.set_defaults(handler=run)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def run(args) -> int:
    from ..models.catalog import describe_models

    rows = describe_models(flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("name", "arch", "scale", "params", "GFLOPs/frame", "Vid4 PSNR-Y", "weights", "precision", "licence")
    table = [head] + [
        (
            r["name"],
            r["arch"],
            f"x{r['scale']}",
            f"{r['params']:,}",
            "-" if r["gflops_480x270"] is None else f"{r['gflops_480x270']:.1f}",
            "-" if r["vid4_psnr_y"] is None else f"{r['vid4_psnr_y']:.2f} {r['vid4_degradation']}",
            "shipped" if r["weights"] else "none",
            r["precision"],
            _short(r["license"]),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for k, row in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "\nGFLOPs: per output frame for a 480x270 input (convolutions and matmuls, 2 FLOPs per MAC), counted once "
        "by benchmarks/model_flops.py into videosr/weights/model_stats.json ('-': not counted for this variant)."
    )
    from ..engine import cpu_has_fast_bf16

    print(
        "precision: the default of --precision auto; bf16 (Vid4 within 0.05 dB of fp32) runs on CPUs with AMX "
        f"and on CUDA, fp32 elsewhere (this CPU: {'AMX, bf16' if cpu_has_fast_bf16() else 'no AMX, fp32'})."
    )
    return 0
