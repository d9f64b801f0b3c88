"""Training: data pairs, losses, exact resume, Ctrl-C checkpoint, 2-process gloo DDP, export, reload.

Everything runs on a tiny model registered here and a tiny synthetic training set (no dataset build)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from videosr.errors import ResumeError
from videosr.models.registry import ARCHS, VARIANTS, Variant, register_arch, register_variant
from videosr.training.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parent.parent


class TinyVSR(nn.Module):
    """3-frame sliding-window toy: conv on the stacked window + pixel shuffle + bilinear skip."""

    context = 1
    causal = False

    def __init__(self, scale: int = 2, width: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(9, width, 3, 1, 1), nn.ReLU(), nn.Conv2d(width, 3 * scale * scale, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        idx = (torch.arange(t)[:, None] + torch.tensor([-1, 0, 1])).clamp(0, t - 1)
        win = x[:, idx].reshape(b * t, 3 * c, h, w)
        y = F.pixel_shuffle(self.body(win), self.scale)
        base = F.interpolate(x.reshape(b * t, c, h, w), scale_factor=self.scale, mode="bilinear", align_corners=False)
        return (y + base).reshape(b, t, c, self.scale * h, self.scale * w)


if "tinytest" not in ARCHS:
    register_arch("tinytest")(TinyVSR)
if "tiny-test-x2" not in VARIANTS:
    register_variant(Variant(name="tiny-test-x2", arch="tinytest", scale=2, kwargs={"width": 8}))


def make_store():
    from videosr.training.data import ClipStore

    rng = np.random.default_rng(0)

    def texture(h, w):
        a = rng.random((h // 4, w // 4, 3))
        return np.asarray(Image.fromarray((a * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC))

    stills = [texture(96, 128), texture(80, 80)]
    base = texture(64, 96)
    clip = np.stack([np.roll(base, k, axis=1) for k in range(6)])  # a pan
    return ClipStore(stills, [clip])


def write_store(root: Path) -> Path:
    st = make_store()
    (root / "stills").mkdir(parents=True)
    man = {"stills": [], "clips": []}
    for i, s in enumerate(st.stills):
        Image.fromarray(s).save(root / "stills" / f"s{i}.png")
        man["stills"].append({"path": f"stills/s{i}.png"})
    for i, c in enumerate(st.clips):
        d = root / "clips" / f"c{i}"
        d.mkdir(parents=True)
        for k, f in enumerate(c):
            Image.fromarray(f).save(d / f"{k:03d}.png")
        man["clips"].append({"path": f"clips/c{i}", "frames": len(c)})
    (root / "manifest.json").write_text(json.dumps(man))
    return root


def tiny_config(out: Path, **over) -> TrainConfig:
    items = [
        f"out_dir={out}",
        "model.name=tiny-test-x2",
        "data.scale=2",
        "data.patch=8",
        "data.frames=3",
        "data.batch=2",
        "data.workers=0",
        "optim.steps=6",
        "optim.warmup=2",
        "optim.lr=1e-3",
        "ckpt.every=100",
        "val.every=0",
        "precision=fp32",
        "channels_last=false",
        "log_every=1",
        "loss.l1=0.5",
        "loss.ssim=0.1",
        "loss.mse=0.2",
        "ema=0.9",
    ]
    items += [f"{k}={v}" for k, v in over.items()]
    return load_config(None, items)


# ---------------------------------------------------------------------------------------------- data


def test_dataset_pairs_deterministic():
    from videosr.training.data import TrainClips, degrade_clip

    st = make_store()
    ds = TrainClips(st, scale=2, patch=8, frames=3, batch=4, seed=1, video_fraction=0.5)
    lr, hr = ds.batch_at(5)
    assert lr.shape == (4, 3, 3, 8, 8) and hr.shape == (4, 3, 3, 16, 16)
    assert lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(lr.min()) and float(lr.max()) <= 1 and 0 <= float(hr.min()) and float(hr.max()) <= 1
    lr2, hr2 = TrainClips(st, scale=2, patch=8, frames=3, batch=4, seed=1, video_fraction=0.5).batch_at(5)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert not torch.equal(ds.batch_at(6)[1], hr)
    assert not torch.equal(TrainClips(st, scale=2, patch=8, frames=3, batch=4, seed=1, rank=1).batch_at(5)[1], hr)
    # BI: LR is the 8-bit-rounded MATLAB bicubic downscale of the HR
    ref = degrade_clip(hr, 2, "BI")
    assert torch.equal(ref, lr)
    assert torch.allclose(lr * 255, (lr * 255).round(), atol=1e-4)
    bd = degrade_clip(hr, 2, "BD")
    assert bd.shape == lr.shape


def test_synthetic_motion_moves():
    from videosr.training.data import Motion, still_clip

    img = make_store().stills[0]
    rng = np.random.default_rng(3)
    m = Motion(max_speed=6, object_prob=1.0)
    clip = still_clip(img, 32, 5, rng, m, other=img)
    assert clip.shape == (5, 3, 32, 32)
    assert float((clip[0] - clip[-1]).abs().mean()) > 1e-3  # frames differ: something moved


def _find_in(img: np.ndarray, frame: torch.Tensor) -> tuple[int, int] | None:
    """Top-left (y, x) where ``frame`` (3, s, s) float is exactly a window of uint8 ``img``, else None."""
    f = (frame.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    if not torch.allclose(frame * 255, (frame * 255).round(), atol=1e-3):
        return None
    s = f.shape[0]
    for y in range(img.shape[0] - s + 1):
        for x in range(img.shape[1] - s + 1):
            if np.array_equal(img[y : y + s, x : x + s], f):
                return y, x
    return None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_pans_are_exact_crops(seed):
    """Pans move by whole HR pixels: with no rescaling every frame is a window of the photo itself (no
    interpolation blur), and consecutive windows are offset by the clip's velocity, so the motion is real."""
    from videosr.training.data import Motion, still_clip

    img = np.random.default_rng(seed).integers(0, 256, (72, 72, 3), dtype=np.uint8)
    m = Motion(max_speed=5, affine_prob=0.0, object_prob=0.0, min_source_scale=1.0, min_texture=0.0)
    clip = still_clip(img, 24, 4, np.random.default_rng(seed), m)
    where = [_find_in(img, f) for f in clip]
    assert all(w is not None for w in where), where
    assert len(set(where)) > 1  # it moved


