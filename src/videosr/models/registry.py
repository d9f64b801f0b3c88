"""Model registry: architectures are code, variants (sizes, weights) are data.

Every architecture is an ``nn.Module`` whose ``forward`` takes a (B, T, C, H, W) float RGB tensor in
[0, 1] and returns (B, T, C, s*H, s*W). Each registered class declares, as class or instance attributes:

* ``scale: int``            upscaling factor
* ``context: int``          frames of temporal context on each side the model needs (0: image model;
                            r: sliding window of 2r+1 frames; recurrent models: the warm-up length the
                            inference engine prepends/appends when it cuts a long video into chunks)
* ``causal: bool``          True when an output frame depends only on the current and past frames
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..digest import sha256_file  # noqa: F401  (registry.sha256_file for its users)
from ..errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

ARCHS: dict[str, type[nn.Module]] = {}
VARIANTS: dict[str, Variant] = {}


class _Conventional:
    def __repr__(self) -> str:
        return "<from the name>"


# the default of Variant's file-name fields: the file the naming convention gives (Variant.__post_init__)
_CONVENTIONAL: Any = _Conventional()


@dataclass(frozen=True)
class Variant:
    """One named model: an architecture, its hyperparameters and (optionally) shipped weights.

    The file-name fields left at their default follow from the name: a variant that ships weights (``sha256``
    given) has ``NAME.safetensors``, the card ``docs/models/NAME.md`` and the Vid4 evaluation ``NAME.vid4.json``
    (and ``NAME.vid4.bf16.json`` when it defaults to bf16); one that ships an int8 trunk (``int8_sha256``) has
    ``NAME.int8.onnx`` and ``NAME.vid4.int8.json``; otherwise None. Explicit values (None too) are kept."""

    name: str
    arch: str
    scale: int
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = _CONVENTIONAL  # file name under videosr/weights/
    sha256: str | None = None  # of the weights file; verified on load
    training_data: str = ""
    degradation: str = ""  # BI, BD, realistic, or "" for non-learned models
    license: str = "MIT"
    description: str = ""
    # `videosr eval --json` output (Vid4, all frames, on the variant's own degradation), file under weights/
    vid4_eval: str | None = _CONVENTIONAL

    @property
    def vid4_psnr_y(self) -> float | None:
        """Mean Vid4 PSNR-Y on the variant's degradation (BI or BD: ``vid4_degradation``) as `videosr eval`
        wrote it (never typed in by hand)."""
        return self._vid4(self.vid4_eval, "fp32")

    @property
    def vid4_psnr_y_bf16(self) -> float | None:
        """The same figure with bf16 inference (``vid4_eval_bf16``): the accuracy guard of ``precision``."""
        return self._vid4(self.vid4_eval_bf16, "bf16")

    @property
    def vid4_psnr_y_int8(self) -> float | None:
        """The same figure with the int8 trunk (``vid4_eval_int8``): the accuracy guard of ``--precision int8``."""
        return self._vid4(self.vid4_eval_int8, "int8")

    @property
    def int8_allowed(self) -> bool:
        """``--precision int8`` is allowed: a quantized trunk ships and its Vid4 PSNR-Y, measured by `videosr eval
        --precision int8`, is within INT8_TOLERANCE_DB of fp32's."""
        fp32, int8 = self.vid4_psnr_y, self.vid4_psnr_y_int8
        return (
            self.int8_trunk is not None
            and fp32 is not None
            and int8 is not None
            and abs(int8 - fp32) <= INT8_TOLERANCE_DB
        )

    def _vid4(self, name: str | None, precision: str) -> float | None:
        if name is None:
            return None
        import json

        data = json.loads((WEIGHTS_DIR / name).read_text())
        rows = data if isinstance(data, list) else [data]
        for row in rows:
            if (
                row.get("model") == self.name
                and row.get("precision", "fp32") == precision
                and row.get("degradation", self.vid4_degradation) == self.vid4_degradation
            ):
                return float(row["mean"]["psnr_y"])
        raise ModelError(f"{name} holds no {self.vid4_degradation} {precision} result for {self.name}")

    @property
    def vid4_degradation(self) -> str:
        return "BD" if self.degradation == "BD" else "BI"

    card: str | None = _CONVENTIONAL  # model card path relative to the repository root
    # default inference precision where the hardware runs it fast (videosr.engine.resolve_precision); "bf16"
    # only with ``vid4_eval_bf16``, the same evaluation in bf16, within BF16_TOLERANCE_DB of fp32 (a test)
    precision: str = "fp32"
    vid4_eval_bf16: str | None = _CONVENTIONAL
    # int8 inference (videosr.int8): the conv trunk quantized by ONNX Runtime's static quantization, calibrated on
    # the training set (scripts/quantize_int8.py), file under weights/ and its sha256; allowed only where
    # ``vid4_eval_int8`` (`videosr eval --precision int8`) is within INT8_TOLERANCE_DB of ``vid4_eval``
    int8_trunk: str | None = _CONVENTIONAL
    int8_sha256: str | None = None
    vid4_eval_int8: str | None = _CONVENTIONAL

    def __post_init__(self) -> None:
        n, shipped, int8 = self.name, self.sha256 is not None, self.int8_sha256 is not None
        conventional = {
            "weights": f"{n}.safetensors" if shipped else None,
            "card": f"docs/models/{n}.md" if shipped else None,
            "vid4_eval": f"{n}.vid4.json" if shipped else None,
            "vid4_eval_bf16": f"{n}.vid4.bf16.json" if shipped and self.precision == "bf16" else None,
            "int8_trunk": f"{n}.int8.onnx" if int8 else None,
            "vid4_eval_int8": f"{n}.vid4.int8.json" if int8 else None,
        }
        for k, v in conventional.items():
            if getattr(self, k) is _CONVENTIONAL:
                object.__setattr__(self, k, v)


