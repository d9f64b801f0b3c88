"""videosr.models.auto: `--model auto` reads the input's quality and picks by measured speed and PSNR."""

from __future__ import annotations

import json

import pytest
from clips import make_images, make_video, make_y4m

from videosr.errors import UsageError
from videosr.models import VARIANTS, auto


@pytest.mark.parametrize("kind", ["amx", "no-amx"])
def test_auto_keeps_the_speed_bar_and_best_takes_the_best(kind):
    for src in (None, auto.Source("h264", 0.1, 30.0, "test")):
        c = auto.choose(4, src, "auto", kind=kind)
        assert auto.speed(VARIANTS[c.model], kind) >= auto.MIN_FLOOR_FRACTION, c
        assert f"{auto.MIN_FLOOR_FRACTION}x the floor" in c.reason and kind in c.reason
        best = auto.choose(4, src, "best", kind=kind)
        ok = [v for v in VARIANTS.values() if v.scale == 4 and v.weights and v.vid4_degradation == "BI"]
        assert auto.expected_psnr(VARIANTS[best.model], src) == max(
            s for s in (auto.expected_psnr(v, src) for v in ok) if s is not None
        )
        fast = auto.choose(4, src, "fast", kind=kind)
        assert auto.speed(VARIANTS[fast.model], kind) == max(auto.speed(v, kind) or 0 for v in ok)
    with pytest.raises(UsageError, match="--quality"):
        auto.choose(4, None, "ultra")


def test_unmeasured_cpu_kind_leaves_out_models_too_slow_even_with_amx(monkeypatch):
    real = auto.speed
    monkeypatch.setattr(auto, "speed", lambda v, kind: None if kind == "no-amx" else real(v, kind))
    c = auto.choose(4, None, "auto", kind="no-amx")
    assert real(VARIANTS[c.model], "amx") >= auto.MIN_FLOOR_FRACTION, c
    assert "left out" in c.reason and "quality-x4-full-w48" in c.reason and "no-amx" in c.reason
    assert auto.choose(4, None, "best", kind="no-amx").model == auto.choose(4, None, "best", kind="amx").model
    monkeypatch.setattr(auto, "speed", lambda v, kind: None)  # measured nowhere: speed not weighed
    assert "speed not weighed" in auto.choose(4, None, "auto", kind="no-amx").reason


def test_auto_never_picks_a_model_for_another_degradation():
    for q in auto.QUALITIES:
        for kind in ("amx", "no-amx"):
            assert VARIANTS[auto.choose(4, None, q, kind=kind).model].degradation != "BD"


def test_speed_is_shared_by_equal_architectures():
    fast = VARIANTS["fast-x4"]
    twin = [
        v for v in VARIANTS.values() if v.arch == fast.arch and dict(v.kwargs) == dict(fast.kwargs) and v.scale == 4
    ]
    assert len(twin) >= 2  # fast-x4-bd at least
    assert all(auto.speed(v, "amx") == auto.speed(fast, "amx") for v in twin)


def test_probe_reads_the_quantiser(tmp_path):
    lo = make_video(tmp_path / "lo.mp4", frames=12, width=128, height=96, options={"crf": "16"})
    hi = make_video(tmp_path / "hi.mp4", frames=12, width=128, height=96, options={"crf": "38"})
    a, b = auto.probe_source(lo), auto.probe_source(hi)
    assert a.codec == b.codec == "h264" and a.qp is not None and b.qp is not None
    assert b.qp > a.qp + 10 and b.crf > a.crf + 10  # the CRF axis follows the quantiser
    assert "QP" in a.note and a.bpp > b.bpp > 0


def test_probe_lossless_and_streams(tmp_path):
    ffv1 = make_video(tmp_path / "a.mkv", frames=3, codec="ffv1", pix_fmt="yuv420p")
    assert auto.probe_source(ffv1).crf is None
    assert auto.probe_source(make_y4m(tmp_path / "b.y4m")).crf is None
    assert auto.probe_source("-").crf is None
    d = tmp_path / "pngs"
    make_images(d, ["1.png", "2.png"])
    assert auto.probe_source(d).crf is None
    j = tmp_path / "jpgs"
    make_images(j, ["1.jpg", "2.jpg"])
    assert auto.probe_source(j).crf is not None


def test_frame_qp_parses_side_data():
    import struct

    blocks = [struct.pack("<iiiii", 0, 0, 16, 16, d) for d in (-2, 0, 2, 4)]
    head = struct.pack("<IxxxxQQii", 4, 64, 20, 1, 30) + b"\0" * 32
    assert auto._frame_qp(head + b"".join(blocks)) == 31.0
    assert auto._frame_qp(struct.pack("<IxxxxQQii", 0, 64, 20, 2, 30) + b"\0" * 32) is None  # not H.264


def test_upscale_auto_runs_the_chosen_model_and_says_why(tmp_path, capsys):
    from videosr.cli import main

    src = make_video(tmp_path / "in.mp4", frames=4, width=40, height=32, options={"crf": "30"})
    expect = auto.choose(4, auto.probe_source(src), "auto")
    assert main(["upscale", src, str(tmp_path / "a.mp4"), "--json"]) == 0  # --model auto is the default
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == expect.model and summary["reason"].startswith(expect.reason)
    assert "QP" in summary["reason"]  # the input's quantiser was read
    assert main(["upscale", src, str(tmp_path / "b.mp4"), "--quality", "fast"]) == 0
    err = capsys.readouterr().err
    fast = auto.choose(4, auto.probe_source(src), "fast").model
    assert f"model {fast}: --quality fast" in err and f"with {fast}" in err  # announced above the progress
    assert main(["upscale", src, str(tmp_path / "c.mp4"), "--model", "bicubic", "--quality", "best"]) == 2
    assert "--quality" in capsys.readouterr().err and not (tmp_path / "c.mp4").exists()
    assert main(["upscale", src, str(tmp_path / "d.mp4"), "--weights", src]) == 2
