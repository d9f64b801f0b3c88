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
from . import batch, bench, eval, export, models, serve, train, upscale  # noqa: A004 - sub-command modules

COMMANDS = (upscale, batch, eval, models, bench, export, train, serve)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    p = argparse.ArgumentParser(prog="videosr", description="Deep-learning video super-resolution.")
    p.add_argument("--version", action="version", version=f"videosr {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    for sp in sub.choices.values():  # `videosr upscale ... --debug` works as well as `videosr --debug upscale ...`
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    return p


def _setup_warnings(quiet: bool, debug: bool) -> None:
    """Every warning once, on one line (``videosr: warning: ...``, no Python source line), none under
    ``--quiet``. videosr's own warnings are logged (logger ``videosr``) and also raised as Python warnings
    for library users: here only the log line is printed. Encoders' info chatter shows only with --debug."""
    import logging
    import warnings

    class _Stderr(logging.Handler):
        def emit(self, record):  # the sys.stderr of the moment (tests and callers redirect it)
            try:
                print(self.format(record), file=sys.stderr)
            except Exception:  # noqa: BLE001 - a warning must never fail the run
                pass

    log = logging.getLogger("videosr")
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("videosr: warning: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.ERROR if quiet else logging.WARNING)
    if debug:
        os.environ.setdefault("SVT_LOG", "3")  # SVT-AV1's info lines (the writer otherwise sets errors only)
        return  # Python's own warning format, with the source line

    def show(message, category, filename, lineno, file=None, line=None):
        if quiet or category.__name__ == "IOWarning":  # IOWarning: already printed by the log handler
            return
        text = str(message).strip().splitlines()
        print(f"videosr: warning: {text[0] if text else category.__name__}", file=sys.stderr)

    warnings.showwarning = show


def _out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch's allocator errors, or a shared library that could not be mapped (an import
    under a tight ``ulimit -v``)."""
    msg = str(e)
    if isinstance(e, ImportError):
        return "failed to map segment" in msg or "cannot allocate memory" in msg.lower()
    return (
        isinstance(e, MemoryError)
        or type(e).__name__ == "OutOfMemoryError"
        or (isinstance(e, RuntimeError) and ("can't allocate memory" in msg or "out of memory" in msg.lower()))
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("VIDEOSR_DEBUG"))
    _setup_warnings(bool(getattr(args, "quiet", False)), debug)
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
        if _out_of_memory(e):
            from ..errors import OutOfMemoryError

            print(
                "videosr: error: out of memory (or over the address-space limit, ulimit -v) while "
                f"{'loading libraries' if isinstance(e, ImportError) else 'running'}; free some memory or raise "
                "the limit",
                file=sys.stderr,
            )
            return OutOfMemoryError.exit_code
        if not debug:
            msg = str(e).splitlines()[0] if str(e) else ""
            print(
                f"videosr: internal error: {type(e).__name__}: {msg} (rerun with --debug for a traceback)",
                file=sys.stderr,
            )
        return 70
