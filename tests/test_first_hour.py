"""The first hour with videosr (issue 19 item 8): what a new user sees first. A line at once, an ETA only
after warm-up, `videosr models` without counting FLOPs, no silent random weights, no silent bicubic, and the
small things (--debug after the sub-command, --fps for image folders, a note when PNG output drops audio,
eval's seconds, help texts)."""

from __future__ import annotations

import io
import json
import os
import pydoc
import time

import av
import clips
import pytest

from videosr.cli import main


def _err_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


# progress: a line at once, an ETA only after warm-up ------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_eta_waits_for_warm_up_then_uses_the_steady_rate(monkeypatch) -> None:
    """A model whose first output comes after 30 s (load + a first chunk) and then one frame per 0.1 s: the
    first ETA must not extrapolate the 30 s (the old display said 55 minutes for a 2-minute job)."""
    from videosr import progress as pg

    clock = _Clock()
    monkeypatch.setattr(pg.time, "perf_counter", clock)
    out = io.StringIO()
    bar = pg.Progress(1000, label="upscale", stream=out, interval=0.0, warmup=16)
    bar.begin()
    assert "0/1000 frames" in out.getvalue() and "ETA after warm-up" in out.getvalue()  # drawn at once
    clock.t += 30.0
    bar.update()  # the first frame, after the warm-up
    assert "ETA after warm-up" in bar.line()
    for _ in range(15):
        clock.t += 0.1
        bar.update()
    assert "ETA after warm-up" in bar.line()  # 15 frames after the first: not yet a chunk
    clock.t += 0.1
    bar.update()  # 16 frames in 1.6 s after the first: 10 fps
    assert bar.rate() == pytest.approx(10.0)
    assert bar.line().endswith("ETA 01:38")  # 983 frames left at 10 fps, not at 17/31.6 fps (30 min)
    bar.done = 1000
    assert bar.line().endswith("ETA 00:00")


def test_loading_line_comes_before_the_model_loads(tmp_path, monkeypatch, capsys) -> None:
    """`loading model ...` is on stderr before load_model runs; the progress line (0 frames) follows."""
    import videosr.models.resolve as resolve

    seen: list[str] = []
    real = resolve.load_model

    def spy(*a, **k):
        seen.append(capsys.readouterr().err)
        return real(*a, **k)

    monkeypatch.setattr(resolve, "load_model", spy)
    src = clips.make_video(tmp_path / "in.mp4", frames=3, width=16, height=16)
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--model", "bicubic", "--scale", "2"]) == 0
    assert len(seen) == 1 and _err_lines(seen[0]) == ["loading model bicubic ..."]
    rest = _err_lines(capsys.readouterr().err)
    assert rest[0].startswith("upscale: [") and "0/3 frames" in rest[0]
    assert rest[-1].startswith("wrote ")


