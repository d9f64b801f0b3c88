"""`videosr eval`: the SR evaluation protocol of the literature, as a library function.

Protocol (docs/evaluation.md has the commands and the numbers it reproduces; how the LR is made:
:mod:`videosr.eval.degrade`; the table and pictures: :mod:`videosr.eval.report`):

* Data: a folder of clips (each a sub-folder of frames in natural sort order, e.g. Vid4/GT), a folder
  of images (each a one-frame clip, e.g. Set5/HR), video files (each a clip), or one video file.
* GT is cropped (bottom/right) to a multiple of the scale. LR is read from ``lr`` (paired by name) or
  made from the GT with the degradation and rounded to 8 bits like a saved LR image: BI = MATLAB
  bicubic ``imresize(1/s)`` (:func:`videosr.eval.degrade.bi_degrade`, MATLAB's uint8 rounding), BD = 9x9
  Gaussian sigma 1.6 + every s-th pixel (:func:`videosr.eval.degrade.bd_degrade`).
* Compressed LR (:class:`videosr.eval.degrade.LRRecipe`, ``--lr-codec/--lr-crf/--lr-preset/--lr-noise``):
  that LR, optional seeded Gaussian noise (8 bits again), then a codec round trip as one yuv420p 25 fps
  video (:func:`videosr.eval.degrade.video_compress`, one encoder thread); recorded in each result's ``"lr"``.
* The model's output is rounded to 8 bits before measuring. PSNR/SSIM on the BT.601 Y channel
  (:mod:`videosr.eval.metrics`), ``crop_border`` pixels removed on each side: 0 for video sets, the scale
  for image sets, unless given.
* Video sets use all frames: the mean over the frames of a clip, then the mean over clips.
  tOF (:func:`videosr.eval.metrics.tof`) for clips of 2 frames or more.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, OutputError, UsageError
from ..io.reader import natural_key
from .degrade import DEGRADATIONS, LRRecipe, make_lr, noise_seed, quantize
from .report import ComparisonView, plot_psnr_per_frame

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v", ".ts", ".mpg", ".mpeg", ".flv")


@dataclass
class Clip:
    """One evaluation item: a clip folder, an image (one-frame clip) or a video file."""

    name: str
    kind: str  # "frames" | "image" | "video"
    path: Path
    frames: list[Path] = field(default_factory=list)  # for kind == "frames"


def find_clips(data: str | os.PathLike) -> tuple[list[Clip], bool]:
    """The clips under ``data`` and whether it is an image set (all items single images)."""
    root = Path(data)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() in IMAGE_EXTS:
            return [Clip(root.stem, "image", root)], True
        return [Clip(root.stem, "video", root)], False
    clips: list[Clip] = []
    for p in sorted(root.iterdir(), key=lambda q: natural_key(q.name)):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            frames = sorted(
                (f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and not f.name.startswith(".")),
                key=lambda q: natural_key(q.name),
            )
            if frames:
                clips.append(Clip(p.name, "frames", p, frames))
        elif p.suffix.lower() in IMAGE_EXTS:
            clips.append(Clip(p.stem, "image", p))
        elif p.suffix.lower() in VIDEO_EXTS:
            clips.append(Clip(p.stem, "video", p))
    if not clips:
        raise InputError(f"{root}: no clips (sub-folders of frames), images or videos found")
    return clips, all(c.kind == "image" for c in clips)


def _read_image(path: Path) -> torch.Tensor:
    """An image file -> (3, H, W) float32 in [0, 1] (grey expanded to RGB, alpha dropped, 16 bit kept)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float32) / 65535.0
                a = np.repeat(a[..., None], 3, axis=2)
            else:
                a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({e})") from None
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)


def _read_video(path: Path, max_frames: int | None) -> torch.Tensor:
    from ..io import image_to_tensor, open_input

    frames = []
    with open_input(str(path)) as reader:
        for fr in reader:
            frames.append(image_to_tensor(fr.image))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return torch.stack(frames)