def test_synthetic_objects_are_pasted_unresampled():
    """A moving object lands on whole pixels: where its mask is fully opaque, the frame holds the object's
    own pixel values (bilinear sampling at integer offsets copies them)."""
    from videosr.training.data import Motion, still_clip

    bg = np.zeros((64, 64, 3), dtype=np.uint8)
    obj = np.random.default_rng(0).integers(1, 256, (64, 64, 3), dtype=np.uint8)
    m = Motion(max_speed=0, jitter=0.0, affine_prob=0.0, object_prob=1.0, min_source_scale=1.0, min_texture=0.0)
    clip = still_clip(bg, 32, 3, np.random.default_rng(5), m, other=obj)
    opaque = (clip > 0).all(dim=1)  # (T, H, W): pixels the object covers (background is black)
    assert opaque.any()
    # fully opaque interior: values are exactly the object's (integers out of 255)
    inner = clip.permute(0, 2, 3, 1)[opaque]
    frac = ((inner * 255 - (inner * 255).round()).abs() < 1e-3).all(dim=1).float().mean()
    assert frac > 0.5  # the feathered rim blends; the interior copies


def test_synthetic_zoom_clips_keep_detail():
    """Zoom/rotation clips are warped on a 2x finer canvas when the photo has the resolution: their frames
    keep more of the top octave than a direct bicubic warp does (mean |Laplacian| of noise frames)."""
    from videosr.training.data import Motion, still_clip

    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)

    def hf(q):
        m = Motion(
            max_speed=4,
            affine_prob=1.0,
            object_prob=0.0,
            supersample=q,
            min_texture=0.0,
            min_source_scale=0.4,
            max_source_scale=0.4,
        )  # photo 2.5x the canvas: room for q=2
        c = still_clip(img, 48, 3, np.random.default_rng(1), m)
        return float(torch.nn.functional.conv2d(c.mean(1, keepdim=True), lap).abs().mean())

    assert hf(2) > 1.05 * hf(1)