def test_scale_3_says_it_is_bicubic_and_why(tmp_path, capsys) -> None:
    """No trained x3 model ships: --model auto --scale 3 says so before anything else (and in --json)."""
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--scale", "3"]) == 0
    lines = _err_lines(capsys.readouterr().err)
    assert lines[0].startswith("model bicubic: no trained x3 model ships, so plain bicubic interpolation")
    assert "trained models ship for x2, x4" in lines[0]
    assert lines[1] == "loading model bicubic ..."
    assert main(["upscale", src, str(tmp_path / "o2.mp4"), "--scale", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "bicubic" and "no trained x3 model ships" in summary["reason"]


# videosr models: committed GFLOPs, checked against a fresh count ------------------------------------------


def _package_models():
    """The variants the package registers (tests register their own, e.g. tests/test_train.py's tiny one)."""
    from videosr.models import list_models
    from videosr.models.registry import ARCHS

    return [v for v in list_models() if ARCHS[v.arch].__module__.startswith("videosr.")]


def test_models_reads_committed_flops_and_never_counts(monkeypatch, capsys) -> None:
    from videosr.models import flops

    def boom(*a, **k):
        raise AssertionError("videosr models must not count FLOPs")

    monkeypatch.setattr(flops, "count_flops", boom)
    monkeypatch.setattr(flops, "count_flops_meta", boom)
    t0 = time.perf_counter()
    assert main(["models", "--json"]) == 0
    assert time.perf_counter() - t0 < 3.0
    rows = json.loads(capsys.readouterr().out)
    from videosr.models import list_models

    assert [r["name"] for r in rows] == [v.name for v in list_models()]
    shipped = {v.name for v in _package_models()}
    assert all(isinstance(r["gflops_480x270"], float) and r["gflops_480x270"] > 0 for r in rows if r["name"] in shipped)


def test_committed_model_stats_match_a_fresh_count() -> None:
    """weights/model_stats.json (benchmarks/model_flops.py) against a recount: parameters, context and
    causality of every model; GFLOPs of every model that counts on the meta device (all but the classical-flow
    ones, whose real count takes a minute and GBs: their rows must still match the variant's hyperparameters)."""
    from videosr.models.catalog import committed_stats, stats_row, stats_table

    table = stats_table()
    assert set(table) == {v.name for v in _package_models()}
    recounted = 0
    for v in _package_models():
        row = committed_stats(v)
        assert row is not None, f"{v.name}: stale row; rerun benchmarks/model_flops.py --only {v.name}"
        meta = row["counted_on"] == "meta"
        fresh = stats_row(v, flops=meta)
        for key in ("params", "context", "causal"):
            assert fresh[key] == row[key], (v.name, key)
        if meta:
            assert fresh["gflops_480x270"] == row["gflops_480x270"], v.name
            recounted += 1
    assert recounted >= len(table) - 4  # only the classical-flow models are not recounted here


def test_a_changed_variant_shows_no_stale_flops(monkeypatch) -> None:
    import dataclasses

    from videosr.models import registry
    from videosr.models.catalog import describe_models

    v = dataclasses.replace(
        registry.VARIANTS["fast-x4-small"], kwargs={**registry.VARIANTS["fast-x4-small"].kwargs, "width": 20}
    )
    monkeypatch.setitem(registry.VARIANTS, "fast-x4-small", v)
    row = next(r for r in describe_models() if r["name"] == "fast-x4-small")
    assert row["gflops_480x270"] is None and row["params"] > 0  # counted afresh, no stale figure


# weightless variants are refused ---------------------------------------------------------------------------

WEIGHTED_X4 = [
    "fast-x4",
    "fast-x4-bd",
    "fast-x4-causal",
    "online-x4",
    "quality-x4",
    "quality-x4-compressed",
    "quality-x4-full",
    "quality-x4-full-w48",
]


@pytest.mark.parametrize("model", ["pan-x4", "fast-x4-large", "fast-x4-small", "quality-x4-large", "pan"])
def test_upscale_refuses_a_model_without_weights(tmp_path, capsys, model) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    out = tmp_path / "o.mp4"
    code = main(["upscale", src, str(out), "--model", model, "--scale", "4", "--quiet"])
    err = _err_lines(capsys.readouterr().err)
    assert code == 7 and len(err) == 1 and err[0].startswith("videosr: error: model ")
    assert "ships no trained weights" in err[0] and "--weights FILE" in err[0]
    assert f"models with weights for x4: {', '.join(WEIGHTED_X4)}" in err[0]
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_weights_given_run_and_bench_may_time_untrained(tmp_path) -> None:
    """With --weights the same variant runs; `untrained=True` (what `videosr bench` uses: speed does not depend
    on the weights) runs it with its random ones."""
    import torch
    from safetensors.torch import save_file

    from videosr.models import create_model
    from videosr.pipeline import upscale

    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("fast-x4-small").state_dict().items()}, str(w))
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    torch.set_num_threads(1)
    r = upscale(src, str(tmp_path / "a.mp4"), model="fast-x4-small", weights=str(w), progress=False)
    assert r["frames"] == 2
    r = upscale(src, str(tmp_path / "b.mp4"), model="fast-x4-small", untrained=True, progress=False)
    assert r["frames"] == 2


