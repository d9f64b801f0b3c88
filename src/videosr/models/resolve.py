"""Model resolution: from what a user names (``--model``, ``--scale``, ``--weights``, ``--backend``) to a model.

``--model`` is a registered variant name, a family name with a scale (``pan`` + 2 -> ``pan-x2``) or a training
checkpoint path; ``None`` means the best shipped model for the scale (:func:`default_model_name`).
:func:`load_model` returns it in eval mode, running in torch or (``backend="onnxruntime"``) in ONNX Runtime
(:mod:`videosr.models.onnx_backend`). The refusals come from here too: an unsupported scale, a variant of another
scale, a learned model without trained weights, a model the backend does not serve.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from ..errors import ModelError, UsageError
from .registry import ARCHS, VARIANTS, create_model, list_models

SCALES = (2, 3, 4)
BACKENDS = ("torch", "onnxruntime")


def check_scale(scale: int | None) -> None:
    """UsageError (exit 2) for a ``--scale`` no model serves; None (the model's own) passes."""
    if scale is not None and scale not in SCALES:
        raise UsageError(f"unsupported scale {scale} (use one of {', '.join(map(str, SCALES))})")


def default_model_name(scale: int) -> str:
    """The best shipped video model for this scale (highest measured Vid4 BI PSNR), else bicubic. Models
    trained for another degradation (BD) are chosen by name only."""
    trained = [
        v
        for v in list_models()
        if v.scale == scale and v.weights and v.vid4_eval is not None and v.vid4_degradation == "BI"
    ]
    if trained:
        return max(trained, key=lambda v: v.vid4_psnr_y).name
    return "bicubic"


def weighted_models(scale: int) -> list[str]:
    """Registered learned models that upscale x``scale`` and ship trained weights: the ones worth suggesting."""
    return [v.name for v in list_models() if v.scale == scale and v.weights]


def suggest(scale: int) -> str:
    """The models to suggest for x``scale``, as the end of an error message."""
    names = weighted_models(scale)
    if names:
        return f"models with weights for x{scale}: {', '.join(names)}"
    return f"for x{scale} use bicubic or lanczos (no learned model ships weights for x{scale})"


def refuse_untrained(name: str, scale: int) -> None:
    """Raise the :class:`ModelError` (exit 7) for learned model ``name`` that has no trained weights."""
    raise ModelError(
        f"model {name} ships no trained weights (it would upscale with random ones): give them with "
        f"--weights FILE, or use one of the {suggest(scale)}"
    )


def require_trained(net: nn.Module) -> None:
    """Refuse a learned model without trained weights (a variant that ships none, no ``--weights``): it would
    run on random initial weights and write noise with exit 0. Raises :class:`ModelError` (exit 7)."""
    if getattr(net, "trained", True):
        return
    refuse_untrained(getattr(net, "display_name", type(net).__name__), int(net.scale))


def variant_for(model: str, scale: int | None) -> tuple[str, dict[str, Any]]:
    """The registered variant ``model`` names with ``scale`` (a family name + scale: ``pan`` + 2 -> ``pan-x2``)
    and the overrides it needs (resamplers take any scale); ModelError for an unknown name, UsageError for a
    variant of another scale."""
    if model not in VARIANTS and scale is not None and f"{model}-x{scale}" in VARIANTS:
        model = f"{model}-x{scale}"
    if model not in VARIANTS:
        create_model(model)  # raises ModelError listing the known names
    v = VARIANTS[model]
    any_scale = bool(getattr(ARCHS[v.arch], "any_scale", False))
    if scale is not None and scale != v.scale and not any_scale:
        raise UsageError(f"model {model} upscales x{v.scale}, not x{scale} ({suggest(scale)})")
    return model, ({"scale": scale} if (any_scale and scale is not None and scale != v.scale) else {})


def check_backend(model: str, scale: int | None, backend: str) -> None:
    """Refuse, before anything loads, a backend that does not exist, is not installed, or does not run
    ``model`` (a name as for :func:`load_model`; a checkpoint path is checked as it loads, an unknown name
    is left to the checks that name the known ones): UsageError (exit 2), one line."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (use {' or '.join(BACKENDS)})")
    if backend != "onnxruntime":
        return
    from .onnx_backend import refuse_unserved, require_ort

    require_ort()
    if model not in VARIANTS and scale is not None and f"{model}-x{scale}" in VARIANTS:
        model = f"{model}-x{scale}"
    if model in VARIANTS:
        refuse_unserved(model, scale)


def load_model(model: str | None, scale: int | None, weights: str | None = None, backend: str = "torch") -> nn.Module:
    """Resolve ``--model``/``--scale``: a variant name, a family name (``pan`` + scale 2 -> ``pan-x2``)
    or a training checkpoint path. Returns the model in eval mode with ``.scale`` set and ``.trained``: False
    for a learned variant that ships no weights when no ``weights`` were given (see :func:`require_trained`)."""
    check_scale(scale)
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (use {' or '.join(BACKENDS)})")
    if model is None:
        model = default_model_name(scale or 4)
    if model not in VARIANTS and os.path.exists(model):
        from ..checkpoint import load_checkpoint_model

        net = load_checkpoint_model(model)
        trained = True
    else:
        model, overrides = variant_for(model, scale)
        v = VARIANTS[model]
        net = create_model(model, weights=weights, **overrides)
        trained = weights is not None or v.weights is not None or not any(True for _ in net.parameters())
    if scale is not None and net.scale != scale:
        raise UsageError(f"model {model} upscales x{net.scale}, not x{scale}")
    if net.scale not in SCALES:
        raise ModelError(f"model {model} has unsupported scale {net.scale}")
    if backend == "onnxruntime":
        from .onnx_backend import to_onnxruntime

        net = to_onnxruntime(net)
    net.display_name = model  # type: ignore[attr-defined]
    net.trained = trained  # type: ignore[attr-defined]
    return net
