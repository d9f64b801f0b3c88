"""`videosr export` (being written)."""

from __future__ import annotations

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("export", help="(not available yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise UsageError("'videosr export' is not available yet")
