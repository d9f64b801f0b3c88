"""Training configuration: a typed dataclass tree loaded from TOML, with ``key=value`` overrides.

    cfg = load_config("configs/fast-x4.toml", overrides=["optim.lr=3e-4", "data.batch=8"])
    cfg.optim.lr          # 0.0003 (float, checked)
    cfg.to_dict()         # plain dict (saved in every checkpoint); TrainConfig.from_dict() reads it back

Every key is checked against the dataclass fields: an unknown key, or a value of the wrong type, is a
:class:`~videosr.errors.UsageError` naming the key. Override values are parsed with the field's type
(int, float, bool, str, list of those); ``model.kwargs`` is free-form (values parsed as TOML literals).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


@dataclass
class ModelCfg:
    name: str = "fast-x4"  # a registered variant (videosr.models.list_models())
    kwargs: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides for create_model
    init: str = ""  # start from these weights (safetensors or .pt, strict keys): fine-tuning; not on --resume


@dataclass
class CodecCfg:
    """Compression in the loop (videosr.degrade.codec_degrade): after the BI/BD degradation and 8-bit
    rounding, a share ``prob`` of the clips is encoded as a video and decoded (0: off, clean LR only)."""

    prob: float = 0.0  # share of clips encoded; the rest stay clean
    codecs: list[str] = field(default_factory=lambda: ["libx264"])  # libx264 | libx265 | libvpx-vp9
    crf: list[int] = field(default_factory=lambda: [15, 40])  # CRF uniform in [lo, hi]
    presets: list[str] = field(default_factory=lambda: ["veryfast", "faster", "fast", "medium", "slow"])
    noise_prob: float = 0.0  # Gaussian noise on the LR before encoding (low-light cameras)
    noise_sigma: list[float] = field(default_factory=lambda: [1.0, 10.0])  # std range, 0..255 scale
    group: int = 4  # clips encoded together as one mosaic video, sharing one recipe (encoder cost)

    def params(self):
        """The :class:`videosr.degrade.CodecParams` of this section (validated), or None when off."""
        from .degrade import CodecParams

        if self.prob == 0 and self.noise_prob == 0:
            return None
        if len(self.crf) != 2 or len(self.noise_sigma) != 2:
            raise UsageError("data.codec.crf and data.codec.noise_sigma need 2 values [lo, hi]")
        return CodecParams(prob=self.prob, codecs=tuple(self.codecs), crf=(self.crf[0], self.crf[1]),
                           presets=tuple(self.presets), noise_prob=self.noise_prob,
                           noise_sigma=(self.noise_sigma[0], self.noise_sigma[1]), group=self.group)


@dataclass
class DataCfg:
    root: str = "datasets/vsr"  # built by scripts/build_dataset.py
    degradation: str = "BI"  # BI (MATLAB bicubic), BD (Gaussian sigma 1.6 + subsample), realistic
    scale: int = 4
    patch: int = 64  # LR patch size (HR patch = patch * scale)
    frames: int = 7  # clip length T
    batch: int = 8  # per process
    video_fraction: float = 0.3  # share of clips cut from real videos (the rest: synthetic motion on stills)
    workers: int = 1  # DataLoader workers (0: generate in the training process)
    augment: bool = True  # flips, transposes, temporal reversal
    max_speed: float = 10.0  # synthetic camera pan speed on stills, HR px/frame (uniform in [0, max_speed])
    supersample: int = 2  # stills: warp at this multiple of the patch size, then downscale (1 = warp directly)
    codec: CodecCfg = field(default_factory=CodecCfg)  # compression in the loop ([data.codec])


@dataclass
class OptimCfg:
    name: str = "adamw"  # adam | adamw
    lr: float = 4e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    warmup: int = 200  # linear warm-up steps
    steps: int = 10000  # total steps (cosine decay to min_lr_ratio * lr)
    min_lr_ratio: float = 0.01
    clip: float = 1.0  # gradient-norm clipping (0: off)


@dataclass
class LossCfg:
    l1: float = 0.0
    charbonnier: float = 1.0
    mse: float = 0.0
    ssim: float = 0.0  # weight of (1 - SSIM)
    charbonnier_eps: float = 1e-3
    # photometric loss of a learned optical flow (recurrent models): the LR neighbour warped by the
    # estimated flow against the frame, Charbonnier, + 0.1 x first-order smoothness. Without it the flow
    # net gets only the SR loss's gradient through the warped hidden state, and it collapsed to a constant
    # (benchmarks/flow_probe.py).
    flow: float = 0.0


@dataclass
class ValCfg:
    every: int = 500  # steps (0: no validation)
    data: str = "../shared/data/Vid4/GT"  # folders of PNG frames; skipped when absent
    clips: list[str] = field(default_factory=lambda: ["calendar", "city", "foliage", "walk"])
    max_frames: int = 5  # frames per clip (from the start of the clip)
    crop_border: int = 0  # pixels cut on each side before PSNR-Y (video SR tables use 0)
    lr_crf: int = 0  # > 0: validation LR also encoded with libx264 (medium) at this CRF, as `eval --lr-crf`


@dataclass
class CkptCfg:
    every: int = 500  # steps (a checkpoint is also written at the end and on Ctrl-C)


@dataclass
class TrainConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    loss: LossCfg = field(default_factory=LossCfg)
    val: ValCfg = field(default_factory=ValCfg)
    ckpt: CkptCfg = field(default_factory=CkptCfg)
    ema: float = 0.999  # EMA decay of the weights (0: off)
    out_dir: str = "runs/train"
    precision: str = "bf16"  # fp32 | bf16 (CPU autocast) | fp16 (CUDA AMP); bf16 on CUDA too
    channels_last: bool = True
    seed: int = 0
    log_every: int = 20
    threads: int = 0  # torch.set_num_threads (0: leave as is)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return _build(cls, d, "")

    def validate(self) -> "TrainConfig":
        if self.data.degradation not in ("BI", "BD", "realistic"):
            raise UsageError(f"data.degradation must be BI, BD or realistic, got {self.data.degradation!r}")
        self.data.codec.params()  # ranges, codecs and presets checked
        if self.val.lr_crf:
            from .degrade import check_codec

            check_codec("libx264", self.val.lr_crf, "medium")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.optim.name not in ("adam", "adamw"):
            raise UsageError(f"optim.name must be adam or adamw, got {self.optim.name!r}")
        if len(self.optim.betas) != 2:
            raise UsageError(f"optim.betas needs 2 values, got {self.optim.betas}")
        for key, v in (("data.scale", self.data.scale), ("data.patch", self.data.patch),
                       ("data.frames", self.data.frames), ("data.batch", self.data.batch),
                       ("optim.steps", self.optim.steps)):
            if v < 1:
                raise UsageError(f"{key} must be >= 1, got {v}")
        if not 0 <= self.ema < 1:
            raise UsageError(f"ema must be in [0, 1), got {self.ema}")
        if sum((self.loss.l1, self.loss.charbonnier, self.loss.mse, self.loss.ssim)) <= 0:
            raise UsageError("the loss weights (loss.l1, loss.charbonnier, loss.mse, loss.ssim) are all zero")
        return self


# --------------------------------------------------------------------------------------------------
# typed construction
# --------------------------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check(tp: Any, value: Any, key: str) -> Any:
    """Value from TOML (or a parsed override) checked against a field type; ints are accepted as floats."""
    origin = typing.get_origin(tp)
    if origin is list:
        (et,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UsageError(f"config key {key!r} must be a list of {_type_name(et)}, got {value!r}")
        return [_check(et, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"config key {key!r} must be a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UsageError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UsageError(f"config key {key!r} must be a string, got {value!r}")
        return value
    raise UsageError(f"config key {key!r}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise UsageError(f"config key {prefix.rstrip('.') or '<root>'!r} must be a table, got {d!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise UsageError(f"unknown config key {prefix + unknown[0]!r} (known in {prefix.rstrip('.') or 'top level'}:"
                         f" {', '.join(names)})")
    kw = {}
    for name in names:
        if name not in d:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kw[name] = _build(tp, d[name], f"{prefix}{name}.")
        else:
            kw[name] = _check(tp, d[name], prefix + name)
    return cls(**kw)


# --------------------------------------------------------------------------------------------------
# overrides
# --------------------------------------------------------------------------------------------------


def _toml_literal(text: str) -> Any:
    if tomllib is not None:
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except Exception:  # noqa: BLE001 - not a TOML literal: keep the text
            pass
    return text


def _parse_value(tp: Any, text: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    t = text.strip()
    if origin is list:
        (et,) = typing.get_args(tp)
        if t.startswith("["):
            t = t[1:-1] if t.endswith("]") else t[1:]
        items = [s for s in (p.strip() for p in t.split(",")) if s]
        return [_parse_value(et, s, f"{key}[{i}]") for i, s in enumerate(items)]
    if tp is bool:
        low = t.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise UsageError(f"--set {key}: expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(t.replace("_", ""))
        except ValueError:
            raise UsageError(f"--set {key}: expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(t.replace("_", ""))
        except ValueError:
            raise UsageError(f"--set {key}: expected a number, got {text!r}") from None
    if tp is str:
        return t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t
    raise UsageError(f"--set {key}: unsupported type {tp}")  # pragma: no cover


def apply_override(d: dict[str, Any], item: str, cls: type = None) -> None:  # type: ignore[assignment]
    """Apply one ``dotted.key=value`` to the raw dict ``d`` (checked against the dataclass tree)."""
    cls = cls or TrainConfig
    if "=" not in item:
        raise UsageError(f"--set needs key=value, got {item!r}")
    key, _, text = item.partition("=")
    key = key.strip()
    parts = key.split(".")
    node_cls, node = cls, d
    for i, part in enumerate(parts):
        hints = _hints(node_cls)
        fields = [f.name for f in dataclasses.fields(node_cls)]
        if part not in fields:
            where = ".".join(parts[:i]) or "top level"
            raise UsageError(f"unknown config key {key!r} (known in {where}: {', '.join(fields)})")
        tp = hints[part]
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp):
            if last:
                raise UsageError(f"config key {key!r} is a table: set one of its keys")
            node = node.setdefault(part, {})
            node_cls = tp
            continue
        if typing.get_origin(tp) is dict:  # free-form table: model.kwargs.<name>=<TOML literal>
            sub = node.setdefault(part, {})
            rest = parts[i + 1:]
            if not rest:
                raise UsageError(f"config key {key!r} is a table: set {key}.<name>=<value>")
            for p in rest[:-1]:
                sub = sub.setdefault(p, {})
            sub[rest[-1]] = _toml_literal(text.strip())
            return
        if not last:
            raise UsageError(f"unknown config key {key!r} ({'.'.join(parts[:i + 1])} is not a table)")
        node[part] = _parse_value(tp, text, key)
        return


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a TOML file (or start from the defaults when ``path`` is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"config file not found: {p}")
        if tomllib is None:
            raise UsageError("reading TOML needs Python 3.11+ (or `pip install tomli`)")
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UsageError(f"{p}: not valid TOML: {e}") from None
    for item in overrides:
        apply_override(raw, item)
    return TrainConfig.from_dict(raw).validate()
