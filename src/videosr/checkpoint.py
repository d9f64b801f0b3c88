"""Training checkpoints as files: read one (``torch.load(weights_only=True)``, every problem one line),
rebuild the model it was trained with from the config it carries, export its weights as safetensors.

Used by training (:mod:`videosr.training.loop`, which writes them) and by everything that loads a checkpoint by path
(``videosr upscale --model last.pt``, ``videosr eval``), which need not import the training loop.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import DiskFullError, ModelError, OutputError, UsageError
from .training.config import TrainConfig


def read_checkpoint(path: str | Path, error: type = ModelError) -> dict[str, Any]:
    """A training checkpoint's dict; any problem is one line of ``error`` (ModelError for export and
    load_checkpoint_model, ResumeError for --resume)."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise error(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise error(f"checkpoint {path} is empty (0 bytes): corrupt or truncated")
    try:
        ck = torch.load(str(path), map_location="cpu", weights_only=True)
    except (PermissionError, IsADirectoryError) as e:  # (other OSErrors: a truncated archive gives EINVAL)
        raise error(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - corrupt / foreign file
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its index is at the end
            raise error(
                f"checkpoint {path} is corrupt or truncated ({size} bytes; not a readable PyTorch checkpoint)"
            ) from None
        if type(e).__name__ == "UnpicklingError":  # weights_only refused an object (no pickle import here)
            raise error(
                f"checkpoint {path} holds Python objects other than tensors and plain data: refused "
                f"(checkpoints are read with weights_only)"
            ) from None
        detail = str(e).splitlines()[0][:200] if str(e) else ""
        raise error(f"checkpoint {path} is corrupt: {type(e).__name__}" + (f": {detail}" if detail else "")) from None
    if not isinstance(ck, dict) or not isinstance(ck.get("config"), dict) or not isinstance(ck.get("model"), dict):
        raise error(f"{path} is not a videosr training checkpoint (no config/model)")
    return ck


def sd_finite(sd: dict[str, Any]) -> bool:
    """Whether every floating tensor of a state dict is finite (no NaN / inf)."""
    return all(bool(torch.isfinite(v).all()) for v in sd.values() if torch.is_tensor(v) and v.is_floating_point())


def build_model(cfg: TrainConfig) -> nn.Module:
    from .models import create_model

    try:
        model = create_model(cfg.model.name, pretrained=False, **cfg.model.kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:  # a kwarg the architecture rejects
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"model.kwargs {cfg.model.kwargs} do not fit model {cfg.model.name}: {msg}") from None
    if getattr(model, "scale", cfg.data.scale) != cfg.data.scale:
        raise UsageError(f"model {cfg.model.name} is x{model.scale} but data.scale is {cfg.data.scale}")
    return model


def load_checkpoint_model(path: str | Path, ema: bool = True) -> nn.Module:
    """Rebuild the model a checkpoint was trained with (from its stored config) and load its EMA weights
    (``ema=False``: the raw weights). Returns the model in eval mode on the CPU."""
    ck = read_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(ck["config"])
        model = build_model(cfg)
    except UsageError as e:
        raise ModelError(f"{path}: its stored config does not build a model: {e}") from None
    sd = ck["ema"] if ema and ck.get("ema") else ck["model"]
    from .models.registry import load_weights

    load_weights(model, sd, source=str(path))
    model.train_step = ck.get("step")  # type: ignore[attr-defined]
    return model.eval()


def export_weights(checkpoint: str | Path, out: str | Path, ema: bool = True, quiet: bool = False) -> str:
    """Write a checkpoint's EMA (or raw) weights as safetensors; print and return their sha256."""
    from safetensors.torch import save_file

    from .models.registry import sha256_file

    ck = read_checkpoint(checkpoint)
    sd = ck["ema"] if ema and ck.get("ema") else ck["model"]
    if not all(torch.is_tensor(v) for v in sd.values()):
        raise ModelError(f"{checkpoint}: its weights are not all tensors (not a videosr training checkpoint)")
    if not sd_finite(sd):
        raise ModelError(f"{checkpoint} holds non-finite (NaN/inf) weights: a diverged run; not exported")
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out} is a folder: give the .safetensors file to write")
    tmp = out.with_name(out.name + ".tmp")
    cfg = ck["config"]

    def get(section: str, key: str) -> str:
        return str(cfg.get(section, {}).get(key, "")) if isinstance(cfg.get(section), dict) else ""

    meta = {
        "model": get("model", "name"),
        "step": str(ck.get("step")),
        "ema": str(bool(ema and ck.get("ema"))),
        "degradation": get("data", "degradation"),
        "scale": get("data", "scale"),
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().clone() for k, v in sd.items()}, str(tmp), metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates 0600 files; weights are meant to be shared
        os.replace(tmp, out)
    except Exception as e:  # noqa: BLE001 - OSError, or safetensors' own error for a failed write
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        msg = (getattr(e, "strerror", None) or str(e) or type(e).__name__).splitlines()[0]
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left" in msg:
            raise DiskFullError(f"disk full writing {out}") from None
        raise OutputError(f"cannot write {out}: {msg}") from None
    digest = sha256_file(out)
    if not quiet:
        print(f"{out}: sha256 {digest}")
    return digest
