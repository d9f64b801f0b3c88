"""Training configuration: a typed dataclass tree loaded from TOML, with ``key=value`` overrides.

    cfg = load_config("configs/fast-x4.toml", overrides=["optim.lr=3e-4", "data.batch=8"])
    cfg.optim.lr          # 0.0003 (float, checked)
    cfg.to_dict()         # plain dict (saved in every checkpoint); TrainConfig.from_dict() reads it back

Every key is checked against the dataclass fields: an unknown key, or a value of the wrong type, is a
:class:`~videosr.errors.UsageError` naming the key. Override values are parsed with the field's type
(int, float, bool, str, list of those); ``model.kwargs`` is free-form (values parsed as TOML literals).
Each field declares its constraint (``_f(4e-4, Range(0, 1, lo_open=True))``: lr in (0, 1]; ``OneOf``, ``Items``,
``NonEmpty``); :meth:`TrainConfig.validate` checks them all, plus finite numbers everywhere.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------------
# value constraints: declared on the fields (``_f``), checked by TrainConfig.validate
# --------------------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Range:
    """A number in [lo, hi] (an end open with ``lo_open`` / ``hi_open``; None: unbounded)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"  # type: ignore[arg-type]

    def error(self, v: Any) -> str | None:
        lo_bad = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        hi_bad = self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi)
        return f"must be {self.describe()}" if lo_bad or hi_bad else None


@dataclass(frozen=True)
class OneOf:
    values: tuple[Any, ...]

    def describe(self) -> str:
        return f"one of {', '.join(map(str, self.values))}"

    def error(self, v: Any) -> str | None:
        return None if v in self.values else f"must be {self.describe()}"


@dataclass(frozen=True)
class NonEmpty:
    def error(self, v: Any) -> str | None:
        return None if len(v) else "must not be empty"


@dataclass(frozen=True)
class Items:
    """A list: ``n`` values exactly (None: any number, at least one), each meeting ``item``; ``ordered``: a
    range [lo, hi] with lo <= hi."""

    item: Any = None
    n: int | None = None
    ordered: bool = False

    def error(self, v: list) -> str | None:
        if self.n is not None and len(v) != self.n:
            return f"needs {self.n} values" + (" [lo, hi]" if self.ordered else "")
        if not v:
            return "must not be empty"
        if self.item is not None and any(self.item.error(x) for x in v):
            return f"values must each be {self.item.describe()}"
        if self.ordered and v[0] > v[1]:
            return "must be a range [lo, hi] with lo <= hi"
        return None


