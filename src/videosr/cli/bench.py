"""`videosr bench` (being written)."""

from __future__ import annotations

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("bench", help="(not available yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise UsageError("'videosr bench' is not available yet")
