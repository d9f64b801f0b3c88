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
            return 1.5 * v ** 3 - 2.5 * v ** 2 + 1
        if v < 2:
            return -0.5 * v ** 3 + 2.5 * v ** 2 - 4 * v + 2
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
    convolutions. The same values as :func:`videosr.degrade.upsample` up to float rounding, built only from
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


@functools.lru_cache(maxsize=None)
def _base_filter(kernel: str, scale: int, cell: int) -> tuple[int, float, torch.Tensor]:
    """(radius, kappa, A) of ``degrade.upsample(., scale, kernel)``, from its impulse responses. An output pixel
    inside LR pixel i (along an axis) weighs LR pixels i - radius .. i + radius, the weights summing to 1; with
    nu the largest negative weight mass along an axis, a 2D output weight's negative mass is at most
    kappa = 2 nu (1 + nu) (0 for bilinear), so the output lies in [mn - kappa (mx - mn), mx + kappa (mx - mn)]
    for mn, mx the min, max of the LR window. A (scale cell, cell + 2 radius), float32: the outputs of one
    block of ``cell`` LR pixels from its window (``upsample`` is translation invariant away from the edges)."""
    from ..degrade import upsample

    n = 24 + 2 * cell
    w = upsample(torch.eye(n, dtype=torch.float64)[:, None], scale, kernel)[:, 0]  # (LR impulse k, output o)
    lr_of = torch.arange(scale * n) // scale  # the LR pixel each output lies in
    inner = (lr_of >= 6) & (lr_of < n - 6)  # away from the symmetric boundary
    dist = (torch.arange(n)[:, None] - lr_of[None]).abs()  # (k, o)
    radius = int(dist[:, inner][w[:, inner].abs() > 1e-12].max())
    nu = float(-w[:, inner].clamp(max=0).sum(0).min())
    i0 = 12  # an interior block start
    A = w[i0 - radius: i0 + cell + radius, scale * i0: scale * (i0 + cell)].T  # (scale cell, cell + 2 radius)
    return radius, 2 * nu * (1 + nu), A.float()


