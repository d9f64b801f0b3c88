"""Training loop: ``train(config, resume=False)``; ``videosr train CONFIG.toml [--resume] [--set k=v]``.

One function you can read top to bottom (composition, no trainer class): data stream -> model (+DDP) ->
loss -> AdamW + warm-up/cosine -> grad clip -> EMA -> log / validate / checkpoint. Features:

* losses L1, Charbonnier, MSE and (1 - SSIM), weighted (``[loss]``);
* bf16 autocast + channels_last on CPU, AMP (fp16 + GradScaler, or bf16) on CUDA, fp32 anywhere;
* validation on a few frames of Vid4 (PSNR-Y of the EMA model against the HR, BI degradation), skipped
  when ``val.data`` is absent;
* checkpoints ``OUT/last.pt`` (and ``best.pt``): model, EMA, optimizer, scheduler, scaler, RNG states, step,
  resolved config (plain dicts: ``torch.load(weights_only=True)`` reads them). Written every ``ckpt.every``
  steps, at the end and on Ctrl-C (then exit 130). ``resume=True`` continues bit-exactly: batches are a pure
  function of (seed, rank, step), see :mod:`videosr.training.data`;
* ``OUT/log.csv`` always, TensorBoard when installed, a progress line with it/s, loss and ETA;
* DDP from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): gloo on CPU, NCCL on GPU;
  each rank draws its own batches; rank 0 validates and writes.

:func:`load_checkpoint_model` rebuilds a model from a ``.pt`` alone; :func:`export_weights` writes the EMA
weights as safetensors (to ship under ``src/videosr/weights/``) and prints their sha256.
"""

from __future__ import annotations

import copy
import csv
import errno
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import build_model, read_checkpoint, sd_finite
from ..errors import DiskFullError, InputError, ModelError, OutputError, ResumeError, UsageError
from ..eval.metrics import ssim_map
from .config import TrainConfig


class DivergedError(UsageError):
    """The loss (or the weights) became NaN or infinite: the hyperparameters (lr, warm-up, precision) do not
    fit. Exit 2; the last checkpoint written before is kept."""


# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------


