"""Resampling as MATLAB does it: the reference of the evaluation protocol and the fixed base of the models.

Convention: images are torch tensors shaped ``(..., C, H, W)`` (any leading dimensions), float, in whatever
range the caller uses (the resamplers are linear).

* :func:`imresize`: MATLAB ``imresize(img, scale, 'bicubic')`` (Keys cubic a = -0.5, antialiasing when
  downscaling, MATLAB's symmetric boundary), also ``'lanczos3'``; rows are resized first, as MATLAB does.
* :func:`upsample`: fast integer-scale MATLAB-bicubic / lanczos3 / bilinear upsampling (the ``bicubic`` and
  ``lanczos`` models, and the base the learned models add their residual to), separable per-phase filters
  instead of dense matrices.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from .errors import UsageError

# --------------------------------------------------------------------------------------------------
# Kernels (MATLAB definitions)
# --------------------------------------------------------------------------------------------------


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB ``cubic``), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _lanczos3(x: np.ndarray) -> np.ndarray:
    """MATLAB ``lanczos3``: sinc(x) sinc(x/3) on |x| < 3, written with MATLAB's eps guard."""
    eps = np.finfo(np.float64).eps
    f = (3 * np.sin(np.pi * x) * np.sin(np.pi * x / 3) + eps) / (np.pi**2 * x * x / 3 + eps)
    return f * (np.abs(x) < 3)


def _linear(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1 - ax) * (ax <= 1)


def _box(x: np.ndarray) -> np.ndarray:
    return ((-0.5 <= x) & (x < 0.5)).astype(np.float64)


_KERNELS = {  # name -> (function, width)
    "cubic": (_cubic, 4.0),
    "bicubic": (_cubic, 4.0),
    "lanczos3": (_lanczos3, 6.0),
    "lanczos": (_lanczos3, 6.0),
    "linear": (_linear, 2.0),
    "bilinear": (_linear, 2.0),
    "box": (_box, 1.0),
}


def _kernel(name: str):
    try:
        return _KERNELS[name]
    except KeyError:
        raise UsageError(f"unknown resampling kernel {name!r} (known: {', '.join(sorted(_KERNELS))})") from None


# --------------------------------------------------------------------------------------------------
# imresize: MATLAB-exact, dense per-axis matrices (general scales)
# --------------------------------------------------------------------------------------------------


def _out_length(n: int, scale: float) -> int:
    # MATLAB: ceil(scale * n); guard against 1/3 * 255 = 84.99999999999999.
    return int(math.ceil(n * scale - 1e-9))


