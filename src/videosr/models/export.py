"""ONNX export of the registered models (the ONNX Runtime backend that runs the graphs: :mod:`.onnx_backend`).

* :func:`export_onnx` writes a registered model to an ``.onnx`` file with dynamic batch, time, height and
  width. Input ``lr`` (B, T, 3, H, W) float32 RGB in [0, 1]; output ``hr`` (B, T, 3, sH, sW). The graph pads
  H and W up to the model's grid multiple itself, so any frame size works. ``metadata_props`` record the
  model name, architecture, scale, context, causal, frames ("dynamic" or the fixed T) and the grid multiple.
* :func:`export_refusal` says why a model has no graph: the interpolation baselines (bicubic, lanczos: no
  weights) and the recurrent models aligned by a classical optical flow (``flow="classical"`` or ``"dis"``:
  an iterative solver, or OpenCV, outside the network).

Exporter: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``). The dynamo exporter
specialises every dimension of the recurrent models (their Python loop over T is unrolled), so it cannot
give a dynamic T. Here the recurrences are exported as an ONNX ``Loop`` (a scripted scan over T, see
:class:`_RecurrentGraph`) and sliding-window/image models are traced, so one file serves every T and size.
The traced maths is the models' own: sliding-window and image models are their ``forward``; a recurrent graph
calls the model's pieces (``features``, its flow's ``coarse_to_fine``, the propagation's ``project`` and
``step``, ``upsample_features``) and adds only the loop over T, shape-generic forms of the warp and of the
flow's resize, and the bilinear base folded into the last conv (the model's ``base`` filter).
"""

from __future__ import annotations

import copy
import functools
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError, OutputError, UsageError
from .interp import Interp
from .recurrent import LearnedFlow, RecurrentVSR

EXPORT_VERSION = 1  # bump when the exported graph changes (invalidates the onnx_backend cache)
DEFAULT_OPSET = 17  # grid_sample needs >= 16
MIN_OPSET = 16
DEFAULT_FRAMES = 5  # T of the example input used for tracing (T stays dynamic unless static_frames)
_EXAMPLE_HW = (32, 48)  # LR size of the example input (H, W stay dynamic)
META_PREFIX = "videosr."


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
    """The scripted form of one of the helpers above (compiled on first use, then cached).
    Traced code calls these so that shape arithmetic and control flow stay dynamic in the ONNX graph."""
    return _script(globals()[name])


def _script(obj):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: still what ONNX Loop needs
        return torch.jit.script(obj)


class _Scan(nn.Module):
    """One recurrence over T (scripted, so it exports as an ONNX Loop with a dynamic trip count).

    projected (B, T, C, h, w): the frames' share of the propagation's input conv (``prop.project``, batched over
    T beforehand), flows (B, T, 2, h, w) -> hidden states (B, T, C, h, w). Step i warps the previous hidden state
    by flows[:, i], then refines it with the model's own step, ``prop.step(projected, warped)``. The first step
    warps the zero initial state, which stays zero, so it needs no special case.
    """

    def __init__(self, prop: nn.Module) -> None:
        super().__init__()
        self.prop = prop

    def forward(self, projected: torch.Tensor, flows: torch.Tensor) -> torch.Tensor:
        hidden = torch.zeros_like(projected[:, 0])
        outs: list[torch.Tensor] = []
        for i in range(projected.shape[1]):
            hidden = self.prop.step(projected[:, i], _warp(hidden, flows[:, i]))
            outs.append(hidden)
        return torch.stack(outs, dim=1)


