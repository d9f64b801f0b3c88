"""Training data: (LR, HR) clip pairs made on the fly from the set built by ``scripts/build_dataset.py``.

* Stills become short clips with synthetic camera motion: a larger HR canvas (the photo, downscaled with
  antialiasing by a random factor <= 1, so HR stays sharp and JPEG blocks shrink) is resampled per frame by
  an affine warp (sub-pixel pan, slow zoom, small rotation, hand-held jitter), and with probability
  ``object_prob`` an independently moving, soft-edged patch from another photo is composited on top, so
  recurrent and sliding-window models learn alignment and occlusion.
* Real videos give real consecutive frames (stride 1 or 2) at a random crop.
* HR clips get flips, transposes and temporal reversal, then become LR with the chosen degradation (BI:
  MATLAB bicubic ``imresize(1/s)``; BD: Gaussian sigma 1.6 + subsampling, both from
  :mod:`videosr.eval.degrade`; realistic: :func:`videosr.training.degradations.realistic_degrade`). BI/BD LR
  is rounded to 8 bits, as the test sets' LR is. Then, optionally, compression in the loop
  (:func:`videosr.training.degradations.codec_degrade`): each LR clip encoded as a video (x264 at a random
  CRF and preset, ...) and decoded, a share of clips left clean.

Every batch is a pure function of ``(seed, rank, step)``: :meth:`TrainClips.batch_at` rebuilds any step,
so a resumed run sees exactly the batches it would have seen, and ranks never overlap. Decoded images are
kept in RAM as uint8 (:class:`ClipStore`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import InputError, UsageError

DEGRADATIONS = ("BI", "BD", "realistic")


# --------------------------------------------------------------------------------------------------
# Decoded data in RAM
# --------------------------------------------------------------------------------------------------


class ClipStore:
    """uint8 stills (H, W, 3) and video runs (L, H, W, 3) held in RAM."""

    def __init__(
        self, stills: Sequence[np.ndarray], clips: Sequence[np.ndarray] = (), names: Sequence[str] | None = None
    ) -> None:
        self.stills = [np.ascontiguousarray(s, dtype=np.uint8) for s in stills]
        self.clips = [np.ascontiguousarray(c, dtype=np.uint8) for c in clips]
        self.names = list(names or [])
        if not self.stills and not self.clips:
            raise InputError("training set is empty (no stills, no clips)")
        area = np.array([s.shape[0] * s.shape[1] for s in self.stills], dtype=np.float64)
        self.still_p = np.sqrt(area) / np.sqrt(area).sum() if len(area) else area  # big photos: more crops

    @classmethod
    def load(cls, root: str | Path) -> ClipStore:
        root = Path(root)
        mpath = root / "manifest.json"
        if not mpath.is_file():
            raise InputError(
                f"no training set at {root} (manifest.json missing): "
                f"build it with `python scripts/build_dataset.py {root}`"
            )
        m = json.loads(mpath.read_text())

        def rgb(p: Path) -> np.ndarray:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))

        stills = [rgb(root / s["path"]) for s in m.get("stills", [])]
        clips = [
            np.stack([rgb(root / c["path"] / f"{i:03d}.png") for i in range(c["frames"])]) for c in m.get("clips", [])
        ]
        names = [s["path"] for s in m.get("stills", [])] + [c["path"] for c in m.get("clips", [])]
        return cls(stills, clips, names)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.stills) + sum(a.nbytes for a in self.clips)


def _to_float(a: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(a)).float().div_(255)
    return t.movedim(-1, -3)


# --------------------------------------------------------------------------------------------------
# Motion synthesis
# --------------------------------------------------------------------------------------------------


@dataclass
class Motion:
    """Ranges of the synthetic camera / object motion (HR pixels per frame unless stated)."""

    max_speed: float = 10.0  # camera pan speed (HR px/frame), uniform in [0, max_speed]
    jitter: float = 0.5  # hand-held shake, std (HR px)
    max_zoom: float = 0.012  # log-zoom per frame, uniform in [-max_zoom, max_zoom]
    max_rot: float = 0.4  # degrees per frame, uniform in [-max_rot, max_rot]
    min_source_scale: float = 0.25  # canvas = photo downscaled by a log-uniform factor in [this, max]
    max_source_scale: float = 1.0
    object_prob: float = 0.5  # probability of an independently moving patch
    object_speed: float = 12.0  # its speed relative to the frame (HR px/frame)
    min_texture: float = 0.02  # a crop flatter than this (mean |dx|+|dy|, 0..1 units) is replaced
    crop_tries: int = 3  # candidate crop positions per clip
    hard_prob: float = 0.7  # probability of taking the most textured candidate
    affine_prob: float = 0.3  # probability of zoom and rotation (else a pure pan by whole HR pixels)
    supersample: int = 2  # zoom/rotation clips: warp at this multiple of the size, then downscale (antialiased)


def _affine_frames(
    canvas: torch.Tensor, out: int, shifts: np.ndarray, zooms: np.ndarray, rots: np.ndarray
) -> torch.Tensor:
    """Resample ``out`` x ``out`` frames from a (3, S, S) canvas: frame t maps output pixel u (centred) to
    canvas pixel c + shift_t + R(rot_t) u / zoom_t. Returns (T, 3, out, out)."""
    s = canvas.shape[-1]
    t = len(shifts)
    cos, sin = np.cos(rots) / zooms, np.sin(rots) / zooms
    k = out / s  # output extent in canvas-normalised units
    theta = np.zeros((t, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos * k, -sin * k
    theta[:, 1, 0], theta[:, 1, 1] = sin * k, cos * k
    theta[:, 0, 2] = 2 * shifts[:, 0] / s
    theta[:, 1, 2] = 2 * shifts[:, 1] / s
    grid = F.affine_grid(torch.from_numpy(theta), [t, 3, out, out], align_corners=False)
    src = canvas.expand(t, *canvas.shape)
    return F.grid_sample(src, grid, mode="bicubic", padding_mode="reflection", align_corners=False)


def _texture_u8(a: np.ndarray) -> float:
    """Mean |dx| + |dy| of the green channel of a uint8 (H, W, 3) array, in 0..1 units."""
    g = a[..., 1].astype(np.int16)
    return float(np.abs(np.diff(g, axis=1)).mean() + np.abs(np.diff(g, axis=0)).mean()) / 255


def still_clip(
    img: np.ndarray, size: int, frames: int, rng: np.random.Generator, motion: Motion, other: np.ndarray | None = None
) -> torch.Tensor:
    """A (T, 3, size, size) HR clip with synthetic motion from one uint8 photo (H, W, 3).

    The HR frames must be as sharp as real frames: any interpolation at a sub-pixel phase loses a varying
    part of the top octave (bicubic at half-pixel phase passes nothing at Nyquist), which would make the
    targets softer than real video and differently soft from frame to frame. So pure pans (probability
    1 - ``motion.affine_prob``) move by whole HR pixels (still 1/scale LR-pixel steps) and are plain crops
    of the canvas; clips with zoom and rotation are warped on a canvas up to ``motion.supersample`` times
    finer (as fine as the photo's own resolution allows: upsampling first would blur more than it saves)
    and brought down with an antialiased filter, so the interpolation only sees content well below its
    Nyquist. Moving objects are pasted on whole-pixel paths."""
    h, w = img.shape[:2]
    tau = np.arange(frames) - (frames - 1) / 2
    speed, ang = rng.uniform(0, motion.max_speed), rng.uniform(0, 2 * np.pi)
    vel = speed * np.array([np.cos(ang), np.sin(ang)])
    dz, dr = rng.uniform(-motion.max_zoom, motion.max_zoom), rng.uniform(-motion.max_rot, motion.max_rot)
    affine = rng.random() < motion.affine_prob
    if not affine:
        dz = dr = 0.0
    shifts = vel[None] * tau[:, None] + rng.normal(0, motion.jitter, (frames, 2)) + rng.uniform(-0.5, 0.5, 2)
    zooms = np.exp(dz * tau)
    rots = np.deg2rad(dr * tau)
    # canvas large enough for every frame's footprint (rotation/zoom grow the corners); big - size is even
    reach = np.abs(shifts).max() + size / 2 * (math.sqrt(2) * np.abs(rots).max() + (1 / zooms.min() - 1)) + 4
    big = size + 2 * int(math.ceil(reach)) + 2
    room = min(h, w)
    if big > room:  # small photo: shrink the motion to fit
        fit = max(0.0, (room - size - 6) / max(big - size - 2, 1))
        shifts, rots, zooms = shifts * fit, rots * fit, np.exp(np.log(zooms) * fit)
        big = room - (room - size) % 2
    if not affine:
        shifts = np.round(shifts)
    f_hi = min(1.0, motion.max_source_scale)
    f_lo = min(max(motion.min_source_scale, big / room), f_hi)
    f = math.exp(rng.uniform(math.log(f_lo), math.log(f_hi))) if f_lo < f_hi else f_hi  # log-uniform
    src = min(room, int(round(big / f)))
    # texture-aware crop: of `motion.crop_tries` random positions, keep the most textured one (measured at
    # about canvas resolution) with probability `motion.hard_prob`, else the first; flat crops are redrawn
    k = max(1, int(round(src / big)))
    cands = [(rng.integers(0, h - src + 1), rng.integers(0, w - src + 1)) for _ in range(motion.crop_tries)]
    tex = [_texture_u8(img[y : y + src : k, x : x + src : k]) for y, x in cands]
    pick = int(np.argmax(tex)) if rng.random() < motion.hard_prob else 0
    if tex[pick] < motion.min_texture:
        pick = int(np.argmax(tex))
    y0, x0 = cands[pick]
    crop = _to_float(img[y0 : y0 + src, x0 : x0 + src])
    q = max(1, min(motion.supersample, src // big)) if affine else 1  # only as fine as the photo allows
    canvas = crop[None]
    if src != big * q:
        canvas = F.interpolate(canvas, size=(big * q, big * q), mode="bicubic", antialias=True, align_corners=False)
    if affine:
        hr = _affine_frames(canvas[0], size * q, shifts * q, zooms, rots)  # (T, 3, q size, q size)
    else:  # whole-pixel pan: frame t is the canvas window centred at canvas centre + shift_t
        c = (big - size) // 2
        hr = torch.stack(
            [canvas[0, :, c + int(dy) : c + int(dy) + size, c + int(dx) : c + int(dx) + size] for dx, dy in shifts]
        )  # (T, 3, size, size)
    if other is not None and rng.random() < motion.object_prob:
        hr = _composite_object(hr, other, rng, motion, q)
    if q > 1:
        hr = F.interpolate(hr, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return hr.clamp_(0, 1)


def _composite_object(
    hr: torch.Tensor, other: np.ndarray, rng: np.random.Generator, motion: Motion, q: int = 1
) -> torch.Tensor:
    """Paste a soft-edged patch of ``other`` moving on its own whole-pixel path across the clip, whose
    frames are ``q`` times the final size (speeds are in final pixels)."""
    t, _, size, _ = hr.shape
    oh, ow = other.shape[:2]
    so = int(min(rng.integers(size // 4, size // 2 + 1), oh, ow))
    y0, x0 = rng.integers(0, oh - so + 1), rng.integers(0, ow - so + 1)
    obj = _to_float(other[y0 : y0 + so, x0 : x0 + so])
    # mask: ellipse or rounded square with a 2-pixel feather
    r = (torch.arange(so, dtype=torch.float32) + 0.5) / so * 2 - 1
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    if rng.random() < 0.5:
        d = 1 - torch.sqrt(xx**2 + yy**2)
    else:
        d = 1 - torch.maximum(xx.abs(), yy.abs())
    mask = (d * so / 2 / 2.0).clamp(0, 1)[None]  # ramps over ~2 px
    tau = np.arange(t) - (t - 1) / 2
    ang = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(0.2, 1.0) * motion.object_speed * q * np.array([np.cos(ang), np.sin(ang)])
    centre = rng.uniform(size * 0.25, size * 0.75, 2)
    pos = centre[None] + vel[None] * tau[:, None]  # object centre per frame, output pixels (x, y)
    corner = np.round(pos - so / 2).astype(np.int64)  # whole-pixel path: top-left (x, y) per frame
    layer = torch.cat([obj, mask], 0)  # (4, so, so): colour + alpha
    out = hr.clone()
    for i, (cx, cy) in enumerate(corner):  # paste the visible part of the object
        ya, yb, xa, xb = max(cy, 0), min(cy + so, size), max(cx, 0), min(cx + so, size)
        if ya >= yb or xa >= xb:
            continue
        piece = layer[:, ya - cy : yb - cy, xa - cx : xb - cx]
        alpha = piece[3:4]
        out[i, :, ya:yb, xa:xb] = hr[i, :, ya:yb, xa:xb] * (1 - alpha) + piece[:3] * alpha
    return out


def video_clip(
    frames_u8: np.ndarray, size: int, frames: int, rng: np.random.Generator, tries: int = 3, hard_prob: float = 0.7
) -> torch.Tensor:
    """(T, 3, size, size): consecutive real frames (stride 1, or 2 with probability 0.3) at a random crop
    (the most textured of ``tries`` positions with probability ``hard_prob``)."""
    n, h, w = frames_u8.shape[:3]
    stride = 2 if rng.random() < 0.3 and (frames - 1) * 2 < n else 1
    span = (frames - 1) * stride + 1
    if span > n or size > h or size > w:
        raise UsageError(f"video run of {n} frames {w}x{h} too small for {frames} frames of {size}x{size}")
    s0 = rng.integers(0, n - span + 1)
    cands = [(rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)) for _ in range(tries)]
    tex = [_texture_u8(frames_u8[s0, y : y + size : 2, x : x + size : 2]) for y, x in cands]
    y0, x0 = cands[int(np.argmax(tex)) if rng.random() < hard_prob else 0]
    return _to_float(frames_u8[s0 : s0 + span : stride, y0 : y0 + size, x0 : x0 + size])


def augment(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal/vertical flip, transpose (square crops) and temporal reversal of (T, C, H, W)."""
    if rng.random() < 0.5:
        clip = clip.flip(-1)
    if rng.random() < 0.5:
        clip = clip.flip(-2)
    if clip.shape[-1] == clip.shape[-2] and rng.random() < 0.5:
        clip = clip.transpose(-1, -2)
    if rng.random() < 0.5:
        clip = clip.flip(0)
    return clip.contiguous()


def degrade_clip(
    hr: torch.Tensor, scale: int, degradation: str, generator: torch.Generator | None = None, params: Any = None
) -> torch.Tensor:
    """HR (..., T, C, H, W) in [0, 1] -> LR (..., T, C, H/s, W/s), clamped to [0, 1]."""
    from ..eval import degrade
    from . import degradations

    if degradation == "BI":
        return degrade.quantize(degrade.bi_degrade(hr, scale).clamp_(0, 1))
    if degradation == "BD":
        return degrade.quantize(degrade.bd_degrade(hr, scale).clamp_(0, 1))
    if degradation == "realistic":
        fn = degradations.realistic_degrade
        params = params if params is not None else degradations.RealisticParams()
        if hr.ndim == 4:
            return fn(hr, scale, generator, params).clamp_(0, 1)
        # a batch (..., T, C, H, W): one draw per clip, in order, from the one generator
        clips = hr.reshape(-1, *hr.shape[-4:])
        lr = torch.stack([fn(c, scale, generator, params) for c in clips])
        return lr.reshape(*hr.shape[:-4], *lr.shape[-4:]).clamp_(0, 1)
    raise UsageError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}")


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


