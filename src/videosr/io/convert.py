"""Array <-> tensor conversion. All dtype/bit-depth scaling in videosr lives in ``videosr.io``."""

from __future__ import annotations

import warnings

import numpy as np
import torch

_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8/uint16 RGB -> (3, H, W) float32 in [0, 1] (a new, contiguous tensor)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {tuple(image.shape)}")
    scale = _MAX.get(image.dtype)
    if scale is None:
        raise ValueError(f"expected uint8 or uint16 image, got {image.dtype}")
    if image.dtype == np.uint16:
        # torch's uint16 support is partial: go through int32 (exact for 0..65535).
        t = torch.from_numpy(image.astype(np.int32, copy=False))
    else:
        t = torch.from_numpy(np.ascontiguousarray(image))
    out = torch.empty((3, image.shape[0], image.shape[1]), dtype=torch.float32)
    out.copy_(t.permute(2, 0, 1))
    return out.div_(scale)  # x / 255 exactly (correctly rounded), as every other loader computes it


def tensor_to_image(t: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """(3, H, W) float in [0, 1] (any device; a leading batch dim of 1 is accepted)
    -> (H, W, 3) ``dtype`` (uint8 or uint16), rounded to nearest and clamped.

    The scale/round/clamp and the CHW->HWC transpose are done in torch on the narrow
    integer type, so at 1080p this costs about one pass over the data."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    dtype = np.dtype(dtype)
    scale = _MAX.get(dtype)
    if scale is None:
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    with torch.no_grad():
        t = t.detach()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()
        if t.device.type != "cpu":
            t = t.cpu()
        h, w = t.shape[1], t.shape[2]
        if dtype == np.uint8:  # same rounding as the writer's planar path (ties to even)
            out = torch.empty((h, w, 3), dtype=torch.uint8)
            out.permute(2, 0, 1).copy_(_quantize_u8(t))  # CHW -> HWC
            return out.numpy()
        # 16 bits: x*scale + 0.5, clamped, then truncated by the integer copy == round-half-up, clamped.
        # (NaN gives an unspecified value, never an error.)
        v = t.mul(scale).add_(0.5).clamp_(0.0, scale)
        out = torch.empty((h, w, 3), dtype=torch.int32)
        out.permute(2, 0, 1).copy_(v)
        return out.numpy().astype(np.uint16)


def _quantize_u8(x: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 round(255 x), ties to even, clamped to 0..255, in ONE pass over the data.

    ``torch.quantize_per_tensor`` fuses the scale, round and clamp that otherwise take four passes over a
    25 MB 1080p frame (faster: a one-off measurement); ``torch.round`` (also ties to
    even) is the fallback where that API is gone, so both paths give identical bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated in torch 2.13, still the only fused kernel
            return torch.quantize_per_tensor(x.float(), 1.0 / 255.0, 0, torch.quint8).int_repr()
    except (AttributeError, RuntimeError, NotImplementedError):
        return x.float().mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


def planes_to_tensors(planes) -> tuple[torch.Tensor, ...]:
    """8-bit image planes (each (h, w) uint8, any stride) -> (h, w) float32 tensors in [0, 1], new and
    contiguous. The planes of a YUV frame for resamplers that work on any colour basis (see
    ``VideoReader.planes``); the inverse is ``VideoWriter.write`` with a tuple of planes."""
    out = []
    for p in planes:
        if p.dtype != np.uint8 or p.ndim != 2:
            raise ValueError(f"expected (h, w) uint8 planes, got {p.dtype} {tuple(p.shape)}")
        t = torch.empty(p.shape, dtype=torch.float32)
        t.copy_(torch.from_numpy(p))
        out.append(t.div_(255.0))
    return tuple(out)


def tensors_to_frame_planes(tensors, frame_planes) -> None:
    """Quantize float planes in [0, 1] (each (h, w), any device) into the uint8 planes of an FFmpeg frame
    (same order and sizes), rounding to nearest (ties to even) and clamping, in one pass per plane."""
    if len(tensors) != len(frame_planes):
        raise ValueError(f"expected {len(frame_planes)} planes, got {len(tensors)}")
    with torch.no_grad():
        for t, plane in zip(tensors, frame_planes):
            h, w = plane.height, plane.width
            if t.dim() != 2 or t.shape[0] != h or t.shape[1] != w:
                raise ValueError(f"expected a ({h}, {w}) plane, got shape {tuple(t.shape)}")
            t = t.detach()
            t = t.cpu() if t.device.type != "cpu" else t
            a = np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w]
            torch.from_numpy(a).copy_(_quantize_u8(t))


def tensor_to_planes(t: torch.Tensor, planes, width: int, height: int, deep: bool) -> None:
    """Quantize a (3, H, W) float tensor in [0, 1] straight into the G, B, R planes of an FFmpeg
    ``gbrp`` (uint8) / ``gbrp16le`` (uint16) frame: no HWC interleave, one pass per plane."""
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3 or t.shape[1] != height or t.shape[2] != width:
        raise ValueError(f"expected a (3, {height}, {width}) tensor, got shape {tuple(t.shape)}")
    scale = 65535.0 if deep else 255.0
    with torch.no_grad():
        t = t.detach()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()
        if not deep:
            t = t.cpu() if t.device.type != "cpu" else t
            for plane, ch in zip(planes, (1, 2, 0)):  # gbrp plane order: G, B, R
                a = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]
                torch.from_numpy(a).copy_(_quantize_u8(t[ch]))
            return
        v = t.mul(scale).add_(0.5).clamp_(0.0, scale)
        if v.device.type != "cpu":
            v = v.cpu()
        for plane, ch in zip(planes, (1, 2, 0)):  # gbrp plane order: G, B, R
            if deep:
                a = np.frombuffer(plane, np.uint16).reshape(height, plane.line_size // 2)[:, :width]
                a[...] = v[ch].to(torch.int32).numpy()
            else:
                a = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]
                torch.from_numpy(a).copy_(v[ch])
