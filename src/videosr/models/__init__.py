"""Registered models. Each architecture module is imported explicitly here."""

from .registry import ARCHS, VARIANTS, Variant, create_model, list_models, register_arch, register_variant
from . import fastvsr, pan, recurrent  # noqa: E402,F401  registers fast-*, pan-x*, quality-*, online-*
from . import interp  # noqa: F401

__all__ = ["ARCHS", "VARIANTS", "Variant", "create_model", "list_models", "register_arch", "register_variant"]
