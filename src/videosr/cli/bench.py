"""`videosr bench`: per-stage and end-to-end upscaling speed against a no-network floor."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="time upscaling per stage and end to end against a no-network floor")
    p.add_argument("--model", action="append", default=None, help="model to time (repeatable; default fast-x4)")
    p.add_argument("--size", default="480x270", help="LR size WxH of the generated clip")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--frames", type=int, default=72)
    p.add_argument("--input", default=None, help="time this clip instead of a generated one")
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"])
    p.add_argument("--compile", action="store_true", help="torch.compile the models (as upscale --compile)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="rounds of floor + every model end to end; medians reported (default 1)",
    )
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..bench import bench, parse_size

    result = bench(
        args.model or ["fast-x4"],
        size=parse_size(args.size),
        scale=args.scale,
        frames=args.frames,
        crf=args.crf,
        preset=args.preset,
        device=args.device,
        precision=args.precision,
        clip=args.input,
        repeat=args.repeat,
        compile=args.compile,
        progress=lambda m: print(f"bench: {m}", file=sys.stderr),
    )
    med = f", median of {args.repeat} rounds" if args.repeat > 1 else ""
    print(
        f"floor (decode + FFmpeg lanczos + encode): {result['floor_fps']:.1f} fps "
        f"[{result['size']} x{result['scale']}, {result['frames']} frames{med}]"
    )
    head = ("model", "precision", "path", "decode fps", "model fps", "ms/frame", "encode fps", "total fps", "x floor")
    rows = [head] + [
        (
            r["model"],
            r["precision"],
            r["path"],
            r["decode_fps"],
            r["model_fps"],
            r["model_ms_per_frame"],
            r["encode_fps"],
            r["total_fps"],
            r["fraction_of_floor"],
        )
        for r in result["models"]
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    untrained = [r["model"] for r in result["models"] if not r.get("trained", True)]
    if untrained:
        print(
            f"note: {', '.join(untrained)} ship no trained weights: timed with random ones, for speed only "
            "(`videosr upscale` and `eval` refuse them without --weights)"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0
