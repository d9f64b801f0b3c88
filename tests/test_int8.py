"""int8 inference (``--precision int8``, videosr.int8): output close to fp32 for every variant that allows it, on
the RGB and the 4:2:0 planes paths; refusal (exit 2) for the others; the Vid4 gate."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime")

from videosr.engine import Engine, resolve_precision  # noqa: E402
from videosr.errors import ModelError, UsageError  # noqa: E402
from videosr.models import VARIANTS, create_model, list_models, registry  # noqa: E402
from videosr.models.registry import Variant, register_variant  # noqa: E402
from videosr.resample import upsample  # noqa: E402

INT8 = [v.name for v in list_models() if v.int8_allowed]
BT709_LIMITED = torch.tensor(
    [[0.1826, 0.6142, 0.0620, 16 / 255], [-0.1006, -0.3386, 0.4392, 128 / 255], [0.4392, -0.3989, -0.0403, 128 / 255]]
)


def _clip(scale: int, frames: int = 4, h: int = 24, w: int = 32) -> torch.Tensor:
    """A smooth 8-bit clip (T, 3, h, w) with some texture, moving one pixel a frame."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, h // 4 + 2, w // 4 + 2 + frames, generator=g)
    big = upsample(coarse, 4).clamp(0, 1)[0]  # (3, H, W)
    big = (big + 0.1 * torch.rand(big.shape, generator=g)).clamp(0, 1)
    x = torch.stack([big[:, 4 : 4 + h, 4 + i : 4 + i + w] for i in range(frames)])
    return (x * 255).round() / 255  # what an 8-bit video decodes to


def test_int8_is_allowed_for_fast_x4() -> None:
    """The issue's target model ships an int8 trunk that passed its gate."""
    assert "fast-x4" in INT8


@pytest.mark.parametrize("name", INT8)
def test_int8_close_to_fp32(name: str, one_thread) -> None:
    """int8 runs the quantized trunk (outputs differ from fp32) and stays close to fp32: RGB and planes paths."""
    model = create_model(name)
    x = _clip(model.scale)
    a = Engine(model, device="cpu", precision="fp32").run_clip(x)
    eng = Engine(model, device="cpu", precision="int8")
    assert eng.precision == "int8" and eng.model.int8_trunk is not None
    assert model.int8_trunk is None  # the caller's model is unchanged
    b = eng.run_clip(x)
    assert a.shape == b.shape
    d = (a - b).abs()
    assert d.max() > 0  # the int8 trunk ran
    assert d.mean() < 1.5 / 255 and d.max() < 16 / 255, (float(d.mean()) * 255, float(d.max()) * 255)
    # the planes path (what upscale runs on 4:2:0 video) agrees with fp32 planes as closely
    pa = list(Engine(model, device="cpu", precision="fp32", planes=BT709_LIMITED).stream(iter(x)))
    pb = list(Engine(model, device="cpu", precision="int8", planes=BT709_LIMITED).stream(iter(x)))
    for fa, fb in zip(pa, pb):
        for qa, qb in zip(fa, fb):
            assert (qa - qb).abs().mean() < 1.5 / 255


def test_int8_refused_without_a_trunk_or_on_other_weights() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(UsageError, match="no int8 trunk"):
        resolve_precision("int8", cpu, create_model("quality-x4", pretrained=False))
    if INT8:
        with pytest.raises(UsageError, match="shipped weights"):  # random weights: the trunk is not theirs
            resolve_precision("int8", cpu, create_model(INT8[0], pretrained=False))
        with pytest.raises(UsageError, match="CPU"):
            resolve_precision("int8", torch.device("cuda"), create_model(INT8[0]))
        assert resolve_precision("auto", cpu, create_model(INT8[0])) != "int8"  # int8 only when asked for


def test_upscale_cli_refuses_int8_with_exit_2(tmp_path, small_clip) -> None:
    from videosr.cli import main

    out = tmp_path / "o.mp4"
    code = main(["upscale", small_clip, str(out), "--model", "quality-x4", "--precision", "int8", "--quiet"])
    assert code == 2 and not out.exists()


def test_upscale_cli_runs_int8(tmp_path, small_clip, capsys) -> None:
    if not INT8:
        pytest.skip("no variant allows int8")
    from videosr.cli import main

    code = main(
        ["upscale", small_clip, str(tmp_path / "o.mp4"), "--model", INT8[0], "--precision", "int8", "--quiet", "--json"]
    )
    assert code == 0 and (tmp_path / "o.mp4").stat().st_size > 0
    out, _ = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["frames"] == 10


def test_gate(tmp_path, monkeypatch) -> None:
    """Allowed only with a shipped trunk and an int8 Vid4 figure within INT8_TOLERANCE_DB of fp32; `eval`
    (verify_int8=False) runs it to measure the gate; a trunk needs its sha256, and a tampered one is refused."""
    for f in registry.WEIGHTS_DIR.iterdir():  # the shipped files stay readable
        (tmp_path / f.name).write_bytes(f.read_bytes())
    rows = [
        {"model": "g", "precision": "fp32", "degradation": "BI", "mean": {"psnr_y": 24.40}},
        {"model": "g", "precision": "int8", "degradation": "BI", "mean": {"psnr_y": 24.25}},
    ]
    (tmp_path / "g.json").write_text(json.dumps(rows))
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    ref = VARIANTS["fast-x4"]
    kw = dict(
        arch="fastvsr",
        scale=4,
        kwargs=ref.kwargs,
        weights=ref.weights,
        sha256=ref.sha256,
        degradation="BI",
        vid4_eval="g.json",
        int8_trunk=ref.int8_trunk,
        int8_sha256=ref.int8_sha256,
    )
    bad = Variant(name="g", vid4_eval_int8="g.json", **kw)  # 0.15 dB under fp32
    assert bad.vid4_psnr_y_int8 == 24.25 and not bad.int8_allowed
    assert not Variant(name="g", vid4_eval_int8=None, **kw).int8_allowed  # int8 never measured
    rows[1]["mean"]["psnr_y"] = 24.31  # 0.09 dB under
    (tmp_path / "g-ok.json").write_text(json.dumps(rows))
    good = Variant(name="g", vid4_eval_int8="g-ok.json", **kw)
    assert good.int8_allowed
    monkeypatch.setitem(VARIANTS, "g", bad)
    model = create_model("fast-x4")
    model.variant = bad
    with pytest.raises(UsageError, match="not allowed for g"):
        Engine(model, device="cpu", precision="int8")
    assert Engine(model, device="cpu", precision="int8", verify_int8=False).precision == "int8"  # eval measures
    model.variant = good
    assert Engine(model, device="cpu", precision="int8").precision == "int8"
    with pytest.raises(ValueError, match="needs its sha256"):
        register_variant(Variant(name="g-nosha", arch="fastvsr", scale=4, int8_trunk="x.onnx"))
    blob = bytearray((tmp_path / ref.int8_trunk).read_bytes())
    blob[-1] ^= 1
    (tmp_path / ref.int8_trunk).write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="sha256"):
        Engine(model, device="cpu", precision="int8")


def test_shipped_int8_gates_hold() -> None:
    """Every shipped int8 trunk has its int8 evaluation, within the tolerance (else it would not be shipped)."""
    for v in list_models():
        if v.int8_trunk is not None:
            assert (registry.WEIGHTS_DIR / v.int8_trunk).is_file()
            assert registry.sha256_file(registry.WEIGHTS_DIR / v.int8_trunk) == v.int8_sha256, v.name
            assert abs(v.vid4_psnr_y_int8 - v.vid4_psnr_y) <= registry.INT8_TOLERANCE_DB, v.name
