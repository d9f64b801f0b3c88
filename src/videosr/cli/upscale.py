"""`videosr upscale INPUT OUTPUT`: the CLI face of :func:`videosr.pipeline.upscale`."""

from __future__ import annotations

import json
import os
import sys

from ..errors import Interrupted, UsageError
from . import _live
from ._common import (
    add_encoder_args,
    add_model_args,
    add_ray_args,
    distributed_upscale,
    parse_tile,
    sigterm_as_interrupt,
)


def register(sub) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale a video (audio, subtitles, timing and colour kept)",
        description="Upscale INPUT (video file, image folder, or - for y4m on stdin) to "
        "OUTPUT (.mp4/.mkv/.mov/.webm/.y4m, a folder of PNGs with --format png, "
        "/dev/null to discard, or - for y4m on stdout).",
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a video file (anything FFmpeg decodes), a folder of images (png/jpg/bmp/tif/webp, in natural "
        "order; see --fps), or - for y4m on stdin",
    )
    p.add_argument(
        "output",
        metavar="OUTPUT",
        help="a video file (.mp4/.mkv/.mov/.webm/.y4m: audio, subtitles, timing and colour kept), a folder "
        "of PNGs (--format png or a trailing /; no audio), /dev/null to discard, or - for y4m on "
        "stdout",
    )
    p.add_argument("--scale", type=int, default=None, help="2, 3 or 4 (default: the model's, else 4)")
    p.add_argument(
        "--model",
        default="auto",
        help="registered model name (see `videosr models`), a training checkpoint path, or auto "
        "(default): the best shipped model for this input (clean or compressed, measured from "
        "its bitstream) among those running at >= 0.25x a plain FFmpeg upscale on this CPU",
    )
    p.add_argument(
        "--quality",
        default="auto",
        choices=["auto", "fast", "best"],
        help="with --model auto: auto (default: the speed bar above), fast (the fastest trained "
        "model) or best (the best measured for this input, however slow)",
    )
    add_model_args(p)
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="auto (default): bf16 where the CPU has AMX and the model allows it, else fp32; int8: "
        "the conv trunk in ONNX Runtime int8, for models measured within 0.1 dB of fp32 on Vid4",
    )
    p.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnxruntime"],
        help="inference backend (onnxruntime needs the videosr[onnx] extra and serves the models with an ONNX "
        "graph: not bicubic, lanczos, nor the classical-flow models; see README)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: faster per frame once compiled, but each new clip shape pays a "
        "compilation (seconds to minutes): for long videos",
    )
    add_encoder_args(p)
    p.add_argument(
        "--format",
        choices=["png"],
        default=None,
        help="write OUTPUT as a folder of PNGs (needed unless OUTPUT ends with / or is a folder videosr wrote)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUTPUT if it is a regular file or a folder videosr wrote (never the input, another "
        "folder or a device), and discard stale resume state of OUTPUT",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run an interruption (Ctrl-C, SIGTERM, crash, power loss) left in "
        ".OUTPUT.videosr-resume/ beside OUTPUT, or start a resumable run",
    )
    p.add_argument(
        "--segment",
        type=int,
        default=None,
        metavar="FRAMES",
        help="frames per resumable segment (default: about 4 s of video, a multiple of the chunk)",
    )
    p.add_argument(
        "--fps",
        default=None,
        metavar="RATE",
        help="frame rate of an image-folder INPUT: 24, 25 (default), 29.97, 30000/1001, ... (video "
        "inputs keep their own timing)",
    )

    add_ray_args(p)  # --workers N / --ray-address ADDR: videosr.distributed (Ray)
    _live.add_live_args(p)  # --live, --max-latency MS, --timeout S: videosr.live
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    p.set_defaults(handler=run)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def run(args) -> int:
    from ..pipeline import upscale

    _live.check_args(args)
    if args.live:
        if args.output == "-" and _is_terminal(sys.stdout):
            raise UsageError(
                "OUTPUT - writes y4m video to stdout, which is a terminal here: pipe it into a program "
                "(videosr upscale --live IN - | ffplay -) or name a udp:// output"
            )
        return _live.run(args)
    upscale = distributed_upscale(args) or upscale  # --workers / --ray-address: the same job on Ray

    if args.output == "-" and _is_terminal(sys.stdout):
        raise UsageError(
            "OUTPUT - writes y4m video to stdout, which is a terminal here: pipe it into a program "
            "(videosr upscale IN - | ffmpeg -i - out.mp4) or name an output file"
        )
    tile = parse_tile(args.tile) if args.tile is not None else None
    try:
        with sigterm_as_interrupt():
            summary = upscale(
                args.input,
                args.output,
                scale=args.scale,
                model=args.model,
                weights=args.weights,
                tile=tile,
                device=args.device,
                precision=args.precision,
                chunk=args.chunk,
                codec=args.codec,
                crf=args.crf,
                preset=args.preset,
                pix_fmt=args.pix_fmt,
                overwrite=args.overwrite,
                progress=not args.quiet and not args.json,
                backend=args.backend,
                resume=args.resume,
                segment=args.segment,
                compile=args.compile,
                format=args.format,
                quality=args.quality,
                **({"fps": args.fps} if args.fps is not None else {}),
            )
    except Interrupted as e:
        if getattr(e, "stuck", False):
            # A model call is still running in a worker thread: end now rather than wait for it.
            print(f"videosr: {e}", file=sys.stderr, flush=True)
            os._exit(e.exit_code)
        print(f"videosr: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(summary), file=sys.stderr if args.output == "-" else sys.stdout)
    elif not args.quiet:
        print(
            f"wrote {summary['output']}: {summary['frames']} frames x{summary['scale']} with "
            f"{summary['model']} in {summary['seconds']:.1f} s ({summary['fps']:.2f} fps)",
            file=sys.stderr,
        )
    return 0
