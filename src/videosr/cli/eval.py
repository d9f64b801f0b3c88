"""`videosr eval`: PSNR-Y / SSIM-Y / tOF of models on a test set, the protocol of SR papers."""

from __future__ import annotations

import json
import os
import sys
import time

from ..errors import OutputError, UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="measure models on a test set (PSNR-Y, SSIM-Y, tOF)",
        description="Evaluate models with the SR protocol: LR made from GT (BI: MATLAB bicubic, BD: Gaussian "
        "blur + subsample) or read from --lr, output rounded to 8 bits, PSNR/SSIM on the Y "
        "channel, mean over frames then over clips. See docs/evaluation.md.",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME|PATH",
        help="registered model name (see `videosr models`) or training checkpoint; repeat to compare",
    )
    p.add_argument(
        "--weights",
        action="append",
        default=None,
        metavar="FILE",
        help="weights file for the --model in the same position (repeat once per --model)",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="folder of clips (sub-folders of frames), folder of images, or video file(s)",
    )
    p.add_argument(
        "--lr",
        default=None,
        metavar="DIR",
        help="LR inputs: a folder of the same structure as --data, "
        "paired by name (frames and clips must have the GT's names, an image may add x<scale>: babyx4.png); "
        "default: made from the GT with --degradation",
    )
    p.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4)")
    p.add_argument(
        "--degradation",
        default="BI",
        choices=["BI", "BD", "bi", "bd"],
        help="how LR is made from GT when --lr is not given (default BI)",
    )
    g = p.add_argument_group(
        "compressed LR",
        "make the LR as people have video: the degradation rounded to 8 bits, optional noise, "
        "then a codec round trip (yuv420p, 25 fps, one encoder thread: the same LR on every run)",
    )
    g.add_argument(
        "--lr-codec",
        default=None,
        metavar="CODEC",
        help="encode the LR with libx264, libx265 or libvpx-vp9 and decode it (needs --lr-crf)",
    )
    g.add_argument(
        "--lr-crf",
        default=None,
        metavar="N",
        help="the codec's CRF (x264/x265 0..51, vp9 0..63; higher: more compression)",
    )
    g.add_argument(
        "--lr-preset",
        default=None,
        metavar="P",
        help="x264/x265 preset (default medium for x264, fast for x265) or vp9 cpu-used 0..8 (default 4)",
    )
    g.add_argument(
        "--lr-noise",
        default=None,
        metavar="SIGMA",
        help="Gaussian noise of std SIGMA (8-bit levels, 0..255) on the LR before encoding, seeded per "
        "clip (low-light cameras); also works without --lr-codec",
    )
    g.add_argument(
        "--lr-cache",
        default=None,
        metavar="DIR",
        help="keep the LR made per clip and recipe in DIR and reuse it on later runs",
    )
    p.add_argument(
        "--crop-border",
        type=int,
        default=None,
        metavar="N",
        help="pixels ignored at each border (default: the scale for image sets, 0 for video sets)",
    )
    p.add_argument("--clip", action="append", default=None, metavar="NAME", help="only this clip (repeatable)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="first N frames of each clip")
    p.add_argument("--no-tof", action="store_true", help="skip tOF (optical flow on every frame pair)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    p.add_argument(
        "--save-images", default=None, metavar="DIR", help="write comparison crops and per-frame PSNR plots per clip"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch CPU threads (default 1: fastest for this workload on a shared machine; 0: torch's default)",
    )
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="inference precision (default fp32, the protocol's; bf16 or int8 to check a model's "
        "accuracy in bf16 or int8; auto: what `upscale` would use)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)


def _number(opt: str, value: str | None, kind):
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{opt} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None


def run(args) -> int:
    from ..eval.protocol import evaluate, to_json
    from ..eval.report import format_table

    t0 = time.perf_counter()
    lr_crf = _number("--lr-crf", args.lr_crf, int)
    lr_noise = _number("--lr-noise", args.lr_noise, float)
    results = evaluate(
        list(args.model),
        args.data,
        lr=args.lr,
        scale=args.scale,
        degradation=args.degradation.upper(),
        crop_border=args.crop_border,
        weights=list(args.weights) if args.weights else None,
        save_images=args.save_images,
        max_frames=args.max_frames,
        progress=not args.quiet,
        clips=list(args.clip) if args.clip else None,
        temporal=not args.no_tof,
        threads=args.threads or None,
        precision=args.precision,
        lr_codec=args.lr_codec,
        lr_crf=lr_crf,
        lr_preset=args.lr_preset,
        lr_noise=lr_noise,
        lr_cache=args.lr_cache,
    )
    sys.stdout.write(format_table(results))
    if args.json:
        try:
            d = os.path.dirname(os.path.abspath(args.json))
            os.makedirs(d, exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(to_json(results), f, indent=2, allow_nan=False)
                f.write("\n")
        except OSError as e:
            raise OutputError(f"cannot write {args.json}: {e.strerror or e}") from None
    if not args.quiet:
        total = time.perf_counter() - t0
        infer = sum(r["seconds"] for r in results)
        load = sum(r.get("load_seconds", 0.0) for r in results)
        metrics = sum(r.get("metric_seconds", 0.0) for r in results)
        print(
            f"eval took {total:.1f} s: model inference {infer:.1f} s, model load {load:.1f} s, metrics (PSNR, SSIM, "
            f"tOF) {metrics:.1f} s, the rest {max(0.0, total - infer - load - metrics):.1f} s (start-up, reading "
            "clips, making the LR, the GT's optical flow for tOF, images)",
            file=sys.stderr,
        )
    return 0