class _RecurrentGraph(nn.Module):
    """RecurrentVSR.forward for export, made of the model's own pieces (same modules, weights and arithmetic):
    ``features``, ``flow.coarse_to_fine``, ``forward_prop``/``backward_prop`` ``project`` and ``step``,
    ``upsample_features``. What is the export's own: the recurrences are scripted scans (dynamic T), the warp
    and the flow's resize are shape-generic forms of ``flow_warp`` and the model's resize, and the bilinear base
    is folded into the last conv. Expects H and W to be multiples of ``down`` (the wrapper pads), as the model's
    own forward pads them."""

    def __init__(self, m: RecurrentVSR) -> None:
        super().__init__()
        self.m = m
        self.fwd_scan = _script(_Scan(m.forward_prop))
        self.bwd_scan = _script(_Scan(m.backward_prop)) if m.bidirectional else None

    @staticmethod
    def _project(prop: nn.Module, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) features -> their share of the propagation's input conv, batched over T."""
        return prop.project(feats.flatten(0, 1)).reshape(feats.shape)

    def _flow(self, ref: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
        """The model's flow (LearnedFlow.forward) for inputs whose size is a multiple of its ``down``."""
        fl = self.m.flow
        return fl.coarse_to_fine(
            F.avg_pool2d(ref, fl.down),  # = the model's pooling onto the flow grid, for such sizes
            F.avg_pool2d(sup, fl.down),
            warp=_scripted("_warp"),
            resize=_scripted("_upsample_flow"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        b, t, c, h, w = x.shape
        s = m.scale
        lr = x.reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        feats = m.features(lr)  # (B*T, width, h', w')
        hh, ww = feats.shape[-2:]
        feats = feats.reshape(b, t, -1, hh, ww)  # (B, T, width, h', w')
        idx = torch.arange(t, device=x.device)
        cur = x.reshape(b * t, c, h, w)
        prev = x[:, (idx - 1).clamp(min=0)].reshape(b * t, c, h, w)  # frame i-1 (frame 0 for i = 0)
        fwd_flow = self._flow(cur, prev).reshape(b, t, 2, hh, ww)  # warps hidden i-1 onto i
        forward = self.fwd_scan(self._project(m.forward_prop, feats), fwd_flow)  # (B, T, width, h', w')
        backward = None
        if self.bwd_scan is not None:
            nxt = x[:, (idx + 1).clamp(max=t - 1)].reshape(b * t, c, h, w)  # frame i+1
            bwd_flow = self._flow(cur, nxt).reshape(b, t, 2, hh, ww)  # warps hidden i+1 onto i
            backward = self.bwd_scan(self._project(m.backward_prop, feats).flip(1), bwd_flow.flip(1)).flip(1)
            backward = backward.reshape(b * t, -1, hh, ww)  # (B*T, width, h', w')
        y = m.upsample_features(forward.reshape(b * t, -1, hh, ww), backward)  # (B*T, up_channels, H, W)
        # the model's conv_last + bilinear base (its ``base`` filter) in one conv over [features, LR frame]
        y = torch.cat([F.pad(y, (1, 1, 1, 1)), F.pad(lr, (1, 1, 1, 1), mode="replicate").to(y.dtype)], dim=1)
        wgt = torch.cat([m.conv_last.weight, m.base.to(m.conv_last.weight.dtype)], dim=1)
        y = F.pixel_shuffle(F.conv2d(y, wgt, m.conv_last.bias), s)  # (B*T, 3, sH, sW)
        return y.reshape(b, t, c, s * h, s * w)


class _ExportGraph(nn.Module):
    """What gets exported: pad H, W to the model's grid multiple, run the model (or its export form), crop."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        reason = export_refusal(model)
        if reason is not None:
            raise ModelError(f"{model_name(model)} has no ONNX export: {reason}")
        self.core = _RecurrentGraph(model) if isinstance(model, RecurrentVSR) else model
        self.scale = int(model.scale)
        self.multiple = int(getattr(model, "down", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.multiple == 1:
            return self.core(x)
        pad, crop = _scripted("_pad_to_multiple"), _scripted("_crop_like")
        return crop(self.core(pad(x, self.multiple)), x, self.scale)


# ------------------------------------------------------------------------------------------ export


def export_refusal(model: nn.Module) -> str | None:
    """Why ``model`` has no ONNX graph (so the onnxruntime backend cannot run it), or None when it has one."""
    if isinstance(model, Interp):
        return "interpolation (bicubic, lanczos) has no network to export; it runs in torch"
    if isinstance(model, RecurrentVSR) and not isinstance(model.flow, LearnedFlow):
        return (
            "its alignment is a classical optical flow, an iterative solver outside the network (of the "
            "recurrent models, those with learned flow export)"
        )
    return None


def model_name(model: nn.Module) -> str:
    """The name a model is known by: its display name (as loaded), its variant's, else its class's."""
    variant = getattr(model, "variant", None)
    return getattr(model, "display_name", None) or getattr(variant, "name", None) or type(model).__name__


def _metadata(model: nn.Module, frames: int | None, opset: int) -> dict[str, str]:
    from .._version import __version__

    variant = getattr(model, "variant", None)
    return {
        "model": model_name(model),
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
    ``frames``; :class:`.onnx_backend.OnnxModel` loops over longer inputs and pads shorter ones). Batch, height and width
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
            f"ONNX export of {model_name(model)} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    finally:
        tmp.unlink(missing_ok=True)
    return {"output": str(output), "bytes": output.stat().st_size, **meta}
