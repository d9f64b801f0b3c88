"""Registered models. Each architecture module is imported explicitly here."""

from .registry import ARCHS, VARIANTS, Variant, create_model, list_models, register_arch, register_variant

__all__ = ["ARCHS", "VARIANTS", "Variant", "create_model", "list_models", "register_arch", "register_variant"]
