"""`videosr upscale --live`: its options, what they may not be combined with, and its summary
(the CLI face of :func:`videosr.live.live_upscale`)."""

from __future__ import annotations

import json
import os
import sys

from ..errors import UsageError


def add_live_args(p) -> None:
    g = p.add_argument_group("live (network streams and capture devices; see docs/live.md)")
    g.add_argument(
        "--live",
        action="store_true",
        help="low-latency upscaling of a live INPUT (udp://, rtp://, rtsp://, tcp://, /dev/videoN, or a "
        "file played at its own rate) to a live OUTPUT (udp://HOST:PORT MPEG-TS, - for y4m on "
        "stdout, /dev/null) with a causal model, frame by frame, until the source ends or Ctrl-C",
    )
    g.add_argument(
        "--max-latency",
        type=float,
        default=None,
        metavar="MS",
        help="with --live: milliseconds from a frame's arrival to its being sent (default 200); frames "
        "the model cannot make in time are passed through by bicubic or dropped (counted)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="with --live: seconds to wait for the first frame (then exit 3) and of silence that ends "
        "the stream (default 10)",
    )


# options that make no sense for a live run: (attribute, its default, flag, why)
_NOT_LIVE = (
    ("resume", False, "--resume", "a live run keeps no resume state"),
    ("overwrite", False, "--overwrite", "a live run writes a stream, never a file"),
    ("workers", None, "--workers", "a live stream is upscaled frame by frame in one process"),
    ("ray_address", None, "--ray-address", "a live stream is upscaled frame by frame in one process"),
    ("worker_cpus", None, "--worker-cpus", "a live stream is upscaled frame by frame in one process"),
    ("ship_input", False, "--ship-input", "a live stream is upscaled frame by frame in one process"),
    ("format", None, "--format", "a live run writes a stream, not PNGs"),
    ("segment", None, "--segment", "a live run keeps no resume segments"),
    ("fps", None, "--fps", "a live source has its own timing"),
    ("tile", None, "--tile", "a live run upscales whole frames"),
    ("chunk", None, "--chunk", "a live run upscales one frame at a time"),
    ("compile", False, "--compile", "compiling would stall the stream for seconds to minutes"),
    ("pix_fmt", None, "--pix-fmt", "a live output is 8-bit 4:2:0"),
    ("quality", "auto", "--quality", "--live takes the best causal model with weights (or name one with --model)"),
)


def check_args(args) -> None:
    """Refuse, with one clear line (exit 2), what a live run cannot do, and live streams without --live."""
    from ..io.live import is_live_sink, is_live_source

    if not args.live:
        for flag, value in (("--max-latency", args.max_latency), ("--timeout", args.timeout)):
            if value is not None:
                raise UsageError(f"{flag} goes with --live")
        if is_live_source(args.input):
            raise UsageError(
                f"{args.input} is a live source: add --live to upscale it as it arrives "
                f"(OUTPUT udp://HOST:PORT, - or /dev/null)"
            )
        if is_live_sink(args.output):
            raise UsageError(
                f"{args.output} is a live output: add --live (INPUT a live source or a file played at its own rate)"
            )
        return
    for attr, default, flag, why in _NOT_LIVE:
        if getattr(args, attr, default) != default:
            raise UsageError(f"{flag} cannot be used with --live: {why}")
    if args.backend != "torch":
        raise UsageError(
            "--backend onnxruntime cannot be used with --live: the live model streams its state frame by frame in torch"
        )


def run(args) -> int:
    """Run a live upscale; the summary goes to stderr (or as JSON with --json: to stdout, or stderr when stdout
    carries the video). Exit 0 when the source ended, 130 after Ctrl-C or SIGTERM."""
    from ..errors import Interrupted
    from ..live import DEFAULT_MAX_LATENCY_MS, DEFAULT_TIMEOUT_S, live_upscale, summary_line
    from ._common import sigterm_as_interrupt

    with sigterm_as_interrupt():
        summary = live_upscale(
            args.input,
            args.output,
            scale=args.scale,
            model=args.model,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            max_latency=DEFAULT_MAX_LATENCY_MS if args.max_latency is None else args.max_latency,
            timeout=DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout,
            codec=args.codec,
            crf=args.crf,
            preset=args.preset,
            progress=not args.quiet and not args.json,
        )
    code = Interrupted.exit_code if summary["ended"] == "interrupted" else 0
    if args.json:
        print(json.dumps(summary), file=sys.stderr if args.output == "-" else sys.stdout, flush=True)
    elif not args.quiet:
        print(summary_line(summary), file=sys.stderr, flush=True)
    if summary["stuck"]:  # a thread is still inside the source or the sink: end now rather than wait for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
