"""Registered models. Each architecture module is imported explicitly here."""

from .registry import ARCHS, VARIANTS, Variant, create_model, list_models, register_arch, register_variant
from . import pan  # noqa: E402,F401  registers pan-x2, pan-x3, pan-x4
from . import interp  # noqa: F401

__all__ = ["ARCHS", "VARIANTS", "Variant", "create_model", "list_models", "register_arch", "register_variant"]
