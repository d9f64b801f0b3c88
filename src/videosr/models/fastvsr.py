"""FastVSR: a real-time multi-frame model (sliding window, early fusion), sized for 2 CPU cores.

    frames t-r..t+r (or t-(n-1)..t when causal)
      -> per-frame features: pixel-unshuffle by `down`, conv3x3 (once per frame, shared by the windows)
      -> fusion: concat the window's features, conv3x3 -> width
      -> body: `blocks` residual blocks
      -> reconstruction: one conv (out_kernel x out_kernel) -> 3*(s*down)^2 channels, one pixel shuffle

Every convolution runs at LR/down resolution (down=2: 4x fewer pixels and 4x more channels than LR for
the same cost, which suits oneDNN's kernels and doubles the receptive field). The global residual is the
current frame upsampled with a fixed `residual` filter:
  * "bicubic" (the default of the shipped variants): MATLAB bicubic (videosr.resample.upsample: separable,
    4 taps per axis), added to the pixel-shuffled learned branch, which is initialised to zero, so training
    starts from bicubic quality. In a one-off test on 20 fixed training batches (docs/models.md), with a
    "nearest" or "bilinear" base the 40k-parameter model stayed under bicubic after 300 Adam steps; with the
    bicubic base it passed bicubic. (Until 2026-12 this base was a grouped 3x3-cell conv
    at LR/down resolution with replicated borders: the same values except within 2 LR pixels of the frame
    edge, where MATLAB mirrors; the separable form costs 4x fewer multiply-adds on the video planes.)
  * "nearest" (ABPN's anchor) or "bilinear" (exact, needs out_kernel=3): folded into the reconstruction
    conv as extra input channels with fixed weights.
Sequence ends are padded by replicating the edge frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..resample import upsample
from .layers import (
    ResidualBlock,
    add_planes,
    bicubic_upsample_conv,
    clamp_cells,
    folded_tail,
    full_precision,
    rgb_to_yuv_image,
    upsample_weights,
)
from .registry import Variant, register_arch, register_variant


@register_arch("fastvsr")
class FastVSR(nn.Module):
    scale: int
    context: int
    causal: bool
    # an int8 trunk (videosr.int8.Int8Trunk, set by videosr.int8.int8_model on a copy): runs feat, fuse and body
    int8_trunk = None

    def __init__(
        self,
        scale: int = 4,
        frames: int = 3,
        causal: bool = False,
        feat: int = 16,
        width: int = 32,
        blocks: int = 1,
        down: int = 2,
        out_kernel: int = 1,
        residual: str = "nearest",
    ) -> None:
        super().__init__()
        if frames < 1 or (not causal and frames % 2 == 0):
            raise ValueError(f"frames must be odd (centred window) unless causal, got {frames}")
        self.scale, self.frames, self.causal, self.down, self.out_kernel = scale, frames, causal, down, out_kernel
        # window offsets relative to the output frame: centred, or the current frame and its past
        self.offsets = list(range(-(frames - 1), 1)) if causal else list(range(-(frames // 2), frames // 2 + 1))
        self.context = frames - 1 if causal else frames // 2
        up = scale * down  # pixel-shuffle factor from trunk resolution to HR
        # per-frame features
        self.feat = nn.Conv2d(3 * down * down, feat, 3, 1, 1)
        # fusion
        self.fuse = nn.Conv2d(frames * feat, width, 3, 1, 1)
        # body
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        # reconstruction; the fixed residual filter reads the unshuffled current frame
        self.to_rgb = nn.Conv2d(width, 3 * up * up, out_kernel)
        self.residual = residual
        if residual == "bicubic":
            # MATLAB bicubic base (videosr.resample.upsample, separable) added at the output; the learned
            # branch starts at zero, so an untrained model is exactly bicubic
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)
        else:
            self.register_buffer("base", upsample_weights(residual, scale, down, out_kernel), persistent=False)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def _features(
        self, x: torch.Tensor, keep: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) -> trunk output (B*T', width, h', w'), the padded frames (B*T, 3, H2 + 2dr, W2 + 2dr)
        and their unshuffle (B*T, 3*d*d, h'+2r, w'+2r). ``keep = (a, b)``: fuse only the windows of frames
        a..b-1 (T' = b - a; default all T)."""
        b, t, c, h, w = x.shape
        d, r = self.down, self.out_kernel // 2
        ph, pw = -h % d, -w % d  # pad H, W up to multiples of `down`; cropped at the end
        frames = x.reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        frames = F.pad(frames, (d * r, d * r + pw, d * r, d * r + ph), mode="replicate") if (r or ph or pw) else frames
        u = F.pixel_unshuffle(frames, d)  # (B*T, 3*d*d, h'+2r, w'+2r), h' = ceil(H/d)
        hh, ww = u.shape[-2] - 2 * r, u.shape[-1] - 2 * r
        # each output frame's window, edge frames replicated
        a, z = keep if keep is not None else (0, t)
        idx = (torch.arange(a, z, device=x.device)[:, None] + torch.tensor(self.offsets, device=x.device)).clamp(
            0, t - 1
        )  # (T', n)
        if self.int8_trunk is not None:  # feat, fuse and body in int8 (videosr.int8); the rest stays float
            flat = (torch.arange(b, device=x.device)[:, None, None] * t + idx).reshape(-1, idx.shape[1])
            return self.int8_trunk(u[..., r : r + hh, r : r + ww], flat), frames, u  # (B*T', width, h', w')
        # per-frame features, once per frame
        f = self.act(self.feat(u[..., r : r + hh, r : r + ww]))  # (B*T, feat, h', w')
        f = f.reshape(b, t, -1, hh, ww)  # (B, T, feat, h', w')
        # fusion: gather each output frame's window
        win = f[:, idx].reshape(b * (z - a), -1, hh, ww)  # (B*T', n*feat, h', w')
        y = self.act(self.fuse(win))  # (B*T', width, h', w')
        # body
        return self.body(y), frames, u  # (B*T, width, h', w')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        d, s, r = self.down, self.scale, self.out_kernel // 2
        crop = bool(h % d or w % d)
        y, frames, u = self._features(x)
        if self.residual == "bicubic":
            # reconstruction + MATLAB bicubic of the current frame
            y = self.to_rgb(F.pad(y, (r, r, r, r)) if r else y)  # (B*T, 3*(s*d)^2, h', w')
            y = F.pixel_shuffle(y, s * d)  # (B*T, 3, s*d*h', s*d*w')
            y = y + self._base(x.reshape(b * t, c, h, w))  # (B*T, 3, s*d*h', s*d*w')
            y = y[..., : s * h, : s * w] if crop else y  # (B*T, 3, sH, sW)
            return y.reshape(b, t, c, s * h, s * w)  # (B, T, 3, sH, sW)
        # reconstruction + fixed residual in one convolution
        y = F.pad(y, (r, r, r, r)) if r else y  # (B*T, width, h'+2r, w'+2r), zero padding as in a conv
        y = torch.cat([y, u.to(y.dtype)], dim=1)  # (B*T, width + 3*d*d, h'+2r, w'+2r)
        wgt = torch.cat([self.to_rgb.weight, self.base.to(self.to_rgb.weight.dtype)], dim=1)
        y = F.conv2d(y, wgt, self.to_rgb.bias)  # (B*T, 3*(s*d)^2, h', w')
        y = F.pixel_shuffle(y, s * d)  # (B*T, 3, s*d*h', s*d*w')
        y = y[..., : s * h, : s * w] if crop else y  # (B*T, 3, sH, sW)
        return y.reshape(b, t, c, s * h, s * w)  # (B, T, 3, sH, sW)

    def _base(self, x: torch.Tensor, average: int = 1) -> torch.Tensor:
        """(N, C, H, W) -> MATLAB bicubic x``scale`` of the frames replicate-padded to multiples of ``down``
        (as the exported graph pads them; crop the result to sH x sW); ``average``: then the mean of each
        average x average block (the 4:2:0 chroma of the upsampled frame)."""
        d = self.down
        ph, pw = -x.shape[-2] % d, -x.shape[-1] % d
        x = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x  # (N, C, H2, W2)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # unfold (upsample's) does not export
            y = bicubic_upsample_conv(x, self.scale)
            return F.avg_pool2d(y, average) if average > 1 else y
        with full_precision(x):  # the base carries the image: float32 under bf16 autocast too
            return upsample(x.float(), self.scale, "cubic", average)  # (N, C, s*H2/average, s*W2/average)

    # -- 4:2:0 video planes (an inference path of the video pipeline) ------------------------------------------
    @property
    def supports_planes(self) -> bool:
        return self.residual == "bicubic" and (self.scale * self.down) % 2 == 0

    def forward_planes(
        self, x: torch.Tensor, rgb_to_yuv: torch.Tensor, keep: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) RGB in [0, 1] -> the output as 4:2:0 video planes, for the video pipeline:
        Y (B, T', sH, sW), U and V (B, T', sH/2, sW/2), in [0, 1] code units, float32.

        The same maths as ``forward``, clamped to [0, 1] as the RGB output path clamps it, followed by
        ``rgb_to_yuv`` ((3, 4): the affine matrix of the video's colour space and range) and a 2x2 average of
        the chroma, but the colour matrix and the average are folded into the reconstruction conv (half the
        output channels of the RGB tail), the bicubic base is taken of the LR frame's Y, U and V, and the
        learned sub-pixels are added into the base planes straight from the conv's output: no RGB frame and no
        pixel-shuffled copy at the output size. The clamp is per RGB pixel, which 4:2:0 planes cannot see, so
        each trunk cell's RGB is bounded (on the trunk grid): the few cells that may leave [0, 1] are rebuilt
        in RGB, clamped and converted (``layers.clamp_cells``).
        ``keep = (a, b)``: reconstruct only frames a..b-1 of the clip
        (T' = b - a; the others are context for the window)."""
        if not self.supports_planes:
            raise NotImplementedError("planes need residual='bicubic'")
        b, t, c, h, w = x.shape
        d, s, r, P = self.down, self.scale, self.out_kernel // 2, self.scale * self.down
        a, z = keep if keep is not None else (0, t)
        y, _, _ = self._features(x, (a, z))  # (B*T', width, h', w')
        y = F.pad(y, (r, r, r, r)) if r else y
        w1, bias = folded_tail(self.to_rgb, rgb_to_yuv, P)  # colour matrix and chroma average folded in
        out = F.conv2d(y, w1.to(y.dtype), bias.to(y.dtype))  # (N, P*P*3/2, h', w')
        # the bicubic base of the current frames' Y, U, V (the filter commutes with the colour matrix),
        # chroma averaged 2x2 as 4:2:0 subsamples it
        cur = x[:, a:z].reshape(-1, c, h, w)  # (N, 3, H, W), N = B*T'
        yuv = rgb_to_yuv_image(cur, rgb_to_yuv)  # (N, 3, H, W), float32
        ys = self._base(yuv[:, :1])[:, 0]  # (N, s*H2, s*W2)
        uvs = self._base(yuv[:, 1:], average=2)  # (N, 2, s*H2/2, s*W2/2)
        add_planes(out, ys, uvs[:, 0], uvs[:, 1], P)  # + the learned sub-pixels, in place
        # the RGB output's clamp: cells that may leave [0, 1] (bounds of the base from the padded LR frame)
        ph, pw = -h % d, -w % d
        lr = F.pad(cur, (0, pw, 0, ph), mode="replicate") if (ph or pw) else cur  # what _base upsamples
        clamp_cells((ys, uvs[:, 0], uvs[:, 1]), y, self.to_rgb, lr, "cubic", s, d, rgb_to_yuv)
        ys, uvs = ys[:, : s * h, : s * w], uvs[..., : s * h // 2, : s * w // 2]  # odd LR sizes: crop
        tk = z - a
        return (
            ys.reshape(b, tk, *ys.shape[-2:]),
            uvs[:, 0].reshape(b, tk, *uvs.shape[-2:]),
            uvs[:, 1].reshape(b, tk, *uvs.shape[-2:]),
        )


_FAST_NOTE = "no weights shipped yet: train with `videosr train`"
TRAINING_DATA = (
    "videosr training set (scripts/build_dataset.py): 39 photos and 15 real video runs from Debian "
    "opencv-doc, plasma-workspace-wallpapers, mate-backgrounds and scikit-image, with synthetic "
    "camera motion; no test-set images"
)
_FAST = {
    "frames": 3,
    "causal": False,
    "feat": 16,
    "width": 32,
    "blocks": 1,
    "down": 2,
    "out_kernel": 1,
    "residual": "bicubic",
}
for _v in [
    Variant(
        name="fast-x4",
        arch="fastvsr",
        scale=4,
        kwargs=_FAST,
        sha256="5ef6c2e6ed0651651c4ab4e1f22888168db1ef58c526149bb4820d303861fcbd",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        int8_sha256="102526305f9745d6a2771a6739e616aebe983b7497c16fb013fc495fa68bf609",
        description="real-time 3-frame model (t-1, t, t+1), video-call class; trained by "
        "`videosr train configs/fast-x4.toml`",
    ),
    Variant(
        name="fast-x4-bd",
        arch="fastvsr",
        scale=4,
        kwargs=_FAST,
        sha256="d628b5ab30a0299613f8bb23c220a65f19d60b86265ad15afa8ed93ac29ab7c0",
        training_data=TRAINING_DATA,
        degradation="BD",
        license="MIT",
        precision="bf16",
        int8_sha256="870da307a18ab6100da2b7873609a640a4f31286b311e631c9516c917f4ee5a4",
        description="fast-x4 fine-tuned for BD input (Gaussian blur sigma 1.6 + subsample: soft, "
        "optically blurred video); trained by `videosr train configs/fast-x4-bd.toml`",
    ),
    Variant(
        name="fast-x4-causal",
        arch="fastvsr",
        scale=4,
        kwargs={**_FAST, "causal": True},
        sha256="bd1a90f067464a93b30854ac7f67cbc73f4e5e38c168b454149dd87e44532a9b",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="causal real-time model (t-2, t-1, t): no look-ahead, for live video (--live); "
        "fast-x4 fine-tuned by `videosr train configs/fast-x4-causal.toml`",
    ),
    Variant(
        name="fast-x4-small",
        arch="fastvsr",
        scale=4,
        kwargs={**_FAST, "feat": 12, "width": 24},
        description="smallest real-time model, for slower CPUs; " + _FAST_NOTE,
    ),
    Variant(
        name="fast-x4-large",
        arch="fastvsr",
        scale=4,
        kwargs={**_FAST, "frames": 5, "width": 48, "blocks": 3, "out_kernel": 3, "residual": "bicubic"},
        description="5-frame model; not real-time on 2 cores; " + _FAST_NOTE,
    ),
    Variant(
        name="fast-x2",
        arch="fastvsr",
        scale=2,
        kwargs=_FAST,
        sha256="9b2c90679cce6c20fab351f3cb93439d520beef87c5c627e5fa8a8884a22d685",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        int8_sha256="518076177469d61b9a3726bdb4a0a175d1f357879cc632edde578fbd71453663",
        description="fast-x4's architecture at x2, real-time class; trained by `videosr train configs/fast-x2.toml`",
    ),
]:
    register_variant(_v)
