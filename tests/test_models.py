"""Model zoo contract tests: every registered variant, tiny configs; registry behaviour; PAN checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videosr.errors import ModelError
from videosr.models import VARIANTS, Variant, create_model, list_models, register_arch, register_variant, registry
from videosr.models.flops import count_flops, count_params
from videosr.resample import upsample

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# tiny hyperparameters per architecture (architectures without width/depth need none)
TINY: dict[str, dict] = {
    "pan": {"nf": 8, "unf": 8, "nb": 1},
    "fastvsr": {"feat": 4, "width": 8, "blocks": 1},
    "recurrent": {"width": 8, "blocks": 1, "feat_blocks": 1, "flow_width": 8, "up_channels": 4},
}

B, T, H, W = 1, 5, 16, 20


def tiny(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, pretrained=False, **TINY.get(VARIANTS[name].arch, {}), **extra)


NAMES = [v.name for v in list_models()]


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name: str) -> None:
    model = tiny(name).train()
    s = VARIANTS[name].scale
    assert model.scale == s and isinstance(model.context, int) and isinstance(model.causal, bool)
    x = torch.rand(B, T, 3, H, W)
    y = model(x)
    assert y.shape == (B, T, 3, s * H, s * W)
    assert torch.isfinite(y).all()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    (y - 0.5).square().mean().backward()
    # models whose learned branch starts at zero (bicubic-residual fast models) pass gradient to the
    # earlier layers only once that branch is non-zero: take one SGD step, then check every gradient
    torch.optim.SGD(params, lr=0.1).step()
    model.zero_grad()
    (model(x) - 0.5).square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_causal_models_ignore_the_future(name: str) -> None:
    model = tiny(name)
    if not model.causal:
        pytest.skip("not causal")
    x = torch.rand(B, T, 3, H, W)
    x2 = x.clone()
    x2[:, 3:] = torch.rand(B, T - 3, 3, H, W)
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    assert torch.equal(y[:, :3], y2[:, :3])
    assert not torch.equal(y[:, 3:], y2[:, 3:])


@pytest.mark.parametrize("name", [n for n in NAMES if VARIANTS[n].arch == "fastvsr"])
def test_sliding_window_reads_only_its_context(name: str) -> None:
    model = tiny(name)
    t, lo, hi = 4, min(model.offsets), max(model.offsets)
    assert model.context == max(-lo, hi)
    x = torch.rand(B, 9, 3, H, W)
    x2 = torch.rand(B, 9, 3, H, W)
    x2[:, t + lo : t + hi + 1] = x[:, t + lo : t + hi + 1]  # same window around frame t, everything else differs
    with torch.no_grad():
        assert torch.equal(model(x)[:, t], model(x2)[:, t])


@pytest.mark.parametrize("name", ["fast-x4", "fast-x4-large", "quality-x4"])
def test_odd_sizes_and_fixed_residual(name: str) -> None:
    """With the learned output zeroed, the models return the fixed upsampled input exactly, on odd sizes too."""
    model = tiny(name)
    last = model.to_rgb if hasattr(model, "to_rgb") else model.conv_last
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    mode = model.variant.kwargs.get("residual", "bilinear")
    x = torch.rand(1, 3, 3, 15, 21)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, 3, 60, 84)
    if mode == "bicubic":  # MATLAB bicubic; the base pads by replication, MATLAB by symmetry: compare inside
        ref = upsample(x[0], 4, "cubic")
        assert (y[0] - ref)[..., 8:-8, 8:-8].abs().max() < 1e-5
        return
    kw = {"align_corners": False} if mode == "bilinear" else {}
    ref = F.interpolate(x[0], scale_factor=4, mode=mode, **kw)
    assert (y[0] - ref).abs().max() < 1e-5


def test_recurrent_classical_flow() -> None:
    pytest.importorskip("videosr.flow")
    model = tiny("quality-x4", flow="classical")
    with torch.no_grad():
        y = model(torch.rand(1, 3, 3, H, W))
    assert y.shape == (1, 3, 3, 4 * H, 4 * W) and torch.isfinite(y).all()


def test_flops_and_params() -> None:
    m = create_model("fast-x4", pretrained=False)
    assert count_params(m) > 0
    gf = count_flops(m, 270, 480) / 1e9
    assert 0.5 < gf < 10


# registry ----------------------------------------------------------------------------------------------


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_arch("fastvsr")(torch.nn.Identity)
    with pytest.raises(ValueError, match="already registered"):
        register_variant(Variant(name="fast-x4", arch="fastvsr", scale=4))
    with pytest.raises(ValueError, match="unknown architecture"):
        register_variant(Variant(name="no-such-arch-model", arch="no-such-arch", scale=4))


def test_unknown_model() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'.*fast-x4"):
        create_model("nope")


def test_variants_are_frozen() -> None:
    with pytest.raises(AttributeError):
        VARIANTS["fast-x4"].scale = 2  # type: ignore[misc]


def test_strict_loading_reports_keys(tmp_path: Path) -> None:
    sd = tiny("pan-x4").state_dict()
    del sd["conv_first.bias"]
    sd["bogus.weight"] = torch.zeros(1)
    sd["conv_last.weight"] = torch.zeros(3, 5, 3, 3)
    torch.save(sd, tmp_path / "w.pth")
    with pytest.raises(ModelError) as e:
        create_model("pan-x4", weights=tmp_path / "w.pth", **TINY["pan"])
    msg = str(e.value)
    assert "missing 1: conv_first.bias" in msg
    assert "unexpected 1: bogus.weight" in msg
    assert "conv_last.weight (3, 5, 3, 3) vs (3, 8, 3, 3)" in msg


def test_tampered_weights_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    model = tiny("fast-x4")
    path = tmp_path / "fast-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    v = Variant(
        name="fast-tiny-test",
        arch="fastvsr",
        scale=4,
        kwargs={**VARIANTS["fast-x4"].kwargs, **TINY["fastvsr"]},
        weights=path.name,
        sha256=registry.sha256_file(path),
    )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(registry.VARIANTS, v.name, v)
    loaded = create_model(v.name)  # intact: loads and matches
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        create_model(v.name)


# PAN against the published checkpoints (skipped without ../shared) ------------------------------------

PAN_DIR = SHARED / "peers" / "PAN"


@pytest.mark.skipif(not PAN_DIR.is_dir(), reason="../shared/peers/PAN not available")
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pan_checkpoints_load_strictly(scale: int) -> None:
    model = create_model(f"pan-x{scale}", weights=PAN_DIR / f"PANx{scale}_DF2K.pth")  # torch.load(weights_only=True)
    assert count_params(model) == {2: 261403, 3: 261403, 4: 272419}[scale]


@pytest.mark.skipif(
    not (PAN_DIR / "PANx4_DF2K.pth").is_file() or not (SHARED / "data" / "Set5").is_dir(),
    reason="../shared PAN weights or Set5 not available",
)
def test_pan_x4_reproduces_set5() -> None:
    from PIL import Image

    torch.set_num_threads(2)
    model = create_model("pan-x4", weights=PAN_DIR / "PANx4_DF2K.pth")
    root, scores = SHARED / "data" / "Set5", []
    for hr_path in sorted((root / "HR").glob("*.png")):
        lr = np.array(Image.open(root / "LR_bicubic" / "X4" / f"{hr_path.stem}x4.png").convert("RGB"))
        hr = np.array(Image.open(hr_path).convert("RGB")).astype(np.float64)
        with torch.no_grad():
            y = model(torch.from_numpy(lr).permute(2, 0, 1).float().div(255)[None, None])[0, 0]
        sr = y.clamp(0, 1).mul(255).round().permute(1, 2, 0).double().numpy()
        hr = hr[: sr.shape[0], : sr.shape[1]]
        ys, yh = [16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255 for a in (sr, hr)]
        mse = np.mean((ys[4:-4, 4:-4] - yh[4:-4, 4:-4]) ** 2)
        scores.append(10 * np.log10(255**2 / mse))
    assert abs(np.mean(scores) - 32.13) < 0.10, np.mean(scores)


def test_vid4_figure_is_read_for_the_variants_degradation(tmp_path, monkeypatch):
    """A BD model's listed Vid4 figure is its BD row of the eval JSON, and the upscale default only weighs
    BI figures (the field's protocol): a BD row never competes with BI ones."""
    import json

    from videosr.models.resolve import default_model_name

    rows = [{"model": "m-bd", "degradation": d, "mean": {"psnr_y": p}} for d, p in (("BI", 99.0), ("BD", 23.5))]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    for f in registry.WEIGHTS_DIR.glob("*.json"):  # the shipped figures stay readable
        (tmp_path / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    v = Variant(name="m-bd", arch="fastvsr", scale=4, degradation="BD", vid4_eval="m.json", weights="x.safetensors")
    assert v.vid4_degradation == "BD" and v.vid4_psnr_y == 23.5
    monkeypatch.setitem(VARIANTS, "m-bd", v)
    assert default_model_name(4) != "m-bd"
    (tmp_path / "m.json").write_text(json.dumps(rows[1:]))  # a BI model must not be read off a BD row
    with pytest.raises(ModelError):
        Variant(name="m-bd", arch="fastvsr", scale=4, degradation="BI", vid4_eval="m.json").vid4_psnr_y  # noqa: B018


def test_bf16_defaults_are_within_tolerance_of_fp32() -> None:
    """A variant defaults to bf16 only with its fp32 and bf16 Vid4 evaluations (written by `videosr eval
    --precision`) within BF16_TOLERANCE_DB; registering one without them is refused."""
    bf16 = [v for v in VARIANTS.values() if v.precision == "bf16"]
    for v in bf16:
        assert abs(v.vid4_psnr_y_bf16 - v.vid4_psnr_y) <= registry.BF16_TOLERANCE_DB, v.name
    with pytest.raises(ValueError, match="bf16 default needs"):
        register_variant(Variant(name="bf16-unmeasured", arch="fastvsr", scale=4, precision="bf16"))
    with pytest.raises(ValueError, match="precision must be"):
        register_variant(Variant(name="fp16-cpu", arch="fastvsr", scale=4, precision="fp16"))


WEIGHTED = [v.name for v in list_models() if v.weights]


@pytest.mark.parametrize("name", WEIGHTED)
def test_shipped_weights_load_and_match_their_sha256(name: str) -> None:
    """Every shipped weights file: present, its sha256 as registered, strict keys, finite values, and a
    forward pass that upscales a small clip (the file is the model it says)."""
    v = VARIANTS[name]
    path = registry.WEIGHTS_DIR / v.weights
    assert path.is_file() and registry.sha256_file(path) == v.sha256
    model = create_model(name)  # strict key match and the sha256 check again
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())
    # a smooth clip (noise-free content: a trained model stays near its bicubic base there)
    coarse = torch.rand(3, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    x = upsample(coarse, 4).clamp(0, 1).unsqueeze(0)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (1, 3, 3, 16 * v.scale, 20 * v.scale) and torch.isfinite(y).all()
    bic = upsample(x, v.scale)
    # trained weights change the image (zero-initialised residual models output exactly bicubic), but stay near
    # it on smooth content (randomly initialised quality models are 0.035..0.043 away, trained ones < 0.025)
    assert 1e-4 < float((y - bic).abs().mean()) < 0.03


def test_variant_files_follow_the_name_and_exist() -> None:
    """Variant derives the file names of a shipped model from its name (weights, card, Vid4 evaluations, int8
    trunk) unless given; every file a registered variant names exists."""
    v = Variant(name="m", arch="fastvsr", scale=4, sha256="0" * 64, precision="bf16", int8_sha256="1" * 64)
    assert (v.weights, v.card, v.vid4_eval, v.vid4_eval_bf16, v.int8_trunk, v.vid4_eval_int8) == (
        "m.safetensors",
        "docs/models/m.md",
        "m.vid4.json",
        "m.vid4.bf16.json",
        "m.int8.onnx",
        "m.vid4.int8.json",
    )
    v = Variant(name="m", arch="fastvsr", scale=4, sha256="0" * 64, vid4_eval=None, card="elsewhere.md")
    assert (v.weights, v.card, v.vid4_eval, v.vid4_eval_bf16, v.int8_trunk) == (
        "m.safetensors",
        "elsewhere.md",
        None,
        None,
        None,
    )
    v = Variant(name="m", arch="fastvsr", scale=4)  # ships nothing: names nothing
    assert (v.weights, v.card, v.vid4_eval, v.vid4_eval_bf16, v.int8_trunk, v.vid4_eval_int8) == (None,) * 6
    root = registry.WEIGHTS_DIR.parents[2]  # the repository (src/videosr/weights)
    for v in list_models():
        for f in (v.weights, v.vid4_eval, v.vid4_eval_bf16, v.int8_trunk, v.vid4_eval_int8):
            if f is not None:
                assert (registry.WEIGHTS_DIR / f).is_file(), (v.name, f)
        assert v.card is None or (root / v.card).is_file(), (v.name, v.card)
        assert (v.weights is None) == (v.sha256 is None) and (v.int8_trunk is None) == (v.int8_sha256 is None), v.name


def test_every_weights_file_belongs_to_a_variant() -> None:
    """Every weights file or int8 trunk under weights/ is a registered variant's, so the sha256 tests
    (test_shipped_weights_load_and_match_their_sha256, test_int8.py) load and check every one."""
    named = {f for v in list_models() for f in (v.weights, v.int8_trunk) if f is not None}
    shipped = {p.name for p in registry.WEIGHTS_DIR.iterdir() if p.suffix in (".safetensors", ".onnx", ".pth")}
    assert shipped <= named, f"weights files no variant names: {sorted(shipped - named)}"
