"""videosr: deep-learning video super-resolution.

The library API (the command line, ``videosr --help``, is a thin layer over it):

* ``upscale(input, output, *, model="auto", scale=None, ...)``: upscale a video file, image folder or y4m
  stream to a video file, PNG folder or y4m (audio, subtitles, timing and colour kept); returns a summary dict.
* ``create_model(name, pretrained=True, weights=None, **overrides)``: a registered model (an ``nn.Module``
  taking (B, T, 3, H, W) RGB in [0, 1]) with its shipped weights.
* ``list_models()``: the registered variants (frozen dataclasses: name, scale, weights, ...).

They are imported on first use (``import videosr`` does not import torch).
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "create_model", "list_models", "upscale"]


def __getattr__(name: str):  # lazy: `videosr --help` should not pay for importing torch
    if name in ("create_model", "list_models"):
        from . import models

        return getattr(models, name)
    if name == "upscale":
        from .pipeline import upscale

        return upscale
    raise AttributeError(name)


def __dir__() -> list[str]:  # help(videosr) and tab completion list the lazy API too
    return sorted(set(globals()) | set(__all__))