@lru_cache(maxsize=64)
def resize_matrix(
    in_length: int, out_length: int, scale: float, kernel: str = "cubic", antialias: bool = True
) -> np.ndarray:
    """The (out_length, in_length) float64 matrix of MATLAB ``imresize`` along one axis.

    Follows ``imresize.m/contributions``: output pixel x (1-based) samples the input at
    u = x / scale + 0.5 (1 - 1 / scale); when downscaling with antialiasing the kernel is stretched by
    1 / scale; weights are normalised to sum to 1; indices outside the image are mirrored with the edge
    pixel repeated (``[1..n, n..1]``, i.e. numpy ``symmetric``).
    """
    fn, width = _kernel(kernel)
    if scale < 1 and antialias:

        def h(x):
            return scale * fn(scale * x)

        width = width / scale
    else:
        h = fn
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based input indices, (out, P)
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])  # 0-based mirror table
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    m = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], idx0.shape)
    np.add.at(m, (rows, idx0), w)
    m.setflags(write=False)
    return m


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    antialias: bool = True,
    *,
    kernel: str = "cubic",
    size: tuple[int, int] | None = None,
    round_between: bool = False,
) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, kernel)`` on a tensor (..., C, H, W); float in any range.

    ``size`` = (H_out, W_out) overrides the output size computed from ``scale`` (MATLAB's
    ``imresize(x, [h w])``: the per-axis scale is then out / in). Rows (H) are resized first, then
    columns, like MATLAB for an isotropic scale. ``round_between``: round and clip to [0, 255] after the
    first pass, emulating MATLAB on uint8 images (its per-axis pass returns the input class); only
    meaningful for 0..255 data. Computation is in the input dtype (float64 stays float64; integer and
    half inputs are computed in float32).
    """
    if scale is None and size is None:
        raise UsageError("imresize needs a scale or a size")
    if x.ndim < 2:
        raise UsageError(f"imresize needs (..., H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if size is not None:
        oh, ow = size
        sh, sw = oh / h, ow / w
    else:
        sh = sw = float(scale)
        oh, ow = _out_length(h, sh), _out_length(w, sw)
    if oh < 1 or ow < 1:
        raise UsageError(f"imresize to an empty image ({oh}x{ow}) from {h}x{w}")
    dt = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = x.to(dt)
    if oh != h or sh != 1:
        mh = torch.tensor(resize_matrix(h, oh, sh, kernel, antialias), dtype=dt)
        out = torch.matmul(mh, out)  # (..., H, W) -> (..., oH, W)
        if round_between:
            out = out.round().clamp(0, 255)
    if ow != w or sw != 1:
        mw = torch.tensor(resize_matrix(w, ow, sw, kernel, antialias), dtype=dt)
        out = torch.matmul(out, mw.T)  # (..., oH, W) -> (..., oH, oW)
    return out


def imresize_np(
    img: np.ndarray, scale: float, antialias: bool = True, *, kernel: str = "cubic", round_between: bool | None = None
) -> np.ndarray:
    """Numpy convenience: ``img`` H x W or H x W x C (uint8, uint16 or float). Integer input gives integer
    output (rounded and clipped as MATLAB does, with the intermediate rounding of MATLAB's uint8 path
    unless ``round_between=False``); float input gives float64."""
    a = np.asarray(img)
    is_int = np.issubdtype(a.dtype, np.integer)
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    chw = t.permute(2, 0, 1) if a.ndim == 3 else t
    rb = is_int if round_between is None else round_between
    if rb and a.dtype != np.uint8:
        rb = False  # the 0..255 clip only fits 8-bit data
    out = imresize(chw, scale, antialias, kernel=kernel, round_between=rb)
    out = out.permute(1, 2, 0) if a.ndim == 3 else out
    o = out.numpy()
    if is_int:
        info = np.iinfo(a.dtype)
        return np.clip(np.round(o), info.min, info.max).astype(a.dtype)
    return o


# --------------------------------------------------------------------------------------------------
# Fast integer-scale upsampling (the `bicubic` / `lanczos` models)
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _phase_taps(scale: int, kernel: str) -> tuple[np.ndarray, int]:
    """Per-phase taps for an integer upscale: (scale, K) weights over the window [i - pad, i + pad]."""
    fn, width = _kernel(kernel)
    pad = int(math.ceil(width / 2))
    k = 2 * pad + 1
    # output pixel s*i + p (0-based) samples input position i + d_p, d_p = (p + 0.5) / s - 0.5 (MATLAB's
    # u = x / s + 0.5 (1 - 1/s) in 0-based input coordinates).
    d = (np.arange(scale) + 0.5) / scale - 0.5
    offs = np.arange(-pad, pad + 1)
    w = fn(d[:, None] - offs[None, :])
    w = w / w.sum(axis=1, keepdims=True)
    return w, k


def sym_pad(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """MATLAB/numpy 'symmetric' padding (edge pixel repeated) of ``pad`` along ``dim``."""
    n = x.shape[dim]
    if pad == 0:
        return x
    if pad <= n:
        return torch.cat([x.narrow(dim, 0, pad).flip(dim), x, x.narrow(dim, n - pad, pad).flip(dim)], dim=dim)
    # tiny inputs: MATLAB's periodic mirror table [0..n-1, n-1..0]
    aux = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    idx = torch.from_numpy(aux[np.mod(np.arange(-pad, n + pad), 2 * n)])
    return x.index_select(dim, idx)


_UPS_KERNELS = {
    "cubic": "cubic",
    "bicubic": "cubic",
    "lanczos": "lanczos3",
    "lanczos3": "lanczos3",
    "linear": "linear",
    "bilinear": "linear",
}
_UPS_BLOCK = 8  # input pixels per block of the polyphase block matrix


@lru_cache(maxsize=32)
def _block_matrix(scale: int, kernel: str, block: int, average: int = 1) -> np.ndarray:
    """(block + 2 pad, block * scale / average) matrix: a window of block + 2 pad input pixels -> the
    interleaved output pixels (column s b + p holds phase p's taps around input b). ``average``: mean of
    each run of ``average`` consecutive phases (all phases share one window of taps)."""
    w, k = _phase_taps(scale, kernel)
    so = scale // average
    w = w.reshape(so, average, k).mean(axis=1)  # (so, k)
    m = np.zeros((block + k - 1, block * so))
    for b in range(block):
        m[b : b + k, so * b : so * (b + 1)] = w.T
    return m


def _pad_to_blocks(x: torch.Tensor, pad: int, dim: int, block: int) -> tuple[torch.Tensor, int]:
    """Symmetric pad by ``pad`` on both sides of ``dim``, then zeros on the far side up to whole blocks."""
    n = x.shape[dim]
    nb = -(-n // block)
    xp = sym_pad(x, pad, dim)
    extra = nb * block - n
    if extra:
        shape = list(xp.shape)
        shape[dim] = extra
        xp = torch.cat([xp, xp.new_zeros(shape)], dim=dim)
    return xp, nb


def upsample(x: torch.Tensor, scale: int, kernel: str = "cubic", average: int = 1) -> torch.Tensor:
    """Integer-scale upsampling of (..., C, H, W): MATLAB ``imresize(x, scale, 'bicubic'|'lanczos3'|'bilinear')``
    (bilinear upscaling is also ``F.interpolate(mode="bilinear", align_corners=False)``).

    Separable polyphase filtering: along each axis output pixel s i + p (0-based) is a fixed set of taps
    (4 for cubic, 6 for lanczos3) around input pixel i, with MATLAB's symmetric boundary. Each axis is a
    batched matmul of blocks of 8 input pixels (+ the taps' margin) by a small (12 x 8s for cubic)
    block matrix whose output columns are already interleaved, so no dense H x sH matrix and no
    permute: columns first on the small image, then rows, writing each output row once. Equal to
    :func:`imresize` up to float rounding. Runs in the input dtype (float32, float64 or bfloat16;
    integer input is computed in float32); bfloat16 was no faster on a CPU without AMX.

    ``average`` (a divisor of ``scale``): return the mean of each ``average`` x ``average`` block of the
    upsampled image instead, (..., sH/a, sW/a), computed directly as one polyphase filter (the 4:2:0
    chroma of an upsampled frame without making the full-size planes).
    """
    if kernel not in _UPS_KERNELS:
        raise UsageError(f"upsample kernel must be 'cubic', 'lanczos' or 'linear', got {kernel!r}")
    scale = int(scale)
    if scale < 1:
        raise UsageError(f"upsample scale must be a positive integer, got {scale}")
    if scale == 1:
        return x.clone()
    if average < 1 or scale % average:
        raise UsageError(f"upsample average must divide the scale {scale}, got {average}")
    kname = _UPS_KERNELS[kernel]
    blk = _UPS_BLOCK
    m_np = _block_matrix(scale, kname, blk, average)
    so = scale // average  # output pixels per input pixel
    win = m_np.shape[0]
    pad = (win - blk) // 2
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    dt = x.dtype if x.dtype.is_floating_point else torch.float32
    m = torch.from_numpy(m_np).to(dt)  # (win, blk so)
    mt = m.T.contiguous()  # (blk so, win)
    y = x.to(dt).reshape(-1, h, w)  # (..., H, W) -> (N, H, W)
    n = y.shape[0]
    # Columns, on the small image: (N, H, W) -> (N, H, so W)
    yp, nbw = _pad_to_blocks(y, pad, 2, blk)  # (N, H, nbw blk + 2 pad)
    u = yp.unfold(2, win, blk).reshape(-1, win)  # (N, H, nbw, win) -> (N H nbw, win), one copy
    y = torch.matmul(u, m)  # (N H nbw, win) @ (win, blk so) -> (N H nbw, blk so)
    y = y.view(n, h, nbw * blk * so)  # (N, H, nbw blk so): phases interleaved
    if nbw * blk != w:
        y = y[..., : w * so]
    # Rows: (N, H, so W) -> (N, so H, so W)
    yp, nbh = _pad_to_blocks(y, pad, 1, blk)  # (N, nbh blk + 2 pad, so W)
    v = yp.unfold(1, win, blk).transpose(-1, -2).contiguous()  # (N, nbh, win, so W)
    mt_b = mt.expand(n, nbh, *mt.shape)  # (N, nbh, blk so, win)
    y = torch.matmul(mt_b, v)  # (N, nbh, blk so, so W)
    y = y.reshape(n, nbh * blk * so, w * so)  # (N, nbh blk so, so W)
    if nbh * blk != h:
        y = y[:, : h * so]  # a view: rows of each image stay contiguous
    return y.reshape(*lead, h * so, w * so)