def test_dataloader_stream_matches_batch_at():
    from videosr.training.data import TrainClips

    ds = TrainClips(make_store(), scale=2, patch=8, frames=3, batch=2, seed=0, start_step=4)
    it = iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
    assert torch.equal(next(it)[1], ds.batch_at(4)[1])
    assert torch.equal(next(it)[1], ds.batch_at(5)[1])


def test_store_load(tmp_path):
    from videosr.training.data import ClipStore

    st = ClipStore.load(write_store(tmp_path / "ds"))
    assert len(st.stills) == 2 and st.clips[0].shape == (6, 64, 96, 3)


# ---------------------------------------------------------------------------------------------- losses


def test_losses_and_schedule():
    from videosr.eval.metrics import ssim, ssim_map
    from videosr.training.loop import compute_loss, lr_factor

    x = torch.rand(2, 3, 3, 24, 24)
    assert abs(float(ssim_map(x, x, data_range=1.0).mean()) - 1) < 1e-5
    # the loss's SSIM (0..1, float32) is the metric's (0..255, float64, per channel: y_channel=False)
    a = (x[0, 0] * 255).round()  # on the 8-bit grid
    b = (a + 25 * torch.randn_like(a)).clamp(0, 255).round()
    loss_ssim = float(ssim_map(a / 255, b / 255, data_range=1.0).mean())
    metric = float(ssim(a.double() / 255, b.double() / 255, y_channel=False))  # metrics read 0..1
    assert abs(loss_ssim - metric) < 1e-5 and loss_ssim < 0.99
    cfg = tiny_config(Path("unused"))
    total, parts = compute_loss(x, x, cfg.loss)
    assert set(parts) == {"l1", "charbonnier", "mse", "ssim"}
    assert parts["l1"] == 0 and parts["mse"] == 0 and abs(parts["ssim"]) < 1e-5
    assert lr_factor(0, 10, 100, 0.01) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)


# ---------------------------------------------------------------------------------------------- training


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_is_exact(tmp_path):
    from videosr.training.loop import train

    st = make_store()
    r = train(tiny_config(tmp_path / "a"), store=st, quiet=True)
    assert r["step"] == 6
    train(tiny_config(tmp_path / "b"), store=st, max_steps=3, quiet=True)
    assert _state(tmp_path / "b" / "last.pt")["step"] == 3
    with pytest.raises(ResumeError):
        train(tiny_config(tmp_path / "b"), store=st, quiet=True)  # exists, no --resume
    train(tiny_config(tmp_path / "b"), resume=True, store=st, quiet=True)
    a, b = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert a["config"] == tiny_config(tmp_path / "a").to_dict()
    log = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) == 1 + 6