def load_clip(clip: Clip, max_frames: int | None = None) -> torch.Tensor:
    """(T, 3, H, W) float32 in [0, 1]."""
    if clip.kind == "image":
        return _read_image(clip.path)[None]
    if clip.kind == "video":
        return _read_video(clip.path, max_frames)
    paths = clip.frames[:max_frames] if max_frames else clip.frames
    frames = [_read_image(p) for p in paths]
    if any(f.shape != frames[0].shape for f in frames):
        raise InputError(f"{clip.path}: frames differ in size")
    return torch.stack(frames)


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _differences(gt: list[str], lr: list[str]) -> str:
    """The first names only one side has, in natural order: "missing in LR: a, b; only in LR: c"."""
    gs, ls = set(gt), set(lr)
    missing = sorted((x for x in gs if x not in ls), key=natural_key)
    extra = sorted((x for x in ls if x not in gs), key=natural_key)
    return "; ".join(
        part
        for part in (
            f"missing in LR: {_first(missing)}" if missing else "",
            f"only in LR: {_first(extra)}" if extra else "",
        )
        if part
    )


def _lr_key(stem: str, scale: int, wanted: set[str]) -> str:
    """The GT name an LR name stands for: the same name, or that name with an ``x4`` / ``_x4`` / ``_X4``
    suffix (the scale) as in SR data sets (``babyx4.png`` for ``baby.png``)."""
    if stem in wanted:
        return stem
    for suffix in (f"x{scale}", f"_x{scale}", f"_X{scale}"):
        if stem.endswith(suffix) and stem[: -len(suffix)] in wanted:
            return stem[: -len(suffix)]
    return stem


def _by_name(paths: list[Path], names: list[str], scale: int, where: Path, what: str) -> dict[str, Path]:
    """LR ``paths`` keyed by the GT name each stands for (:func:`_lr_key`); two for one name is an error."""
    wanted, out = set(names), {}
    for p in paths:
        key = _lr_key(p.stem if p.is_file() else p.name, scale, wanted)
        if key in out:
            raise InputError(f"--lr {where}: {out[key].name} and {p.name} both stand for the {what} {key!r}")
        out[key] = p
    return out


def _pair_frames(clip: Clip, lr_dir: Path, scale: int) -> Clip:
    """The LR frames of a GT frame folder, paired by name: the natural-sorted frame names (without
    extension and ``x<scale>`` suffix) must be the same on both sides."""
    stems = [p.stem for p in clip.frames]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise InputError(f"{clip.path}: two frames named {dup!r} (different extensions); frames are paired by name")
    lr = sorted(
        (f for f in lr_dir.iterdir() if f.suffix.lower() in IMAGE_EXTS and not f.name.startswith(".")),
        key=lambda q: natural_key(q.name),
    )
    found = _by_name(lr, stems, scale, lr_dir, "frame")
    if set(found) != set(stems):
        raise InputError(
            f"--lr {lr_dir}: frame names differ from the GT {clip.path} "
            f"({_differences(stems, list(found))}); LR and GT frames are paired by name"
        )
    return Clip(clip.name, "frames", lr_dir, [found[s] for s in stems])


