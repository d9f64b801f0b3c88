"""`videosr models` (being written)."""

from __future__ import annotations

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("models", help="(not available yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    raise UsageError("'videosr models' is not available yet")
