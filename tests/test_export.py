"""ONNX export and the onnxruntime backend: every learned architecture matches PyTorch (dynamic batch, T and
frame size), fixed-T graphs, the CLI, `upscale --backend onnxruntime`, caching, and the missing-extra error."""

from __future__ import annotations

import json
import os
import sys

import clips
import numpy as np
import pytest
import torch

from videosr.cli import main
from videosr.errors import ModelError, UsageError
from videosr.models import VARIANTS, create_model

TINY: dict[str, dict] = {  # as in test_models.py
    "pan": {"nf": 8, "unf": 8, "nb": 1},
    "fastvsr": {"feat": 4, "width": 8, "blocks": 1},
    "recurrent": {"width": 8, "blocks": 1, "feat_blocks": 1, "flow_width": 8, "up_channels": 4},
}
# one variant per code path: sliding window (centred, causal, 3x3 output conv + bilinear residual, x2),
# PAN x3 (one upsampling stage) and x4 (two), recurrent bidirectional and forward-only
CASES = ["fast-x4", "fast-x4-causal", "fast-x4-large", "fast-x2", "pan-x3", "pan-x4", "quality-x4", "online-x4"]
TOL = 1e-3


@pytest.fixture(autouse=True)
def _small_and_isolated(monkeypatch, tmp_path):
    """One intra-op thread (tiny tensors on a shared 2-core box) and a private export cache."""
    monkeypatch.setenv("VIDEOSR_CACHE", str(tmp_path / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, pretrained=False, **TINY.get(VARIANTS[name].arch, {}))


def ort_modules():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from videosr import export

    return export


def test_cases_cover_every_learned_architecture() -> None:
    from videosr.models import ARCHS

    ours = [v for v in VARIANTS.values() if ARCHS[v.arch].__module__.startswith("videosr.")]  # not test-registered
    learned = {v.arch for v in ours if any(True for _ in tiny(v.name).parameters())}
    assert learned <= {VARIANTS[n].arch for n in CASES}


@pytest.mark.parametrize("name", CASES)
def test_onnx_matches_torch(name: str, tmp_path) -> None:
    export = ort_modules()
    model = tiny(name)
    path = tmp_path / f"{name}.onnx"
    summary = export.export_onnx(model, path)
    assert summary["frames"] == "dynamic" and summary["model"] == name
    net = export.load_onnx(path, threads=1)
    assert (net.scale, net.context, net.causal) == (model.scale, model.context, model.causal)
    assert net.variant is VARIANTS[name]
    g = torch.Generator().manual_seed(1)
    # the reference size, then another batch, T and an odd frame size (all dynamic axes)
    for shape in [(1, 5, 3, 24, 32), (2, 3, 3, 19, 27)]:
        x = torch.rand(*shape, generator=g)
        with torch.no_grad():
            ref = model(x)
        out = net(x)
        assert out.shape == ref.shape and out.dtype == torch.float32
        diff = float((out - ref).abs().max())
        assert diff < TOL, f"{name} {shape}: max abs difference {diff:.2e}"


def test_static_frames_graph_loops_and_pads(tmp_path) -> None:
    export = ort_modules()
    model = tiny("fast-x4")  # sliding window: chunking with context overlap is exact
    path = tmp_path / "fixed.onnx"
    export.export_onnx(model, path, frames=4, static_frames=True)
    net = export.load_onnx(path, threads=1)
    assert net.frames == 4 and net.metadata["frames"] == "4"
    for t in (2, 4, 9):
        x = torch.rand(1, t, 3, 12, 16)
        with torch.no_grad():
            ref = model(x)
        assert float((net(x) - ref).abs().max()) < TOL


def test_interpolation_models_are_not_exported(tmp_path) -> None:
    export = ort_modules()
    with pytest.raises(ModelError, match="interpolation"):
        export.export_onnx(create_model("bicubic"), tmp_path / "b.onnx")


def test_to_onnxruntime_caches_the_export(tmp_path) -> None:
    export = ort_modules()
    model = tiny("pan-x2")
    a = export.to_onnxruntime(model, threads=1)
    files = sorted(export.cache_dir().iterdir())
    assert len(files) == 1 and a.path == str(files[0])
    b = export.to_onnxruntime(model, threads=1)
    assert b.path == a.path and sorted(export.cache_dir().iterdir()) == files  # no second export
    with torch.no_grad():
        model.conv_last.bias.add_(0.1)  # other weights: another file
    assert export.to_onnxruntime(model, threads=1).path != a.path


def test_missing_onnxruntime_is_a_usage_error(monkeypatch) -> None:
    from videosr import export

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"pip install videosr\[onnx\]"):
        export.to_onnxruntime(tiny("fast-x4"))


def test_cli_export_then_upscale_with_onnxruntime(tmp_path) -> None:
    ort_modules()
    from safetensors.torch import save_file

    torch.manual_seed(0)
    weights = tmp_path / "fast.safetensors"
    save_file(create_model("fast-x4", pretrained=False).state_dict(), str(weights))
    out = tmp_path / "fast.onnx"
    assert (
        main(
            [
                "export",
                "--model",
                "fast",
                "--scale",
                "4",
                "--weights",
                str(weights),
                "--format",
                "onnx",
                str(out),
                "--frames",
                "3",
                "--opset",
                "17",
            ]
        )
        == 0
    )
    from videosr.export import load_onnx

    meta = load_onnx(out, threads=1).metadata
    assert (meta["model"], meta["scale"], meta["context"], meta["causal"], meta["frames"], meta["opset"]) == (
        "fast-x4",
        "4",
        "1",
        "false",
        "dynamic",
        "17",
    )
    assert main(["export", "--model", "fast-x4", str(out)]) == 4  # exists, no --overwrite
    assert main(["export", "--model", "fast-x4", str(tmp_path / "x.onnnx")]) == 2  # not .onnx
    assert main(["export", "--model", "nope", str(tmp_path / "y.onnx")]) == 7

    # upscale: the same frames from both backends, within one grey level
    src = clips.make_video(tmp_path / "in.mp4", frames=6, width=32, height=24)
    frames = {}
    for backend in ("torch", "onnxruntime"):
        dst = tmp_path / backend
        assert (
            main(
                [
                    "upscale",
                    src,
                    str(dst) + os.sep,
                    "--model",
                    "fast-x4",
                    "--weights",
                    str(weights),
                    "--backend",
                    backend,
                    "--precision",
                    "fp32",
                    "--quiet",
                ]
            )
            == 0
        )
        from PIL import Image

        pngs = sorted(f for f in os.listdir(dst) if f.endswith(".png"))  # not the .videosr-output marker
        frames[backend] = np.stack([np.asarray(Image.open(dst / f)) for f in pngs])
    assert frames["torch"].shape == (6, 96, 128, 3)
    assert np.abs(frames["torch"].astype(int) - frames["onnxruntime"].astype(int)).max() <= 1


def test_cli_export_json(tmp_path, capsys) -> None:
    ort_modules()
    out = tmp_path / "p.onnx"
    assert main(["export", "--model", "fast-x2", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["bytes"] == out.stat().st_size and summary["arch"] == "fastvsr"


def test_cli_defaults_match_the_library() -> None:
    from videosr import export
    from videosr.cli import export as cli_export

    assert (cli_export.DEFAULT_FRAMES, cli_export.DEFAULT_OPSET) == (export.DEFAULT_FRAMES, export.DEFAULT_OPSET)
