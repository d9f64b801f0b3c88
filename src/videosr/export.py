"""ONNX export and the ONNX Runtime inference backend.

* :func:`export_onnx` writes a registered model to an ``.onnx`` file with dynamic batch, time, height and
  width. Input ``lr`` (B, T, 3, H, W) float32 RGB in [0, 1]; output ``hr`` (B, T, 3, sH, sW). The graph pads
  H and W up to the model's grid multiple itself, so any frame size works. ``metadata_props`` record the
  model name, architecture, scale, context, causal, frames ("dynamic" or the fixed T) and the grid multiple.
* :func:`to_onnxruntime` exports a model (cached by a hash of its weights and configuration) and returns
  an :class:`OnnxModel`: an ``nn.Module`` with the model's ``scale``, ``context``, ``causal`` and ``variant``
  whose ``forward`` runs an ONNX Runtime session on the CPU. :func:`load_onnx` opens an existing file.

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``). The dynamo exporter
specialises every dimension of the recurrent models (their Python loop over T is unrolled), so it cannot
give a dynamic T. Here the recurrences are exported as an ONNX ``Loop`` (a scripted scan over T, see
:class:`_RecurrentGraph`) and sliding-window/image models are traced, so one file serves every T and size.
The interpolation baselines (bicubic, lanczos: no weights) are not exported.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelError, UsageError

EXPORT_VERSION = 1  # bump when the exported graph changes (invalidates the to_onnxruntime cache)
DEFAULT_OPSET = 17  # grid_sample needs >= 16
MIN_OPSET = 16
DEFAULT_FRAMES = 5  # T of the example input used for tracing (T stays dynamic unless static_frames)
_EXAMPLE_HW = (32, 48)  # LR size of the example input (H, W stay dynamic)
META_PREFIX = "videosr."
ORT_HINT = "the onnxruntime backend needs `pip install videosr[onnx]`"


# ------------------------------------------------------------------------------------- export graphs


def _pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, C, H', W'), H' and W' the next multiples of m, edge pixels replicated."""
    b, t, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    ph = (m - h % m) % m
    pw = (m - w % m) % m
    y = F.pad(x.reshape(b * t, c, h, w), [0, pw, 0, ph], mode="replicate")
    return y.reshape(b, t, c, h + ph, w + pw)


def _crop_like(y: torch.Tensor, x: torch.Tensor, s: int) -> torch.Tensor:
    """Crop y (B, T, C, >=sH, >=sW) to (B, T, C, sH, sW) for x (B, T, C, H, W)."""
    return y[:, :, :, : s * x.shape[3], : s * x.shape[4]]


def _warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """videosr.models.layers.flow_warp (border padding), written with shapes that stay dynamic in ONNX."""
    h, w = x.shape[2], x.shape[3]
    gy, gx = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype), torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij"
    )  # (H, W) each
    fx = gx + flow[:, 0].to(x.dtype)  # (N, H, W)
    fy = gy + flow[:, 1].to(x.dtype)  # (N, H, W)
    grid = torch.stack([2.0 * fx / max(w - 1, 1) - 1.0, 2.0 * fy / max(h - 1, 1) - 1.0], dim=-1)  # (N, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _upsample_flow(flow: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Resize flow (N, 2, h, w) to ref's grid and rescale its vectors (LearnedFlow's coarse-to-fine step)."""
    sy = float(ref.shape[2]) / float(flow.shape[2])
    sx = float(ref.shape[3]) / float(flow.shape[3])
    flow = F.interpolate(flow, size=[ref.shape[2], ref.shape[3]], mode="bilinear", align_corners=False)
    return torch.cat([flow[:, :1] * sx, flow[:, 1:] * sy], dim=1)


@functools.cache
def _scripted(name: str):
    """The scripted form of one of the helpers above (compiled on first use: scripting costs ~0.1 s each).
    Traced code calls these so that shape arithmetic and control flow stay dynamic in the ONNX graph."""
    return _script(globals()[name])


