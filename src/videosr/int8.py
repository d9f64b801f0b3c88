"""int8 inference (``--precision int8``): a model's convolution trunk quantized with ONNX Runtime.

What runs in int8: FastVSR's trunk (per-frame ``feat`` conv, ``fuse`` conv over each frame's window, the residual
``body``), as an ONNX graph statically quantized by ``onnxruntime.quantization.quantize_static`` (QDQ, weights int8
per output channel, activations uint8 per tensor, ranges calibrated on the training set: never on a test set).
What stays float32: the pixel unshuffle in front, the reconstruction conv, the bicubic base, the 4:2:0 plane
arithmetic and the RGB clamp (``FastVSR.forward_planes``), so the image itself is never held in 8 bits beyond the
8-bit input video. The quantized trunk is data: ``weights/<model>.int8.onnx`` with its sha256 in the variant,
written by ``scripts/quantize_int8.py`` (rerunnable where the training set is built).

A variant may run int8 only where ``videosr eval --precision int8`` measured its Vid4 PSNR-Y within
``INT8_TOLERANCE_DB`` (0.1 dB) of fp32 (``Variant.int8_allowed``); `upscale` and `bench` refuse others (exit 2).
Speeds: ``benchmarks/int8_speed.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelError, UsageError

ORT_HINT = "--precision int8 runs in ONNX Runtime: `pip install videosr[onnx]`"
OPSET = 17


class TrunkGraph(nn.Module):
    """The float trunk as exported: ``u`` (N, 3*d*d, h', w') the unshuffled LR frames, ``idx`` (K, n) int64 the
    frames of each output frame's window (rows of ``u``) -> (K, h', w', width): the trunk's output, channels last
    (``permute(0, 3, 1, 2)`` of it is a channels-last (K, width, h', w') view, which the float tail reads fastest)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.m = model

    def forward(self, u: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        m = self.m
        f = m.act(m.feat(u))  # (N, feat, h', w')
        win = f[idx].reshape(idx.shape[0], -1, f.shape[-2], f.shape[-1])  # (K, n*feat, h', w')
        y = m.body(m.act(m.fuse(win)))  # (K, width, h', w')
        return y.permute(0, 2, 3, 1)


def supports_int8(model: nn.Module) -> bool:
    """The architectures with an int8 trunk: FastVSR (registered arch ``fastvsr``)."""
    return getattr(model, "arch_name", None) == "fastvsr" and hasattr(model, "int8_trunk")


def export_trunk(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s float trunk (:class:`TrunkGraph`) to ``path`` (.onnx), dynamic in N, K, h', w'."""
    if not supports_int8(model):
        raise ModelError(f"{type(model).__name__} has no int8 trunk (FastVSR models only)")
    model = copy.deepcopy(model).eval().float().to("cpu", memory_format=torch.contiguous_format)
    d = int(model.down)
    u = torch.rand(4, 3 * d * d, 24, 32, generator=torch.Generator().manual_seed(0))
    idx = (torch.arange(1, 3)[:, None] + torch.tensor(model.offsets)).clamp(0, 3)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings, TorchScript exporter deprecation
        torch.onnx.export(
            TrunkGraph(model).eval(),
            (u, idx),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["u", "idx"],
            output_names=["y"],
            dynamic_axes={"u": {0: "n", 2: "h", 3: "w"}, "idx": {0: "k"}, "y": {0: "k", 1: "h", 2: "w"}},
        )


def quantize_trunk(
    float_path: str | os.PathLike, out_path: str | os.PathLike, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Statically quantize an exported trunk: QDQ, int8 weights per output channel, uint8 activations per tensor,
    MinMax ranges over ``batches`` of (u, idx) (calibration data: the training set)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict | None:
            nxt = next(self.it, None)
            return None if nxt is None else {"u": nxt[0].numpy(), "idx": nxt[1].numpy()}

    quantize_static(
        str(float_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


class Int8Trunk:
    """The quantized trunk in an ONNX Runtime session (CPU), called by ``FastVSR._features``:
    ``(u, idx) -> (K, width, h', w')`` float32, channels last. Not an ``nn.Module``: it holds no parameters and
    ``.to()`` / ``state_dict`` of the model it serves do not see it."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError(ORT_HINT) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()  # as the torch engine around it
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # no busy-waiting between runs: the float tail runs in torch's threads right after each trunk call, and
        # spinning ORT threads would take those cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - a damaged file is a model error
            raise ModelError(f"cannot load int8 trunk {path}: {str(e).splitlines()[0] if str(e) else e}") from None
        self.path = str(path)

    def __call__(self, u: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        a = np.ascontiguousarray(u.detach().to("cpu", torch.float32).numpy())
        y = self.session.run(None, {"u": a, "idx": np.ascontiguousarray(idx.to("cpu", torch.int64).numpy())})[0]
        return torch.from_numpy(y).to(u.device).permute(0, 3, 1, 2)  # (K, width, h', w'), channels last

    def __deepcopy__(self, memo: dict) -> Int8Trunk:  # a session cannot be copied; it is read-only: share it
        return self


def trunk_path(model: nn.Module) -> Path:
    """The variant's quantized trunk, its sha256 verified."""
    from .models.registry import WEIGHTS_DIR, sha256_file

    v = getattr(model, "variant", None)
    if v is None or v.int8_trunk is None:
        raise UsageError(f"{_name(model)} has no int8 trunk")
    path = WEIGHTS_DIR / v.int8_trunk
    if not path.is_file():
        raise ModelError(f"int8 trunk not found: {path}")
    got = sha256_file(path)
    if got != v.int8_sha256:
        raise ModelError(
            f"int8 trunk {path.name} fails its sha256 check (tampered or corrupt): "
            f"expected {v.int8_sha256[:12]}..., got {got[:12]}..."
        )
    return path


def _has_shipped_weights(model: nn.Module, v) -> bool:
    """``model`` holds the variant's shipped weights (the ones its trunk was quantized from), value for value."""
    from .models.registry import WEIGHTS_DIR, load_state_dict

    if v.weights is None:
        return False
    shipped = load_state_dict(WEIGHTS_DIR / v.weights, v.sha256)
    own = model.state_dict()
    return set(own) == set(shipped) and all(torch.equal(own[k].detach().cpu().float(), shipped[k].float()) for k in own)


def _name(model: nn.Module) -> str:
    v = getattr(model, "variant", None)
    return getattr(v, "name", None) or type(model).__name__


def check_int8(model: nn.Module, verified: bool = True) -> None:
    """Refuse (UsageError, exit 2) int8 for a model without a shipped int8 trunk, or, with ``verified``, without a
    passing Vid4 gate; ``verified=False`` is for `videosr eval --precision int8`, which measures the gate."""
    from .models.registry import INT8_TOLERANCE_DB, VARIANTS

    allowed = sorted(n for n, v in VARIANTS.items() if v.int8_allowed)
    hint = f" (int8 models: {', '.join(allowed)})" if allowed else ""
    v = getattr(model, "variant", None)
    if hasattr(model, "session") and hasattr(model, "metadata"):  # models.onnx_backend.OnnxModel: --backend onnxruntime
        raise UsageError(
            "--precision int8 runs with the torch backend (its trunk in ONNX Runtime): drop --backend onnxruntime"
        )
    if not supports_int8(model) or v is None or v.int8_trunk is None:
        raise UsageError(f"--precision int8: {_name(model)} has no int8 trunk; use fp32 or bf16{hint}")
    if not _has_shipped_weights(model, v):
        raise UsageError(
            f"--precision int8: the int8 trunk of {v.name} is quantized from its shipped weights, "
            "and this model holds other weights (--weights, or untrained); use fp32 or bf16"
        )
    if not verified:
        return
    if not v.int8_allowed:
        fp32, int8 = v.vid4_psnr_y, v.vid4_psnr_y_int8
        why = (
            "its int8 Vid4 PSNR-Y was not measured"
            if int8 is None or fp32 is None
            else f"its int8 Vid4 PSNR-Y {int8:.3f} dB is {fp32 - int8:.3f} dB under fp32 (allowed: "
            f"{INT8_TOLERANCE_DB} dB)"
        )
        raise UsageError(f"--precision int8 is not allowed for {v.name}: {why}; use fp32 or bf16{hint}")


def int8_model(model: nn.Module, threads: int | None = None) -> nn.Module:
    """A copy of ``model`` whose trunk runs in int8 (the caller's model is unchanged)."""
    path = trunk_path(model)
    q = copy.deepcopy(model)
    q.int8_trunk = Int8Trunk(path, threads=threads)
    return q
