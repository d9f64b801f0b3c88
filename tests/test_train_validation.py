"""`videosr train` input: every config value checked (one line naming the key, exit 2), a diverging run
stopped without writing NaN weights, `--resume` with a changed config (each change reported, applied or
refused), damaged or foreign checkpoints (exit 8 on resume, 7 on export), the training set and the
validation data (a visible warning when absent). Tiny model and synthetic data from test_train."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch
from test_train import TinyVSR, make_store, tiny_config, write_store  # noqa: F401 - registers tiny-test-x2

from videosr.checkpoint import export_weights
from videosr.cli import main
from videosr.errors import InputError, ModelError, OutputError, ResumeError, UsageError
from videosr.training.config import TrainConfig, load_config
from videosr.training.loop import DivergedError, lr_factor, train

TESTS = Path(__file__).resolve().parent


def _ck(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "item, msg",
    [
        ("optim.lr=-1", r"optim.lr must be in \(0, 1\], got -1.0"),
        ("optim.lr=0", r"optim.lr must be in \(0, 1\]"),
        ("optim.lr=1e39", r"optim.lr must be in \(0, 1\]"),  # (beyond float32: the optimizer would overflow)
        ("optim.lr=inf", "optim.lr must be a finite number, got inf"),
        ("optim.lr=nan", "optim.lr must be a finite number, got nan"),
        ("optim.betas=[1.5, 0.9]", r"optim.betas values must each be in \[0, 1\)"),
        ("optim.betas=[0.9, 1]", r"optim.betas values must each be in \[0, 1\)"),
        ("optim.betas=[0.9]", "optim.betas needs 2 values"),
        ("optim.weight_decay=-0.1", "optim.weight_decay must be >= 0"),
        ("optim.warmup=-1", "optim.warmup must be >= 0"),
        ("optim.steps=0", "optim.steps must be >= 1"),
        ("optim.min_lr_ratio=1.5", r"optim.min_lr_ratio must be in \[0, 1\]"),
        ("optim.clip=-1", "optim.clip must be >= 0"),
        ("optim.clip=inf", "optim.clip must be a finite number"),
        ("optim.name=sgd", "optim.name must be one of adam, adamw"),
        ("data.workers=-1", "data.workers must be >= 0"),
        ("threads=-2", "threads must be >= 0"),
        ("data.patch=0", "data.patch must be >= 1"),
        ("data.frames=0", "data.frames must be >= 1"),
        ("data.batch=-4", "data.batch must be >= 1"),
        ("data.scale=5", "data.scale must be one of 2, 3, 4"),
        ("data.scale=0", "data.scale must be one of 2, 3, 4"),
        ("data.degradation=XYZ", "data.degradation must be one of BI, BD, realistic"),
        ("data.video_fraction=1.5", r"data.video_fraction must be in \[0, 1\]"),
        ("data.max_speed=-1", "data.max_speed must be >= 0"),
        ("data.max_speed=nan", "data.max_speed must be a finite number"),
        ("data.supersample=0", "data.supersample must be >= 1"),
        ("data.root=", "data.root must not be empty"),
        ("data.codec.prob=-0.5", r"data.codec.prob must be in \[0, 1\]"),
        ("data.codec.noise_prob=2", r"data.codec.noise_prob must be in \[0, 1\]"),
        ("data.codec.crf=[30, 20]", r"data.codec.crf must be a range \[lo, hi\] with lo <= hi"),
        ("data.codec.crf=[20]", "data.codec.crf needs 2 values"),
        ("data.codec.crf=[20, 70]", "data.codec: CRF 70 is out of range for libx264"),  # checked even when off
        ("data.codec.codecs=[bogus]", "data.codec: unknown LR codec 'bogus'"),
        ("data.codec.codecs=[]", "data.codec.codecs must not be empty"),
        ("data.codec.presets=[turbo]", "data.codec: unknown libx264 preset 'turbo'"),
        ("data.codec.noise_sigma=[-1, 2]", "data.codec.noise_sigma values must each be >= 0"),
        ("data.codec.group=0", "data.codec.group must be >= 1"),
        ("loss.l1=-1", "loss.l1 must be >= 0"),
        ("loss.ssim=inf", "loss.ssim must be a finite number"),
        ("loss.charbonnier_eps=0", r"loss.charbonnier_eps must be in \(0, 1\]"),
        ("loss.charbonnier_eps=1e300", r"loss.charbonnier_eps must be in \(0, 1\]"),
        ("loss.flow=-0.1", "loss.flow must be >= 0"),
        ("loss.charbonnier=0", "the loss weights .* are all zero"),
        ("val.every=-1", "val.every must be >= 0"),
        ("val.max_frames=0", "val.max_frames must be >= 1"),
        ("val.crop_border=-2", "val.crop_border must be >= 0"),
        ("val.lr_crf=-3", "val.lr_crf must be >= 0"),
        ("val.lr_crf=99", "val.lr_crf: CRF 99 is out of range for libx264"),
        ("ckpt.every=0", "ckpt.every must be >= 1"),
        ("log_every=0", "log_every must be >= 1"),
        ("ema=1", r"ema must be in \[0, 1\), got 1.0"),
        ("ema=-0.5", r"ema must be in \[0, 1\)"),
        ("seed=-1", "seed must be >= 0"),
        ("seed=99999999999999999999", "seed is too large"),
        ("precision=fp8", "precision must be one of fp32, bf16, fp16"),
        ("out_dir=", "out_dir must not be empty"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_key(item, msg):
    with pytest.raises(UsageError, match=msg) as e:
        load_config(None, [item])
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_toml_inf_and_nan_literals_refused(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[optim]\nlr = inf\n")
    with pytest.raises(UsageError, match="optim.lr must be a finite number, got inf"):
        load_config(p)
    p.write_text("ema = nan\n")
    with pytest.raises(UsageError, match="ema must be a finite number, got nan"):
        load_config(p)


def test_every_numeric_key_declares_its_range():
    """Declarative: each int / float (or list of them) field of the config tree carries a constraint, so a
    new key cannot be added unchecked."""
    unchecked = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
                continue
            base = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
            if base in (int, float) and f.metadata.get("check") is None:
                unchecked.append(prefix + f.name)

    walk(TrainConfig, "")
    assert unchecked == []


def test_validate_checks_a_config_built_in_code():
    cfg = load_config(None)
    cfg.optim.lr = float("inf")
    with pytest.raises(UsageError, match="optim.lr must be a finite number"):
        cfg.validate()
    cfg = load_config(None)
    cfg.data.workers = "2"  # type: ignore[assignment]
    with pytest.raises(UsageError, match="'data.workers' must be an integer"):
        cfg.validate()
    cfg = load_config(None)
    cfg.optim.lr = 1  # type: ignore[assignment]  # an int where a float goes: accepted, stored as float
    assert isinstance(cfg.validate().optim.lr, float)


# ---------------------------------------------------------------------------------------------- runtime input


def test_bad_model_kwargs_are_usage_errors(tmp_path):
    for kw, msg in (
        ({"model.kwargs.foo": 1}, "unexpected keyword argument 'foo'"),
        ({"model.kwargs.width": -1}, "negative dimension"),
    ):
        with pytest.raises(UsageError, match=f"model.kwargs .* do not fit model tiny-test-x2: .*{msg}"):
            train(tiny_config(tmp_path / "k", **kw), store=make_store(), quiet=True)
    assert not (tmp_path / "k" / "last.pt").exists()


def test_patch_larger_than_the_training_photos(tmp_path):
    with pytest.raises(
        UsageError,
        match=r"data.patch 1000 x data.scale 2 = 2000 px .* smallest photo \(80 px "
        r"side\): data.patch must be <= 40",
    ):
        train(tiny_config(tmp_path / "p", **{"data.patch": 1000}), store=make_store(), quiet=True)


def test_training_set_empty_or_damaged(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text('{"stills": [], "clips": []}')
    with pytest.raises(InputError, match="training set is empty"):
        train(tiny_config(tmp_path / "e", **{"data.root": str(empty)}), quiet=True)
    root = write_store(tmp_path / "ds")
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"training set .* \(data.root\) is damaged: JSONDecodeError") as e:
        train(tiny_config(tmp_path / "d", **{"data.root": str(root)}), quiet=True)
    assert e.value.exit_code == 3


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="cannot create out_dir"):
        train(tiny_config(tmp_path / "f"), store=make_store(), quiet=True)


def test_missing_validation_data_is_a_visible_warning(tmp_path, capfd):
    cfg = tiny_config(tmp_path / "v", **{"val.every": 3, "val.data": str(tmp_path / "nope"), "optim.steps": 3})
    train(cfg, store=make_store(), quiet=True)
    err = capfd.readouterr().err
    assert f"warning: validation data {tmp_path / 'nope'} (val.data) not found" in err
    assert "no best.pt" in err and not (tmp_path / "v" / "best.pt").exists()
    # some clips present: the missing ones are named, the others validate
    from PIL import Image

    vid = tmp_path / "val" / "clipA"
    vid.mkdir(parents=True)
    for k, f in enumerate(make_store().clips[0][:3]):
        Image.fromarray(f).save(vid / f"{k:03d}.png")
    cfg = tiny_config(
        tmp_path / "w",
        **{
            "val.every": 3,
            "val.data": str(tmp_path / "val"),
            "optim.steps": 3,
            "val.clips": "[clipA, clipB]",
            "val.max_frames": 3,
        },
    )
    train(cfg, store=make_store(), quiet=True)
    assert "warning: val.clips not found under" in capfd.readouterr().err
    assert (tmp_path / "w" / "best.pt").exists()
    # the default (../shared/data/Vid4/GT) in a checkout without it: the same warning
    train(
        tiny_config(
            tmp_path / "x", **{"val.every": 500, "val.data": str(tmp_path / "shared/data/Vid4/GT"), "optim.steps": 1}
        ),
        store=make_store(),
        quiet=True,
    )
    assert "(val.data) not found" in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------- divergence


def test_nonfinite_loss_stops_without_a_checkpoint(tmp_path):
    """An absurd (finite) weight decay: the weights blow up in step 1, the loss of step 2 is NaN: stop,
    exit 2, nothing written. A loss already infinite at the first step points at the loss weights."""
    with pytest.raises(
        DivergedError,
        match=r"training diverged: the loss is nan at step 2 .*lower optim.lr.*no "
        r"checkpoint was written",
    ) as e:
        train(tiny_config(tmp_path / "n", **{"optim.weight_decay": 1e300}), store=make_store(), quiet=True)
    assert e.value.exit_code == 2
    assert not (tmp_path / "n" / "last.pt").exists()
    with pytest.raises(
        DivergedError,
        match=r"the loss is inf at step 1 .*not finite before any update of this "
        r"run: check the loss weights \(loss.\*\)",
    ):
        train(tiny_config(tmp_path / "n", **{"loss.mse": 1e300}), store=make_store(), quiet=True)
    assert not (tmp_path / "n" / "last.pt").exists()


def test_divergence_never_overwrites_a_good_checkpoint(tmp_path):
    st = make_store()
    out = tmp_path / "g"
    train(tiny_config(out, **{"optim.steps": 8}), store=st, max_steps=3, quiet=True)
    good = _ck(out / "last.pt")
    assert good["step"] == 3
    # resumed with an absurd weight decay (AdamW multiplies the weights by 1 - lr * decay) and a checkpoint
    # due every step: the weights are infinite after step 4, checked before the save
    with pytest.raises(
        DivergedError,
        match=r"the weights became NaN/inf at step 4 .*lower optim.lr.*last.pt "
        r"\(step 3\) is kept: --resume with the new value",
    ):
        train(
            tiny_config(out, **{"optim.steps": 8, "optim.weight_decay": 1e300, "ckpt.every": 1}),
            resume=True,
            store=st,
            quiet=True,
        )
    after = _ck(out / "last.pt")
    assert after["step"] == 3
    assert all(torch.equal(after["model"][k], v) for k, v in good["model"].items())
    # and resuming with a sane lr goes on from the good checkpoint
    r = train(tiny_config(out, **{"optim.steps": 8, "optim.weight_decay": 0.01}), resume=True, store=st, quiet=True)
    assert r["step"] == 8 and math.isfinite(r["loss"])


# ---------------------------------------------------------------------------------------------- resume


def test_resume_applies_and_reports_changed_hyperparameters(tmp_path, capsys):
    st = make_store()
    out = tmp_path / "r"
    train(tiny_config(out), store=st, max_steps=3, quiet=True)
    capsys.readouterr()
    new = {
        "optim.lr": 5e-4,
        "optim.steps": 10,
        "optim.betas": "[0.8, 0.95]",
        "optim.weight_decay": 0.01,
        "log_every": 2,
        "val.crop_border": 2,
        "data.batch": 3,
        "seed": 5,
    }
    train(tiny_config(out, **new), resume=True, store=st)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("resume: ")]
    reported = {ln.split()[1] for ln in lines}
    assert reported == set(new), lines
    assert "resume: optim.lr changed 0.001 -> 0.0005 (applied: the schedule continues with the new peak lr)" in lines
    assert any(
        ln.startswith("resume: optim.steps changed 6 -> 10 (applied: the schedule is recomputed") for ln in lines
    )
    assert any(ln.startswith("resume: seed changed 0 -> 5 (applied: batches from here on differ") for ln in lines)
    assert any(
        ln.startswith("resume: val.crop_border changed 0 -> 2 (applied: validation changed: the best val PSNR restarts")
        for ln in lines
    )
    ck = _ck(out / "last.pt")
    assert ck["step"] == 10 and ck["config"] == tiny_config(out, **new).to_dict()
    g = ck["optimizer"]["param_groups"][0]
    assert g["initial_lr"] == 5e-4 and ck["scheduler"]["base_lrs"] == [5e-4]
    assert g["lr"] == pytest.approx(5e-4 * lr_factor(10, 2, 10, 0.01))
    assert tuple(g["betas"]) == (0.8, 0.95) and g["weight_decay"] == 0.01
    # the lr actually used after the resume follows the new peak: log.csv's lr at step 4 (lr for step 5)
    rows = [r.split(",") for r in (out / "log.csv").read_text().splitlines()[1:]]
    lr4 = float(next(r[2] for r in rows if r[0] == "4"))
    assert lr4 == pytest.approx(5e-4 * lr_factor(4, 2, 10, 0.01), rel=1e-3)


def test_resume_refuses_model_scale_and_optimizer_changes(tmp_path):
    st = make_store()
    out = tmp_path / "m"
    train(tiny_config(out), store=st, max_steps=2, quiet=True)
    before = (out / "last.pt").read_bytes()
    with pytest.raises(ResumeError) as e:
        train(
            tiny_config(out, **{"model.kwargs.width": 16, "data.scale": 4, "optim.name": "adam", "optim.lr": 5e-4}),
            resume=True,
            store=st,
            quiet=True,
        )
    msg = str(e.value)
    assert e.value.exit_code == 8 and "\n" not in msg
    assert msg.startswith(f"cannot --resume {out / 'last.pt'}: model.kwargs changed {{}} -> {{'width': 16}}")
    assert "data.scale changed 2 -> 4" in msg and "optim.name changed 'adamw' -> 'adam'" in msg
    assert "optim.lr" not in msg  # applicable: not refused
    assert "put the value back, or train into a new out_dir (model.init =" in msg
    with pytest.raises(ResumeError, match="optim.steps 1 is below the checkpoint's step 2"):
        train(tiny_config(out, **{"optim.steps": 1}), resume=True, store=st, quiet=True)
    assert (out / "last.pt").read_bytes() == before


def test_resume_at_the_end_trains_nothing_and_says_so(tmp_path, capsys):
    st = make_store()
    out = tmp_path / "z"
    train(tiny_config(out, **{"optim.steps": 2}), store=st, quiet=True)
    before = (out / "last.pt").read_bytes()
    r = train(tiny_config(out, **{"optim.steps": 2}), resume=True, store=st)
    assert r["step"] == 2 and "nothing to train: the run is at step 2 = optim.steps" in capsys.readouterr().out
    assert (out / "last.pt").read_bytes() == before


def test_resume_ema_turned_on_starts_from_the_resumed_weights(tmp_path, capsys):
    st = make_store()
    out = tmp_path / "e"
    train(tiny_config(out, **{"ema": 0, "optim.lr": 3e-2}), store=st, max_steps=2, quiet=True)
    weights = _ck(out / "last.pt")["model"]
    torch.manual_seed(0)
    init = TinyVSR(scale=2, width=8).state_dict()  # what the EMA copy holds before the resume loads
    assert max(float((weights[k] - init[k]).abs().max()) for k in init) > 1e-2
    train(tiny_config(out, **{"ema": 0.9, "optim.lr": 1e-9}), resume=True, store=st, max_steps=1)
    assert (
        "resume: ema changed 0.0 -> 0.9 (applied: EMA on: it starts from the resumed weights)"
        in capsys.readouterr().out
    )
    ema = _ck(out / "last.pt")["ema"]
    # lr ~0 now: the EMA blends the resumed weights with almost the same ones (not with the initial ones)
    assert max(float((ema[k] - weights[k]).abs().max()) for k in weights) < 1e-4


def test_resume_with_another_models_checkpoint(tmp_path):
    """last.pt of another model (copied in): refused by the config comparison, naming the change."""
    st = make_store()
    train(tiny_config(tmp_path / "a", **{"model.kwargs.width": 4}), store=st, max_steps=1, quiet=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "last.pt").write_bytes((tmp_path / "a" / "last.pt").read_bytes())
    with pytest.raises(
        ResumeError,
        match=r"model.kwargs changed \{'width': 4\} -> \{\} \(the checkpoint holds "
        r"weights of its own architecture\)",
    ):
        train(tiny_config(tmp_path / "b"), resume=True, store=st, quiet=True)


def _save_run(tmp_path) -> Path:
    out = tmp_path / "c"
    train(tiny_config(out), store=make_store(), max_steps=1, quiet=True)
    return out / "last.pt"


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(os.urandom(4096))
    elif how == "text":
        path.write_text("not a checkpoint\n")
    else:  # edit the contents and save again
        ck = _ck(path)
        if how == "pickled-object":
            ck["extra"] = Path("x")  # a Python object weights_only refuses to rebuild
        elif how == "no-optimizer":
            del ck["optimizer"]
        elif how == "no-config":
            del ck["config"]
        elif how == "weights-mismatch":
            ck["model"].pop(next(iter(ck["model"])))
        elif how == "nan-weights":
            k = next(iter(ck["model"]))
            ck["model"][k] = torch.full_like(ck["model"][k], float("nan"))
            ck["ema"][k] = ck["model"][k].clone()
        elif how == "bad-optimizer-state":
            ck["optimizer"]["param_groups"] = []
        torch.save(ck, path)


DAMAGE = {
    "truncated": "is corrupt or truncated",
    "empty": r"is empty \(0 bytes\): corrupt or truncated",
    "random": "is corrupt or truncated",
    "text": "is corrupt or truncated",
    "pickled-object": "holds Python objects other than tensors and plain data: refused",
    "no-config": r"is not a videosr training checkpoint \(no config/model\)",
    "nan-weights": "non-finite",
}


@pytest.mark.parametrize(
    "how, msg",
    [
        *DAMAGE.items(),
        (
            "no-optimizer",
            r"is not a resumable training checkpoint \(no valid "
            r"'optimizer'\)",
        ),
        ("weights-mismatch", "does not fit TinyVSR: missing 1"),
        ("bad-optimizer-state", r"cannot be resumed \(damaged optimizer"),
    ],
)
def test_damaged_checkpoint_on_resume_is_exit_8(tmp_path, how, msg):
    last = _save_run(tmp_path)
    _damage(last, how)
    with pytest.raises(ResumeError, match=msg) as e:
        train(tiny_config(tmp_path / "c"), resume=True, store=make_store(), quiet=True)
    assert e.value.exit_code == 8 and "\n" not in str(e.value)


@pytest.mark.parametrize("how, msg", list(DAMAGE.items()))
def test_damaged_checkpoint_on_export_is_exit_7(tmp_path, how, msg):
    last = _save_run(tmp_path)
    _damage(last, how)
    with pytest.raises(ModelError, match=msg) as e:
        export_weights(last, tmp_path / "w.safetensors", quiet=True)
    assert e.value.exit_code == 7 and not (tmp_path / "w.safetensors").exists()


# ---------------------------------------------------------------------------------------------- CLI


def _toml(tmp_path: Path, **extra: str) -> Path:
    root = write_store(tmp_path / "ds")
    p = tmp_path / "t.toml"
    p.write_text(f"""
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
workers = 0
[optim]
steps = 3
warmup = 1
[val]
every = 0
""")
    return p


def test_cli_exit_codes_one_line(tmp_path, capsys):
    cfg = _toml(tmp_path)
    cases = [
        (["--set", "optim.lr=inf"], 2, "optim.lr must be a finite number, got inf"),
        (["--set", "optim.betas=[0.9, 1.2]"], 2, "optim.betas values must each be in [0, 1)"),
        (["--set", "data.workers=-1"], 2, "data.workers must be >= 0"),
        (["--set", "threads=-1"], 2, "threads must be >= 0"),
        (["--set", "optim.weight_decay=1e300"], 2, "training diverged: the loss is nan"),
        (["--resume"], 8, "nothing to resume"),
    ]
    for args, code, msg in cases:
        assert main(["train", str(cfg), *args]) == code, args
        err = capsys.readouterr().err
        assert err.startswith("videosr: error: ") and msg in err and err.count("\n") == 1, err
    assert main(["train", str(cfg), "--max-steps", "2"]) == 0
    (tmp_path / "run" / "last.pt").write_bytes(b"\0" * 100)
    assert main(["train", str(cfg), "--resume"]) == 8
    assert "is corrupt or truncated" in capsys.readouterr().err


def test_cli_subprocess_no_traceback(tmp_path):
    """The real process: a bad value and a refused resume are one line each, never exit 70."""
    cfg = _toml(tmp_path)
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_train; from videosr.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-c", code, "train", str(cfg), "--set", "optim.lr=-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr == "videosr: error: optim.lr must be in (0, 1], got -1.0\n", r.stderr
    assert main(["train", str(cfg), "--max-steps", "1"]) == 0  # (in this process: quicker)
    r = subprocess.run(
        [sys.executable, "-c", code, "train", str(cfg), "--resume", "--set", "data.scale=4"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 8 and r.stderr.count("\n") == 1 and "data.scale changed 2 -> 4" in r.stderr
    assert "Traceback" not in r.stderr


def test_export_into_a_folder_and_disk_full_checkpoint(tmp_path, monkeypatch):
    import errno

    from videosr.errors import DiskFullError

    last = _save_run(tmp_path)
    with pytest.raises(OutputError, match="is a folder"):
        export_weights(last, tmp_path / "c", quiet=True)
    before = last.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError, match="disk full writing checkpoint .*the previous one is kept") as e:
        train(tiny_config(tmp_path / "c"), resume=True, store=make_store(), max_steps=1, quiet=True)
    assert e.value.exit_code == 6
    assert last.read_bytes() == before and not (tmp_path / "c" / "last.pt.tmp").exists()
