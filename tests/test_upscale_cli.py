"""`videosr upscale` end to end through the CLI: outputs, JSON summary, and every error case's exit code,
message and (absence of) output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import av
import clips
import pytest

from videosr.cli import main


def run_cli(*args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess (clean stdout/stderr, real exit code)."""
    p = subprocess.run([sys.executable, "-m", "videosr", *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def frame_count(path: str) -> int:
    with av.open(path) as c:
        return sum(1 for _ in c.decode(video=0))


def test_upscale_keeps_frames_audio_and_timestamps(tmp_path) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=12, width=40, height=30, audio=True)
    out = str(tmp_path / "out.mp4")
    code = main(["upscale", src, out, "--model", "bicubic", "--scale", "2", "--quiet"])
    assert code == 0
    with av.open(out) as c:
        v = c.streams.video[0]
        assert (v.codec_context.width, v.codec_context.height) == (80, 60)
    assert frame_count(out) == 12
    assert clips.video_pts(out) == clips.video_pts(src)
    assert [p[0] for p in clips.packets(out, "audio")] == [p[0] for p in clips.packets(src, "audio")]


def test_json_summary(tmp_path) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=5, width=32, height=24)
    out = str(tmp_path / "out.mkv")
    code, stdout, stderr = run_cli("upscale", src, out, "--model", "lanczos", "--scale", "3", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert set(summary) == {"input", "output", "model", "reason", "scale", "frames", "seconds", "fps"}
    assert summary["frames"] == 5 and summary["scale"] == 3 and summary["model"] == "lanczos"
    assert summary["fps"] > 0


def test_family_name_with_scale_picks_variant(tmp_path) -> None:
    from videosr.models.resolve import load_model

    assert load_model("pan", 2).scale == 2  # pan + --scale 2 -> pan-x2
    assert load_model("bicubic", 3).scale == 3  # resamplers take any scale


def test_png_folder_output_and_image_folder_input(tmp_path) -> None:
    folder = clips.make_images(tmp_path / "frames", ["f1.png", "f2.png", "f10.png"], width=16, height=12)
    out = tmp_path / "big"
    assert main(["upscale", str(folder), str(out) + os.sep, "--model", "bicubic", "--scale", "2", "--quiet"]) == 0
    pngs = sorted(n for n in os.listdir(out) if not n.startswith("."))  # .videosr-output: the folder is ours
    assert len(pngs) == 3 and os.path.isfile(out / ".videosr-output")
    from PIL import Image

    assert Image.open(out / pngs[0]).size == (32, 24)


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "zero_bytes",
        "random_bytes",
        "audio_only",
        "bad_scale",
        "unknown_model",
        "exists",
        "same_file",
        "no_folder",
        "model_scale_mismatch",
    ],
)
def test_errors_exit_nonzero_with_one_line_and_leave_no_output(tmp_path, case: str) -> None:
    good = clips.make_video(tmp_path / "good.mp4", frames=3, width=16, height=16)
    out = str(tmp_path / "out.mp4")
    args = ["--model", "bicubic"]
    src = good
    expect = {
        "missing": 3,
        "zero_bytes": 3,
        "random_bytes": 3,
        "audio_only": 3,
        "bad_scale": 2,
        "unknown_model": 7,
        "exists": 4,
        "same_file": 5,
        "no_folder": 5,
        "model_scale_mismatch": 2,
    }[case]
    if case == "missing":
        src = str(tmp_path / "nope.mp4")
    elif case == "zero_bytes":
        src = str(tmp_path / "empty.mp4")
        open(src, "wb").close()
    elif case == "random_bytes":
        src = str(tmp_path / "noise.mp4")
        with open(src, "wb") as f:
            f.write(os.urandom(4096))
    elif case == "audio_only":
        src = clips.make_audio_only(tmp_path / "audio.m4a")
    elif case == "bad_scale":
        args += ["--scale", "5"]
    elif case == "unknown_model":
        args = ["--model", "no-such-model"]
    elif case == "exists":
        with open(out, "wb") as f:
            f.write(b"precious")
    elif case == "same_file":
        out = good
    elif case == "no_folder":
        out = str(tmp_path / "missing_dir" / "out.mp4")
    elif case == "model_scale_mismatch":
        args = ["--model", "pan-x4", "--scale", "2"]
    before = sorted(os.listdir(tmp_path))
    code, stdout, stderr = run_cli("upscale", src, out, *args)
    assert code == expect, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("videosr: error: "), stderr
    assert "Traceback" not in stderr
    if case == "exists":
        assert open(out, "rb").read() == b"precious"
    elif case == "same_file":
        assert frame_count(good) == 3
    else:
        assert not os.path.exists(out)
    assert sorted(os.listdir(tmp_path)) == before  # no temporary files left behind


def test_debug_shows_traceback(tmp_path) -> None:
    code, _, stderr = run_cli("--debug", "upscale", str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4"))
    assert code == 3 and "Traceback" in stderr


def test_failure_mid_run_leaves_nothing(tmp_path, monkeypatch) -> None:
    """A model that fails on the 3rd chunk: the error propagates, the temp file is removed."""
    import videosr.engine as engine

    src = clips.make_video(tmp_path / "in.mp4", frames=20, width=16, height=16)
    out = tmp_path / "out.mp4"
    calls = {"n": 0}
    real = engine.Engine._forward_planes  # fast-x2 into yuv420p: the model reconstructs the output's planes

    def flaky(self, clip, keep):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(self, clip, keep)

    monkeypatch.setattr(engine.Engine, "_forward_planes", flaky)
    assert main(["upscale", src, str(out), "--model", "fast-x2", "--scale", "2", "--quiet"]) == 70
    assert calls["n"] == 3
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_failure_mid_run_leaves_nothing_plane_path(tmp_path, monkeypatch) -> None:
    """The same for bicubic, which scales the YUV planes directly (no Engine)."""
    from videosr.models.interp import Interp

    src = clips.make_video(tmp_path / "in.mp4", frames=20, width=16, height=16)
    calls = {"n": 0}
    real = Interp.upsample_plane

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom")
        return real(self, x)

    monkeypatch.setattr(Interp, "upsample_plane", flaky)
    assert main(["upscale", src, str(tmp_path / "out.mp4"), "--model", "bicubic", "--scale", "2", "--quiet"]) == 70
    assert calls["n"] == 7
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_resume_options_need_a_video_file_output(tmp_path) -> None:
    src = clips.make_video(tmp_path / "in.mp4", frames=3, width=16, height=16)
    code, _, stderr = run_cli(
        "upscale", src, str(tmp_path / "pngs") + os.sep, "--model", "bicubic", "--scale", "2", "--resume"
    )
    assert code == 2 and "--resume needs" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli(
        "upscale", src, str(tmp_path / "o.mp4"), "--model", "bicubic", "--scale", "2", "--segment", "0"
    )
    assert code == 2 and "--segment" in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_resume_flag_on_a_fresh_run_and_json_summary(tmp_path) -> None:
    """--resume with no earlier state simply runs (resumably); the summary is unchanged; no state is left."""
    src = clips.make_video(tmp_path / "in.mp4", frames=9, width=16, height=16, audio=True)
    out = str(tmp_path / "o.mp4")
    code, stdout, stderr = run_cli(
        "upscale", src, out, "--model", "bicubic", "--scale", "2", "--resume", "--segment", "4", "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["frames"] == 9
    assert frame_count(out) == 9 and clips.video_pts(out) == clips.video_pts(src)
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "o.mp4"]