def _script(obj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: still what ONNX Loop needs
        return torch.jit.script(obj)


class _Scan(nn.Module):
    """One recurrence over T (scripted, so it exports as an ONNX Loop with a dynamic trip count).

    feats (B, T, C, h, w), flows (B, T, 2, h, w) -> hidden states (B, T, C, h, w). Step i warps the previous
    hidden state by flows[:, i], then refines it with the propagation module: ``prop(feat, hidden)``. The first
    step warps the zero initial state, which stays zero, so it needs no special case.
    """

    def __init__(self, prop: nn.Module) -> None:
        super().__init__()
        self.prop = prop

    def forward(self, feats: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        hidden = torch.zeros_like(feats[:, 0])
        outs: list[torch.Tensor] = []
        for i in range(feats.shape[1]):
            hidden = self.prop(feats[:, i], _warp(hidden, flows[:, i]))
            outs.append(hidden)
        return torch.stack(outs, dim=1)


class _ScanStep(_Scan):
    """_Scan for propagation modules split into ``project`` (frame features, batched over T beforehand:
    the caller passes projected features) and ``step(projected, hidden)``."""

    def forward(self, feats: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        hidden = torch.zeros_like(feats[:, 0])
        outs: list[torch.Tensor] = []
        for i in range(feats.shape[1]):
            hidden = self.prop.step(feats[:, i], _warp(hidden, flows[:, i]))
            outs.append(hidden)
        return torch.stack(outs, dim=1)


class _RecurrentGraph(nn.Module):
    """RecurrentVSR.forward restated for export: same modules and weights, same arithmetic, but the
    recurrences are scripted scans (dynamic T) and the flow pyramid uses shape-generic ops.
    Expects H and W to be multiples of ``down`` (the wrapper pads), as the model's own forward does."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        from .models.recurrent import LearnedFlow

        if not isinstance(m.flow, LearnedFlow):
            raise ModelError(
                "ONNX export of recurrent models needs flow='learned' (classical flow runs outside the network)"
            )
        self.m = m
        self.fwd_scan = self._scan(m.forward_prop)
        self.bwd_scan = self._scan(m.backward_prop) if m.bidirectional else None

    @staticmethod
    def _scan(prop: nn.Module) -> torch.jit.ScriptModule:
        return _script(_ScanStep(prop) if hasattr(prop, "step") else _Scan(prop))

    @staticmethod
    def _inputs(prop: nn.Module, feats: torch.Tensor) -> torch.Tensor:
        """What the scan reads per frame: the features, or their projection when the module has one."""
        if not hasattr(prop, "project"):
            return feats
        return prop.project(feats.flatten(0, 1)).reshape(feats.shape)

    def _flow(self, ref: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
        """LearnedFlow.forward for inputs whose size is a multiple of its ``down``."""
        fl = self.m.flow
        pyr = [(F.avg_pool2d(ref, fl.down), F.avg_pool2d(sup, fl.down))]  # = adaptive pooling to H/down
        for _ in range(fl.levels - 1):
            r, s = pyr[-1]
            pyr.append((F.avg_pool2d(r, 2, ceil_mode=True), F.avg_pool2d(s, 2, ceil_mode=True)))
        flow = torch.zeros_like(pyr[-1][0][:, :2])  # (N, 2, coarsest h, w)
        for k, (net, (r, s)) in enumerate(zip(fl.nets, reversed(pyr))):
            if k > 0:
                flow = _scripted("_upsample_flow")(flow, r)
            flow = flow + net(torch.cat([r, _scripted("_warp")(s, flow), flow], dim=1))
        return flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        b, t, c, h, w = x.shape
        d, s = m.down, m.scale
        lr = x.reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        feats = m.feat(F.pixel_unshuffle(lr, d))  # (B*T, width, h', w')
        hh, ww = feats.shape[-2:]
        feats = feats.reshape(b, t, -1, hh, ww)  # (B, T, width, h', w')
        idx = torch.arange(t, device=x.device)
        cur = x.reshape(b * t, c, h, w)
        prev = x[:, (idx - 1).clamp(min=0)].reshape(b * t, c, h, w)  # frame i-1 (frame 0 for i = 0)
        fwd_flow = self._flow(cur, prev).reshape(b, t, 2, hh, ww)  # warps hidden i-1 onto i
        forward = self.fwd_scan(self._inputs(m.forward_prop, feats), fwd_flow)  # (B, T, width, h', w')
        y = forward.reshape(b * t, -1, hh, ww)
        if self.bwd_scan is not None:
            nxt = x[:, (idx + 1).clamp(max=t - 1)].reshape(b * t, c, h, w)  # frame i+1
            bwd_flow = self._flow(cur, nxt).reshape(b, t, 2, hh, ww)  # warps hidden i+1 onto i
            backward = self.bwd_scan(self._inputs(m.backward_prop, feats).flip(1), bwd_flow.flip(1)).flip(
                1
            )  # (B, T, width, h', w')
            y = torch.cat([backward.reshape(b * t, -1, hh, ww), y], dim=1)  # (B*T, 2*width, h', w')
            y = m.act(m.fuse(y))
        y = m.act(F.pixel_shuffle(m.upconv(y), d))  # (B*T, up_channels, H, W)
        y = torch.cat([F.pad(y, (1, 1, 1, 1)), F.pad(lr, (1, 1, 1, 1), mode="replicate").to(y.dtype)], dim=1)
        wgt = torch.cat([m.conv_last.weight, m.base.to(m.conv_last.weight.dtype)], dim=1)
        y = F.pixel_shuffle(F.conv2d(y, wgt, m.conv_last.bias), s)  # (B*T, 3, sH, sW)
        return y.reshape(b, t, c, s * h, s * w)


class _ExportGraph(nn.Module):
    """What gets exported: pad H, W to the model's grid multiple, run the model (or its export form), crop."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from .models.interp import Interp
        from .models.recurrent import RecurrentVSR

        if isinstance(model, Interp):
            raise ModelError(
                "interpolation models (bicubic, lanczos) have no ONNX export; use the torch backend for them"
            )
        self.core = _RecurrentGraph(model) if isinstance(model, RecurrentVSR) else model
        self.scale = int(model.scale)
        self.multiple = int(getattr(model, "down", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.multiple == 1:
            return self.core(x)
        pad, crop = _scripted("_pad_to_multiple"), _scripted("_crop_like")
        return crop(self.core(pad(x, self.multiple)), x, self.scale)


# ------------------------------------------------------------------------------------------ export


def _model_name(model: nn.Module) -> str:
    variant = getattr(model, "variant", None)
    return getattr(model, "display_name", None) or getattr(variant, "name", None) or type(model).__name__


def _metadata(model: nn.Module, frames: int | None, opset: int) -> dict[str, str]:
    from . import __version__

    variant = getattr(model, "variant", None)
    return {
        "model": _model_name(model),
        "arch": str(getattr(model, "arch_name", type(model).__name__)),
        "scale": str(int(model.scale)),
        "context": str(int(getattr(model, "context", 0))),
        "causal": "true" if getattr(model, "causal", False) else "false",
        "frames": "dynamic" if frames is None else str(frames),
        "pad_multiple": str(int(getattr(model, "down", 1))),
        "precision": str(getattr(variant, "precision", "fp32") or "fp32"),
        "opset": str(opset),
        "export_version": str(EXPORT_VERSION),
        "videosr_version": __version__,
        "torch_version": torch.__version__,
    }


def export_onnx(
    model: nn.Module,
    output: str | os.PathLike,
    *,
    frames: int = DEFAULT_FRAMES,
    static_frames: bool = False,
    opset: int = DEFAULT_OPSET,
) -> dict[str, Any]:
    """Export ``model`` (a registered architecture, eval mode) to ``output`` (.onnx).

    ``frames``: T of the example input. T is a dynamic axis unless ``static_frames`` (then fixed to
    ``frames``; :class:`OnnxModel` loops over longer inputs and pads shorter ones). Batch, height and width
    are always dynamic. Returns a summary (output path, metadata, file size).
    """
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX export needs `pip install videosr[onnx]`") from None
    if opset < MIN_OPSET:
        raise UsageError(f"--opset must be >= {MIN_OPSET} (grid_sample), got {opset}")
    if frames < 1:
        raise UsageError(f"--frames must be >= 1, got {frames}")
    output = Path(output)
    if not output.parent.is_dir():
        from .errors import OutputError

        raise OutputError(f"output folder does not exist: {output.parent}")
    model = copy.deepcopy(model).eval().float().to("cpu")  # the caller's model keeps its device and mode
    graph = _ExportGraph(model).eval()
    x = torch.rand(1, frames, 3, *_EXAMPLE_HW, generator=torch.Generator().manual_seed(0))
    axes = {0: "batch", 3: "height", 4: "width"}
    out_axes = {0: "batch", 3: "out_height", 4: "out_width"}
    if not static_frames:
        axes[1] = out_axes[1] = "frames"
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings, TorchScript exporter deprecation
            # trace first: the exporter's own tracer refuses the scripted scans of the recurrent models
            traced = torch.jit.trace(graph, (x,), check_trace=False)
            torch.onnx.export(
                traced,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["lr"],
                output_names=["hr"],
                dynamic_axes={"lr": axes, "hr": out_axes},
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        meta = _metadata(model, frames if static_frames else None, opset)
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = META_PREFIX + k, v
        proto.producer_name = "videosr"
        onnx.save(proto, str(tmp))
        os.replace(tmp, output)
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter failures become one readable line
        raise ModelError(
            f"ONNX export of {_model_name(model)} failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return {"output": str(output), "bytes": output.stat().st_size, **meta}


# --------------------------------------------------------------------------------------- runtime


def _require_ort():
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
        ort = _require_ort()
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
        from .models import VARIANTS

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
                _model_name(model),
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
    by its weights and configuration) and return it running in ONNX Runtime."""
    _require_ort()
    if isinstance(model, OnnxModel):
        return model
    key = _fingerprint(model, opset)
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder)
        probe.close()
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"videosr-onnx-{os.getuid() if hasattr(os, 'getuid') else 0}"
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_model_name(model).replace(os.sep, '_')}-{key}.onnx"
    if not path.is_file():
        export_onnx(model, path, opset=opset)
    wrapper = OnnxModel(path, threads=threads)
    wrapper.variant = getattr(model, "variant", wrapper.variant)
    for attr in ("display_name",):
        if hasattr(model, attr):
            setattr(wrapper, attr, getattr(model, attr))
    return wrapper