def test_wrong_scale_hint_names_only_weighted_models(tmp_path, capsys) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--model", "pan-x4", "--scale", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "(models with weights for x2: fast-x2, quality-x2)" in err and "pan-x2" not in err
    assert main(["upscale", src, str(tmp_path / "o.mp4"), "--model", "fast-x4", "--scale", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "for x3 use bicubic or lanczos (no learned model ships weights for x3)" in err and "pan-x3" not in err


def test_eval_and_export_refuse_untrained_too(tmp_path) -> None:
    from videosr.errors import ModelError
    from videosr.eval.protocol import evaluate

    folder = clips.make_images(tmp_path / "gt", ["a.png"], width=32, height=32)
    with pytest.raises(ModelError, match="pan-x4 ships no trained weights"):
        evaluate(["pan-x4"], str(folder), scale=4, progress=False)
    assert main(["export", "--model", "fast-x4-large", str(tmp_path / "o.onnx")]) == 7
    assert not (tmp_path / "o.onnx").exists()


# the small things --------------------------------------------------------------------------------------------


def test_debug_after_the_subcommand_shows_a_traceback(tmp_path, capsys) -> None:
    missing = str(tmp_path / "nope.mp4")
    assert main(["upscale", missing, str(tmp_path / "o.mp4"), "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("no such file or folder")
    assert main(["upscale", missing, str(tmp_path / "o.mp4")]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_output_exists_message_names_the_option(tmp_path, capsys) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    out = tmp_path / "o.mp4"
    out.write_bytes(b"x")
    assert main(["upscale", src, str(out), "--model", "bicubic", "--scale", "2", "--quiet"]) == 4
    assert "(use --overwrite)" in capsys.readouterr().err


def test_image_folder_fps(tmp_path, capsys) -> None:
    folder = clips.make_images(tmp_path / "frames", [f"f{i}.png" for i in range(4)], width=16, height=12)
    out = tmp_path / "o.mkv"
    assert (
        main(
            [
                "upscale",
                str(folder),
                str(out),
                "--model",
                "bicubic",
                "--scale",
                "2",
                "--fps",
                "30000/1001",
                "--codec",
                "ffv1",
                "--quiet",
            ]
        )
        == 0
    )
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert abs(float(s.average_rate) - 30000 / 1001) < 1e-3
        pts = [float(f.time) for f in c.decode(s)]
    assert len(pts) == 4 and pts[1] - pts[0] == pytest.approx(1001 / 30000, abs=2e-3)
    video = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16)
    assert main(["upscale", video, str(tmp_path / "v.mp4"), "--model", "bicubic", "--fps", "30", "--quiet"]) == 2
    assert "image-folder INPUT" in capsys.readouterr().err
    assert main(["upscale", str(folder), str(tmp_path / "x.mkv"), "--model", "bicubic", "--fps", "fast"]) == 2
    assert "--fps takes a frame rate" in capsys.readouterr().err


def test_png_output_warns_that_audio_is_dropped(tmp_path, capsys) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=2, width=16, height=16, audio=True)
    assert main(["upscale", src, str(tmp_path / "pngs") + os.sep, "--model", "bicubic", "--scale", "2"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 audio stream of the input will not be written: a PNG folder holds video only" in err
    assert main(["upscale", src, str(tmp_path / "q") + os.sep, "--model", "bicubic", "--scale", "2", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["upscale", src, str(tmp_path / "v.mp4"), "--model", "bicubic", "--scale", "2"]) == 0
    assert "warning" not in capsys.readouterr().err  # a video OUTPUT keeps the audio


def test_eval_says_what_its_seconds_measure(tmp_path, capsys) -> None:
    folder = clips.make_images(tmp_path / "gt", ["a.png", "b.png"], width=32, height=32)
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--data", str(folder), "--json", str(out)]) == 0
    cap = capsys.readouterr()
    assert "seconds: the model's inference only; its load took" in cap.out
    last = _err_lines(cap.err)[-1]
    assert last.startswith("eval took ") and "model inference" in last and "model load" in last
    doc = json.loads(out.read_text())
    assert doc["load_seconds"] >= 0 and doc["metric_seconds"] >= 0 and doc["seconds"] >= 0


def test_help_lists_the_api_and_the_arguments(capsys) -> None:
    import videosr

    text = pydoc.render_doc(videosr, renderer=pydoc.plaintext)
    for name in ("upscale(", "create_model(", "list_models("):
        assert name in text
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    out = capsys.readouterr().out
    assert "INPUT                 a video file" in out and "OUTPUT                a video file" in out
    assert "--fps RATE" in out


# memory: the planes path lengthens a recurrent model's chunk only where it costs little ----------------------


class _Reader:
    plane_format = None

    def __init__(self, w: int, h: int) -> None:
        from fractions import Fraction

        from videosr.io._types import VideoInfo

        self.info = VideoInfo(
            width=w,
            height=h,
            frames=10,
            fps=Fraction(25),
            time_base=Fraction(1, 25),
            bit_depth=8,
            pix_fmt="yuv420p",
            codec="h264",
        )


@pytest.mark.parametrize("size,chunk", [((320, 180), 16), ((64, 48), 32)])
def test_longer_planes_chunk_only_for_small_frames(size, chunk) -> None:
    from videosr.engine import Engine
    from videosr.io import image_to_tensor
    from videosr.models import create_model
    from videosr.pipeline import build_stages

    net = create_model("quality-x4", pretrained=False)
    assert Engine(net, device="cpu", precision="fp32", clamp=False).chunk == 16
    eng, stage, _ = build_stages(
        net,
        _Reader(*size),
        "yuv420p",
        True,
        image_to_tensor,
        device="cpu",
        precision="fp32",
        tile=None,
        chunk=None,
        compile=False,
    )
    assert stage is eng and eng.planes is not None and eng.chunk == chunk


def test_recurrent_rgb_path_reconstructs_only_the_kept_frames(monkeypatch) -> None:
    """The engine asks a recurrent model for a chunk's core frames only (its context frames are never built at
    the output size) and hands out one tensor per frame; the frames equal the whole-clip forward's."""
    import torch

    from videosr.engine import Engine
    from videosr.models import create_model
    from videosr.models.recurrent import RecurrentVSR

    torch.manual_seed(0)
    net = create_model("quality-x4", pretrained=False, width=8, blocks=1, flow_width=8, up_channels=4).eval()
    calls: list = []
    real = RecurrentVSR.forward
    monkeypatch.setattr(
        RecurrentVSR, "forward", lambda self, x, keep=None: calls.append((x.shape[1], keep)) or real(self, x, keep=keep)
    )
    x = torch.rand(11, 3, 12, 16)
    eng = Engine(net, device="cpu", precision="fp32", chunk=4)
    frames = list(eng.stream(iter(x)))
    assert len(calls) == 3 and all(k is not None for _, k in calls)  # chunks 0-3, 4-7, 8-10
    assert sum(k[1] - k[0] for _, k in calls) == 11  # each frame reconstructed once
    assert all(f._base is None for f in frames)  # own memory, not views of a chunk's block
    calls.clear()
    with torch.no_grad():
        whole = net(x[None])[0].clamp(0, 1)
    assert torch.allclose(torch.stack(frames), whole, atol=1e-5)


def test_resume_keeps_the_image_folder_fps(tmp_path, capsys) -> None:
    """--fps changes the output's timing: an interrupted run resumed with another rate is a different job."""
    from videosr.errors import Interrupted
    from videosr.pipeline import upscale
    from videosr.resume import state_dir

    folder = clips.make_images(tmp_path / "frames", [f"f{i}.png" for i in range(6)], width=16, height=12)
    out = str(tmp_path / "o.mkv")

    manifest = os.path.join(state_dir(out), "manifest.json")

    def committed() -> bool:
        return os.path.exists(manifest) and bool(json.load(open(manifest))["segments"])

    def stop(n: int) -> None:
        if n == 4:  # once a segment is committed (the encoder commits in its own thread): there is state to resume
            t0 = time.monotonic()
            while not committed() and time.monotonic() - t0 < 30:
                time.sleep(0.01)
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        upscale(
            str(folder), out, model="bicubic", scale=2, codec="ffv1", segment=2, fps="24", progress=False, on_frame=stop
        )
    assert os.path.isdir(state_dir(out))
    assert (
        main(
            [
                "upscale",
                str(folder),
                out,
                "--model",
                "bicubic",
                "--scale",
                "2",
                "--codec",
                "ffv1",
                "--segment",
                "2",
                "--resume",
                "--quiet",
            ]
        )
        == 8
    )
    assert "fps ('24' then, None now)" in capsys.readouterr().err
    assert (
        main(
            [
                "upscale",
                str(folder),
                out,
                "--model",
                "bicubic",
                "--scale",
                "2",
                "--codec",
                "ffv1",
                "--segment",
                "2",
                "--resume",
                "--fps",
                "24",
                "--quiet",
            ]
        )
        == 0
    )
    with av.open(out) as c:
        assert abs(float(c.streams.video[0].average_rate) - 24) < 1e-3
        assert sum(1 for _ in c.decode(video=0)) == 6