def test_loss_falls_bf16_channels_last(tmp_path):
    from videosr.training.loop import train

    st = make_store()
    cfg = tiny_config(
        tmp_path / "r",
        **{
            "optim.steps": 40,
            "precision": "bf16",
            "channels_last": "true",
            "loss.ssim": 0,
            "optim.lr": 3e-3,
            "data.batch": 4,
        },
    )
    train(cfg, store=st, quiet=True)
    rows = [line.split(",") for line in (tmp_path / "r" / "log.csv").read_text().splitlines()[1:]]
    losses = [float(r[3]) for r in rows if r[3]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_validation_and_checkpoint_model(tmp_path):
    from videosr.checkpoint import export_weights, load_checkpoint_model
    from videosr.training.loop import train

    vid = tmp_path / "val" / "clipA"
    vid.mkdir(parents=True)
    for k, f in enumerate(make_store().clips[0][:3]):
        Image.fromarray(f).save(vid / f"{k:03d}.png")
    cfg = tiny_config(
        tmp_path / "v", **{"val.every": 3, "val.data": str(tmp_path / "val"), "val.clips": "clipA", "val.max_frames": 3}
    )
    r = train(cfg, store=make_store(), quiet=True)
    assert set(r["val"]) == {"clipA", "mean"} and 10 < r["val"]["mean"] < 80
    assert (tmp_path / "v" / "best.pt").exists()
    ck = tmp_path / "v" / "last.pt"
    model = load_checkpoint_model(ck)
    assert isinstance(model, TinyVSR) and not model.training
    sd = _state(ck)["ema"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    sha = export_weights(ck, tmp_path / "w.safetensors", quiet=True)
    from safetensors.torch import load_file

    from videosr.models import create_model
    from videosr.models.registry import sha256_file

    assert sha == sha256_file(tmp_path / "w.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # as any file we write
    w = load_file(str(tmp_path / "w.safetensors"))
    assert all(torch.equal(w[k], v) for k, v in sd.items())
    m2 = create_model("tiny-test-x2", pretrained=False, weights=tmp_path / "w.safetensors")
    x = torch.rand(1, 3, 3, 8, 8)
    assert torch.equal(m2(x), model(x))


def test_init_fine_tunes_from_weights(tmp_path):
    """model.init starts training from given weights (strict keys), and a wrong file is a clear error."""
    from videosr.checkpoint import export_weights
    from videosr.errors import ModelError
    from videosr.training.loop import train

    train(tiny_config(tmp_path / "a"), store=make_store(), quiet=True)
    export_weights(tmp_path / "a" / "last.pt", tmp_path / "a.safetensors", quiet=True)
    from safetensors.torch import load_file

    start = load_file(str(tmp_path / "a.safetensors"))
    cfg = tiny_config(
        tmp_path / "b",
        **{"model.init": str(tmp_path / "a.safetensors"), "optim.steps": 1, "optim.lr": 1e-12, "ema": 0.0},
    )
    train(cfg, store=make_store(), quiet=True)
    after = _state(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.allclose(after[k], v, atol=1e-6) for k, v in start.items())  # lr ~0: still the init
    with pytest.raises(ModelError):
        train(
            tiny_config(tmp_path / "c", **{"model.init": str(tmp_path / "missing.safetensors")}),
            store=make_store(),
            quiet=True,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from videosr.training.loop import train

    train(tiny_config(Path(out), **{"optim.steps": 4}), store=make_store(), quiet=True)
    import torch.distributed as dist

    dist.destroy_process_group()


def test_ddp_two_processes_gloo(tmp_path):
    import torch.multiprocessing as mp

    t0 = time.time()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    assert time.time() - t0 < 60
    ck = _state(tmp_path / "ddp" / "last.pt")
    assert ck["step"] == 4
    assert not any(k.startswith("module.") for k in ck["model"])  # the unwrapped module is saved


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_sigint_saves_and_resumes(tmp_path):
    """`videosr train` in a subprocess: Ctrl-C -> checkpoint + exit 130; --resume finishes the run."""
    root = write_store(tmp_path / "ds")
    cfg = tmp_path / "t.toml"
    cfg.write_text(f"""
out_dir = "{tmp_path / "run"}"
precision = "fp32"
channels_last = false
log_every = 1
[model]
name = "tiny-test-x2"
[data]
root = "{root}"
scale = 2
patch = 8
frames = 3
batch = 2
workers = 1
[optim]
steps = 100000
[val]
every = 0
""")
    # register the test model in the child through a tiny launcher
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_train; from videosr.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, "-c", code, "train", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    seen = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stdout.readline()
        seen.append(line)
        if line.startswith("step 3/"):
            break
    p.send_signal(signal.SIGINT)
    rest, _ = p.communicate(timeout=60)
    assert p.returncode == 130, "".join(seen) + rest
    ck = _state(tmp_path / "run" / "last.pt")
    assert ck["step"] >= 3
    r = subprocess.run(
        [sys.executable, "-c", code, "train", str(cfg), "--resume", "--max-steps", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed" in r.stdout
    assert _state(tmp_path / "run" / "last.pt")["step"] == ck["step"] + 2
    r = subprocess.run(
        [sys.executable, "-c", code, "train", str(cfg)], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 8 and "--resume" in r.stderr  # a run is already there
    r = subprocess.run(
        [sys.executable, "-m", "videosr", "train", str(cfg), "--set", "optim.lrr=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and "unknown config key 'optim.lrr'" in r.stderr


def test_validate_uses_the_training_degradation():
    """validate(degradation="BD") measures on BD input (Gaussian blur + subsample), not BI."""
    from videosr import resample
    from videosr.eval import degrade, metrics
    from videosr.models import create_model
    from videosr.training.loop import validate

    hr = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    bic = create_model("bicubic", pretrained=False, scale=2)
    got = validate(bic, [("c", hr)], 2, degradation="BD")
    lr = degrade.bd_degrade(hr, 2, quantize_lr=True)
    sr = degrade.quantize(resample.upsample(lr, 2).clamp(0, 1))
    assert got["c"] == pytest.approx(float(metrics.psnr(sr, hr, 0, y_channel=True).mean()), abs=1e-6)
    assert got["c"] != pytest.approx(validate(bic, [("c", hr)], 2)["c"], abs=1e-3)


def test_flow_loss_trains_the_flow_and_is_logged(tmp_path):
    """loss.flow adds the recurrent model's photometric flow loss (logged in the "flow" column); a model
    without a learned flow is refused."""
    from videosr.errors import UsageError
    from videosr.models import create_model
    from videosr.training.loop import train

    cfg = tiny_config(
        tmp_path / "f",
        **{
            "model.name": "online-x4",
            "data.scale": 4,
            "data.patch": 16,
            "model.kwargs.width": 8,
            "model.kwargs.blocks": 1,
            "model.kwargs.flow_width": 8,
            "loss.flow": 1.0,
            "optim.steps": 3,
        },
    )
    train(cfg, store=make_store(), quiet=True)
    rows = list(csv.DictReader((tmp_path / "f" / "log.csv").open()))
    assert [r["flow"] for r in rows if r["loss"]] and all(float(r["flow"]) > 0 for r in rows if r["loss"])
    with pytest.raises(UsageError, match="learned flow"):
        train(tiny_config(tmp_path / "g", **{"loss.flow": 1.0}), store=make_store(), quiet=True)
    # the photometric term prefers the true motion: sup is ref moved 2 LR pixels (1 grid pixel) left
    net = create_model("quality-x4", pretrained=False).train()
    ref = torch.rand(1, 3, 32, 32)
    sup = torch.roll(ref, shifts=-2, dims=-1)  # sup(x) = ref(x + 2): flow_warp(sup, -1 grid px) = ref
    true = torch.zeros(1, 2, 16, 16)
    true[:, 0] = -1.0
    assert net._photometric(ref, sup, true) < 0.5 * net._photometric(ref, sup, torch.zeros_like(true))


@pytest.mark.parametrize("degradation,crf", [("BI", 0), ("BD", 0), ("BI", 30)])
def test_validation_is_the_eval_protocol(tmp_path, degradation, crf):
    """Training validation and `videosr eval` give one figure for one clip folder: the same crop (a clip whose
    sides are not multiples of 4 x scale), frame order (frame2 before frame10), LR (BI, BD, x264) and PSNR."""
    from PIL import Image

    from videosr.eval.protocol import evaluate
    from videosr.models import create_model
    from videosr.training.data import load_val_clips
    from videosr.training.loop import validate

    clip = tmp_path / "gt" / "c"
    clip.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    base = torch.rand(3, 54, 70, generator=g)
    for i in (1, 2, 10):  # natural order 1, 2, 10; lexical 1, 10, 2
        img = (base.roll(3 * i, dims=2) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(img).save(clip / f"frame{i}.png")
    net = create_model("fast-x2", pretrained=True)
    got = validate(net, load_val_clips(tmp_path / "gt", ["c"], 0), 2, degradation=degradation, lr_crf=crf)
    kw = {"lr_codec": "libx264", "lr_crf": crf} if crf else {}
    ref = evaluate(["fast-x2"], str(tmp_path / "gt"), scale=2, degradation=degradation, progress=False, **kw)
    assert got["c"] == pytest.approx(ref[0]["clips"]["c"]["psnr_y"], abs=1e-6)
