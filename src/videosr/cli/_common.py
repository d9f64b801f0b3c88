"""What `videosr upscale` and `videosr batch` share: the --tile value, SIGTERM as Ctrl-C, and the Ray options
(the ``[ray]`` extra, :mod:`videosr.distributed`)."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading

from ..errors import UsageError


def parse_tile(value: str) -> int | str:
    """The --tile value: a number of pixels or 'auto'."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--tile takes a number of pixels or 'auto', not {value!r}") from None
    return n


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM behaves like Ctrl-C while the job runs (state kept, one line, exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def add_model_args(p) -> None:
    """The model options `upscale` and `batch` share: --weights, --tile, --chunk, --device."""
    p.add_argument("--weights", default=None, help="third-party weights for --model (.pth or .safetensors)")
    p.add_argument("--tile", default=None, help="LR tile size in pixels, or 'auto' (default: whole frames)")
    p.add_argument("--chunk", type=int, default=None, help="frames per temporal chunk (default: by model)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def add_encoder_args(p) -> None:
    """The encoder options of `upscale` and `batch`: --codec, --crf, --preset, --pix-fmt."""
    p.add_argument("--codec", default="libx264", help="libx264, libx265, libsvtav1, libvpx-vp9 or ffv1")
    p.add_argument(
        "--crf",
        type=int,
        default=None,
        help="quality, lower is better: libx264/libx265 0..51 (default 18/20), libsvtav1 1..63 (30), "
        "libvpx-vp9 0..63 (31); ffv1 is lossless",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="speed: libx264/libx265 ultrafast..placebo (default medium), libsvtav1 0..13 (8), "
        "libvpx-vp9 0..8 (4); lower numbers are slower",
    )
    p.add_argument(
        "--pix-fmt",
        default=None,
        metavar="FMT",
        help="the output's pixel format, e.g. yuv444p (default: yuv420p; for >8-bit sources the codec's "
        "10/12-bit 4:2:0 where it has one; ffv1: the source's)",
    )


def add_ray_args(p, batch: bool = False) -> None:
    """The options that run a job on Ray (the ``[ray]`` extra)."""
    g = p.add_argument_group("distributed (Ray; pip install -e '.[ray]'; see docs/distributed.md)")
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help=(
            "tasks run at once: on a local Ray runtime started in this process (each gets cores/N CPUs, "
            "its torch threads), or at most N at once on --ray-address"
            + (
                ""
                if batch
                else "; the video is cut into segments made in parallel, the output is "
                "pixel-identical to a run without --workers"
            )
        ),
    )
    g.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="an existing Ray cluster (host:port of `ray start --head`, ray://host:10001, or auto)",
    )
    g.add_argument(
        "--worker-cpus",
        type=int,
        default=None,
        metavar="N",
        help="CPUs (torch threads) per task (default: cores/--workers locally, 1 on a cluster)",
    )
    g.add_argument(
        "--ship-input",
        action="store_true",
        help="send the input file to the workers through Ray's object store (when the nodes do not "
        "share storage that holds it at the same path)",
    )


def distributed_upscale(args):
    """``videosr.distributed.upscale`` with the Ray options bound, when ``--workers``/``--ray-address`` was
    given; else None (a plain single-process run). Without the ``[ray]`` extra: UsageError (exit 2)."""
    workers, address = getattr(args, "workers", None), getattr(args, "ray_address", None)
    if workers is None and address is None:
        if getattr(args, "worker_cpus", None) is not None or getattr(args, "ship_input", False):
            raise UsageError("--worker-cpus and --ship-input go with --workers N or --ray-address ADDR")
        return None
    from .. import distributed

    distributed.import_ray()
    return functools.partial(
        distributed.upscale,
        workers=workers,
        address=address,
        cpus_per_worker=args.worker_cpus,
        ship_input=args.ship_input,
    )