BF16_TOLERANCE_DB = 0.05
INT8_TOLERANCE_DB = 0.1


def register_arch(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        ARCHS[name] = cls
        cls.arch_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def register_variant(v: Variant) -> Variant:
    if v.name in VARIANTS:
        raise ValueError(f"model {v.name!r} is already registered")
    if v.arch not in ARCHS:
        raise ValueError(f"model {v.name!r}: unknown architecture {v.arch!r}")
    if v.precision not in ("fp32", "bf16"):
        raise ValueError(f"model {v.name!r}: precision must be fp32 or bf16, not {v.precision!r}")
    if v.precision == "bf16" and (v.vid4_eval is None or v.vid4_eval_bf16 is None):
        raise ValueError(f"model {v.name!r}: a bf16 default needs its fp32 and bf16 Vid4 evaluations")
    if v.int8_trunk is not None and v.int8_sha256 is None:
        raise ValueError(f"model {v.name!r}: an int8 trunk needs its sha256")
    VARIANTS[v.name] = v
    return v


def list_models() -> list[Variant]:
    return sorted(VARIANTS.values(), key=lambda v: v.name)


def load_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load weights safely: safetensors, or torch.load(weights_only=True). Never pickle code."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    if expected_sha256 is not None:
        got = sha256_file(path)
        if got != expected_sha256:
            raise ModelError(
                f"weights file {path.name} fails its sha256 check (tampered or corrupt): "
                f"expected {expected_sha256[:12]}..., got {got[:12]}..."
            )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad weights file
        raise ModelError(f"cannot read weights {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    if isinstance(sd, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict):
        raise ModelError(f"weights file {path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_weights(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "weights") -> None:
    """Strict key matching with a readable diff of missing / unexpected / mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shape = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or shape:

        def fmt(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {fmt(unexpected)}")
        if shape:
            parts.append(
                "shape mismatch: " + fmt([f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in shape])
            )
        raise ModelError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(dict(sd), strict=True)


def create_model(name: str, pretrained: bool = True, weights: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model by name.

    ``pretrained``: load the variant's shipped weights (verified by sha256) when it has any.
    ``weights``: load this file instead (third-party checkpoint: .pth via weights_only or .safetensors).
    ``overrides``: hyperparameters that replace the variant's (e.g. a tiny config for tests).
    """
    if name not in VARIANTS:
        known = ", ".join(v.name for v in list_models())
        raise ModelError(f"unknown model {name!r} (known: {known})")
    v = VARIANTS[name]
    kwargs = {"scale": v.scale, **dict(v.kwargs), **overrides}
    model = ARCHS[v.arch](**kwargs)
    model.variant = v  # type: ignore[attr-defined]
    if weights is not None:
        load_weights(model, load_state_dict(weights), source=str(weights))
    elif pretrained and v.weights is not None and not overrides:
        load_weights(model, load_state_dict(WEIGHTS_DIR / v.weights, v.sha256), source=v.weights)
    return model.eval()
