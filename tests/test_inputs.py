"""`videosr upscale` INPUT edge cases (issue 19 items 5, 6): pipes read once like `-` (named pipe, <(cmd),
/dev/stdin), closed stdin, symlink loops and broken links, and timestamps of high frame rate y4m in
mkv / mp4 / webm (never merged, never lost, a warning where the container cannot hold them)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from fractions import Fraction

import av
import clips
import pytest

from videosr.cli import main
from videosr.io import IOWarning
from videosr.pipeline import upscale

W, H, N = 32, 24, 6
UPSCALE = ["--model", "bicubic", "--scale", "2", "--quiet"]
KW = dict(model="bicubic", scale=2, progress=False)  # the library call: its warnings can be caught


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocked open()/read() of a pipe after ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pipe_with(data: bytes) -> int:
    """The read end of a pipe already holding ``data`` (small: it fits the pipe buffer) and closed for writing:
    what <(cat FILE) hands over as /dev/fd/N."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def y4m(path, fps: int, frames: int = N) -> str:
    header = f"YUV4MPEG2 W{W} H{H} F{fps}:1 Ip A1:1 C420jpeg\n".encode()
    return clips.make_y4m(path, frames=frames, width=W, height=H, header=header)


def decoded(path) -> tuple[list[int], Fraction]:
    """(pts of every decoded video frame, the stream's time base)."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        return [f.pts for f in c.decode(s)], Fraction(s.time_base)


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- pipes: read once, like `-` -------------------------------------------------------------------------


def test_named_pipe_input_streams_once(tmp_path) -> None:
    """A FIFO used to hang (the pre-check read a byte, closed it and reopened the path). Fed a 2400 fps y4m,
    the mp4 also checks the plain (non-segmented) writer keeps every frame at i/2400 s."""
    src = y4m(tmp_path / "in.y4m", 2400)
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    data = open(src, "rb").read()

    def feed() -> None:
        with open(fifo, "wb") as fh:  # blocks until videosr opens it: exactly once
            fh.write(data)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    out = tmp_path / "out.mp4"
    try:
        with deadline(60):
            code = main(["upscale", fifo, str(out), *UPSCALE])
    finally:
        if t.is_alive():  # release the feeder if videosr never opened the pipe
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        t.join(5)
    assert code == 0
    pts, tb = decoded(out)
    assert [p * tb for p in pts] == [Fraction(i, 2400) for i in range(N)]


def test_garbage_through_a_pipe_is_exit_3_not_a_hang(tmp_path, capsys) -> None:
    """A failed open must not reopen the FIFO to look at it (that blocks once the writer is gone)."""
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(b"YUV4MPEG2 W0 H24 F25:1\nFRAME\n" + b"\x00" * 500)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        with deadline(30):
            assert main(["upscale", fifo, str(tmp_path / "o.mp4"), *UPSCALE]) == 3
    finally:
        if t.is_alive():
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        t.join(5)
    assert time.monotonic() - t0 < 25  # not merely released by the deadline's signal
    assert "read once" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o.mp4").exists()


def test_process_substitution_dev_fd(tmp_path) -> None:
    """<(cmd) hands over /dev/fd/N: was exit 3, "Invalid data" (its first byte eaten by the pre-check). At
    2400 fps into mkv, the plain writer's timestamps are 1 ms apart (they were 0, 0, 1)."""
    r = pipe_with(open(y4m(tmp_path / "in.y4m", 2400, frames=3), "rb").read())
    try:
        with deadline(60):
            assert main(["upscale", f"/dev/fd/{r}", str(tmp_path / "a.mkv"), *UPSCALE]) == 0
    finally:
        os.close(r)
    assert decoded(tmp_path / "a.mkv")[0] == [0, 1, 2]


def test_dev_stdin_on_a_pipe(tmp_path) -> None:
    r = pipe_with(open(y4m(tmp_path / "in.y4m", 25, frames=3), "rb").read())
    saved = os.dup(0)
    os.dup2(r, 0)
    os.close(r)
    try:
        with deadline(60):
            assert main(["upscale", "/dev/stdin", str(tmp_path / "b.mp4"), *UPSCALE]) == 0
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert len(decoded(tmp_path / "b.mp4")[0]) == 3


