"""`videosr batch INPUTS... --out-dir DIR`: many videos on Ray (:mod:`videosr.batch`); also the Ray options
`videosr upscale` takes (``--workers``, ``--ray-address``, ...: :mod:`videosr.distributed`)."""

from __future__ import annotations

import json
import sys

from ..errors import Interrupted
from ._common import add_encoder_args, add_model_args, add_ray_args, parse_tile, sigterm_as_interrupt


def register(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="upscale many videos (files, folders, globs) on Ray, one output each",
        description="Upscale every INPUT (video files; folders: the videos in them; globs) into "
        "--out-dir, on a local Ray runtime (--workers N) or a cluster (--ray-address). "
        "Outputs already there are skipped, interrupted ones resumed; a file that fails "
        "is reported and the others go on. Exit 0 when every file is done, 1 when some "
        "failed.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders of videos, or globs ('clips/*.mkv')"
    )
    p.add_argument("--out-dir", required=True, metavar="DIR", help="where the outputs go (created if missing)")
    p.add_argument(
        "--ext",
        default=None,
        metavar="EXT",
        help="output container: mp4, mkv, mov or webm (default: the input's where it is one of those, else mkv)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="files in progress at once (default: as many as there are task slots, at most 8)",
    )
    p.add_argument("--scale", type=int, default=None, help="2, 3 or 4 (default: the model's, else 4)")
    p.add_argument(
        "--model",
        default="auto",
        help="registered model name (see `videosr models`), a training checkpoint path, or auto (default): "
        "chosen for each input as `videosr upscale` chooses",
    )
    p.add_argument(
        "--quality",
        default="auto",
        choices=["auto", "fast", "best"],
        help="with --model auto: auto (default), fast or best, as for `videosr upscale`",
    )
    add_model_args(p)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="auto (default): bf16 where this machine's CPU has AMX and the model allows it, else fp32 "
        "(the workers run what is chosen here); int8: the conv trunk in ONNX Runtime int8, for models "
        "measured within 0.1 dB of fp32 on Vid4",
    )
    p.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnxruntime"],
        help="inference backend (onnxruntime needs the videosr[onnx] extra; not for bicubic, lanczos, "
        "nor the classical-flow models)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model in the workers: faster per frame once compiled, but a compilation "
        "takes seconds to minutes: for long videos",
    )
    add_encoder_args(p)
    p.add_argument(
        "--segment",
        type=int,
        default=None,
        metavar="FRAMES",
        help="frames per segment, the unit of a Ray task and of resuming (default: about 4 s of video, "
        "a multiple of the chunk)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo outputs that are already there")
    add_ray_args(p, batch=True)
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print the results as JSON (stdout) instead of a table")
    p.set_defaults(handler=run)


def run(args) -> int:
    from .. import distributed
    from ..batch import batch, table

    distributed.import_ray()
    tile = parse_tile(args.tile) if args.tile is not None else None
    options = dict(
        scale=args.scale,
        model=args.model,
        quality=args.quality,
        weights=args.weights,
        tile=tile,
        chunk=args.chunk,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        compile=args.compile,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        pix_fmt=args.pix_fmt,
        segment=args.segment,
    )
    try:
        with sigterm_as_interrupt():
            results = batch(
                args.inputs,
                args.out_dir,
                ext=args.ext,
                jobs=args.jobs,
                overwrite=args.overwrite,
                workers=args.workers,
                address=args.ray_address,
                cpus_per_worker=args.worker_cpus,
                ship_input=args.ship_input,
                progress=not args.quiet and not args.json,
                **options,
            )
    except Interrupted as e:
        print(f"videosr: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(results, indent=1))
    elif not args.quiet:
        print(table(results))
    else:
        for r in results:
            if r["status"] == "failed":
                print(f"videosr: error: {r['error']}", file=sys.stderr)
    if any(r["status"] == "interrupted" for r in results):
        return Interrupted.exit_code
    return 1 if any(r["status"] == "failed" for r in results) else 0
