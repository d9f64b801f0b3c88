"""Small building blocks shared by the video models (not architectures themselves)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..flow import flow_warp  # noqa: F401  (the package's one warp; the models import it from here)


class ResidualBlock(nn.Module):
    """conv3x3 -> LeakyReLU -> conv3x3, plus identity (EDSR/BasicVSR style, no batch norm)."""

    def __init__(self, width: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, 1, 1)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)  # in place on a fresh conv output: one memory pass less
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))  # (N, width, H, W)
        return y.add_(x) if self.res_scale == 1.0 else x + self.res_scale * y


def _bilinear_taps(scale: int) -> torch.Tensor:
    """(scale, 3) weights on LR offsets (-1, 0, +1) for each of the `scale` output phases.

    Matches F.interpolate(mode="bilinear", align_corners=False): output pixel s*i + p samples the
    LR coordinate i + (p + 0.5) / s - 0.5; PyTorch clamps at the borders, which replicate padding reproduces.
    """
    taps = torch.zeros(scale, 3, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        if d < 0:
            taps[p, 0], taps[p, 1] = -d, 1 + d
        else:
            taps[p, 1], taps[p, 2] = 1 - d, d
    return taps


def _bicubic_taps(scale: int) -> torch.Tensor:
    """(scale, 5) MATLAB bicubic (a = -0.5) weights on LR offsets -2..+2 for each output phase.

    Output pixel x = s*i + p samples the LR line at u = i + (p + 0.5)/s - 0.5; its four taps are the
    cubic kernel at distances u - (i + o), normalised to sum to 1 as MATLAB's imresize does."""

    def cubic(v: float) -> float:
        v = abs(v)
        if v <= 1:
            return 1.5 * v**3 - 2.5 * v**2 + 1
        if v < 2:
            return -0.5 * v**3 + 2.5 * v**2 - 4 * v + 2
        return 0.0

    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        d = (p + 0.5) / scale - 0.5
        for o in range(-2, 3):
            taps[p, o + 2] = cubic(d - o)
        taps[p] /= taps[p].sum()
    return taps


def bicubic_upsample_conv(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, sH, sW): MATLAB bicubic upsampling (symmetric boundary) as two 1-D polyphase
    convolutions. The same values as :func:`videosr.resample.upsample` up to float rounding, built only from
    ops the ONNX exporter knows (that one's block matmuls use ``unfold``, which it cannot export)."""
    taps = _bicubic_taps(scale).to(x.dtype).to(x.device)  # (s, 5)
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)  # (NC, 1, H, W)
    for axis in (3, 2):  # columns, then rows
        lo = y.narrow(axis, 0, 2).flip(axis)  # MATLAB mirrors with the edge pixel repeated
        hi = y.flip(axis).narrow(axis, 0, 2)  # (no size arithmetic: a traced graph stays size-generic)
        yp = torch.cat([lo, y, hi], dim=axis)  # (NC, 1, ., .) padded by 2
        k = taps.view(scale, 1, 1, 5) if axis == 3 else taps.view(scale, 1, 5, 1)
        y = F.conv2d(yp, k)  # (NC, s, H', W'): one channel per output phase
        if axis == 3:
            y = y.permute(0, 2, 3, 1).reshape(n * c, 1, y.shape[2], -1)  # (NC, 1, H, sW): phases interleaved
        else:
            y = y.permute(0, 3, 2, 1).reshape(n * c, 1, y.shape[3], -1).transpose(2, 3)  # (NC, 1, sH, sW)
    return y.reshape(n, c, h * scale, w * scale)


def _taps(kind: str, scale: int) -> torch.Tensor:
    """(scale, 5) weights on LR offsets (-2, -1, 0, +1, +2) for each output phase of a fixed upsampler."""
    if kind == "bicubic":
        return _bicubic_taps(scale)
    if kind == "bilinear":
        return F.pad(_bilinear_taps(scale), (1, 1))
    if kind == "nearest":
        return torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64).expand(scale, 5).clone()
    raise ValueError(f"unknown fixed upsampler {kind!r} (bicubic, bilinear, nearest)")


