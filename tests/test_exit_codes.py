"""Exit codes, leftovers and streams (issue 19, upscale side): every failure a user can cause is one
`videosr: error:` line with the code of its cause (never 5 for what is not the output, never 70),
nothing is left behind that blocks or litters the next run, warnings are printed once and honour
--quiet, and streams that cannot be carried into the output are named (attachments and chapters kept
mkv -> mkv)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from fractions import Fraction

import av
import clips
import pytest

from videosr.cli import main

BICUBIC = ["--model", "bicubic", "--scale", "2", "--quiet"]


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


def one_line(code: int, err: str, expect: int, *words: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expect, err
    assert len(lines) == 1 and lines[0].startswith("videosr: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def run_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    """The real process: what reaches the terminal (the encoders' own C-level output included)."""
    return subprocess.run(
        [sys.executable, "-m", "videosr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def hidden(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.make_video(tmp_path_factory.mktemp("clip") / "in.mp4", frames=3, width=16, height=16)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """mkv: 2 video streams, a font attachment, 2 chapters."""
    path = str(tmp_path_factory.mktemp("rich") / "rich.mkv")
    oc = av.open(path, "w")
    streams = []
    for w, h in ((16, 16), (8, 8)):
        s = oc.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        streams.append((s, w, h))
    oc.add_attachment("font.ttf", "font/ttf", b"FAKEFONT" * 16)
    oc.set_chapters(
        [
            {"id": 1, "start": 0, "end": 40, "time_base": Fraction(1, 1000), "metadata": {"title": "One"}},
            {"id": 2, "start": 40, "end": 120, "time_base": Fraction(1, 1000), "metadata": {"title": "Two"}},
        ]
    )
    for i in range(3):
        for s, w, h in streams:
            f = av.VideoFrame.from_ndarray(clips.pattern(i, w, h), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                oc.mux(p)
    for s, _, _ in streams:
        for p in s.encode(None):
            oc.mux(p)
    oc.close()
    return path


# ------------------------------------------------------------------------------------ codec options: exit 2
@pytest.mark.parametrize(
    "opts,words",
    [
        (["--crf", "-5"], ["--crf -5", "libx264 (0..51"]),
        (["--crf", "99"], ["--crf 99", "0..51"]),
        (["--preset", "bogus"], ["preset 'bogus'", "veryslow"]),
        (["--codec", "libsvtav1", "--crf", "70"], ["libsvtav1 (1..63"]),
        (["--codec", "libsvtav1", "--preset", "14"], ["0..13"]),
        (["--codec", "vp9", "--preset", "9"], ["libvpx-vp9", "0..8"]),
        (["--codec", "libx265", "--crf", "52"], ["libx265 (0..51"]),
    ],
    ids=["crf-negative", "crf-99", "x264-preset", "av1-crf", "av1-preset", "vp9-preset", "x265-crf"],
)
def test_bad_codec_options_are_usage_errors_naming_the_valid_values(tmp_path, clip, opts, words):
    out = tmp_path / "out.mkv"
    one_line(*cli("upscale", clip, str(out), *BICUBIC, *opts), 2, *words)
    assert os.listdir(tmp_path) == []  # no output, temp file, lock or resume state


def test_unknown_preset_prints_no_encoder_lines(tmp_path, clip):
    r = run_cli("upscale", clip, str(tmp_path / "o.mp4"), *BICUBIC, "--preset", "bogus")
    assert r.returncode == 2 and r.stderr.splitlines() == [r.stderr.strip()], r.stderr  # no "x264 [error]:"
    assert "unknown libx264 --preset 'bogus'" in r.stderr and os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------- out of memory
def _oom(monkeypatch, exc):
    import videosr.engine as engine
    from videosr.models.interp import Interp

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(engine.Engine, "_forward", boom)
    monkeypatch.setattr(Interp, "upsample_plane", boom)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 49766400 bytes. Error code 12"
        ),
        MemoryError(),
    ],
    ids=["torch-cpu-allocator", "MemoryError"],
)
def test_out_of_memory_is_its_own_error_with_a_tile_hint(tmp_path, clip, monkeypatch, exc):
    _oom(monkeypatch, exc)
    out = tmp_path / "out.mkv"
    one_line(*cli("upscale", clip, str(out), *BICUBIC, "--codec", "ffv1", "--resume"), 9, "out of memory", "--tile")
    assert os.listdir(tmp_path) == []  # failed before its first segment: no state kept, even with --resume


def test_encoder_enomem_is_out_of_memory_not_cannot_write():
    from videosr.io.writer import write_error

    e = write_error(OSError(12, "Cannot allocate memory"), "o.mp4")
    assert e.exit_code == 9 and "out of memory" in str(e) and "--tile" in str(e)


def test_tile_auto_sees_the_address_space_limit():
    # `ulimit -v`: free RAM is not what may be allocated; auto_tile must size tiles from the room left
    code = (
        "import resource, re\n"
        "from videosr.engine import _available_memory\n"
        "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), resource.RLIM_INFINITY))\n"
        "print(_available_memory())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) <= 256 << 20


# ------------------------------------------------------------------------------------------ input errors
def test_input_moved_away_mid_run_is_exit_3_and_resumable(tmp_path):
    from videosr.errors import InputChangedError
    from videosr.pipeline import upscale

    src = clips.make_video(tmp_path / "in.mkv", frames=8, width=16, height=16, audio=True)
    out = str(tmp_path / "out.mkv")

    def move(n):
        if n == 8:
            os.rename(src, src + ".moved")

    with pytest.raises(InputChangedError, match="input is gone") as e:
        upscale(src, out, model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=move)
    assert e.value.exit_code == 3 and not os.path.exists(out)
    os.rename(src + ".moved", src)
    assert cli("upscale", src, out, *BICUBIC, "--codec", "ffv1", "--segment", "4", "--resume")[0] == 0
    assert hidden(tmp_path) == []


@pytest.mark.parametrize(
    "header,word",
    [(b"YUV4MPEG2 W0 H16 F25:1 Ip C420jpeg\n", "width '0'"), (b"YUV4MPEG2 H16 F25:1 Ip C420jpeg\n", "no width")],
)
def test_bad_y4m_header_is_exit_3_naming_the_problem(tmp_path, header, word):
    src = clips.make_y4m(tmp_path / "bad.y4m", frames=1, width=16, height=16, header=header)
    one_line(*cli("upscale", src, str(tmp_path / "o.mp4"), *BICUBIC), 3, "invalid y4m header", word)
    assert sorted(os.listdir(tmp_path)) == ["bad.y4m"]


def test_manifest_with_wrong_types_is_never_an_internal_error(tmp_path, clip):
    from videosr.errors import Interrupted
    from videosr.pipeline import upscale

    out = str(tmp_path / "out.mkv")

    def stop(n):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        upscale(clip, out, model="bicubic", scale=2, codec="ffv1", segment=1, progress=False, on_frame=stop)
    mpath = os.path.join(tmp_path, ".out.mkv.videosr-resume", "manifest.json")
    good = json.load(open(mpath))
    for change in (
        {"options": {**good["options"], "model": [1]}},
        {"input": {**good["input"], "size": "big"}},
        {"options": {**good["options"], "crf": {"a": None}}},
        {"input": []},
    ):
        json.dump({**good, **change}, open(mpath, "w"))
        code, err = cli(
            "upscale", clip, out, "--scale", "2", "--quiet", "--codec", "ffv1", "--segment", "1", "--resume"
        )  # --model auto reads the model from the state
        assert code in (3, 8) and "internal error" not in err, (change, err)
        one_line(code, err, code)


# --------------------------------------------------------------------------------------------- leftovers
def test_long_output_name_gets_shortened_hidden_names(tmp_path, clip):
    for ext in (".mkv", ".y4m", ""):
        name = "n" * (249 - len(ext)) + ext
        extra = ["--format", "png"] if not ext else []
        assert cli("upscale", clip, str(tmp_path / name), *BICUBIC, *extra)[0] == 0
        assert os.path.exists(tmp_path / name)
    assert hidden(tmp_path) == []
    from videosr.io.writer import _temp_path
    from videosr.lock import lock_path
    from videosr.resume import state_dir

    long = str(tmp_path / ("x" * 255))
    for p in (lock_path(long), state_dir(long), _temp_path(long, ".webm"), _temp_path(long, ".old")):
        assert len(os.path.basename(p)) <= 255 and os.path.dirname(p) == str(tmp_path)
    assert lock_path(long) == lock_path(long) and state_dir(long) == state_dir(long)  # stable across runs


def test_temp_files_of_a_killed_unreaped_run_are_removed_at_the_next_start(tmp_path, clip):
    zombie = subprocess.Popen(["true"])  # exits and stays a zombie: it is not waited for yet
    try:
        import time

        time.sleep(0.3)
        out = tmp_path / "o.y4m"
        out.write_bytes(b"existing")
        stale = tmp_path / f".o.y4m.videosr-tmp-{zombie.pid}-0badf00d.y4m"
        stale.write_bytes(b"junk")
        folder = tmp_path / f".o.y4m.videosr-tmp-{zombie.pid}-0badf00e"
        folder.mkdir()
        other = tmp_path / f".o.y4m.videosr-tmp-{zombie.pid}-notours.y4m"  # not a name videosr makes
        other.write_bytes(b"keep")
        # even a run that then fails (output exists: exit 4) removes them: it holds the output's lock
        one_line(*cli("upscale", clip, str(out), *BICUBIC), 4, "already exists")
        assert not stale.exists() and not folder.exists() and other.exists()
    finally:
        zombie.wait()


def test_state_without_segments_never_blocks_the_next_run(tmp_path, clip):
    from videosr.resume import state_dir

    out = str(tmp_path / "out.mkv")
    sdir = state_dir(out)
    os.mkdir(sdir)  # what a run killed before its first segment leaves (e.g. by a ulimit)
    json.dump(
        {
            "version": 2,
            "input": {},
            "options": {},
            "job": "0" * 16,
            "segment_frames": 1,
            "segments": [],
            "finished": False,
            "frames": None,
            "final": None,
        },
        open(os.path.join(sdir, "manifest.json"), "w"),
    )
    assert cli("upscale", clip, out, *BICUBIC, "--codec", "ffv1")[0] == 0
    assert hidden(tmp_path) == []


# ------------------------------------------------------------------------------------- terminal, warnings
def test_stdout_output_to_a_terminal_is_refused(tmp_path, clip, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(Tty()):
        code = main(["upscale", clip, "-", *BICUBIC])
    one_line(code, err.getvalue(), 2, "terminal")


def test_warnings_once_on_one_line_and_quiet_is_quiet(tmp_path, rich):
    r = run_cli("upscale", rich, str(tmp_path / "o.mp4"), "--model", "bicubic", "--scale", "2", "--json")
    assert r.returncode == 0, r.stderr
    warns = [ln for ln in r.stderr.splitlines() if "warning" in ln.lower()]
    assert warns == sorted(set(warns), key=warns.index) and len(warns) == 2, r.stderr  # each once
    assert all(ln.startswith("videosr: warning: ") for ln in warns), r.stderr
    assert "IOWarning" not in r.stderr and ".py:" not in r.stderr
    assert any("video stream #1" in w for w in warns) and any("attachment font.ttf" in w for w in warns)
    r = run_cli(
        "upscale",
        rich,
        str(tmp_path / "q.mp4"),
        "--model",
        "bicubic",
        "--scale",
        "2",
        "--quiet",
        "--codec",
        "libsvtav1",
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no warnings, no SVT-AV1 info lines


# ---------------------------------------------------------------------------------------------- streams
def test_mkv_to_mkv_keeps_attachments_and_chapters(tmp_path, rich):
    from videosr.io import IOWarning
    from videosr.pipeline import upscale

    out = str(tmp_path / "o.mkv")
    with pytest.warns(IOWarning, match="video stream #1"):
        upscale(rich, out, model="bicubic", scale=2, codec="ffv1", progress=False)
    with av.open(out) as c:
        assert [s.type for s in c.streams] == ["video", "attachment"]
        a = c.streams.attachments[0]
        assert a.name == "font.ttf" and a.mimetype == "font/ttf" and bytes(a.data) == b"FAKEFONT" * 16
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["One", "Two"]
