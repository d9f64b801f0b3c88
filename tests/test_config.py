"""videosr.training.config: TOML + --set overrides into a typed dataclass tree; clear UsageErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videosr.errors import UsageError
from videosr.training.config import TrainConfig, apply_override, load_config

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_defaults_and_roundtrip():
    cfg = load_config(None)
    assert isinstance(cfg, TrainConfig)
    d = cfg.to_dict()
    assert TrainConfig.from_dict(d) == cfg
    assert d["optim"]["betas"] == [0.9, 0.99]


def test_toml_and_overrides(tmp_path):
    p = write(
        tmp_path,
        """
out_dir = "runs/x"
[model]
name = "fast-x4"
kwargs = { feat = 8 }
[data]
batch = 4
[optim]
lr = 3e-4
steps = 100
""",
    )
    cfg = load_config(
        p,
        [
            "optim.lr=0.001",
            "data.patch=32",
            "data.augment=false",
            "optim.betas=0.8,0.9",
            "val.clips=[calendar, walk]",
            "model.kwargs.width=16",
            "ema=0",
            "precision=fp32",
        ],
    )
    assert cfg.model.kwargs == {"feat": 8, "width": 16}
    assert cfg.optim.lr == 0.001 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.steps == 100 and cfg.data.batch == 4 and cfg.data.patch == 32
    assert cfg.data.augment is False
    assert cfg.optim.betas == [0.8, 0.9]
    assert cfg.val.clips == ["calendar", "walk"]
    assert cfg.ema == 0.0 and isinstance(cfg.ema, float)
    assert cfg.out_dir == "runs/x"


@pytest.mark.parametrize(
    "text, msg",
    [
        ("[optim]\nlrr = 1.0\n", "unknown config key 'optim.lrr'"),
        ("bogus = 1\n", "unknown config key 'bogus'"),
        ("[data]\nbatch = 2.5\n", "'data.batch' must be an integer"),
        ("[data]\nbatch = true\n", "'data.batch' must be an integer"),
        ('[optim]\nlr = "fast"\n', "'optim.lr' must be a number"),
        ("[data]\naugment = 1\n", "'data.augment' must be true or false"),
        ("optim = 3\n", "'optim' must be a table"),
        ('[optim]\nbetas = [0.9, "x"]\n', "'optim.betas[1]' must be a number"),
        ('[data]\ndegradation = "XYZ"\n', "data.degradation must be"),
        ("[optim\n", "not valid TOML"),
    ],
)
def test_toml_errors(tmp_path, text, msg):
    with pytest.raises(UsageError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    "item, msg",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("nope.x=1", "unknown config key 'nope.x'"),
        ("data.batch=two", "expected an integer"),
        ("data.batch=2.5", "expected an integer"),
        ("optim.lr=abc", "expected a number"),
        ("data.augment=maybe", "expected true or false"),
        ("optim=1", "is a table"),
        ("data.batch.x=1", "not a table"),
        ("novalue", "needs key=value"),
    ],
)
def test_override_errors(item, msg):
    with pytest.raises(UsageError, match=msg):
        load_config(None, [item])


def test_override_creates_tables():
    d: dict = {}
    apply_override(d, "loss.ssim=0.1")
    assert d == {"loss": {"ssim": 0.1}}


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_parse(path):
    from videosr.models import VARIANTS

    cfg = load_config(path)  # every shipped config: types, ranges, codec recipes checked
    assert cfg.model.name in VARIANTS and VARIANTS[cfg.model.name].scale == cfg.data.scale
    assert 1e-4 <= cfg.optim.lr <= 1e-3
    if cfg.model.init:  # fine-tuning starts from a file that exists in the repository
        assert (REPO / cfg.model.init).is_file()


def test_codec_section_and_val_crf():
    cfg = load_config(None, ["data.codec.prob=0.5", "data.codec.crf=[20, 30]", "val.lr_crf=25"])
    p = cfg.data.codec.params()
    assert p.prob == 0.5 and p.crf == (20, 30) and cfg.val.lr_crf == 25
    assert load_config(None).data.codec.params() is None  # off by default
    with pytest.raises(UsageError, match="out of range"):
        load_config(None, ["data.codec.prob=0.5", "data.codec.crf=[20, 70]"])
    with pytest.raises(UsageError, match="preset"):
        load_config(None, ["data.codec.prob=0.5", "data.codec.presets=[turbo]"])
    with pytest.raises(UsageError, match="CRF"):
        load_config(None, ["val.lr_crf=99"])