def upsample_weights(kind: str, scale: int, down: int, k: int) -> torch.Tensor:
    """Fixed conv weights (3*(s*d)^2, 3*d^2, k, k) for upsampling by `scale` from a pixel-unshuffled input.

    Input: F.pixel_unshuffle(lr, d), replicate-padded by k//2 cells (pad lr by d*(k//2) pixels before
    unshuffling). Output, after F.pixel_shuffle(., s*d): F.interpolate(lr, scale_factor=s, mode=kind)
    (align_corners=False). Raises ValueError when a k x k cell window cannot reach the needed LR pixels.
    """
    sd, r = scale * down, k // 2
    taps = _taps(kind, scale)  # (s, 5)
    w1 = torch.zeros(sd, down, k, dtype=torch.float64)  # (HR phase P, LR sub-position j, cell offset)
    for P in range(sd):
        a, p = divmod(P, scale)  # LR sub-position in the cell, phase within that LR pixel
        for o in (-2, -1, 0, 1, 2):
            if taps[p, o + 2] == 0:
                continue
            cell, j = divmod(a + o, down)  # cell offset and sub-position of LR pixel a + o
            if abs(cell) > r:
                raise ValueError(f"{kind} upsampling from unshuffle({down}) needs a larger kernel than {k}")
            w1[P, j, cell + r] += taps[p, o + 2]
    w2 = w1[:, None, :, None, :, None] * w1[None, :, None, :, None, :]  # (Py, Px, jy, jx, ky, kx)
    w2 = w2.reshape(sd * sd, down * down, k, k)  # (HR phases, LR sub-positions, k, k)
    w = torch.zeros(3, sd * sd, 3, down * down, k, k, dtype=torch.float64)
    for c in range(3):
        w[c, :, c] = w2  # colour channels do not mix
    return w.reshape(3 * sd * sd, 3 * down * down, k, k).float()


