"""The ONNX Runtime inference backend (``--backend onnxruntime``): registered models exported to ONNX
(:mod:`.export`) and run on the CPU.

* :func:`to_onnxruntime` exports a model (cached by a hash of its weights and configuration) and returns
  an :class:`OnnxModel`: an ``nn.Module`` with the model's ``scale``, ``context``, ``causal`` and ``variant``
  whose ``forward`` runs an ONNX Runtime session on the CPU. :func:`load_onnx` opens an existing file.
* It serves the models that have a graph (:func:`.export.export_refusal`): not the interpolation baselines,
  nor the recurrent models aligned by a classical optical flow. :func:`refuse_unserved` says so for a
  registered name before anything loads (UsageError, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ModelError, UsageError
from .export import DEFAULT_OPSET, EXPORT_VERSION, META_PREFIX, export_onnx, export_refusal, model_name
from .registry import VARIANTS, create_model, list_models

ORT_HINT = "the onnxruntime backend needs `pip install videosr[onnx]`"


def served(name: str) -> bool:
    """Whether the onnxruntime backend can run registered model ``name`` (builds it untrained to ask)."""
    return export_refusal(create_model(name, pretrained=False)) is None


def _unserved(name: str, reason: str, scale: int) -> UsageError:
    others = [v.name for v in list_models() if v.scale == scale and v.weights and served(v.name)]
    alt = f"; models it runs at x{scale}: {', '.join(others)}" if others else ""
    return UsageError(f"--backend onnxruntime cannot run {name}: {reason}. Use --backend torch{alt}")


def refuse_unserved(name: str, scale: int | None = None) -> None:
    """UsageError (exit 2) when the onnxruntime backend cannot run registered model ``name`` (at ``scale``,
    default its own: the message names the models it runs at that scale)."""
    reason = export_refusal(create_model(name, pretrained=False))
    if reason is not None:
        raise _unserved(name, reason, scale or VARIANTS[name].scale)


def require_ort():
    """The onnxruntime module, or UsageError (exit 2) naming the extra that installs it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(ORT_HINT) from None
    return ort


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxModel(nn.Module):
    """A registered model running in ONNX Runtime (CPU), with the torch model's interface.

    ``forward``: (B, T, 3, H, W) float in [0, 1] -> (B, T, 3, sH, sW) float32, on the input's device.
    No parameters: autocast, ``.to()`` and ``.eval()`` are no-ops for it.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        ort = require_ort()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _cores()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"cannot load ONNX model {path}: {str(e).splitlines()[0] if str(e) else e}") from None
        self.path = str(path)
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k.removeprefix(META_PREFIX): v for k, v in raw.items() if k.startswith(META_PREFIX)}
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if "scale" not in self.metadata:
            raise ModelError(f"{path} was not written by `videosr export` (no videosr.scale metadata)")
        self.scale = int(self.metadata["scale"])
        self.context = int(self.metadata.get("context", 0))
        self.causal = self.metadata.get("causal", "false") == "true"
        frames = self.metadata.get("frames", "dynamic")
        t_dim = inp.shape[1] if len(inp.shape) == 5 else None
        self.frames = int(frames) if frames != "dynamic" else (t_dim if isinstance(t_dim, int) else None)
        self.name = self.metadata.get("model", Path(path).stem)
        self.variant = VARIANTS.get(self.name)
        self.arch_name = self.metadata.get("arch", "")

    def extra_repr(self) -> str:
        return f"{self.path!r}, scale={self.scale}, context={self.context}, causal={self.causal}, frames={self.frames}"

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        a = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())  # (B, T, C, H, W)
        y = self._run(a) if self.frames is None or a.shape[1] == self.frames else self._run_fixed(a)
        return torch.from_numpy(y).to(device)

    def _run_fixed(self, x: np.ndarray) -> np.ndarray:
        """Run a graph with a fixed T on another T: windows of T frames, each contributing its core frames
        after ``context`` frames of warm-up (only past warm-up when causal), edge frames replicated.
        Exact for image and sliding-window models; for recurrent ones it matches the Engine's chunking."""
        n, ctx = self.frames, self.context
        t = x.shape[1]
        past, future = ctx, (0 if self.causal else ctx)
        core = n - past - future
        if core < 1:
            raise ModelError(
                f"this ONNX graph has a fixed T={n}, too short for context {ctx}: re-export "
                f"with a dynamic T or --frames >= {past + future + 1}"
            )
        outs = []
        for start in range(0, t, core):
            lo = min(max(0, start - past), max(0, t - n)) if t >= n else 0
            idx = np.clip(np.arange(lo, lo + n), 0, t - 1)
            y = self._run(np.ascontiguousarray(x[:, idx]))
            stop = min(start + core, t)
            outs.append(y[:, start - lo : stop - lo])
        return np.concatenate(outs, axis=1)


def load_onnx(path: str | os.PathLike, threads: int | None = None) -> OnnxModel:
    """Open an ``.onnx`` file written by :func:`export_onnx` as an :class:`OnnxModel`."""
    if not os.path.isfile(path):
        raise ModelError(f"ONNX file not found: {path}")
    return OnnxModel(path, threads=threads)


def cache_dir() -> Path:
    env = os.environ.get("VIDEOSR_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "videosr"
    return base / "onnx"


def _fingerprint(model: nn.Module, opset: int) -> str:
    h = hashlib.sha256()
    simple = {
        k: v
        for k, v in vars(model).items()
        if not k.startswith("_") and isinstance(v, (int, float, str, bool, list, tuple))
    }
    h.update(
        json.dumps(
            [
                EXPORT_VERSION,
                opset,
                torch.__version__,
                type(model).__qualname__,
                repr(model),
                sorted(simple.items(), key=lambda kv: kv[0]),
                model_name(model),
            ],
            default=str,
        ).encode()
    )
    for name, tensor in list(model.state_dict(keep_vars=False).items()) + list(model.named_buffers()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def to_onnxruntime(model: nn.Module, *, opset: int = DEFAULT_OPSET, threads: int | None = None) -> OnnxModel:
    """Export ``model`` to ONNX (cached under ``$VIDEOSR_CACHE/onnx``, default ~/.cache/videosr/onnx, keyed
    by its weights and configuration) and return it running in ONNX Runtime; UsageError (exit 2) for a model
    without a graph (:func:`.export.export_refusal`)."""
    require_ort()
    if isinstance(model, OnnxModel):
        return model
    reason = export_refusal(model)
    if reason is not None:
        raise _unserved(model_name(model), reason, int(model.scale))
    key = _fingerprint(model, opset)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder)
        probe.close()
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"videosr-onnx-{os.getuid() if hasattr(os, 'getuid') else 0}"
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_name(model).replace(os.sep, '_')}-{key}.onnx"
    if not path.is_file():
        export_onnx(model, path, opset=opset)
    wrapper = OnnxModel(path, threads=threads)
    wrapper.variant = getattr(model, "variant", wrapper.variant)
    for attr in ("display_name",):
        if hasattr(model, attr):
            setattr(wrapper, attr, getattr(model, attr))
    return wrapper