def _f(default: Any = dataclasses.MISSING, check: Any = None, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a constraint (checked by :meth:`TrainConfig.validate`)."""
    return field(default=default, default_factory=factory, metadata={"check": check})


_POS = Range(1)  # an integer >= 1
_NONNEG = Range(0)
_UNIT = Range(0, 1)  # a probability, a share
_INT_MAX = 2**63 - 1  # what TOML can hold (and torch / numpy seeds accept)


@dataclass
class ModelCfg:
    name: str = "fast-x4"  # a registered variant (videosr.models.list_models())
    kwargs: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides for create_model
    init: str = ""  # start from these weights (safetensors or .pt, strict keys): fine-tuning; not on --resume


@dataclass
class CodecCfg:
    """Compression in the loop (videosr.training.degradations.codec_degrade): after the BI/BD degradation
    and 8-bit rounding, a share ``prob`` of the clips is encoded as a video and decoded (0: off, clean LR
    only)."""

    prob: float = _f(0.0, _UNIT)  # share of clips encoded; the rest stay clean
    codecs: list[str] = _f(check=Items(), factory=lambda: ["libx264"])  # libx264 | libx265 | libvpx-vp9
    crf: list[int] = _f(check=Items(_NONNEG, 2, ordered=True), factory=lambda: [15, 40])  # CRF uniform in [lo, hi]
    presets: list[str] = _f(check=Items(), factory=lambda: ["veryfast", "faster", "fast", "medium", "slow"])
    noise_prob: float = _f(0.0, _UNIT)  # Gaussian noise on the LR before encoding (low-light cameras)
    noise_sigma: list[float] = _f(check=Items(_NONNEG, 2, ordered=True), factory=lambda: [1.0, 10.0])  # std, 0..255
    group: int = _f(4, _POS)  # clips encoded together as one mosaic video, sharing one recipe (encoder cost)

    def params(self):
        """The :class:`videosr.training.degradations.CodecParams` of this section (validated), or None when off."""
        if self.prob == 0 and self.noise_prob == 0:
            return None
        return self._params()

    def _params(self):
        """CodecParams even when off: codecs, CRF ranges per codec and presets checked."""
        from .degradations import CodecParams

        if len(self.crf) != 2 or len(self.noise_sigma) != 2:
            raise UsageError("data.codec.crf and data.codec.noise_sigma need 2 values [lo, hi]")
        try:
            return CodecParams(
                prob=self.prob,
                codecs=tuple(self.codecs),
                crf=(self.crf[0], self.crf[1]),
                presets=tuple(self.presets),
                noise_prob=self.noise_prob,
                noise_sigma=(self.noise_sigma[0], self.noise_sigma[1]),
                group=self.group,
            )
        except UsageError as e:
            raise UsageError(f"data.codec: {e}") from None


@dataclass
class DataCfg:
    root: str = _f("datasets/vsr", NonEmpty())  # built by scripts/build_dataset.py
    degradation: str = _f("BI", OneOf(("BI", "BD", "realistic")))  # BI (MATLAB bicubic), BD (Gaussian 1.6), realistic
    scale: int = _f(4, OneOf((2, 3, 4)))
    patch: int = _f(64, _POS)  # LR patch size (HR patch = patch * scale)
    frames: int = _f(7, _POS)  # clip length T
    batch: int = _f(8, _POS)  # per process
    video_fraction: float = _f(0.3, _UNIT)  # share of clips cut from real videos (the rest: motion on stills)
    workers: int = _f(1, _NONNEG)  # DataLoader workers (0: generate in the training process)
    augment: bool = True  # flips, transposes, temporal reversal
    max_speed: float = _f(10.0, _NONNEG)  # synthetic pan speed on stills, HR px/frame (uniform in [0, max_speed])
    supersample: int = _f(2, _POS)  # stills: warp at this multiple of the patch size, then downscale (1: directly)
    codec: CodecCfg = field(default_factory=CodecCfg)  # compression in the loop ([data.codec])


@dataclass
class OptimCfg:
    name: str = _f("adamw", OneOf(("adam", "adamw")))
    lr: float = _f(4e-4, Range(0, 1, lo_open=True))  # an Adam step moves each weight by about lr
    betas: list[float] = _f(check=Items(Range(0, 1, hi_open=True), 2), factory=lambda: [0.9, 0.99])
    weight_decay: float = _f(0.0, _NONNEG)
    warmup: int = _f(200, _NONNEG)  # linear warm-up steps
    steps: int = _f(10000, _POS)  # total steps (cosine decay to min_lr_ratio * lr)
    min_lr_ratio: float = _f(0.01, _UNIT)
    clip: float = _f(1.0, _NONNEG)  # gradient-norm clipping (0: off)


@dataclass
class LossCfg:
    l1: float = _f(0.0, _NONNEG)
    charbonnier: float = _f(1.0, _NONNEG)
    mse: float = _f(0.0, _NONNEG)
    ssim: float = _f(0.0, _NONNEG)  # weight of (1 - SSIM)
    charbonnier_eps: float = _f(1e-3, Range(0, 1, lo_open=True))  # pixels are in [0, 1]
    # photometric loss of a learned optical flow (recurrent models): the LR neighbour warped by the
    # estimated flow against the frame, Charbonnier, + 0.1 x first-order smoothness. Without it the flow
    # net gets only the SR loss's gradient through the warped hidden state, and it collapsed to a constant
    # (benchmarks/flow_probe.py).
    flow: float = _f(0.0, _NONNEG)


@dataclass
class ValCfg:
    every: int = _f(500, _NONNEG)  # steps (0: no validation)
    data: str = "../shared/data/Vid4/GT"  # folders of PNG frames; skipped (with a warning) when absent
    clips: list[str] = field(default_factory=lambda: ["calendar", "city", "foliage", "walk"])
    max_frames: int = _f(5, _POS)  # frames per clip (from the start of the clip)
    crop_border: int = _f(0, _NONNEG)  # pixels cut on each side before PSNR-Y (video SR tables use 0)
    lr_crf: int = _f(0, _NONNEG)  # > 0: validation LR also encoded with libx264 (medium) at this CRF (eval --lr-crf)


@dataclass
class CkptCfg:
    every: int = _f(500, _POS)  # steps (a checkpoint is also written at the end and on Ctrl-C)


@dataclass
class TrainConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    loss: LossCfg = field(default_factory=LossCfg)
    val: ValCfg = field(default_factory=ValCfg)
    ckpt: CkptCfg = field(default_factory=CkptCfg)
    ema: float = _f(0.999, Range(0, 1, hi_open=True))  # EMA decay of the weights (0: off)
    out_dir: str = _f("runs/train", NonEmpty())
    precision: str = _f("bf16", OneOf(("fp32", "bf16", "fp16")))  # fp16: CUDA AMP; bf16: CPU autocast, CUDA too
    channels_last: bool = True
    seed: int = _f(0, _NONNEG)
    log_every: int = _f(20, _POS)
    threads: int = _f(0, _NONNEG)  # torch.set_num_threads (0: leave as is)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return _build(cls, d, "")

    def validate(self) -> TrainConfig:
        """Check every value against its field's type and declared constraint (numbers finite, ranges,
        choices), then the rules between fields; the first violation is a UsageError naming the key."""
        _check_tree(self, "")
        self.data.codec._params()  # codecs, CRF ranges per codec and presets (checked even when off)
        if self.val.lr_crf:
            from ..eval.degrade import check_codec

            try:
                check_codec("libx264", self.val.lr_crf, "medium")
            except UsageError as e:
                raise UsageError(f"val.lr_crf: {e}") from None
        if sum((self.loss.l1, self.loss.charbonnier, self.loss.mse, self.loss.ssim)) <= 0:
            raise UsageError("the loss weights (loss.l1, loss.charbonnier, loss.mse, loss.ssim) are all zero")
        return self


def _check_tree(node: Any, prefix: str) -> None:
    """Walk a config dataclass: types (a TrainConfig can be built in code, not only from TOML), finite
    numbers, and each field's declared ``check``."""
    hints = _hints(type(node))
    for f in dataclasses.fields(node):
        key, v, tp = prefix + f.name, getattr(node, f.name), hints[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(v, tp):
                raise UsageError(f"config key {key!r} must be a table")
            _check_tree(v, key + ".")
            continue
        v = _check(tp, v, key)  # type (ints accepted as floats, and stored as such)
        setattr(node, f.name, v)
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, float) and not math.isfinite(x):
                raise UsageError(f"{key} must be a finite number, got {v!r}")
            if isinstance(x, int) and not -_INT_MAX <= x <= _INT_MAX:
                raise UsageError(f"{key} is too large, got {v!r}")
        check = f.metadata.get("check")
        err = check.error(v) if check is not None else None
        if err:
            raise UsageError(f"{key} {err}, got {v!r}")


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
        raise UsageError(
            f"unknown config key {prefix + unknown[0]!r} (known in {prefix.rstrip('.') or 'top level'}:"
            f" {', '.join(names)})"
        )
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
            rest = parts[i + 1 :]
            if not rest:
                raise UsageError(f"config key {key!r} is a table: set {key}.<name>=<value>")
            for p in rest[:-1]:
                sub = sub.setdefault(p, {})
            sub[rest[-1]] = _toml_literal(text.strip())
            return
        if not last:
            raise UsageError(f"unknown config key {key!r} ({'.'.join(parts[: i + 1])} is not a table)")
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
