"""`videosr upscale` (being written)."""

from __future__ import annotations

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("upscale", help="(not available yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise UsageError("'videosr upscale' is not available yet")
