"""RecurrentVSR: a BasicVSR-family model (Chan et al., CVPR 2021), sized for CPUs.

    per-frame features (pixel-unshuffle by `down`, conv, residual blocks)
      -> alignment: optical flow between neighbouring LR frames ("learned": a small SpyNet-like pyramid
         trained jointly with the model; "classical": videosr.flow.estimate_flow, no parameters)
      -> propagation: backward (T-1 .. 0) and forward (0 .. T-1) recurrences; at each frame the previous
         hidden state is flow-warped onto the current frame, concatenated with its features, and refined
         by a conv + residual blocks. `bidirectional=False` keeps only the forward pass: an online, causal
         model whose output at t needs frames 0..t only.
      -> reconstruction: fuse both directions (1x1 conv), pixel shuffle x`down` back to the LR grid,
         conv to 3*s*s channels, pixel shuffle x`s`; + the bilinear-upsampled frame (in float32 under bf16
         autocast: the base carries the image; the exported graph folds it into the last conv as fixed
         extra input channels).

`context` is the warm-up length the inference engine should give each chunk of a long video: the
hidden state forgets its initial zeros after a few frames.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..resample import upsample
from .fastvsr import TRAINING_DATA
from .layers import (
    ResidualBlock,
    add_planes,
    clamp_cells,
    flow_warp,
    folded_tail,
    full_precision,
    rgb_to_yuv_image,
    upsample_weights,
)
from .registry import Variant, register_arch, register_variant

# alignment ---------------------------------------------------------------------------------------------


def _pool(x: torch.Tensor, down: int, size: tuple[int, int]) -> torch.Tensor:
    """Average ``x`` (N, C, H, W) onto the (h, w) grid: a plain down x down mean when the size divides (several
    times faster than the adaptive pool on a CPU, same values)."""
    if x.shape[-2:] == (size[0] * down, size[1] * down):
        return F.avg_pool2d(x, down)
    return F.adaptive_avg_pool2d(x, size)


def _resize_flow(flow: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Flow (N, 2, h, w) onto ref's grid (N, C, h2, w2), its vectors rescaled (unchanged when the sizes match)."""
    if flow.shape[-2:] == ref.shape[-2:]:
        return flow
    sy, sx = ref.shape[-2] / flow.shape[-2], ref.shape[-1] / flow.shape[-1]
    flow = F.interpolate(flow, size=ref.shape[-2:], mode="bilinear", align_corners=False)
    return flow * torch.tensor([sx, sy], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)