def test_resume_with_a_pipe_input_is_refused(tmp_path, capsys) -> None:
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)  # never opened: the refusal comes first
    out = tmp_path / "out.mp4"
    assert main(["upscale", fifo, str(out), *UPSCALE, "--resume"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "--resume cannot be used with" in line and "read once" in line
    assert not out.exists() and not any(p.name.startswith(".out.mp4") for p in tmp_path.iterdir())


def test_closed_stdin_is_exit_3(tmp_path, capsys, monkeypatch) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "videosr", "upscale", "-", str(tmp_path / "o.mp4"), *UPSCALE],
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )  # as `<&-`
    assert p.returncode == 3, p.stderr  # was: exit 70 (AttributeError: sys.stdin is None)
    assert "standard input is closed" in one_line_error(p.stderr.decode())
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of a closed fd 0 at start
    assert main(["upscale", "/dev/stdin", str(tmp_path / "o.mp4"), *UPSCALE]) == 3
    assert "standard input is closed" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o.mp4").exists()


# ---- links ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mkv", "out.y4m"])
def test_symlink_loop_and_broken_link_are_exit_3(tmp_path, capsys, out_name) -> None:
    os.symlink(tmp_path / "b.mp4", tmp_path / "a.mp4")
    os.symlink(tmp_path / "a.mp4", tmp_path / "b.mp4")
    os.symlink(tmp_path / "gone.mp4", tmp_path / "broken.mp4")
    out = tmp_path / out_name
    for inp, words in (
        ("a.mp4", "symbolic link loop"),
        ("broken.mp4", "broken symbolic link"),
        ("a.mp4/x.mp4", "symbolic link loop"),
    ):
        assert main(["upscale", str(tmp_path / inp), str(out), *UPSCALE]) == 3
        assert words in one_line_error(capsys.readouterr().err)
        assert main(["upscale", str(tmp_path / inp), str(out), *UPSCALE, "--resume"]) in (2, 3)
        capsys.readouterr()
    assert not out.exists()


# ---- timestamps of high frame rates ----------------------------------------------------------------------


@pytest.mark.parametrize("fps", [2400, 1000000])
@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_high_frame_rate_timestamps(tmp_path, fps, ext) -> None:
    """Was: mkv/webm rounded every pts to ms (1e6 fps: all 0; 2400 fps: pairs of equal pts), silently; mp4
    lost its last frame at 2400 fps (edit list in ms). Now mp4 keeps the exact times; mkv/webm, which hold
    only milliseconds, get frames 1 ms apart and a warning saying so."""
    src = y4m(tmp_path / "in.y4m", fps)
    out = tmp_path / f"out.{ext}"
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert upscale(src, str(out), **KW)["frames"] == N
    told = [str(w.message) for w in said if issubclass(w.category, IOWarning) and "milliseconds" in str(w.message)]
    assert len(told) == (0 if ext == "mp4" else 1)
    pts, tb = decoded(out)
    assert len(pts) == N and len(set(pts)) == N and pts == sorted(pts)
    times = [p * tb for p in pts]
    if ext == "mp4":
        assert times == [Fraction(i, fps) for i in range(N)]
    else:
        assert times == [Fraction(i, 1000) for i in range(N)]


def test_mkv_never_merges_close_timestamps_of_vfr_input(tmp_path) -> None:
    """Frames 0.5 ms apart in a 1/10000 time base (average rate 20 fps): Matroska cannot tell them apart, so
    the later one moves 1 ms on (with a warning) instead of sharing a timestamp."""
    src = clips.make_video(
        tmp_path / "in.mp4",
        frames=N,
        width=W,
        height=H,
        fps=20,
        time_base=Fraction(1, 10000),
        pts=[0, 5, 500, 505, 1000, 1005],
    )
    out = tmp_path / "out.mkv"
    with pytest.warns(IOWarning, match="non-increasing timestamp at frame 1 .closer than the container's 1 ms"):
        assert upscale(src, str(out), **KW)["frames"] == N
    pts, tb = decoded(out)
    assert tb == Fraction(1, 1000)
    assert pts == sorted(set(pts)) and len(pts) == N
    assert pts[::2] == [0, 50, 100]  # the first of each pair keeps its time


def test_cli_says_why_mkv_timing_changes(tmp_path, capsys) -> None:
    src = y4m(tmp_path / "in.y4m", 2400, frames=2)
    assert main(["upscale", src, str(tmp_path / "out.mkv"), "--model", "bicubic", "--scale", "2"]) == 0
    said = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("videosr: warning:")]
    assert any("Matroska stores timestamps in milliseconds" in ln and "use .mp4 or .mov" in ln for ln in said)