def pair_lr(
    data: str | os.PathLike, lr: str | os.PathLike, all_items: list[Clip], items: list[Clip], scale: int
) -> dict[str, Clip]:
    """The LR item of each of ``items`` (a selection of ``all_items``, what ``data`` holds), paired by name.

    ``lr`` has the structure of ``data``: for a folder, a folder whose clips, images or videos have the GT's
    names (an image or video may add ``x<scale>``: ``babyx4.png``); a clip folder's frames are paired by
    name too. Without a ``--clip`` selection the names must be the same on both sides; a mismatch is an
    InputError listing the first differences (pairing by position would silently shift every pair). A single
    GT file takes a single LR file, or the file of its name in an LR folder."""
    root, lr_root = Path(data), Path(lr)
    if root.is_dir() and not lr_root.is_dir():
        raise UsageError(
            f"--lr {lr_root} is a file but --data {root} is a folder: --lr must be a folder of the same "
            "structure (the same clip folders, images or videos, with the same names)"
        )
    if not root.is_dir() and lr_root.is_file():
        c = items[0]
        return {c.name: Clip(c.name, "image" if lr_root.suffix.lower() in IMAGE_EXTS else "video", lr_root)}
    try:
        lr_items, _ = find_clips(lr_root)
    except InputError:
        raise InputError(f"--lr {lr_root}: no clips (sub-folders of frames), images or videos found") from None
    names = [c.name for c in all_items]
    by_path = {c.path: c for c in lr_items}
    found = {k: by_path[p] for k, p in _by_name(list(by_path), names, scale, lr_root, "clip").items()}
    subset = len(items) < len(all_items) or not root.is_dir()
    lacking = [c.name for c in items if c.name not in found]
    if lacking or (not subset and set(found) != set(names)):
        shown = _differences(names, list(found)) if not subset else f"missing in LR: {_first(lacking)}"
        raise InputError(f"--lr {lr_root}: names differ from --data {root} ({shown}); LR and GT are paired by name")
    out = {}
    for c in items:
        m = found[c.name]
        out[c.name] = _pair_frames(c, m.path, scale) if c.kind == "frames" and m.kind == "frames" else m
    return out


# --------------------------------------------------------------------------------------------------
# The LR made from the GT, cached on disk (:func:`videosr.eval.degrade.make_lr`)
# --------------------------------------------------------------------------------------------------

_CACHE_VERSION = 2  # 2: exact-rounding RGB <-> YUV conversions in video_compress


def _source_fingerprint(clip: Clip, max_frames: int | None) -> list:
    """What the GT of ``clip`` is read from: (resolved path, size, mtime_ns) of each file, and max_frames."""
    paths = (clip.frames[:max_frames] if max_frames else clip.frames) if clip.kind == "frames" else [clip.path]
    out: list = [clip.kind, max_frames if clip.kind == "video" else None]
    for p in paths:
        st = os.stat(p)
        out.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return out


def _lr_cache_path(
    cache_dir: Path, clip: Clip, max_frames: int | None, gt_shape: tuple, scale: int, recipe: LRRecipe
) -> Path:
    import av

    key = {
        "v": _CACHE_VERSION,
        "source": _source_fingerprint(clip, max_frames),
        "gt_shape": list(gt_shape),
        "scale": scale,
        "recipe": recipe.to_dict(),
        "noise_seed": noise_seed(clip.name) if recipe.noise else None,
        "libavcodec": list(av.library_versions.get("libavcodec", ())),
        "av": av.__version__,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir / f"{clip.name[:40]}-{digest}.npy"


def _cached_lr(
    cache_dir: Path | None, clip: Clip, max_frames: int | None, gt: torch.Tensor, scale: int, recipe: LRRecipe
) -> torch.Tensor:
    """The LR of ``clip`` (``gt`` already cropped), from ``cache_dir`` when there, else made (and stored).

    The file is the LR as uint8 (T, 3, h, w) (lossless: the LR is on the 8-bit grid); its name hashes the
    GT files' paths, sizes and mtimes, the frame count, the scale, the recipe and the PyAV/FFmpeg versions."""
    if cache_dir is None:
        return make_lr(gt, scale, recipe, clip.name)
    path = _lr_cache_path(cache_dir, clip, max_frames, tuple(gt.shape), scale, recipe)
    want = (gt.shape[0], gt.shape[1], gt.shape[2] // scale, gt.shape[3] // scale)
    if path.is_file():
        try:
            a = np.load(path, allow_pickle=False)
            if a.dtype == np.uint8 and a.shape == want:
                return torch.from_numpy(a).float() / 255
        except (OSError, ValueError):
            pass  # unreadable or truncated: make it again
    lr = make_lr(gt, scale, recipe, clip.name)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, (lr * 255).round().to(torch.uint8).numpy())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"--lr-cache {cache_dir}: cannot write {path.name}: {e.strerror or e}") from None
    return lr


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def _load_model(name: str, scale: int, weights: str | None):
    from ..models.resolve import load_model, require_trained

    net = load_model(name, scale, weights=weights)
    require_trained(net)  # random weights measure nothing
    return net


