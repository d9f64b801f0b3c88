"""videosr: deep-learning video super-resolution."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "upscale"]


def __getattr__(name: str):  # lazy: `videosr --help` should not pay for importing torch
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    if name == "upscale":
        from .pipeline import upscale

        return upscale
    raise AttributeError(name)
