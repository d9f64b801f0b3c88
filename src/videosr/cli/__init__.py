"""Command-line interface: a thin layer over the library API.

Each sub-command lives in its own module with ``register(subparsers)``; the module's handler turns the
parsed arguments into explicit keyword arguments for a library function (no argparse namespace goes
below this package). Exceptions map to exit codes here.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .._alloc import keep_freed_memory
from ..errors import Interrupted, VideosrError
from . import bench, eval, export, models, train, upscale  # noqa: A004 - sub-command modules

COMMANDS = (upscale, eval, models, bench, export, train)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="videosr", description="Deep-learning video super-resolution.")
    p.add_argument("--version", action="version", version=f"videosr {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("VIDEOSR_DEBUG"))
    keep_freed_memory()  # large per-frame tensors reuse heap memory instead of page-faulting it in again
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("videosr: interrupted", file=sys.stderr)
        return Interrupted.exit_code
    except VideosrError as e:
        if debug:
            traceback.print_exc()
        print(f"videosr: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 1
    except Exception as e:  # noqa: BLE001 - an unexpected failure still gets one line and a code
        if debug:
            traceback.print_exc()
        else:
            msg = str(e).splitlines()[0] if str(e) else ""
            print(f"videosr: internal error: {type(e).__name__}: {msg} (rerun with --debug for a traceback)",
                  file=sys.stderr)
        return 70