def yuv420_fold(P: int, rgb_to_yuv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear map from the 3*P*P channels of an RGB pixel-shuffle tail (channel c*P*P + py*P + px:
    colour c of sub-pixel (py, px)) to P*P Y channels and 2 * (P/2)^2 chroma channels (U then V, each the
    2x2 average of its sub-pixels, as 4:2:0 video subsamples them), for ``rgb_to_yuv`` = (3, 4) [matrix |
    offset]. Returns (T (P*P*3/2, 3*P*P), offset (P*P*3/2,)) in float64: fold T into the tail's weights and
    biases, add the offset to its bias, and pixel-shuffle Y by P, U and V by P/2. P must be even."""
    if P % 2:
        raise ValueError(f"4:2:0 planes need an even sub-pixel factor, got {P}")
    m = rgb_to_yuv.to(torch.float64).cpu()
    n1, n2 = P * P, P * P // 4
    T = torch.zeros(n1 + 2 * n2, 3 * n1, dtype=torch.float64)
    py, px = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    p = (py * P + px).flatten()  # sub-pixel index within a colour channel
    q = ((py // 2) * (P // 2) + px // 2).flatten()  # the chroma sample it averages into
    for c in range(3):
        T[p, c * n1 + p] = m[0, c]
        T[n1 + q, c * n1 + p] += m[1, c] / 4
        T[n1 + n2 + q, c * n1 + p] += m[2, c] / 4
    offset = torch.cat([m[0, 3].expand(n1), m[1, 3].expand(n2), m[2, 3].expand(n2)])
    return T, offset


def full_precision(x: torch.Tensor):
    """A region that autocast leaves alone (float32 maths on ``x``'s device). On the meta device (FLOP counts:
    videosr.models.flops), where autocast does not exist, a no-op."""
    if x.device.type == "meta":
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(x.device.type, enabled=False)


def rgb_to_yuv_image(x: torch.Tensor, rgb_to_yuv: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, 3, H, W) Y, U, V in code units / 255 (offset included), float32 under
    autocast too: the planes' bases are built from it and then hold the whole image."""
    with full_precision(x):
        m = rgb_to_yuv.to(device=x.device, dtype=torch.float32)
        y = torch.einsum("oc,nchw->nohw", m[:, :3], x.float())  # (N, 3, H, W)
        return y.add_(m[:, 3].view(1, 3, 1, 1))


def clamped_yuv420(rgb: torch.Tensor, rgb_to_yuv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) RGB (H, W even; overwritten) -> Y (N, H, W), U and V (N, H/2, W/2) in code units / 255,
    float32, of the RGB clamped to [0, 1] first: what the RGB output path writes (clamp, the video's matrix,
    4:2:0 chroma as the 2x2 average). Elementwise float32 (no TF32 convolution), in place where it can be."""
    with full_precision(rgb):
        x = rgb.float().clamp_(0.0, 1.0)  # (N, 3, H, W)
        (m0, m1, m2, o0), (u0, u1, u2, uo), (v0, v1, v2, vo) = rgb_to_yuv.tolist()
        r, g, b = x.unbind(1)
        y = (r * m0).add_(g, alpha=m1).add_(b, alpha=m2).add_(o0)  # (N, H, W)
        q = x[..., 0::2, 0::2] + x[..., 1::2, 0::2]
        q.add_(x[..., 0::2, 1::2]).add_(x[..., 1::2, 1::2])  # (N, 3, H/2, W/2): 4 x the block means
        r, g, b = q.unbind(1)
        u = (r * (u0 / 4)).add_(g, alpha=u1 / 4).add_(b, alpha=u2 / 4).add_(uo)
        v = (r * (v0 / 4)).add_(g, alpha=v1 / 4).add_(b, alpha=v2 / 4).add_(vo)
        return y, u, v


@functools.cache
def _base_filter(kernel: str, scale: int, cell: int) -> tuple[int, float, torch.Tensor]:
    """(radius, kappa, A) of ``resample.upsample(., scale, kernel)``, from its impulse responses. An output pixel
    inside LR pixel i (along an axis) weighs LR pixels i - radius .. i + radius, the weights summing to 1; with
    nu the largest negative weight mass along an axis, a 2D output weight's negative mass is at most
    kappa = 2 nu (1 + nu) (0 for bilinear), so the output lies in [mn - kappa (mx - mn), mx + kappa (mx - mn)]
    for mn, mx the min, max of the LR window. A (scale cell, cell + 2 radius), float32: the outputs of one
    block of ``cell`` LR pixels from its window (``upsample`` is translation invariant away from the edges)."""
    from ..resample import upsample

    n = 24 + 2 * cell
    w = upsample(torch.eye(n, dtype=torch.float64)[:, None], scale, kernel)[:, 0]  # (LR impulse k, output o)
    lr_of = torch.arange(scale * n) // scale  # the LR pixel each output lies in
    inner = (lr_of >= 6) & (lr_of < n - 6)  # away from the symmetric boundary
    dist = (torch.arange(n)[:, None] - lr_of[None]).abs()  # (k, o)
    radius = int(dist[:, inner][w[:, inner].abs() > 1e-12].max())
    nu = float(-w[:, inner].clamp(max=0).sum(0).min())
    i0 = 12  # an interior block start
    A = w[i0 - radius : i0 + cell + radius, scale * i0 : scale * (i0 + cell)].T  # (scale cell, cell + 2 radius)
    return radius, 2 * nu * (1 + nu), A.float()


def _version(conv: nn.Conv2d) -> tuple:
    """What changes when the conv's weights do (loading weights copies into them: a new ``_version``)."""
    b = conv.bias
    return (
        conv.weight.data_ptr(),
        conv.weight._version,
        -1 if b is None else b.data_ptr(),
        -1 if b is None else b._version,
    )


def folded_tail(conv: nn.Conv2d, rgb_to_yuv: torch.Tensor, P: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The weights and bias of an RGB pixel-shuffle tail ``conv`` (3*P*P outputs) with :func:`yuv420_fold` of
    ``rgb_to_yuv`` folded in, float32 on the conv's device; without the matrix's offset, which goes to the
    float32 base (128/255 in bf16 is 0.5 code units off). Computed once per weights, matrix and P, not per call
    (the video loop calls ``forward_planes`` per chunk, the live one per frame; :func:`_version`)."""
    dev = conv.weight.device
    return _folded_tail(conv, _version(conv), tuple(rgb_to_yuv.detach().cpu().flatten().tolist()), P, dev)


@functools.lru_cache(maxsize=16)
def _folded_tail(
    conv: nn.Conv2d, version: tuple, rgb_to_yuv: tuple, P: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    T, _ = yuv420_fold(P, torch.tensor(rgb_to_yuv, dtype=torch.float64).view(3, 4))
    w = torch.einsum("oi,ijkl->ojkl", T, conv.weight.detach().cpu().to(torch.float64))
    bias = T @ conv.bias.detach().cpu().to(torch.float64)
    return w.float().to(device), bias.float().to(device)


@functools.lru_cache(maxsize=16)
def _clip_constants(
    conv: nn.Conv2d, version: tuple, rgb_to_yuv: tuple, kernel: str, scale: int, cell: int, device: torch.device
) -> dict:
    """What :func:`_cells_that_may_clip` and :func:`clamp_cells` derive from the tail's weights, the colour
    matrix (flattened (3, 4)) and the base filter alone: computed once per model and matrix, not per frame
    (``version``: :func:`_version`, so new weights are seen)."""
    P, q = scale * cell, scale * cell // 2
    M = torch.tensor(rgb_to_yuv, dtype=torch.float64).view(3, 4)
    Mi = torch.linalg.inv(M[:, :3])  # (3, 3): RGB = Mi ((Y, U, V) - offset)
    if (Mi[:, 0] <= 0).any():
        raise ValueError("rgb_to_yuv: RGB must grow with Y")
    # the learned part's chroma, per sub-pixel, and its deviation from the mean of its 2x2 block
    W = conv.weight.detach().cpu().to(torch.float64).unflatten(0, (3, P * P))  # (3, PP, Cin, kk, kk)
    bias = (
        conv.bias.detach().cpu().to(torch.float64)
        if conv.bias is not None
        else torch.zeros(3 * P * P, dtype=torch.float64)
    ).unflatten(0, (3, P * P))  # (3, PP)

    def block_dev(t: torch.Tensor) -> torch.Tensor:  # (PP, ...) -> |t - its 2x2 block mean|, (PP, ...)
        g = t.unflatten(0, (q, 2, q, 2))
        return (g - g.mean((1, 3), keepdim=True)).abs().flatten(0, 3)

    wu, wv = (torch.einsum("c,cj...->j...", M[k, :3], W) for k in (1, 2))  # (PP, Cin, kk, kk)
    bu, bv = (M[k, :3] @ bias for k in (1, 2))  # (PP,)
    mag = W.abs().amax((0, 1))  # (Cin, kk, kk): |any learned RGB value| <= mag . |f| + max|b|
    E = torch.stack([block_dev(wu).amax(0), block_dev(wv).amax(0), mag]).to(device, torch.float32)
    # the base's chroma: a pixel's deviation from its block mean is a zero-sum filter of the LR window, bounded
    # by the window's spread and, tighter in smooth areas, by its largest step between adjacent LR pixels
    radius, _, A = _base_filter(kernel, scale, cell)
    A64 = A.double()  # (P, nw): the 1D filter; the 2D one is kron(A, A)
    kv, kh = _step_bounds(A64)
    # the rebuild's: the tail as one matrix over (kk, kk, Cin) patches, its bias, the 2D base filter
    Wr = conv.weight.detach().float().permute(0, 2, 3, 1).reshape(3 * P * P, -1).clone()  # (3PP, kk kk Cin)
    br = conv.bias.detach().float().clone() if conv.bias is not None else Wr.new_zeros(3 * P * P)
    return {
        "E": E,
        "M": M,
        "Mi": Mi,
        "radius": radius,
        "cb": float(block_dev(torch.kron(A64, A64)).sum(1).max()) / 2,
        "kv": kv,
        "kh": kh,
        "bu_dev": float(block_dev(bu).max()),
        "bv_dev": float(block_dev(bv).max()),
        "bias_max": float(bias.abs().max()),
        "Wr": Wr.to(device),
        "br": br.to(device),
        "A2": torch.kron(A, A).to(device),
    }


def _cells_that_may_clip(
    planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    feats: torch.Tensor,
    conv: nn.Conv2d,
    lr: torch.Tensor,
    kernel: str,
    scale: int,
    cell: int,
    rgb_to_yuv: torch.Tensor,
) -> torch.Tensor:
    """(N, h', w') bool: the trunk cells of :func:`clamp_cells` whose RGB may leave [0, 1], read off the
    unclamped planes themselves. A pixel's RGB is ``inv(M) (Y, U, V) - offset`` with its own chroma; the planes
    hold Y per pixel and the mean of U, V over each 2x2 block, and a pixel's chroma strays from that mean by
    at most a per-cell margin: for the learned part max|W_j - mean of its block| |f| (one small conv of |f|),
    for the base the filter's deviation from its block mean times the spread of the LR window (at LR
    resolution); plus the rounding of a bf16 tail. So a pixel can leave [0, 1] only where Y lies below or
    above thresholds set by its block's chroma and the margins: the test costs a few elementwise passes over
    the planes, and flags little more than the cells that really leave [0, 1]."""
    yp, up, vp = planes
    q = scale * cell // 2
    k = _clip_constants(
        conv, _version(conv), tuple(rgb_to_yuv.detach().cpu().flatten().tolist()), kernel, scale, cell, feats.device
    )
    E, M, Mi, radius, cb, kv, kh = k["E"], k["M"], k["Mi"], k["radius"], k["cb"], k["kv"], k["kh"]
    with full_precision(feats):
        f = feats.float().abs()
        z = F.conv2d(f, E)  # (N, 3, h', w'): learned U, V deviation; learned magnitude
        uv = torch.einsum("kc,nchw->nkhw", M[1:, :3].float().to(lr.device), lr.float())  # (N, 2, H, W): LR U, V
        R = -(-radius // cell)
        spread = _window(uv, cell, R, torch.maximum).sub_(_window(uv, cell, R, torch.minimum))  # (N, 2, h', w')
        dv = F.pad((uv[:, :, 1:] - uv[:, :, :-1]).abs_(), (0, 0, 0, 1))  # vertical steps, (N, 2, H, W)
        dh = F.pad((uv[..., 1:] - uv[..., :-1]).abs_(), (0, 1))
        steps = _window(dv, cell, R, torch.maximum).mul_(kv).add_(_window(dh, cell, R, torch.maximum), alpha=kh)
        su, sv = torch.minimum(spread.mul_(cb), steps).unbind(1)  # (N, h', w') each
        bf16 = feats.dtype != torch.float32
        mu = z[:, 0].add_(su).add_(k["bu_dev"])  # (N, h', w'): |U - block mean| <=
        mv = z[:, 1].add_(sv).add_(k["bv_dev"])
        slack = z[:, 2].add_(k["bias_max"]).mul_(2.0**-5 if bf16 else 2.0**-16).add_(1e-5)
        # channel c of a pixel is a (Y + (cu U + cv V) / a) - off +- m (a > 0, U and V its block's means): it
        # may leave [0, 1] only if that, with Y the block's min (max) and then the cell's min (max), does
        n, hh, ww = mu.shape
        pairs = yp.view(n, hh * q, 2, ww * q, 2)
        ymin = torch.minimum(pairs[:, :, 0], pairs[:, :, 1]).amin(-1)  # (N, P h'/2, P w'/2)
        ymax = torch.maximum(pairs[:, :, 0], pairs[:, :, 1]).amax(-1)
        bad = None
        for c in range(3):
            a, cu, cv = (float(t) for t in Mi[c])
            off = float(Mi[c] @ M[:, 3])
            lo, hi = ymin, ymax
            for plane, k in ((up, cu / a), (vp, cv / a)):
                if abs(k) > 1e-7:  # the matrices' exact zeros (~1e-9 after inversion): inside the slack
                    lo, hi = torch.add(lo, plane, alpha=k), torch.add(hi, plane, alpha=k)
            lo, hi = lo.view(n, hh, q, ww, q).amin(4).amin(2), hi.view(n, hh, q, ww, q).amax(4).amax(2)  # (N, h', w')
            m = (mu * abs(cu)).add_(mv, alpha=abs(cv)).add_(slack).div_(a)
            b_c = (lo < m.add(off / a)) | (hi > (m.neg_().add_((1 + off) / a)))
            bad = b_c if bad is None else bad.logical_or_(b_c)
        return bad


def _step_bounds(A: torch.Tensor) -> tuple[float, float]:
    """(kv, kh) for the 1D filter ``A`` (P, nw) of a cell (2D: kron(A, A)): a base pixel's deviation from the
    mean of its 2x2 block is at most kv * (the window's largest vertical step between adjacent LR pixels) + kh *
    (horizontal). Per axis, with a the filter row, m the mean of the block's two rows, d = a - m (sums to 0):
    a_y a_x - m_y m_x = d_y a_x + m_y d_x, and a zero-sum d weighs a sequence by
    sum_i d_i h_i = -sum_i cumsum(d)_i (h_i+1 - h_i), so |.| <= sum|cumsum(d)| * max step."""
    P = A.shape[0]
    m = A.unflatten(0, (P // 2, 2)).mean(1, keepdim=True).expand(-1, 2, -1).reshape(P, -1)  # (P, nw)
    d = A - m
    c = d.cumsum(1).abs().sum(1)  # (P,): sum |cumsum(d)|
    kv = (c[:, None] * A.abs().sum(1)[None]).max()  # over the pixel (row py, column px): (d_y a_x) . w
    kh = (m.abs().sum(1)[:, None] * c[None]).max()  # (m_y d_x) . w
    return float(kv), float(kh)


def _window(x: torch.Tensor, cell: int, R: int, op) -> torch.Tensor:
    """``op`` (torch.maximum / minimum) over each cell x cell block of (N, C, H, W), then over the 2R+1 x 2R+1
    blocks around each block (clipped to the frame): elementwise ops on shifted slices, several times faster
    than max_pool2d at this size on a CPU."""
    for dim in (2, 3):
        n = x.shape[dim] // cell
        blocks = x.narrow(dim, 0, n * cell).unflatten(dim, (n, cell))
        y = blocks.select(dim + 1, 0).contiguous()
        for k in range(1, cell):  # the block
            op(y, blocks.select(dim + 1, k), out=y)
        z = y.clone()
        for k in range(1, min(R, n - 1) + 1):  # the blocks k before and k after, where there are any
            a = z.narrow(dim, 0, n - k)
            op(a, y.narrow(dim, k, n - k), out=a)
            b = z.narrow(dim, k, n - k)
            op(b, y.narrow(dim, 0, n - k), out=b)
        x = z
    return x


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """(..., H, W) padded by ``r`` on each side of the last two dims with MATLAB's symmetric boundary (-1 -> 0),
    as ``resample.upsample`` pads: flipped edge slices where the frame is at least ``r`` wide (a plain copy,
    faster than an index_select along the last dim), indices otherwise."""
    for dim in (-2, -1):
        n = x.shape[dim]
        if n >= r:
            x = torch.cat([x.narrow(dim, 0, r).flip(dim), x, x.narrow(dim, n - r, r).flip(dim)], dim)
        else:
            x = x.index_select(dim, _symmetric(torch.arange(-r, n + r, device=x.device), n))
    return x


def _symmetric(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside 0..n-1 reflected as MATLAB's (and ``resample.upsample``'s) symmetric boundary: -1 -> 0."""
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx).clamp_(0, n - 1)


def clamp_cells(
    planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    feats: torch.Tensor,
    conv: nn.Conv2d,
    lr: torch.Tensor,
    kernel: str,
    scale: int,
    cell: int,
    rgb_to_yuv: torch.Tensor,
) -> int:
    """Make the 4:2:0 planes of an unclamped output equal, in place, to those of the output clamped to [0, 1]
    in RGB, as the RGB output path clamps it. The output: ``pixel_shuffle(conv(feats), P)`` (the learned part;
    ``feats`` already padded so that the conv's output is (h', w')) + ``resample.upsample(lr, scale, kernel)``
    (the base, float32), P = scale * cell; ``lr``: (N, 3, cell h', cell w'); ``planes``: Y (N, P h', P w'),
    U, V (N, P h'/2, P w'/2), P even.

    A cell (P x P output pixels) whose RGB cannot leave [0, 1] is already exact; the others are found on the
    planes (:func:`_cells_that_may_clip`), rebuilt in RGB (their feature patches through the conv plus their
    LR window through the 2D base filter, float32, each one GEMM), clamped, converted (:func:`clamped_yuv420`)
    and written back. Returns how many cells were rebuilt (``benchmarks/clamp_cost.py`` measures how many
    and what they cost)."""
    yp, up, vp = planes
    P = scale * cell
    fh, fw = feats.shape[-2:]
    kk = conv.kernel_size[0]
    hh, ww = fh - kk + 1, fw - kk + 1
    bad = _cells_that_may_clip(planes, feats, conv, lr, kernel, scale, cell, rgb_to_yuv)  # (N, h', w')
    ni, ii, ji = bad.nonzero(as_tuple=True)
    k = int(ni.numel())
    if k == 0:
        return 0
    with full_precision(feats):
        # their learned part: the cells' feature patches through the conv, float32
        cin = feats.shape[1]
        fl = feats.float().permute(0, 2, 3, 1).contiguous().view(-1, cin)  # (N fh fw, Cin): one row per position
        at = (ni * fh + ii) * fw + ji  # each cell's top-left feature row
        taps = (torch.arange(kk, device=at.device)[:, None] * fw + torch.arange(kk, device=at.device)).flatten()
        patch = fl.index_select(0, (at[:, None] + taps).flatten()).view(k, -1)  # (k, kk kk Cin): rows, not unfold
        c = _clip_constants(
            conv, _version(conv), tuple(rgb_to_yuv.detach().cpu().flatten().tolist()), kernel, scale, cell, feats.device
        )
        rgb = torch.addmm(c["br"], patch, c["Wr"].T)  # (k, 3PP): the tail as one matrix
        # + the base: each cell's LR window, symmetric at the frame's edges, through the 2D polyphase filter
        # kron(A, A) (one GEMM: batches of tiny row and column products are much slower on a CPU)
        radius, A2 = c["radius"], c["A2"]  # A2: (P*P, nw*nw), kron(A, A)
        lp = _symmetric_pad(lr.float(), radius)  # (N, 3, H + 2r, W + 2r)
        nw = cell + 2 * radius
        _, _, H, W = lp.shape
        at = ni * (3 * H * W) + ii * (cell * W) + ji * cell  # each window's top-left, flat
        dev = at.device
        taps = (
            (torch.arange(3, device=dev) * H * W)[:, None, None]
            + (torch.arange(nw, device=dev) * W)[:, None]
            + torch.arange(nw, device=dev)
        ).flatten()  # (3 nw nw,) offsets in (3, H, W)
        win = torch.take(lp, at[:, None] + taps)  # (k, 3 nw nw): a flat gather, not unfold + advanced index
        rgb.view(-1, P * P).addmm_(win.view(-1, nw * nw), A2.T)
        y, u, v = clamped_yuv420(rgb.view(-1, 3, P, P), rgb_to_yuv)
        q = P // 2
        idx = (ni, ii, ji)
        yp.unflatten(1, (hh, P)).unflatten(3, (ww, P)).permute(0, 1, 3, 2, 4)[idx] = y
        up.unflatten(1, (hh, q)).unflatten(3, (ww, q)).permute(0, 1, 3, 2, 4)[idx] = u
        vp.unflatten(1, (hh, q)).unflatten(3, (ww, q)).permute(0, 1, 3, 2, 4)[idx] = v
        return k


def add_planes(out: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, P: int) -> None:
    """Add a :func:`yuv420_fold`-ed tail's output ``out`` (N, P*P*3/2, h', w') into the planes Y (N, P h',
    P w'), U and V (N, P h'/2, P w'/2), in place: the pixel shuffle by P (Y) and P/2 (U, V) read straight
    from ``out`` (ideally channels-last), with no shuffled copy at the output size."""
    n1, n2, hh, ww = P * P, P * P // 4, out.shape[-2], out.shape[-1]
    o = out.permute(0, 2, 3, 1)  # (N, h', w', P*P*3/2)
    for plane, chans, f in ((y, o[..., :n1], P), (u, o[..., n1 : n1 + n2], P // 2), (v, o[..., n1 + n2 :], P // 2)):
        sub = chans.unflatten(-1, (f, f)).permute(0, 1, 3, 2, 4)  # (N, h', f, w', f): sub-pixel grid
        plane.view(-1, hh, f, ww, f).add_(sub)