def _nanmean(vals: list[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def evaluate(
    models: list[str],
    data: str,
    *,
    lr: str | None = None,
    scale: int = 4,
    degradation: str = "BI",
    crop_border: int | None = None,
    weights: list[str | None] | None = None,
    save_images: str | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    clips: list[str] | None = None,
    temporal: bool = True,
    threads: int | None = 1,
    precision: str = "fp32",
    log: Callable[[str], None] | None = None,
    lr_codec: str | None = None,
    lr_crf: int | None = None,
    lr_preset: str | None = None,
    lr_noise: float | None = None,
    lr_cache: str | os.PathLike | None = None,
) -> list[dict]:
    """Evaluate ``models`` (registered names or training checkpoint paths) on ``data``.

    ``lr``: LR inputs of the same structure and names as ``data``, paired by name (:func:`pair_lr`);
    otherwise the LR is made from the GT with ``degradation`` ("BI" or "BD"). ``crop_border``: None for the
    protocol default (the scale for image sets, 0 for video sets). ``weights``: per model, a weights file or
    None. ``save_images``: folder for comparison crops and per-frame PSNR plots. ``max_frames``: the first
    N frames of each clip. ``clips``: only these clip names. ``temporal``: compute tOF for multi-frame clips.
    ``progress``: one line per clip and model on stderr (or through ``log``). ``threads``: torch
    intra-op threads for this call (restored after; None: leave torch's setting). Default 1: the
    protocol is many small memory-bound operations, and on a shared 2-core machine torch's 2 threads
    took many times the CPU time of 1 for Vid4 (OpenMP threads spin at barriers when the other core is
    busy; a one-off measurement, docs/evaluation.md "Time"). ``precision``: the inference engine's (fp32, bf16, int8, or auto: each model's default where
    this machine runs it fast); the protocol's figures are fp32, and comparing a model's bf16 and fp32
    figures is the accuracy guard for making bf16 a default (docs/evaluation.md), its int8 and fp32 figures
    the gate of ``--precision int8`` (videosr.int8).

    Compressed LR (:class:`videosr.eval.degrade.LRRecipe`): ``lr_codec`` ("libx264", "libx265",
    "libvpx-vp9") with ``lr_crf`` and ``lr_preset`` (x264 default "medium") makes the LR as the degradation
    rounded to 8 bits, then (``lr_noise`` > 0) Gaussian noise of that std on the 0..255 scale, seeded from
    the clip name, rounded again, then encoded as yuv420p at 25 fps and decoded; deterministic (made by
    :func:`videosr.eval.degrade.make_lr`). The LR of a clip is made once
    and shared by all ``models``; ``lr_cache``: also keep it on disk in that folder (``<clip>-<key>.npy``,
    the key hashes the GT files' paths, sizes and mtimes, the scale and the recipe).

    Returns one dict per model: ``{"model", "scale", "degradation", "lr", "clips": {name: {"frames",
    "psnr_y", "ssim_y", "tof"}}, "mean": {"psnr_y", "ssim_y", "tof"}, "seconds"}``; ``lr`` is the LR
    recipe (:meth:`videosr.eval.degrade.LRRecipe.to_dict`, e.g. ``{"degradation": "BI"}``) or
    ``{"files": <lr path>}``;
    ``seconds`` is the model's inference time summed over clips (``run_clip`` on the LR, nothing else);
    ``load_seconds`` the time to build it and load its weights; ``metric_seconds`` the PSNR/SSIM/tOF of its
    outputs; the rest of a run (reading GT, making the LR, the GT's optical flow for tOF, saving images) is
    shared by the models and in none of these. ``tof`` is None for one-frame clips.
    ``"clip_seconds"`` holds the per-clip inference times (not part of the JSON format).
    """
    if threads is not None and threads != torch.get_num_threads():
        if threads < 1:
            raise UsageError(f"threads must be >= 1, got {threads}")
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return evaluate(
                models,
                data,
                lr=lr,
                scale=scale,
                degradation=degradation,
                crop_border=crop_border,
                weights=weights,
                save_images=save_images,
                max_frames=max_frames,
                progress=progress,
                clips=clips,
                temporal=temporal,
                threads=None,
                precision=precision,
                log=log,
                lr_codec=lr_codec,
                lr_crf=lr_crf,
                lr_preset=lr_preset,
                lr_noise=lr_noise,
                lr_cache=lr_cache,
            )
        finally:
            torch.set_num_threads(before)
    from ..engine import run_clip
    from .metrics import clip_flows, psnr, ssim, tof

    if not models:
        raise UsageError("give at least one --model")
    if precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
        raise UsageError(f"unknown precision {precision!r} (use auto, fp32, bf16, fp16 or int8)")
    degradation = degradation.upper()
    if degradation not in DEGRADATIONS:
        raise UsageError(f"unknown degradation {degradation!r} (use BI or BD)")
    recipe = LRRecipe.make(degradation, lr_codec, lr_crf, lr_preset, lr_noise)
    if lr is not None and (recipe.codec is not None or recipe.noise or lr_cache is not None):
        given = [
            o
            for o, v in (("--lr-codec", lr_codec), ("--lr-noise", recipe.noise or None), ("--lr-cache", lr_cache))
            if v is not None
        ]
        raise UsageError(
            f"{', '.join(given)} cannot be used with --lr: they make the LR from the GT (LR files are used as they are)"
        )
    if int(scale) != scale or scale < 1:
        raise UsageError(f"scale must be a positive integer, got {scale}")
    if crop_border is not None and crop_border < 0:
        raise UsageError(f"crop border must be >= 0, got {crop_border}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"max frames must be >= 1, got {max_frames}")
    if weights is not None and len(weights) != len(models):
        raise UsageError(f"{len(weights)} weights files for {len(models)} models (give one per --model, or none)")
    say = log if log is not None else (lambda s: print(s, file=sys.stderr, flush=True))
    if not progress:
        say = lambda s: None  # noqa: E731

    items, is_image_set = find_clips(data)
    all_items = items
    if clips:
        wanted = set(clips)
        unknown = wanted - {c.name for c in items}
        if unknown:
            raise UsageError(
                f"no clip named {', '.join(sorted(unknown))} in {data} "
                f"(have: {', '.join(c.name for c in items[:12])}{', ...' if len(items) > 12 else ''})"
            )
        items = [c for c in items if c.name in wanted]
    lr_root = Path(lr) if lr is not None else None
    if lr_root is not None and not lr_root.exists():
        raise InputError(f"--lr {lr_root}: no such file or folder")
    lr_items = pair_lr(data, lr_root, all_items, items, scale) if lr_root is not None else {}  # before the models
    crop = crop_border if crop_border is not None else (scale if is_image_set else 0)

    nets, load_secs = [], []
    for i, m in enumerate(models):
        t0 = time.perf_counter()
        nets.append(_load_model(m, scale, weights[i] if weights else None))
        load_secs.append(round(time.perf_counter() - t0, 3))
    labels = _unique_labels(models)
    lr_doc = {"files": str(lr_root)} if lr_root is not None else recipe.to_dict()
    results = [
        {
            "model": labels[i],
            "scale": scale,
            "degradation": "LR files" if lr_root else degradation,
            "lr": dict(lr_doc),
            "precision": precision,
            "clips": {},
            "mean": {},
            "seconds": 0.0,
            "load_seconds": load_secs[i],
            "metric_seconds": 0.0,
            "clip_seconds": {},
        }
        for i in range(len(models))
    ]
    cache_dir = Path(lr_cache).expanduser() if lr_cache is not None else None
    per_frame: dict[str, list[list[float]]] = {}

    for ci, clip in enumerate(items):
        gt = load_clip(clip, max_frames)  # (T, 3, H, W)
        if lr_root is not None:
            lr_clip = load_clip(lr_items[clip.name], max_frames)
            lh, lw = lr_clip.shape[-2:]
            h, w = gt.shape[-2:]
            if lh * scale > h or lw * scale > w:
                raise InputError(f"{clip.name}: LR {lw}x{lh} x{scale} is larger than the GT {w}x{h}")
            if lr_clip.shape[0] != gt.shape[0]:
                raise InputError(f"{clip.name}: {lr_clip.shape[0]} LR frames for {gt.shape[0]} GT frames")
            gt = gt[..., : lh * scale, : lw * scale]
            if (h - lh * scale) >= scale or (w - lw * scale) >= scale:
                say(f"warning: {clip.name}: GT {w}x{h} cropped to {lw * scale}x{lh * scale} to match the LR")
        else:
            gt = gt[..., : gt.shape[-2] - gt.shape[-2] % scale, : gt.shape[-1] - gt.shape[-1] % scale]
            if gt.shape[-1] < scale or gt.shape[-2] < scale:
                raise InputError(f"{clip.name}: smaller than the scale")
            lr_clip = _cached_lr(cache_dir, clip, max_frames, gt, scale, recipe)  # once per clip, for all models
        t = gt.shape[0]
        gt_flows = clip_flows(gt) if (temporal and t > 1) else None
        view = ComparisonView(clip.name, gt, lr_clip, scale, crop) if save_images else None
        per_frame[clip.name] = []
        for mi, net in enumerate(nets):
            t0 = time.perf_counter()
            # int8 without its gate: this evaluation is what measures the gate (still only a shipped int8 trunk)
            out = run_clip(net, lr_clip, precision=precision, verify_int8=False)  # (T, 3, sH, sW)
            secs = time.perf_counter() - t0
            if out.shape != gt.shape:
                raise UsageError(f"model {labels[mi]} gave {tuple(out.shape)} for GT {tuple(gt.shape)}")
            t1 = time.perf_counter()
            out = quantize(out.float().clamp(0, 1))
            p = psnr(out, gt, crop_border=crop)  # (T,)
            s = ssim(out, gt, crop_border=crop)
            tv = float(tof(out, gt_flows=gt_flows)) if gt_flows is not None else None
            results[mi]["metric_seconds"] += time.perf_counter() - t1
            entry = {"frames": t, "psnr_y": float(p.mean()), "ssim_y": float(s.mean()), "tof": tv}
            results[mi]["clips"][clip.name] = entry
            results[mi]["clip_seconds"][clip.name] = secs
            results[mi]["seconds"] += secs
            per_frame[clip.name].append([float(v) for v in p])
            if view is not None:
                view.add(labels[mi], out, p)
            say(
                f"[{ci + 1}/{len(items)}] {clip.name}: {labels[mi]} PSNR-Y {entry['psnr_y']:.2f} "
                f"SSIM-Y {entry['ssim_y']:.4f}" + (f" tOF {tv:.3f}" if tv is not None else "") + f" ({secs:.1f}s)"
            )
            del out
        if view is not None:
            os.makedirs(save_images, exist_ok=True)
            view.save(Path(save_images))
            if t > 1:
                plot_psnr_per_frame(
                    Path(save_images) / f"{clip.name}_psnr.png", clip.name, labels, per_frame[clip.name]
                )
    for r in results:
        r["metric_seconds"] = round(r["metric_seconds"], 3)
        cl = r["clips"].values()
        r["mean"] = {
            "psnr_y": _nanmean([c["psnr_y"] for c in cl]),
            "ssim_y": _nanmean([c["ssim_y"] for c in cl]),
            "tof": _nanmean([c["tof"] for c in cl]),
        }
    return results


def _unique_labels(models: list[str]) -> list[str]:
    labels, seen = [], {}
    for m in models:
        base = Path(m).name if os.path.sep in m or os.path.exists(m) else m
        seen[base] = seen.get(base, 0) + 1
        labels.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return labels


def to_json(results: list[dict]) -> dict | list[dict]:
    """The JSON document of ``evaluate``'s results: one object, or a list for several models.

    Non-finite numbers (PSNR of identical images) become null (JSON has no infinity)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    docs = [clean({k: v for k, v in r.items() if k != "clip_seconds"}) for r in results]
    return docs[0] if len(docs) == 1 else docs