def base_range(lr: torch.Tensor, kernel: str, scale: int, cell: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds (lo, hi), each (N, C, H/cell, W/cell) float32, on ``degrade.upsample(lr, scale, kernel)`` over each
    cell x cell block of LR pixels (H, W multiples of ``cell``), from the min and max of the LR window the
    block's outputs read (:func:`_base_filter`): rigorous, and cheap (at LR resolution)."""
    radius, kappa, _ = _base_filter(kernel, scale, cell)
    R = -(-radius // cell)  # the window, widened to whole cells: cells i - R .. i + R
    with full_precision(lr):
        x = lr.float()
        mx, mn = _window(x, cell, R, torch.maximum), _window(x, cell, R, torch.minimum)  # (N, C, h', w')
        spread = (mx - mn).mul_(kappa)
        return mn - spread, mx.add_(spread)


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


def _symmetric(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Indices outside 0..n-1 reflected as MATLAB's (and ``degrade.upsample``'s) symmetric boundary: -1 -> 0."""
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx).clamp_(0, n - 1)


def clamp_cells(planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor], feats: torch.Tensor, conv: nn.Conv2d,
                lr: torch.Tensor, kernel: str, scale: int, cell: int, rgb_to_yuv: torch.Tensor) -> int:
    """Make the 4:2:0 planes of an unclamped output equal, in place, to those of the output clamped to [0, 1]
    in RGB, as the RGB output path clamps it. The output: ``pixel_shuffle(conv(feats), P)`` (the learned part;
    ``feats`` already padded so that the conv's output is (h', w')) + ``degrade.upsample(lr, scale, kernel)``
    (the base, float32), P = scale * cell; ``lr``: (N, 3, cell h', cell w'); ``planes``: Y (N, P h', P w'),
    U, V (N, P h'/2, P w'/2), P even.

    A cell (P x P output pixels) whose RGB cannot leave [0, 1] is already exact. Bounds per cell and colour,
    all at the trunk's resolution: the base from its LR window (:func:`base_range`); the learned part first
    as mean(W) f +- max|W - mean(W)| |f| over the cell's sub-pixels (one small float32 matmul or conv), then,
    for the cells that bound does not clear, exactly (their feature patches through the conv, float32); both
    widened by 2^-7 of the magnitude for a bf16 tail's rounding (what that can still miss is a few 1e-4 outside
    [0, 1]: well under a code value). The remaining cells are rebuilt in RGB
    (learned + base from the LR window, float32), clamped, converted (:func:`clamped_yuv420`) and written
    back. Returns how many cells were rebuilt: fast-x4 on the sample clip (480x270 -> 1080p), 1.3 % of them
    on a typical frame, 44 % on its most saturated one (3 % of its output pixels leave [0, 1])."""
    yp, up, vp = planes
    P = scale * cell
    fh, fw = feats.shape[-2:]
    kk = conv.kernel_size[0]
    hh, ww = fh - kk + 1, fw - kk + 1
    with full_precision(feats):
        W = conv.weight.detach().float().unflatten(0, (3, P * P))  # (3, P*P, Cin, kk, kk)
        b = conv.bias.detach().float().unflatten(0, (3, P * P)) if conv.bias is not None else W.new_zeros(3, P * P)
        Wm = W.mean(1)  # (3, Cin, kk, kk)
        D = (W - Wm[:, None]).abs().amax(1)
        f = feats.float()
        fa = f.abs()
        Wa = torch.cat([D, Wm.abs() + D])  # (6, Cin, kk, kk): radius, magnitude bound
        if kk == 1:  # one matmul over the channels of (channels-last) features: no small-conv slow path
            z = torch.block_diag(Wm.flatten(1).T, Wa.flatten(1).T)  # (2 Cin, 9)
            z = torch.cat([f, fa], 1).permute(0, 2, 3, 1) @ z  # (N, h', w', 9)
            centre, rad_mag = z[..., :3], z[..., 3:]
        else:
            centre = F.conv2d(f, Wm).permute(0, 2, 3, 1)  # (N, h', w', 3)
            rad_mag = F.conv2d(fa, Wa).permute(0, 2, 3, 1)  # (N, h', w', 6)
        slack = rad_mag[..., 3:].mul(2.0 ** -7).add_(1e-6)
        blo, bhi = (t.permute(0, 2, 3, 1).contiguous() for t in base_range(lr, kernel, scale, cell))  # (N, h', w', 3)
        lo = (blo + centre).sub_(rad_mag[..., :3]).sub_(slack).add_(b.amin(1))
        hi = (bhi + centre).add_(rad_mag[..., :3]).add_(slack).add_(b.amax(1))
        bad = (lo < 0).any(3) | (hi > 1).any(3)  # (N, h', w')
        ni, ii, ji = bad.nonzero(as_tuple=True)  # the cells that may leave [0, 1]
        if ni.numel() == 0:
            return 0
        # their learned part, exactly: the cells' feature patches through the conv, float32
        fl = f.permute(0, 2, 3, 1)  # (N, fh, fw, Cin)
        patch = fl[ni, ii, ji] if kk == 1 else fl.unfold(1, kk, 1).unfold(2, kk, 1)[ni, ii, ji]  # (k, Cin[, kk, kk])
        Wr = conv.weight.detach().float().reshape(3 * P * P, -1)  # (3PP, Cin kk kk)
        rgb = torch.addmm(conv.bias.detach().float() if conv.bias is not None else Wr.new_zeros(3 * P * P),
                          patch.reshape(len(ni), -1), Wr.T).view(-1, 3, P * P)  # (k, 3, P*P)
        # the learned bound was loose (+-0.08 where the sub-pixels spread 0.004 on real frames): keep only
        # the cells whose exact learned range may still leave [0, 1]
        lmin, lmax = rgb.amin(2), rgb.amax(2)  # (k, 3)
        slack = torch.maximum(lmin.abs(), lmax.abs()).mul_(2.0 ** -7).add_(1e-6)  # the bf16 tail's rounding
        keep = ((blo[ni, ii, ji] + lmin - slack) < 0).any(1) | ((bhi[ni, ii, ji] + lmax + slack) > 1).any(1)
        ni, ii, ji, rgb = ni[keep], ii[keep], ji[keep], rgb[keep].view(-1, 3, P, P)  # (k, 3, P, P)
        k = int(ni.numel())
        if k == 0:
            return 0
        # + the base: each cell's LR window, symmetric at the frame's edges, through the polyphase filter
        radius, _, A = _base_filter(kernel, scale, cell)
        A = A.to(lr.device)
        lh, lw = lr.shape[-2:]
        rows = _symmetric(torch.arange(-radius, lh + radius, device=lr.device), lh)
        cols = _symmetric(torch.arange(-radius, lw + radius, device=lr.device), lw)
        lp = lr.float().index_select(2, rows).index_select(3, cols)  # (N, 3, H + 2r, W + 2r): symmetric edges
        nw = cell + 2 * radius
        win = lp.unfold(2, nw, cell).unfold(3, nw, cell).permute(0, 2, 3, 1, 4, 5)[ni, ii, ji]  # (k, 3, nw, nw)
        t = (win @ A.T).transpose(-1, -2)  # (k, 3, P, nw): columns filtered (one GEMM, not k*3 tiny ones)
        rgb += (t @ A.T).transpose(-1, -2)  # (k, 3, P, P): rows too
        y, u, v = clamped_yuv420(rgb, rgb_to_yuv)
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
    for plane, chans, f in ((y, o[..., :n1], P), (u, o[..., n1:n1 + n2], P // 2), (v, o[..., n1 + n2:], P // 2)):
        sub = chans.unflatten(-1, (f, f)).permute(0, 1, 3, 2, 4)  # (N, h', f, w', f): sub-pixel grid
        plane.view(-1, hh, f, ww, f).add_(sub)
