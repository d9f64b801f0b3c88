"""ONNX export and the onnxruntime backend: every registered variant's graph matches its PyTorch forward (dynamic
batch, T and frame size) or is refused (interpolation, classical-flow alignment) with a clear message, before
anything loads under `--backend onnxruntime`; fixed-T graphs, the CLI, `upscale --backend onnxruntime`, caching,
and the missing-extra error."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import clips
import numpy as np
import pytest
import torch

from videosr.cli import main
from videosr.errors import ModelError, UsageError
from videosr.models import ARCHS, VARIANTS, create_model, export, list_models, onnx_backend

TINY: dict[str, dict] = {  # as in test_models.py
    "pan": {"nf": 8, "unf": 8, "nb": 1},
    "fastvsr": {"feat": 4, "width": 8, "blocks": 1},
    "recurrent": {"width": 8, "blocks": 1, "feat_blocks": 1, "flow_width": 8, "up_channels": 4},
}
# every variant this package registers (not those tests register)
NAMES = [v.name for v in list_models() if ARCHS[v.arch].__module__.startswith("videosr.")]
# what the onnxruntime backend cannot run (README.md says so): no network, or alignment outside the network
UNSERVED = {"bicubic", "lanczos", "quality-x4-full", "quality-x4-full-w48", "quality-x2"}
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


def ort_modules() -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


def test_unserved_models_are_the_ones_without_a_graph() -> None:
    assert {n for n in NAMES if export.export_refusal(tiny(n)) is not None} == UNSERVED
    assert {n for n in NAMES if not onnx_backend.served(n)} == UNSERVED
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    bullet = readme[readme.index("* `--backend onnxruntime`") :]
    bullet = bullet[: bullet.index("\n* ")]
    assert all(f"`{n}`" in bullet.split("does not serve")[1] for n in UNSERVED)
    served_recurrent = [n for n in NAMES if n not in UNSERVED and VARIANTS[n].arch == "recurrent"]
    assert all(f"`{n}`" in bullet.split("does not serve")[0] for n in served_recurrent)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_matches_torch(name: str, tmp_path) -> None:
    """Every registered variant: its graph gives its forward's output (random weights, zero-initialised layers
    made non-zero so every branch counts), or the export is refused with the reason."""
    ort_modules()
    model = tiny(name)
    path = tmp_path / f"{name}.onnx"
    if name in UNSERVED:
        with pytest.raises(ModelError, match=f"{name} has no ONNX export: .*(interpolation|classical optical flow)"):
            export.export_onnx(model, path)
        assert not path.exists()
        return
    with torch.no_grad():
        for p in model.parameters():  # e.g. the bicubic-residual models' zero-initialised output conv
            if not p.any():
                p.normal_(0, 0.02)
    summary = export.export_onnx(model, path)
    assert summary["frames"] == "dynamic" and summary["model"] == name
    net = onnx_backend.load_onnx(path, threads=1)
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
    ort_modules()
    model = tiny("fast-x4")  # sliding window: chunking with context overlap is exact
    path = tmp_path / "fixed.onnx"
    export.export_onnx(model, path, frames=4, static_frames=True)
    net = onnx_backend.load_onnx(path, threads=1)
    assert net.frames == 4 and net.metadata["frames"] == "4"
    for t in (2, 4, 9):
        x = torch.rand(1, t, 3, 12, 16)
        with torch.no_grad():
            ref = model(x)
        assert float((net(x) - ref).abs().max()) < TOL


def test_to_onnxruntime_caches_the_export(tmp_path) -> None:
    ort_modules()
    model = tiny("pan-x2")
    a = onnx_backend.to_onnxruntime(model, threads=1)
    files = sorted(onnx_backend.cache_dir().iterdir())
    assert len(files) == 1 and a.path == str(files[0])
    b = onnx_backend.to_onnxruntime(model, threads=1)
    assert b.path == a.path and sorted(onnx_backend.cache_dir().iterdir()) == files  # no second export
    with torch.no_grad():
        model.conv_last.bias.add_(0.1)  # other weights: another file
    assert onnx_backend.to_onnxruntime(model, threads=1).path != a.path


def test_missing_onnxruntime_is_a_usage_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"pip install videosr\[onnx\]"):
        onnx_backend.to_onnxruntime(tiny("fast-x4"))
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--model", "fast-x4", "--backend", "onnxruntime"]) == 2


def test_to_onnxruntime_refuses_models_without_a_graph() -> None:
    ort_modules()
    with pytest.raises(UsageError, match="--backend onnxruntime cannot run quality-x4-full: .*classical optical flow"):
        onnx_backend.to_onnxruntime(tiny("quality-x4-full"))


@pytest.mark.parametrize("model", ["quality-x4-full", "quality-x2", "bicubic", "lanczos"])
def test_upscale_refuses_unserved_models_up_front(model, tmp_path, capsys) -> None:
    """Exit 2, one line naming the reason and the models the backend runs at that scale; nothing loaded."""
    ort_modules()
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    out = tmp_path / "o.mp4"
    assert main(["upscale", src, str(out), "--model", model, "--backend", "onnxruntime"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--backend onnxruntime cannot run {model}: " in err[0], err
    assert "Use --backend torch; models it runs at x" in err[0] and "quality-x4-full" not in err[0].split("runs at")[1]
    assert not out.exists()


@pytest.mark.parametrize("quality", ["auto", "fast", "best"])
@pytest.mark.parametrize("scale", [2, 4])
def test_auto_picks_a_served_model_for_onnxruntime(quality, scale) -> None:
    from videosr.models import auto

    assert onnx_backend.served(auto.choose(scale, None, quality, kind="amx", backend="onnxruntime").model)


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
    meta = onnx_backend.load_onnx(out, threads=1).metadata
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
    from videosr.cli import export as cli_export

    assert (cli_export.DEFAULT_FRAMES, cli_export.DEFAULT_OPSET) == (export.DEFAULT_FRAMES, export.DEFAULT_OPSET)