def compute_loss(sr: torch.Tensor, hr: torch.Tensor, w) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the losses whose weight in ``w`` (a LossCfg) is non-zero; parts for the log."""
    sr = sr.float()
    parts: dict[str, torch.Tensor] = {}
    d = sr - hr
    if w.l1:
        parts["l1"] = d.abs().mean()
    if w.charbonnier:
        parts["charbonnier"] = torch.sqrt(d * d + w.charbonnier_eps**2).mean()
    if w.mse:
        parts["mse"] = (d * d).mean()
    if w.ssim:
        parts["ssim"] = 1 - ssim_map(sr, hr, data_range=1.0).mean()
    total = sum(getattr(w, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


# --------------------------------------------------------------------------------------------------
# schedule, EMA
# --------------------------------------------------------------------------------------------------


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    ep = [p for p in ema.parameters()]
    mp = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ep, mp, 1 - decay)
    for eb, mb in zip(ema.buffers(), model.buffers()):
        eb.copy_(mb)


# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports failed writes as RuntimeError
        tmp.unlink(missing_ok=True)
        msg = (getattr(e, "strerror", None) or str(e)).splitlines()[0]
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e):
            raise DiskFullError(f"disk full writing checkpoint {path} (the previous one is kept)") from None
        raise OutputError(f"cannot write checkpoint {path}: {msg}") from None


def _finite(*modules: nn.Module | None) -> bool:
    """Whether every parameter and buffer of the given modules is finite (no NaN / inf)."""
    for m in modules:
        if m is not None and not all(
            bool(torch.isfinite(t).all()) for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()
        ):
            return False
    return True


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(
    model: nn.Module,
    clips: list[tuple[str, torch.Tensor]],
    scale: int,
    crop_border: int = 0,
    device: torch.device | str = "cpu",
    degradation: str = "BI",
    lr_crf: int = 0,
) -> dict[str, float]:
    """Mean PSNR-Y per clip and overall, by the protocol of ``videosr eval`` (one convention: the GT cropped
    to a multiple of the scale, the LR from :func:`videosr.eval.degrade.make_lr`, the output in fp32 clamped
    and rounded to 8 bits); ``degradation`` BI or BD, ``lr_crf`` > 0: then x264 (medium) at that CRF, as
    ``videosr eval --lr-codec libx264 --lr-crf N`` makes it."""
    from ..engine import run_clip
    from ..eval import metrics
    from ..eval.degrade import LRRecipe, make_lr, quantize

    recipe = LRRecipe.make(degradation, codec="libx264" if lr_crf else None, crf=lr_crf or None)
    was = model.training
    model.eval()
    res: dict[str, float] = {}
    for name, hr in clips:
        hr = hr[..., : hr.shape[-2] - hr.shape[-2] % scale, : hr.shape[-1] - hr.shape[-1] % scale]
        lr = make_lr(hr, scale, recipe, name)
        sr = run_clip(model, lr.to(device), precision="fp32").float().cpu()  # the protocol: fp32
        res[name] = float(metrics.psnr(quantize(sr.clamp(0, 1)), hr, crop_border, y_channel=True).mean())
    if res:
        res["mean"] = sum(res.values()) / len(res)
    model.train(was)
    return res


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------


class _Stop:
    """SIGINT/SIGTERM -> finish the current step, save, exit 130."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:  # noqa: ANN001
        if self.flag:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.flag = True
        print(
            "\nvideosr train: interrupt received, saving a checkpoint (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _worker_init(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    torch.set_num_threads(1)


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _check_store(store: Any, cfg: TrainConfig) -> None:
    """The training set can give clips of the configured size: every photo holds an HR patch (a photo is
    drawn by area), or, without photos, some video run holds the clip."""
    size = cfg.data.patch * cfg.data.scale  # (an empty set is refused by ClipStore itself)
    usable = any(c.shape[0] >= cfg.data.frames and min(c.shape[1:3]) >= size for c in store.clips)
    if store.stills and (cfg.data.video_fraction < 1 or not usable):
        side = min(min(s.shape[:2]) for s in store.stills)
        if side < size:
            raise UsageError(
                f"data.patch {cfg.data.patch} x data.scale {cfg.data.scale} = {size} px HR patches do "
                f"not fit the training set's smallest photo ({side} px side): data.patch must be "
                f"<= {side // cfg.data.scale}"
            )
    elif not store.stills and not usable:
        raise UsageError(
            f"no video run of the training set holds data.frames {cfg.data.frames} frames of "
            f"{size}x{size} px (data.patch {cfg.data.patch} x data.scale {cfg.data.scale})"
        )


# --resume with a config that differs from the checkpoint's: every changed key is reported, and either
# refused (it defines what the checkpoint holds) or applied from the resumed step on, with what that means.
RESUME_REFUSED = {
    "model.name": "the checkpoint holds weights of its own model",
    "model.kwargs": "the checkpoint holds weights of its own architecture",
    "data.scale": "the checkpoint's model is trained for its own scale",
    "optim.name": "the checkpoint holds the state of its own optimizer",
}
_SCHEDULE = "the schedule is recomputed at the resumed step"
_BATCHES = "batches from here on differ from an uninterrupted run"
_BEST = "validation changed: the best val PSNR restarts (best.pt is replaced at the next validation)"
RESUME_APPLIED = {  # key or section prefix -> what applying it means (anything else: applied as is)
    "model.init": "ignored: --resume restores the checkpoint's own weights",
    "optim.lr": "the schedule continues with the new peak lr",
    "optim.steps": _SCHEDULE + " (a longer run: a warm restart of the cosine)",
    "optim.warmup": _SCHEDULE,
    "optim.min_lr_ratio": _SCHEDULE,
    "optim.betas": "set in the optimizer",
    "optim.weight_decay": "set in the optimizer",
    "seed": _BATCHES,
    "data.degradation": _BATCHES + "; " + _BEST,
    "data.workers": "",
    "data.root": "the training set is read from there (if it holds other images, " + _BATCHES + ")",
    "data.": _BATCHES,
    "val.every": "",
    "val.": _BEST,
    "ema": "new decay from here on",
    "out_dir": "the run folder moved",
}
RESUME_RESETS_BEST = ("data.degradation", "val.data", "val.clips", "val.max_frames", "val.crop_border", "val.lr_crf")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and f"{prefix}{k}" != "model.kwargs":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resume_changes(stored: dict[str, Any], cfg: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(key, checkpoint value, current value) for every config key that differs; a key the checkpoint's
    config lacks (older version) counts as its default."""
    old, new, default = _flatten(stored), _flatten(cfg.to_dict()), _flatten(TrainConfig().to_dict())
    diff = [(k, old.get(k, default.get(k)), v) for k, v in new.items() if old.get(k, default.get(k)) != v]
    diff += [(k, v, _GONE) for k, v in old.items() if k not in new]
    return diff


_GONE = object()  # resume_changes: the checkpoint's key is not a config key any more


def _resume_plan(stored: dict[str, Any], cfg: TrainConfig, step: int, path: Path) -> tuple[list[str], bool]:
    """Lines that report each changed key, and whether the best val PSNR restarts; ResumeError listing
    every refused change."""
    diff = resume_changes(stored, cfg)
    refused = [
        f"{k} changed {o!r} -> {n!r} ({RESUME_REFUSED[k]})"
        for k, o, n in diff
        if k in RESUME_REFUSED and n is not _GONE
    ]
    if cfg.optim.steps < step:
        refused.append(f"optim.steps {cfg.optim.steps} is below the checkpoint's step {step}")
    if refused:
        raise ResumeError(
            f"cannot --resume {path}: " + "; ".join(refused) + "; put the value back, or train into "
            f"a new out_dir (model.init = {path} starts from its weights)"
        )
    lines = []
    for k, o, n in diff:
        note = RESUME_APPLIED.get(k)
        if note is None:
            note = next((v for p, v in RESUME_APPLIED.items() if p.endswith(".") and k.startswith(p)), "")
        if k == "ema" and (o == 0) != (n == 0):
            note = "EMA on: it starts from the resumed weights" if n else "EMA off: the checkpoint's EMA is dropped"
        if n is _GONE:
            lines.append(f"resume: {k} = {o!r} in the checkpoint is no longer a config key (ignored)")
        elif note.startswith("ignored"):
            lines.append(f"resume: {k} changed {o!r} -> {n!r} ({note})")
        else:
            lines.append(f"resume: {k} changed {o!r} -> {n!r} (applied{': ' + note if note else ''})")
    return lines, any(k in RESUME_RESETS_BEST for k, _, _ in diff)


def train(
    config: TrainConfig, resume: bool = False, *, store=None, max_steps: int | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Train ``config``; returns {"step", "loss", "val", "best", "out_dir"}.

    ``store``: a prepared :class:`videosr.training.data.ClipStore` (tests); default: loaded from ``data.root``.
    ``max_steps``: stop (with a checkpoint) after this many steps of this call, as if interrupted, without
    changing the schedule (tests and smoke runs).
    """
    import torch.distributed as dist

    from . import data as vdata

    cfg = config.validate()
    # ---- distributed setup from torchrun's environment
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    master = rank == 0
    say = (lambda *a: print(*a, flush=True)) if master and not quiet else (lambda *a: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    last = out / "last.pt"
    if last.exists() and not resume:  # checked on every rank (one file system), so no rank is left waiting
        raise ResumeError(
            f"{out} already holds a run (last.pt): pass --resume to continue it, or choose another out_dir"
        )
    if resume and not last.exists():
        raise ResumeError(f"nothing to resume: {last} does not exist")
    ck: dict[str, Any] = {}
    reset_best = False
    if resume:  # read and compare before building anything: a refused change fails at once
        ck = read_checkpoint(last, ResumeError)
        for key, kind in (("optimizer", dict), ("scheduler", dict), ("step", int), ("rng", dict)):
            if not isinstance(ck.get(key), kind) or isinstance(ck.get(key), bool):
                raise ResumeError(f"{last} is not a resumable training checkpoint (no valid {key!r})")
        if not sd_finite(ck["model"]) or (isinstance(ck.get("ema"), dict) and not sd_finite(ck["ema"])):
            raise ResumeError(f"{last} holds non-finite (NaN/inf) weights: a diverged run cannot be resumed")
        changes, reset_best = _resume_plan(ck["config"], cfg, ck["step"], last)
        for line in changes:
            say(line)
    if master:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create out_dir {out}: {e.strerror or e}") from None

    # ---- model, EMA, optimizer, schedule
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg)
    if cfg.model.init and not resume:  # fine-tuning: start from given weights (a resume restores its own)
        from ..models.registry import load_state_dict, load_weights

        load_weights(model, load_state_dict(cfg.model.init), source=cfg.model.init)
        say(f"initialised from {cfg.model.init}")
    if cfg.loss.flow:
        flow = getattr(model, "flow", None)
        if flow is None or not any(p.requires_grad for p in flow.parameters()):
            raise UsageError(f"loss.flow needs a recurrent model with a learned flow; {cfg.model.name} has none")
        model.flow_loss_on = True  # its forward then leaves the photometric loss in model.flow_loss
    model = model.to(device).train()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema > 0 else None
    if not any(p.requires_grad for p in model.parameters()):
        raise UsageError(f"model {cfg.model.name} has no trainable parameters")
    opt_cls = torch.optim.AdamW if cfg.optim.name == "adamw" else torch.optim.Adam
    opt = opt_cls(
        model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.optim.warmup, cfg.optim.steps, cfg.optim.min_lr_ratio)
    )
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    if amp_dtype is torch.float16 and not cuda:
        raise UsageError("precision fp16 needs CUDA; use bf16 or fp32 on the CPU")
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype is torch.float16)
    step, best = 0, -math.inf
    if resume:
        from ..models.registry import load_weights

        try:
            load_weights(model, ck["model"], source=str(last))
            if ema is not None:  # EMA turned on since: it starts from the resumed weights
                load_weights(ema, ck["ema"] if ck.get("ema") else ck["model"], source=f"{last} (EMA)")
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            step, best = ck["step"], float(ck.get("best", -math.inf))
            rng = ck["rng"]  # rank 0's generator states (training draws no random numbers from them: data
            torch.set_rng_state(rng["torch"][0])  # batches are seeded per step, see videosr.training.data)
            if cuda and rng.get("cuda"):
                torch.cuda.set_rng_state(rng["cuda"][0], device)
        except ModelError as e:
            raise ResumeError(str(e)) from None
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:  # a damaged or edited state
            detail = str(e).splitlines()[0][:200] if str(e) else ""
            raise ResumeError(
                f"{last} cannot be resumed (damaged optimizer / scheduler / RNG state): "
                f"{type(e).__name__}" + (f": {detail}" if detail else "")
            ) from None
        if reset_best:
            best = -math.inf
        # the optimizer's hyperparameters come back from the checkpoint: put the current ones in (a change
        # was reported above), and the peak lr under the (possibly changed) schedule at this step
        for g in opt.param_groups:
            g["betas"], g["weight_decay"] = tuple(cfg.optim.betas), cfg.optim.weight_decay
        if any(g.get("initial_lr") != cfg.optim.lr for g in opt.param_groups):
            for g in opt.param_groups:
                g["initial_lr"] = cfg.optim.lr
            sched.base_lrs = [cfg.optim.lr] * len(opt.param_groups)
        f = lr_factor(sched.last_epoch, cfg.optim.warmup, cfg.optim.steps, cfg.optim.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = cfg.optim.lr * f
        sched._last_lr = [g["lr"] for g in opt.param_groups]  # what get_last_lr() reports
        say(f"resumed {last} at step {step}")
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
    n_params = sum(p.numel() for p in model.parameters())
    say(
        f"model {cfg.model.name}: {n_params / 1e3:.1f}k parameters; device {device}, world {world}, "
        f"precision {cfg.precision}"
    )

    # ---- data
    if store is None:
        try:
            store = vdata.ClipStore.load(cfg.data.root)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # damaged manifest or image
            detail = str(e).splitlines()[0][:200] if str(e) else ""
            raise InputError(
                f"training set {cfg.data.root} (data.root) is damaged: {type(e).__name__}"
                + (f": {detail}" if detail else "")
            ) from None
    _check_store(store, cfg)
    ds = vdata.TrainClips(
        store,
        scale=cfg.data.scale,
        patch=cfg.data.patch,
        frames=cfg.data.frames,
        batch=cfg.data.batch,
        degradation=cfg.data.degradation,
        video_fraction=cfg.data.video_fraction,
        augment=cfg.data.augment,
        seed=cfg.seed,
        rank=rank,
        start_step=step,
        motion=vdata.Motion(max_speed=cfg.data.max_speed, supersample=cfg.data.supersample),
        codec_params=cfg.data.codec.params(),
    )
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=None,
        num_workers=cfg.data.workers,
        worker_init_fn=_worker_init if cfg.data.workers else None,
        pin_memory=cuda,
        prefetch_factor=2 if cfg.data.workers else None,
    )
    val_clips = (
        vdata.load_val_clips(cfg.val.data, cfg.val.clips, cfg.val.max_frames) if (master and cfg.val.every) else []
    )
    if master and cfg.val.every:  # a visible warning (also when quiet): without validation no best.pt
        missing = [c for c in cfg.val.clips if c not in {name for name, _ in val_clips}]
        if not val_clips:
            why = (
                "not found"
                if not Path(cfg.val.data).is_dir()
                else (f"holds none of the clips {', '.join(cfg.val.clips)}" if cfg.val.clips else "val.clips is empty")
            )
            print(
                f"videosr train: warning: validation data {cfg.val.data} (val.data) {why}: training runs without "
                f"validation and writes no best.pt (point val.data at Vid4/GT-like clip folders, or set "
                f"val.every = 0)",
                file=sys.stderr,
                flush=True,
            )
        elif missing:
            print(
                f"videosr train: warning: val.clips not found under {cfg.val.data}: {', '.join(missing)} "
                f"(validating on {', '.join(n for n, _ in val_clips)})",
                file=sys.stderr,
                flush=True,
            )
    val_deg = cfg.data.degradation if cfg.data.degradation in ("BI", "BD") else "BI"  # validation LR

    # ---- logging
    log_f = writer = None
    val: dict[str, float] = {}
    if master:
        new = not (out / "log.csv").exists()
        log_f = open(out / "log.csv", "a", newline="")
        log = csv.writer(log_f)
        if new:
            log.writerow(
                ["step", "time", "lr", "loss", "l1", "charbonnier", "mse", "ssim", "it_per_s", "val_psnr_y", "flow"]
            )
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tb"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            writer = None
        if val_clips and step == 0:  # (val_deg: the training degradation when BI or BD, else BI)
            from ..models import create_model

            try:
                bic = validate(
                    create_model("bicubic", pretrained=False, scale=cfg.data.scale),
                    val_clips,
                    cfg.data.scale,
                    cfg.val.crop_border,
                    degradation=val_deg,
                    lr_crf=cfg.val.lr_crf,
                )
                say("bicubic PSNR-Y: " + ", ".join(f"{k} {v:.2f}" for k, v in bic.items()))
                log.writerow([0, 0, 0, "", "", "", "", "", "", f"bicubic:{bic['mean']:.4f}"])
            except Exception as e:  # noqa: BLE001 - the baseline line is informative only
                say(f"(bicubic baseline unavailable: {e})")

    kept = {"step": step if resume else None}  # the step of the checkpoint last.pt holds

    def save(path: Path) -> None:
        if path == last:
            kept["step"] = step
        if not master:
            return
        _atomic_save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict() if ema is not None else {},
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": {"torch": [torch.get_rng_state()], "cuda": [torch.cuda.get_rng_state(device)] if cuda else []},
                "step": step,
                "best": best,
                "val": dict(val),
                "config": cfg.to_dict(),
            },
            path,
        )

    # ---- loop
    total = cfg.optim.steps
    stop_at = min(total, step + max_steps) if max_steps is not None else total
    if step >= total:
        say(f"nothing to train: the run is at step {step} = optim.steps (raise optim.steps to extend it)")
    it = iter(loader)
    t0, s0, loss_v, parts = time.perf_counter(), step, float("nan"), {}
    interrupted, diverged = False, ""
    with _Stop() as stopper:
        while step < stop_at:
            lr_t, hr_t = next(it)
            lr_t, hr_t = lr_t.to(device, non_blocking=True), hr_t.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                sr = net(lr_t)
            loss, parts = compute_loss(sr, hr_t, cfg.loss)
            if cfg.loss.flow:  # the model's photometric flow loss of this forward (computed inside it, DDP-safe)
                loss = loss + cfg.loss.flow * model.flow_loss
                parts["flow"] = float(model.flow_loss.detach())
            loss_v = float(loss.detach())
            bad = not math.isfinite(loss_v)  # stop before this step updates anything
            if world > 1:  # all ranks agree (one rank alone leaving would hang the others)
                flag = torch.tensor([float(bad)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                bad = bool(flag.item())
            if bad:
                diverged = (
                    f"the loss is {loss_v:g} at step {step + 1}"
                    if not math.isfinite(loss_v)
                    else (f"the loss is not finite on another rank at step {step + 1}")
                )
                break
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip)
            try:
                scaler.step(opt)
            except RuntimeError as e:  # a step size beyond float32 ("cannot be converted ... without overflow")
                if "overflow" not in str(e):
                    raise
                diverged = f"the optimizer step overflowed at step {step + 1}"
                break
            scaler.update()
            sched.step()
            step += 1
            if ema is not None:
                ema_update(ema, model, min(cfg.ema, (1 + step) / (10 + step)))
            # -- log, validate, checkpoint (rank 0), agree on stopping (all ranks)
            if master and (step % cfg.log_every == 0 or step == stop_at):
                el = time.perf_counter() - t0
                ips = (step - s0) / el if el > 0 else 0.0
                say(
                    f"step {step}/{total} | loss {loss_v:.4f} | lr {sched.get_last_lr()[0]:.2e} | "
                    f"{ips:.2f} it/s | ETA {_fmt_eta((total - step) / ips if ips else math.inf)}"
                )
                log.writerow(
                    [
                        step,
                        f"{el:.1f}",
                        f"{sched.get_last_lr()[0]:.3e}",
                        f"{loss_v:.6f}",
                        *[f"{parts[k]:.6f}" if k in parts else "" for k in ("l1", "charbonnier", "mse", "ssim")],
                        f"{ips:.3f}",
                        "",
                        f"{parts['flow']:.6f}" if "flow" in parts else "",
                    ]
                )
                log_f.flush()
                if writer is not None:
                    writer.add_scalar("train/loss", loss_v, step)
                    writer.add_scalar("train/lr", sched.get_last_lr()[0], step)
            stop = stopper.flag
            if world > 1:
                flag = torch.tensor([float(stop)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
            due_val = bool(cfg.val.every) and (step % cfg.val.every == 0 or step == total)
            due_save = stop or step % cfg.ckpt.every == 0 or step == stop_at
            if (due_val or due_save) and not _finite(model, ema):  # the same on every rank: identical weights
                diverged = f"the weights became NaN/inf at step {step}"
                break
            if val_clips and due_val:
                val = validate(
                    ema if ema is not None else model,
                    val_clips,
                    cfg.data.scale,
                    cfg.val.crop_border,
                    device,
                    degradation=val_deg,
                    lr_crf=cfg.val.lr_crf,
                )
                say(f"step {step}: val PSNR-Y " + ", ".join(f"{k} {v:.2f}" for k, v in val.items()))
                log.writerow(
                    [step, f"{time.perf_counter() - t0:.1f}", "", "", "", "", "", "", "", f"{val['mean']:.4f}"]
                )
                log_f.flush()
                if writer is not None:
                    writer.add_scalar("val/psnr_y", val["mean"], step)
                if val["mean"] > best:
                    best = val["mean"]
                    save(out / "best.pt")
            if due_save:
                save(last)
            if stop:
                interrupted = True
                break
    if log_f is not None:
        log_f.close()
    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()
    if diverged:
        where = (
            f"{last} (step {kept['step']}) is kept: --resume with the new value continues from it"
            if kept["step"] is not None
            else "no checkpoint was written"
        )
        hint = (
            "not finite before any update of this run: check the loss weights (loss.*), model.kwargs and precision"
            if step == s0
            else "lower optim.lr, or raise optim.warmup, or use precision = fp32"
        )
        raise DivergedError(f"training diverged: {diverged} (lr {sched.get_last_lr()[0]:.2e}); {hint}; {where}")
    if interrupted:
        say(f"saved {last} at step {step}; continue with --resume")
        from ..errors import Interrupted

        raise Interrupted(f"training interrupted at step {step}; checkpoint {last}")
    say(f"done: step {step}, loss {loss_v:.4f}" + (f", best val PSNR-Y {best:.2f}" if val else ""))
    return {"step": step, "loss": loss_v, "val": val, "best": best, "out_dir": str(out)}