class LearnedFlow(nn.Module):
    """SpyNet-like coarse-to-fine flow: `levels` pyramid levels, a tiny conv net per level.

    Estimates the flow at 1/down of the input resolution (the model's feature grid), in pixels of that grid,
    such that flow_warp(sup, flow) ~ ref. The last conv of each level starts near zero (near-identity warp).
    """

    def __init__(self, down: int = 2, levels: int = 3, width: int = 24) -> None:
        super().__init__()
        self.down, self.levels = down, levels
        self.nets = nn.ModuleList()
        for _ in range(levels):
            net = nn.Sequential(
                nn.Conv2d(3 + 3 + 2, width, 3, 1, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(width, width, 3, 1, 1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(width, 2, 3, 1, 1),
            )
            with torch.no_grad():
                net[-1].weight.mul_(0.01)
                net[-1].bias.zero_()
            self.nets.append(net)

    def forward(self, ref: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
        """ref, sup: (N, 3, H, W) -> flow (N, 2, ceil(H/down), ceil(W/down))."""
        h, w = -(-ref.shape[-2] // self.down), -(-ref.shape[-1] // self.down)
        return self.coarse_to_fine(_pool(ref, self.down, (h, w)), _pool(sup, self.down, (h, w)))

    def coarse_to_fine(self, ref: torch.Tensor, sup: torch.Tensor, warp=flow_warp, resize=_resize_flow) -> torch.Tensor:
        """ref, sup already on the flow grid (N, 3, h, w) -> flow (N, 2, h, w): a pyramid of ``levels`` levels
        (2x2 means), then from the coarsest level up, each level's net refines the flow resized from the level
        below. ``warp`` and ``resize``: ``flow_warp`` and ``_resize_flow``; the exported graph
        (:mod:`.export`) passes forms of them whose shapes stay dynamic in ONNX."""
        pyr = [(ref, sup)]  # finest first
        for _ in range(self.levels - 1):
            r, s = pyr[-1]
            pyr.append((F.avg_pool2d(r, 2, ceil_mode=True), F.avg_pool2d(s, 2, ceil_mode=True)))
        flow = ref.new_zeros(ref.shape[0], 2, *pyr[-1][0].shape[-2:])  # (N, 2, coarsest h, w)
        for k, (net, (r, s)) in enumerate(zip(self.nets, reversed(pyr))):
            if k > 0:
                flow = resize(flow, r)  # (N, 2, h_l, w_l)
            flow = flow + net(torch.cat([r, warp(s, flow), flow], dim=1))  # (N, 2, h_l, w_l)
        return flow


class ClassicalFlow(nn.Module):
    """Parameter-free alignment with videosr.flow.estimate_flow on the LR frames, resampled to the feature grid."""

    def __init__(self, down: int = 2, **_: object) -> None:
        super().__init__()
        try:
            from ..flow import estimate_flow  # written separately; optional
        except ImportError as e:
            raise ModelError(f"flow='classical' needs videosr.flow.estimate_flow, which is unavailable ({e})") from None
        self.estimate, self.down = estimate_flow, down

    def forward(self, ref: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), full_precision(ref):  # an iterative solver: float32 under bf16 autocast too
            flow = self.estimate(ref.float(), sup.float())  # (N, 2, H, W) in LR pixels
        h, w = -(-ref.shape[-2] // self.down), -(-ref.shape[-1] // self.down)
        return _pool(flow, self.down, (h, w)).to(ref.dtype) / self.down  # (N, 2, h', w') in grid pixels


class DISFlow(ClassicalFlow):
    """Parameter-free alignment by OpenCV's DIS optical flow (videosr.flow.dis_flow, preset ``dis_preset``) on the
    LR frames, resampled to the feature grid as ClassicalFlow's: a well-kept library's estimator in place of
    the hand-written Lucas-Kanade (benchmarks/dis_vs_lk.py compares them)."""

    def __init__(self, down: int = 2, dis_preset: str = "medium", **_: object) -> None:
        super().__init__(down)
        from ..flow import dis_flow

        self.estimate = functools.partial(dis_flow, preset=dis_preset)


FLOWS: dict[str, type[nn.Module]] = {"learned": LearnedFlow, "classical": ClassicalFlow, "dis": DISFlow}


# propagation -------------------------------------------------------------------------------------------


class Propagation(nn.Module):
    """One recurrence step: conv3x3 over [frame features, warped hidden] -> residual blocks -> new hidden.

    The input conv is applied as two halves: the feature half for all frames in one batched call before the
    recurrence (`project`), the hidden half at each step (`step`); same maths as a conv over the concatenation.
    """

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.width = width
        self.inp = nn.Conv2d(2 * width, width, 3, 1, 1)  # input channels: [features, hidden]
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, width, h, w) frame features -> their share of the input conv, bias included."""
        return F.conv2d(feats, self.inp.weight[:, : self.width], self.inp.bias, padding=1)

    def step(self, projected: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(hidden, self.inp.weight[:, self.width :], padding=1).add_(projected)  # (N, width, h', w')
        return self.blocks(self.act(y))  # (N, width, h', w')


@register_arch("recurrent")
class RecurrentVSR(nn.Module):
    scale: int
    context: int
    causal: bool

    def __init__(
        self,
        scale: int = 4,
        width: int = 32,
        blocks: int = 2,
        feat_blocks: int = 1,
        bidirectional: bool = True,
        flow: str = "learned",
        flow_levels: int = 3,
        flow_width: int = 24,
        down: int = 2,
        up_channels: int = 16,
        warmup: int = 8,
    ) -> None:
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r} (choose from {', '.join(FLOWS)})")
        self.scale, self.down, self.bidirectional = scale, down, bidirectional
        self.causal = not bidirectional
        self.context = warmup
        # per-frame features
        self.feat = nn.Sequential(
            nn.Conv2d(3 * down * down, width, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            *[ResidualBlock(width) for _ in range(feat_blocks)],
        )
        # alignment
        self.flow = FLOWS[flow](down=down, levels=flow_levels, width=flow_width)
        # propagation
        self.backward_prop = Propagation(width, blocks) if bidirectional else None
        self.forward_prop = Propagation(width, blocks)
        # reconstruction
        self.fuse = nn.Conv2d(2 * width, width, 1) if bidirectional else None
        self.upconv = nn.Conv2d(width, up_channels * down * down, 3, 1, 1)
        self.conv_last = nn.Conv2d(up_channels, 3 * scale * scale, 3)
        self.register_buffer("base", upsample_weights("bilinear", scale, 1, 3), persistent=False)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        # training: set by the trainer when loss.flow > 0; forward then leaves the flow's photometric loss here
        self.flow_loss_on = False
        self.flow_loss: torch.Tensor | None = None

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """Padded LR frames (N, 3, H2, W2), H2 and W2 multiples of ``down`` -> their features (N, width, h', w')."""
        return self.feat(F.pixel_unshuffle(lr, self.down))

    def _photometric(self, ref: torch.Tensor, sup: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Charbonnier of flow_warp(sup, flow) - ref on the feature grid (frames averaged down to it), plus
        0.1 x the mean absolute flow gradient (smoothness); ref, sup (N, 3, H2, W2), flow (N, 2, h', w')."""
        grid = flow.shape[-2:]
        r, s = _pool(ref.float(), self.down, grid), _pool(sup.float(), self.down, grid)  # (N, 3, h', w')
        d = flow_warp(s, flow) - r
        photo = torch.sqrt(d * d + 1e-6).mean()
        smooth = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., 1:] - flow[..., :-1]).abs().mean()
        return photo + 0.1 * smooth.float()

    def _propagate(
        self, x: torch.Tensor, need: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], list[torch.Tensor | None]]:
        """(B, T, 3, H, W) -> padded LR frames (B*T, 3, H2, W2) and the forward and backward hidden states,
        (B, width, h', w') each, of the frames ``need = (a, b)`` (default all; None elsewhere, and backward
        is all None when unidirectional).

        The forward state of frame i depends on frames 0..i only and the backward state on frames i..T-1,
        so the forward recurrence stops at b and the backward one at a: a chunk's warm-up frames cost
        neither direction's steps on the side where they cannot contribute."""
        b, t, c, h, w = x.shape
        a, z = need if need is not None else (0, t)
        d = self.down
        ph, pw = -h % d, -w % d  # pad to multiples of `down`; cropped at the end
        lr = x.reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        lr = F.pad(lr, (0, pw, 0, ph), mode="replicate") if (ph or pw) else lr  # (B*T, 3, H2, W2)
        H2, W2 = lr.shape[-2:]
        # per-frame features
        feats = self.features(lr)  # (B*T, width, h', w')
        feats = feats.reshape(b, t, *feats.shape[1:])  # (B, T, width, h', w')
        frames = lr.reshape(b, t, c, H2, W2)  # (B, T, 3, H2, W2)
        grid = feats.shape[-2:]
        zeros = feats.new_zeros(feats[:, 0].shape)  # (B, width, h', w')
        forward: list[torch.Tensor | None] = [None] * t
        backward: list[torch.Tensor | None] = [None] * t
        track = self.flow_loss_on and self.training
        self.flow_loss = x.new_zeros(()) if track else None
        # backward propagation over frames T-1 .. a
        if self.bidirectional:
            if t - 1 > a:  # flows warping hidden i+1 onto i, i in [a, T-1), all pairs in one batch
                ref, sup = frames[:, a:-1].reshape(-1, c, H2, W2), frames[:, a + 1 :].reshape(-1, c, H2, W2)
                bwd_flow = self.flow(ref, sup)  # (B*(T-1-a), 2, h', w')
                if track:
                    self.flow_loss = self.flow_loss + 0.5 * self._photometric(ref, sup, bwd_flow)
                bwd_flow = bwd_flow.reshape(b, t - 1 - a, 2, *grid)  # (B, T-1-a, 2, h', w')
            proj = self.backward_prop.project(feats[:, a:].flatten(0, 1)).reshape(b, t - a, *feats.shape[2:])
            hidden = zeros
            for i in range(t - 1, a - 1, -1):
                if i < t - 1:
                    hidden = flow_warp(hidden, bwd_flow[:, i - a])
                hidden = self.backward_prop.step(proj[:, i - a], hidden)
                if i < z:
                    backward[i] = hidden
            del proj
        # forward propagation over frames 0 .. z-1
        if z > 1:  # flows warping hidden i-1 onto i, i in [1, z)
            ref, sup = frames[:, 1:z].reshape(-1, c, H2, W2), frames[:, : z - 1].reshape(-1, c, H2, W2)
            fwd_flow = self.flow(ref, sup)  # (B*(z-1), 2, h', w')
            if track:
                self.flow_loss = self.flow_loss + (0.5 if self.bidirectional else 1.0) * self._photometric(
                    ref, sup, fwd_flow
                )
            fwd_flow = fwd_flow.reshape(b, z - 1, 2, *grid)  # (B, z-1, 2, h', w')
        proj = self.forward_prop.project(feats[:, :z].flatten(0, 1)).reshape(b, z, *feats.shape[2:])
        hidden = zeros
        for i in range(z):
            hidden = self._forward_step(proj[:, i], hidden, fwd_flow[:, i - 1] if i > 0 else None)
            if i >= a:
                forward[i] = hidden
        return lr, forward, backward

    def _forward_step(self, projected: torch.Tensor, hidden: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
        """One step of the forward recurrence: the previous hidden state (B, width, h', w') warped onto this
        frame by ``flow`` (None at the first frame, whose previous state is zeros), refined with this frame's
        projected features. Shared by the whole-clip pass and :meth:`stream_step`."""
        if flow is not None:
            hidden = flow_warp(hidden, flow)
        return self.forward_prop.step(projected, hidden)

    def _reconstruct(
        self, lr: torch.Tensor, fwd: torch.Tensor, bwd: torch.Tensor | None, h: int, w: int
    ) -> torch.Tensor:
        """One frame's output (B, 3, sH, sW) from its padded LR frame (B, 3, H2, W2) and hidden states."""
        s = self.scale
        y = self.upsample_features(fwd, bwd)  # (B, up, H2, W2)
        y = F.pixel_shuffle(self.conv_last(F.pad(y, (1, 1, 1, 1))), s) + self._base(lr)
        return y[..., : s * h, : s * w]

    def stream_step(
        self, frame: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Online inference of a unidirectional (causal) model, one frame at a time: ``frame`` (B, 3, H, W)
        -> its output (B, 3, sH, sW) and the state to pass with the next frame (``None`` at a stream's first
        frame, or to start again, e.g. after a change of frame size). Over a clip the outputs are
        ``forward``'s (the same steps: :meth:`_forward_step`, :meth:`_reconstruct`; tested), at one frame's
        cost per call. The state is the previous padded LR frame and the forward hidden state."""
        if self.bidirectional:
            raise ValueError(
                "stream_step needs a unidirectional model (bidirectional=False): a bidirectional one looks ahead"
            )
        b, c, h, w = frame.shape
        ph, pw = -h % self.down, -w % self.down
        lr = F.pad(frame, (0, pw, 0, ph), mode="replicate") if (ph or pw) else frame  # (B, 3, H2, W2)
        projected = self.forward_prop.project(self.features(lr))  # (B, width, h', w')
        if state is not None and state[0].shape != lr.shape:
            raise ValueError(
                f"stream_step: frame size changed ({tuple(state[0].shape[-2:])} -> "
                f"{tuple(lr.shape[-2:])} padded): start again with state=None"
            )
        if state is None:
            hidden = self._forward_step(projected, projected.new_zeros(projected.shape), None)
        else:
            hidden = self._forward_step(projected, state[1], self.flow(lr, state[0]))
        return self._reconstruct(lr, hidden, None, h, w), (lr, hidden)

    def upsample_features(self, fwd: torch.Tensor, bwd: torch.Tensor | None) -> torch.Tensor:
        """Hidden states (N, width, h', w') -> reconstruction features (N, up_channels, H2, W2)."""
        y = fwd
        if self.bidirectional:
            y = self.act(self.fuse(torch.cat([bwd, fwd], dim=1)))  # (N, width, h', w')
        return self.act(F.pixel_shuffle(self.upconv(y), self.down))  # (N, up_channels, H2, W2)

    def forward(self, x: torch.Tensor, keep: tuple[int, int] | None = None) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, T, 3, sH, sW); with ``keep = (a, b)`` only frames a..b-1, (B, b-a, 3, sH, sW):
        each direction propagates only over the frames that feed them and they are reconstructed one at a time
        (the inference engine keeps a chunk's core: its context frames' full-size outputs, and the batch of all
        of them at once, were most of a chunk's memory; benchmarks/peak_memory.py, entries before-rgb-path and
        after-rgb-path). Without ``keep`` (training) all frames in one batch."""
        b, t, c, h, w = x.shape
        s = self.scale
        if keep is not None:
            a, z = keep
            lr, forward, backward = self._propagate(x, need=(a, z))
            lr = lr.reshape(b, t, *lr.shape[1:])  # (B, T, 3, H2, W2)
            out = None
            for k, i in enumerate(range(a, z)):
                y = self._reconstruct(lr[:, i], forward[i], backward[i], h, w)  # type: ignore[arg-type]
                if out is None:  # written in place: no second copy of the kept frames (torch.stack)
                    out = y.new_empty((b, z - a, c, s * h, s * w))
                out[:, k] = y  # (B, 3, sH, sW)
            return out if out is not None else x.new_empty((b, 0, c, s * h, s * w))
        lr, forward, backward = self._propagate(x)
        # reconstruction, all frames in one batch
        y = self.upsample_features(
            torch.stack(forward, dim=1).flatten(0, 1),  # type: ignore[arg-type]
            torch.stack(backward, dim=1).flatten(0, 1)  # type: ignore[arg-type]
            if self.bidirectional
            else None,
        )  # (B*T, width, h', w') each
        y = F.pixel_shuffle(self.conv_last(F.pad(y, (1, 1, 1, 1))), s)  # (B*T, 3, s*H2, s*W2): learned
        y = y + self._base(lr)  # + bilinear, float32
        y = y[..., : s * h, : s * w] if (h % self.down or w % self.down) else y  # (B*T, 3, sH, sW)
        return y.reshape(b, t, c, s * h, s * w)  # (B, T, 3, sH, sW)

    def _base(self, lr: torch.Tensor, average: int = 1) -> torch.Tensor:
        """(N, C, H2, W2) -> bilinear x``scale`` (torch's, align_corners=False; the exported graph folds the
        same filter into its last conv) in float32 under autocast too: the base carries the image.
        ``average``: then the mean of each average x average block (4:2:0 chroma)."""
        with full_precision(lr):
            return upsample(lr.float(), self.scale, "linear", average=average)

    # -- 4:2:0 video planes (an inference path of the video pipeline) ------------------------------------------
    @property
    def supports_planes(self) -> bool:
        return self.scale % 2 == 0

    def forward_planes(
        self, x: torch.Tensor, rgb_to_yuv: torch.Tensor, keep: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 3, H, W) RGB in [0, 1] -> the output as 4:2:0 video planes: Y (B, T', sH, sW), U and V
        (B, T', sH/2, sW/2), in [0, 1] code units, float32, for frames ``keep = (a, b)`` (default all).

        ``forward``, clamped to [0, 1] as the RGB output path clamps it, followed by ``rgb_to_yuv`` ((3, 4)
        affine map of the video's colour space and range) and a 2x2 chroma average, with the matrix and the
        average folded into the last conv (half its output channels, no RGB frame at the output size); the
        bilinear base is taken of the LR frame's Y, U, V (a per-channel filter commutes with the matrix) and
        the learned sub-pixels are added into it in place. The clamp is per RGB pixel, which 4:2:0 planes
        cannot see, so the RGB of each LR pixel's s x s outputs is bounded (on the LR grid): the few that may
        leave [0, 1] are rebuilt in RGB, clamped and converted (``layers.clamp_cells``). Each direction
        propagates only over the frames that feed the kept ones (forward from the clip's start, backward from
        its end); only the kept frames are reconstructed, one at a time, so the clip's context frames cost no
        reconstruction and memory stays at one output frame."""
        if not self.supports_planes:
            raise NotImplementedError("4:2:0 planes need an even scale")
        b, t, c, h, w = x.shape
        s = self.scale
        a, z = keep if keep is not None else (0, t)
        lr, forward, backward = self._propagate(x, need=(a, z))
        lr = lr.reshape(b, t, *lr.shape[1:])  # (B, T, 3, H2, W2)
        # the learned tail with the colour matrix and chroma average folded in: (s*s*3/2, up_channels, 3, 3)
        wgt, bias = folded_tail(self.conv_last, rgb_to_yuv, s)
        planes: list[list[torch.Tensor]] = [[], [], []]
        for i in range(a, z):
            y = F.pad(self.upsample_features(forward[i], backward[i]), (1, 1, 1, 1))  # (B, up_channels, H2+2, W2+2)
            out = F.conv2d(y, wgt.to(y.dtype), bias.to(y.dtype))  # (B, s*s*3/2, H2, W2)
            yuv = rgb_to_yuv_image(lr[:, i], rgb_to_yuv)  # (B, 3, H2, W2): the base commutes with the matrix
            yy = self._base(yuv[:, :1])[:, 0]  # (B, s*H2, s*W2): the bilinear base of Y
            uv = self._base(yuv[:, 1:], average=2)  # (B, 2, s*H2/2, s*W2/2): of U, V, 4:2:0
            add_planes(out, yy, uv[:, 0], uv[:, 1], s)
            clamp_cells((yy, uv[:, 0], uv[:, 1]), y, self.conv_last, lr[:, i], "linear", s, 1, rgb_to_yuv)  # the clamp
            for k, p in enumerate(
                (yy[:, : s * h, : s * w], uv[:, 0, : s * h // 2, : s * w // 2], uv[:, 1, : s * h // 2, : s * w // 2])
            ):
                planes[k].append(p)
        return tuple(torch.stack(p, dim=1) for p in planes)  # type: ignore[return-value]


_NOTE = "no weights shipped yet: train with `videosr train`"
_QUALITY = {
    "width": 32,
    "blocks": 2,
    "feat_blocks": 1,
    "bidirectional": True,
    "flow": "learned",
    "flow_levels": 3,
    "flow_width": 24,
    "down": 2,
    "up_channels": 16,
    "warmup": 8,
}
for _v in [
    Variant(
        name="quality-x4",
        arch="recurrent",
        scale=4,
        kwargs=_QUALITY,
        sha256="a2115d4d244b21bf8d387b7455fdba6ee186f58cb989a0e233625f28b4c16605",
        training_data=TRAINING_DATA + "; fine-tuned on the v3 set (BUILD_VERSION 3: 222 photos from 16 Debian "
        "packages and scikit-image, 1,440 real video frames from OpenCV's sample videos)",
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="bidirectional recurrent model (BasicVSR family), learned flow; trained by "
        "`videosr train configs/quality-x4.toml`, then fine-tuned on 15-frame clips by "
        "`videosr train configs/quality-x4-clips15.toml`",
    ),
    Variant(
        name="quality-x4-large",
        arch="recurrent",
        scale=4,
        kwargs={**_QUALITY, "width": 48, "blocks": 4},
        description="wider, deeper bidirectional model, about 3x quality-x4: offline use; " + _NOTE,
    ),
    Variant(
        name="quality-x4-full",
        arch="recurrent",
        scale=4,
        kwargs={**_QUALITY, "down": 1, "flow": "classical"},
        sha256="9edb788ea1b0b11520058bea2d0c71cdfe248c81ed6d712893d2f967dbdbf77d",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="quality-x4 propagating at the full LR resolution (down=1), aligned by the classical "
        "optical flow: about 3x its compute, for offline use; trained by "
        "`videosr train configs/quality-x4-full.toml`",
    ),
    Variant(
        name="quality-x4-full-w48",
        arch="recurrent",
        scale=4,
        kwargs={**_QUALITY, "down": 1, "flow": "classical", "width": 48},
        sha256="a0a5b54bf6e54edf88f3fa0a0d5343cbcc0e6cc791509d3aa83782524b8e8cc5",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="quality-x4-full at width 48: 2.2x its parameters and compute, the slowest and best; "
        "trained by `videosr train configs/quality-x4-full-w48.toml`",
    ),
    Variant(
        name="quality-x2",
        arch="recurrent",
        scale=2,
        kwargs={**_QUALITY, "down": 1, "flow": "classical"},
        sha256="d9b00e05075f3826056f00a3e80935abd283c8f0a8f61a35eb46103b5ef38c6d",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="quality-x4-full's design at x2: bidirectional recurrent at the full LR resolution, "
        "classical-flow alignment, for offline use; trained by `videosr train configs/quality-x2.toml`",
    ),
    Variant(
        name="online-x4",
        arch="recurrent",
        scale=4,
        kwargs={**_QUALITY, "bidirectional": False, "width": 40, "blocks": 3},
        sha256="79138ea8dff6af0d7668132b1bf5bec980a4e574aa71885809997a15f7f32fd5",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="unidirectional (forward-only) recurrent model, causal (no look-ahead), for live video "
        "(--live) and streams; trained by `videosr train configs/online-x4.toml`",
    ),
    Variant(
        name="quality-x4-compressed",
        arch="recurrent",
        scale=4,
        kwargs=_QUALITY,
        sha256="a04d98ccb9a120b061d5c019b07bbc50065ddc8762fe4e9de17d23d0742b77ef",
        training_data=TRAINING_DATA,
        degradation="BI",
        license="MIT",
        precision="bf16",
        description="quality-x4 fine-tuned for compressed input (BI, then x264 at CRF 15..40 for 85% of the "
        "clips): --model auto takes it for strongly compressed video; trained by "
        "`videosr train configs/quality-x4-compressed.toml`",
    ),
]:
    register_variant(_v)
