"""`videosr upscale --resume`: SIGKILL at several points then resume gives the uninterrupted result
(frames, timestamps, audio packets, pixels); leftover/mismatched state is refused; Ctrl-C/SIGTERM stop
within 2 s with one line and exit 130, keeping the state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import av
import clips
import numpy as np
import pytest
import torch
from torch import nn

from videosr.cli import main
from videosr.errors import Interrupted, ResumeError

COMMON = ["--model", "bicubic", "--scale", "2", "--codec", "ffv1", "--segment", "4", "--quiet"]

# A wrapper that runs the CLI with a slowed-down model (and optionally a slowed-down final mux), so a
# test can kill it at a chosen point. Test-side monkeypatching: the product has no test hooks.
WRAPPER = textwrap.dedent("""
    import os, sys, time
    import videosr.engine as engine
    import videosr.io.segments as segments
    model_delay = float(os.environ.get("SLOW_MODEL", "0"))
    mux_delay = float(os.environ.get("SLOW_MUX", "0"))
    slow_after = float(os.environ.get("SLOW_AFTER", "0"))
    real_forward = engine.Engine._forward
    calls = [0]
    def slow_forward(self, clip):
        calls[0] += 1
        time.sleep(slow_after if slow_after and calls[0] >= 2 else model_delay)
        return real_forward(self, clip)
    engine.Engine._forward = slow_forward
    real_read = segments.read_segment
    def slow_read(path):
        header, pkts = real_read(path)
        def gen():
            for p in pkts:
                time.sleep(mux_delay)
                yield p
        return header, gen()
    segments.read_segment = slow_read
    if os.environ.get("KILL_AFTER_PUBLISH"):
        import signal, videosr.resume as resume
        def die(self):
            os.kill(os.getpid(), signal.SIGKILL)
        resume.State.remove = die
    from videosr.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def decoded(path):
    """[(pts seconds, rgb array)] of every video frame."""
    with av.open(str(path)) as c:
        return [(f.pts * f.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def assert_same_video(out, ref, src):
    a, b = decoded(out), decoded(ref)
    assert len(a) == len(b) == len(clips.video_pts(src))
    assert [t for t, _ in a] == [t for t, _ in b] == clips.video_pts(src)
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert [p[0] for p in clips.packets(out, "audio")] == [p[0] for p in clips.packets(src, "audio")]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A 40-frame clip with audio and its uninterrupted upscale (the reference)."""
    d = tmp_path_factory.mktemp("resume")
    src = clips.make_video(d / "in.mkv", frames=40, width=32, height=24, audio=True)
    ref = str(d / "ref.mkv")
    assert main(["upscale", src, ref, *COMMON]) == 0
    return src, ref


def start_slow(tmp_path, src, out, env_extra, *extra):
    wrapper = tmp_path / "slow_cli.py"
    wrapper.write_text(WRAPPER)
    env = {**os.environ, **env_extra}
    return subprocess.Popen(
        [sys.executable, str(wrapper), "upscale", src, out, *COMMON, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def state_of(out):
    return os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".videosr-resume")


def manifest(out):
    try:
        with open(os.path.join(state_of(out), "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def committed(out, n):
    return lambda: (m := manifest(out)) is not None and len(m["segments"]) >= n


def part_open(out):
    def cond():
        try:
            return any(n.endswith(".part") for n in os.listdir(state_of(out)))
        except OSError:
            return False

    return cond


def final_part(out):
    def cond():
        try:
            return any(n.startswith("final.part") for n in os.listdir(state_of(out)))
        except OSError:
            return False

    return cond


POINTS = {
    # name: (environment for the slowed run, condition to wait for before SIGKILL)
    "after-2-segments": ({"SLOW_MODEL": "0.25"}, lambda out: committed(out, 2)),
    "during-final-mux": ({"SLOW_MUX": "0.05"}, final_part),
    "mid-segment": ({"SLOW_MODEL": "0.25"}, lambda out: lambda c1=committed(out, 1), c2=part_open(out): c1() and c2()),
    "state-just-created": ({"SLOW_MODEL": "0.25"}, lambda out: lambda: os.path.isdir(state_of(out))),
    "after-publish": ({"KILL_AFTER_PUBLISH": "1"}, None),
}


def kill_and_resume(tmp_path, job, point):
    src, ref = job
    out = str(tmp_path / "out.mkv")
    env, cond = POINTS[point]
    p = start_slow(tmp_path, src, out, env)
    try:
        if cond is not None:
            assert clips.wait_for(cond(out), p), f"never reached {point}: {p.communicate()[1]}"
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert os.path.isdir(state_of(out))
    if point == "state-just-created":
        # State that holds no segment has nothing to continue: the next run, even without --resume, discards
        # it and starts afresh (resume.state_dir_for_run), so it never blocks anyone.
        assert main(["upscale", src, out, *COMMON]) == 0
        assert_same_video(out, ref, src)
        assert sorted(os.listdir(tmp_path)) == ["out.mkv", "slow_cli.py"]
        return
    # Without --resume: refused, the state is neither reused nor deleted.
    if point != "after-publish":
        assert main(["upscale", src, out, *COMMON]) == ResumeError.exit_code
        assert os.path.isdir(state_of(out)) and not os.path.exists(out)
    assert main(["upscale", src, out, *COMMON, "--resume"]) == 0
    assert_same_video(out, ref, src)
    assert sorted(os.listdir(tmp_path)) == ["out.mkv", "slow_cli.py"]  # state and temp files removed


@pytest.mark.parametrize("point", ["after-2-segments", "during-final-mux"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, job, point):
    kill_and_resume(tmp_path, job, point)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["mid-segment", "state-just-created", "after-publish"])
def test_sigkill_at_more_points(tmp_path, job, point):
    kill_and_resume(tmp_path, job, point)


def test_leftover_and_mismatched_state_are_refused(tmp_path, job, capsys):
    src, _ = job
    out = str(tmp_path / "out.mkv")
    sdir = state_of(out)
    # make state as an interrupted run would (Ctrl-C after the first frames)
    with pytest.raises(Interrupted):
        from videosr.pipeline import upscale

        def stop(n):
            if n == 10:
                raise KeyboardInterrupt

        upscale(src, out, model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=stop)
    before = sorted(os.listdir(sdir))
    assert "manifest.json" in before
    capsys.readouterr()
    assert main(["upscale", src, out, *COMMON]) == 8
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "found resume state from an earlier run at" in err and "--resume" in err
    for change, word in (
        (["--scale", "3"], "scale"),
        (["--codec", "libx264"], "codec"),
        (["--model", "lanczos"], "model"),
    ):
        args = [a for a in COMMON]
        i = args.index(change[0])
        args[i + 1] = change[1]
        assert main(["upscale", src, out, *args, "--resume"]) == 8
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "different job" in err and word in err, err
    other = clips.make_video(tmp_path / "other.mkv", frames=40, width=32, height=24)
    assert main(["upscale", other, out, *COMMON, "--resume"]) == 8
    assert "input" in capsys.readouterr().err
    assert sorted(os.listdir(sdir)) == before and not os.path.exists(out)  # untouched
    assert main(["upscale", src, out, *COMMON, "--resume"]) == 0
    assert not os.path.exists(sdir)


class _Window(nn.Module):
    """Deterministic sliding-window model (context 2): weighted temporal average, nearest x2."""

    scale, context, causal = 2, 2, False

    def forward(self, x):  # (B, T, C, H, W)
        pad = torch.cat([x[:, :1]] * 2 + [x] + [x[:, -1:]] * 2, 1)
        w = [0.1, 0.2, 0.4, 0.2, 0.1]
        y = sum(w[k] * pad[:, k : k + x.shape[1]] for k in range(5))
        y = y + 0.05 * torch.sin(8 * pad[:, : x.shape[1]])  # something that is not shift-invariant
        return y.repeat_interleave(2, -1).repeat_interleave(2, -2)


def test_sliding_window_model_resumes_exactly(tmp_path, monkeypatch):
    """A context-2 model interrupted (Ctrl-C) mid-run: the resumed result equals the uninterrupted one,
    because the restart feeds `context` warm-up frames and cuts the same temporal chunks."""
    import videosr.models.resolve as resolve
    import videosr.pipeline as pipeline

    def fake_load(model, scale, weights=None, backend="torch"):
        net = _Window()
        net.display_name = "window"
        return net

    monkeypatch.setattr(resolve, "load_model", fake_load)
    src = clips.make_video(tmp_path / "in.mp4", frames=23, width=24, height=16)
    kw = dict(codec="ffv1", segment=8, chunk=4, progress=False)
    pipeline.upscale(src, str(tmp_path / "ref.mkv"), **kw)

    def stop(n):
        if n == 13:
            raise KeyboardInterrupt

    out = str(tmp_path / "out.mkv")
    with pytest.raises(Interrupted, match="--resume"):
        pipeline.upscale(src, out, on_frame=stop, **kw)
    m = manifest(out)
    assert [s["end"] for s in m["segments"]] == [8]
    summary = pipeline.upscale(src, out, resume=True, **kw)
    assert summary["frames"] == 23
    a, b = decoded(out), decoded(tmp_path / "ref.mkv")
    assert len(a) == 23 and all(np.array_equal(x, y) and s == t for (s, x), (t, y) in zip(a, b))


def _signal_run(tmp_path, job, sig, env):
    src, ref = job
    out = str(tmp_path / "out.mkv")
    p = start_slow(tmp_path, src, out, env)
    try:
        assert clips.wait_for(committed(out, 1), p), p.communicate()[1]
        t0 = time.monotonic()
        p.send_signal(sig)
        _, err = p.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    return out, p.returncode, err, took


@pytest.mark.parametrize(
    "sig,env",
    [(signal.SIGINT, {"SLOW_MODEL": "0.25"}), (signal.SIGTERM, {"SLOW_AFTER": "8"})],
    ids=["SIGINT", "SIGTERM-long-call"],
)
def test_signal_stops_within_2s_keeps_state_and_resumes(tmp_path, job, sig, env):
    """SIGINT with a normal model; SIGTERM while one model call takes 8 s (the exit must not wait for it)."""
    src, ref = job
    out, code, err, took = _signal_run(tmp_path, job, sig, env)
    assert code == 130, err
    assert took < 2.0, took
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("videosr: interrupted") and "--resume" in lines[0], err
    assert "Traceback" not in err
    assert os.path.isdir(state_of(out)) and not os.path.exists(out)
    assert main(["upscale", src, out, *COMMON, "--resume"]) == 0
    assert_same_video(out, ref, src)