class TrainClips(IterableDataset):
    """Endless stream of batches ``(lr (B, T, C, p, p), hr (B, T, C, s p, s p))`` float in [0, 1].

    ``batch_at(step)`` depends only on (seed, rank, step). Iteration starts at ``start_step``; with several
    DataLoader workers, worker k yields steps start + k, start + k + n, ... (the DataLoader interleaves them
    back in order). Use ``DataLoader(ds, batch_size=None, num_workers=0 or 1)``.
    """

    def __init__(
        self,
        store: ClipStore,
        *,
        scale: int = 4,
        patch: int = 64,
        frames: int = 7,
        batch: int = 8,
        degradation: str = "BI",
        video_fraction: float = 0.3,
        augment: bool = True,
        seed: int = 0,
        rank: int = 0,
        start_step: int = 0,
        motion: Motion | None = None,
        realistic_params: Any = None,
        codec_params: Any = None,
    ) -> None:
        if degradation not in DEGRADATIONS:
            raise UsageError(f"degradation must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}")
        self.store, self.scale, self.patch, self.frames, self.batch = store, scale, patch, frames, batch
        self.degradation, self.augment, self.seed, self.rank = degradation, augment, seed, rank
        self.video_fraction = video_fraction if store.clips else 0.0
        if not store.stills:
            self.video_fraction = 1.0
        self.start_step = start_step
        self.motion = motion or Motion()
        self.realistic_params = realistic_params
        self.codec_params = codec_params  # training.degradations.CodecParams: compression after the degradation

    def sample(self, rng: np.random.Generator) -> torch.Tensor:
        size = self.patch * self.scale
        st = self.store
        if rng.random() < self.video_fraction:
            usable = [c for c in st.clips if c.shape[0] >= self.frames and min(c.shape[1:3]) >= size]
            if usable:
                return video_clip(
                    usable[rng.integers(len(usable))],
                    size,
                    self.frames,
                    rng,
                    self.motion.crop_tries,
                    self.motion.hard_prob,
                )
        i = rng.choice(len(st.stills), p=st.still_p)
        other = st.stills[rng.choice(len(st.stills), p=st.still_p)]
        return still_clip(st.stills[i], size, self.frames, rng, self.motion, other)

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, step])
        clips = []
        for _ in range(self.batch):
            c = self.sample(rng)
            clips.append(augment(c, rng) if self.augment else c)
        hr = torch.stack(clips)  # (B, T, C, H, W)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        lr = degrade_clip(hr, self.scale, self.degradation, gen, self.realistic_params)
        if self.codec_params is not None:
            from .degradations import codec_degrade

            lr = codec_degrade(lr, gen, self.codec_params)
        return lr.contiguous(), hr

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        torch.set_num_threads(1) if info is not None else None
        for step in count(self.start_step + k, n):
            yield self.batch_at(step)


# --------------------------------------------------------------------------------------------------
# Validation clips
# --------------------------------------------------------------------------------------------------


def load_frames(folder: str | Path, max_frames: int | None = None) -> torch.Tensor:
    """PNG/JPEG/BMP frames of a folder in natural order (frame2 before frame10, as ``videosr eval`` and the
    image-folder reader sort) -> (T, 3, H, W) float in [0, 1]."""
    from ..io.reader import natural_key

    files = sorted(
        (p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")),
        key=lambda p: natural_key(p.name),
    )
    if max_frames:
        files = files[:max_frames]
    if not files:
        raise InputError(f"no image frames in {folder}")
    arr = []
    for p in files:
        with Image.open(p) as im:
            arr.append(np.asarray(im.convert("RGB")))
    return _to_float(np.stack(arr))


def load_val_clips(root: str | Path, clips: Sequence[str], max_frames: int) -> list[tuple[str, torch.Tensor]]:
    """[(name, HR (T, 3, H, W))] for the named sub-folders of ``root`` that exist; [] when root is absent."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [(c, load_frames(root / c, max_frames)) for c in clips if (root / c).is_dir()]
