"""Registered models. Each architecture module is imported explicitly here."""

from . import (  # noqa: E402,F401  registers fast-*, pan-x*, quality-*, online-*
    fastvsr,
    interp,  # noqa: F401
    pan,
    recurrent,
)
from .registry import ARCHS, VARIANTS, Variant, create_model, list_models, register_arch, register_variant

__all__ = ["ARCHS", "VARIANTS", "Variant", "create_model", "list_models", "register_arch", "register_variant"]
