"""Nothing lost, nothing silently wrong: what `videosr upscale` may replace (only a regular file or a folder
it wrote; never the input, another folder, a FIFO, socket or device; /dev/null discards), the resume state
(never through a symlink, manifests checked, the input's identity checked, the joined frame count
checked), one run per OUTPUT (a lock naming the other PID), and temp files a killed run left."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import av
import clips
import pytest

from videosr.cli import main
from videosr.errors import InputChangedError, Interrupted

pytestmark = pytest.mark.filterwarnings("ignore::videosr.io.IOWarning")
BICUBIC = ["--model", "bicubic", "--scale", "2", "--quiet"]
RESUMABLE = [*BICUBIC, "--codec", "ffv1", "--segment", "4"]
FRAMES = 40

# The CLI with a slowed-down model, so a test can act while it runs (test-side patching; no product hooks).
SLOW = textwrap.dedent("""
    import sys, time
    import videosr.engine as engine
    from videosr.models.interp import Interp
    real_forward, real_plane = engine.Engine._forward, Interp.upsample_plane
    def slow_forward(self, clip):
        time.sleep(0.2)
        return real_forward(self, clip)
    def slow_plane(self, x):
        time.sleep(0.07)
        return real_plane(self, x)
    engine.Engine._forward, Interp.upsample_plane = slow_forward, slow_plane
    from videosr.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def cli(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


def one_line(code: int, err: str, expect: int, *words: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == expect, err
    assert len(lines) == 1 and lines[0].startswith("videosr: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def frames_of(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def state_of(out) -> str:
    out = str(out)
    return os.path.join(os.path.dirname(out), "." + os.path.basename(out) + ".videosr-resume")


def hidden(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith("."))


def start_slow(tmp_path, *args: str) -> subprocess.Popen:
    (tmp_path / "slow_cli.py").write_text(SLOW)
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "slow_cli.py"), "upscale", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return clips.make_video(tmp_path_factory.mktemp("small") / "in.mp4", frames=3, width=16, height=16)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """(input, state folder) of a run stopped (Ctrl-C) after 7 committed segments of 4 frames."""
    from videosr.pipeline import upscale

    d = tmp_path_factory.mktemp("interrupted")
    src = clips.make_video(d / "in.mkv", frames=FRAMES, width=32, height=24, audio=True)

    def stop(n):
        if n == 30:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        upscale(
            src, str(d / "out.mkv"), model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=stop
        )
    return src, state_of(d / "out.mkv")


def copy_state(interrupted, tmp_path, name="out.mkv"):
    """The interrupted state beside tmp_path/name (same input); returns (input, output, manifest path)."""
    src, sdir = interrupted
    out = tmp_path / name
    shutil.copytree(sdir, state_of(out))
    return src, out, os.path.join(state_of(out), "manifest.json")


def edit(path, change) -> None:
    m = json.load(open(path))
    change(m)
    json.dump(m, open(path, "w"))


# --------------------------------------------------------------------------------------------- OUTPUT kinds
def test_output_without_known_extension_is_refused(tmp_path, small):
    notes = tmp_path / "notes"
    notes.write_bytes(b"precious")
    for out in (notes, tmp_path / "new", tmp_path / "x.mp"):
        code, err = cli("upscale", small, str(out), *BICUBIC, "--overwrite")
        one_line(code, err, 2, "unknown output type", ".mp4", "--format png")
    assert notes.read_bytes() == b"precious" and sorted(os.listdir(tmp_path)) == ["notes"]


def test_format_png_writes_a_marked_folder_that_overwrite_may_replace(tmp_path, small):
    out = tmp_path / "pngs"
    assert cli("upscale", small, str(out), *BICUBIC, "--format", "png")[0] == 0
    assert sorted(os.listdir(out)) == [".videosr-output", "frame_000001.png", "frame_000002.png", "frame_000003.png"]
    # a folder videosr wrote is recognised without --format: exists -> 4, with --overwrite -> replaced
    code, err = cli("upscale", small, str(out), *BICUBIC)
    one_line(code, err, 4, "use --overwrite")
    assert cli("upscale", small, str(out), *BICUBIC, "--overwrite")[0] == 0
    assert len(os.listdir(out)) == 4
    # a regular file may be replaced with --overwrite (and only then)
    f = tmp_path / "file"
    f.write_bytes(b"x")
    one_line(*cli("upscale", small, str(f), *BICUBIC, "--format", "png"), 4, "--overwrite")
    assert cli("upscale", small, str(f), *BICUBIC, "--format", "png", "--overwrite")[0] == 0 and f.is_dir()
    assert hidden(tmp_path) == []


def test_overwrite_never_replaces_a_folder_videosr_did_not_write(tmp_path, small):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    for extra in ([], ["--format", "png"], ["--format", "png", "--overwrite"]):
        code, err = cli("upscale", small, str(mine), *BICUBIC, *extra)
        assert code in (2, 5), err
        assert "Traceback" not in err and err.count("\n") == 1
    one_line(
        *cli("upscale", small, str(mine) + "/", *BICUBIC, "--overwrite"), 5, "did not write", "even with --overwrite"
    )
    assert os.listdir(mine) == ["thesis.tex"] and hidden(tmp_path) == []
    # an empty folder holds nothing to lose: it is filled
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("upscale", small, str(empty), *BICUBIC, "--format", "png")[0] == 0 and len(os.listdir(empty)) == 4


def test_dev_null_discards_the_output(tmp_path, small, capsys):
    for extra in ([], ["--overwrite"]):
        code = main(["upscale", small, "/dev/null", *BICUBIC[:-1], "--json", *extra])
        assert code == 0
        assert json.loads(capsys.readouterr().out)["frames"] == 3
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [n for n in os.listdir("/dev") if "videosr" in n]
    one_line(*cli("upscale", small, "/dev/null", *BICUBIC, "--resume"), 2, "--resume needs")


def test_fifo_and_socket_are_never_replaced(tmp_path, small):
    fifo, sock_path = tmp_path / "out.y4m", tmp_path / "sock.mp4"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for out, what in ((fifo, "FIFO"), (sock_path, "socket")):
            for extra in ([], ["--overwrite"], ["--format", "png", "--overwrite"]):
                one_line(*cli("upscale", small, str(out), *BICUBIC, *extra), 5, what)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        sock.close()
    assert hidden(tmp_path) == []


def test_the_input_is_never_the_output(tmp_path, small):
    frames = clips.make_images(tmp_path / "frames", ["a.png", "b.png"], width=16, height=12)
    (tmp_path / "frames" / ".videosr-output").write_text("")  # even if it looks like ours
    for extra in (["--format", "png", "--overwrite"], ["--overwrite"]):
        one_line(*cli("upscale", frames, frames, *BICUBIC, *extra), 5, "is the input")
    assert sorted(os.listdir(frames)) == [".videosr-output", "a.png", "b.png"]
    src = tmp_path / "in.mp4"
    shutil.copy(small, src)
    os.symlink(src, tmp_path / "link.mp4")
    os.link(src, tmp_path / "hard.mp4")
    for out in ("link.mp4", "hard.mp4"):
        one_line(*cli("upscale", str(src), str(tmp_path / out), *BICUBIC, "--overwrite"), 5, "is the input")
    one_line(*cli("upscale", str(src), str(src), *BICUBIC, "--format", "png", "--overwrite"), 5, "is the input")
    # a folder videosr wrote that now holds the input
    out = tmp_path / "pngs"
    assert cli("upscale", str(src), str(out), *BICUBIC, "--format", "png")[0] == 0
    shutil.move(str(src), out / "in.mp4")
    one_line(*cli("upscale", str(out / "in.mp4"), str(out), *BICUBIC, "--overwrite"), 5, "holds the input")
    assert frames_of(out / "in.mp4") == 3 and frames_of(tmp_path / "hard.mp4") == 3
    assert hidden(tmp_path) == []


# --------------------------------------------------------------------------------------------- resume state
def test_state_folder_symlink_is_never_followed(tmp_path, interrupted):
    src, sdir = interrupted
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(sdir, elsewhere)
    (elsewhere / "unrelated.txt").write_text("precious")
    before = sorted(os.listdir(elsewhere))
    out = tmp_path / "out.mkv"
    os.symlink(elsewhere, state_of(out))
    for extra in (["--resume"], [], ["--overwrite"], ["--resume", "--overwrite"]):
        one_line(*cli("upscale", src, str(out), *RESUMABLE, *extra), 8, "symbolic link")
    assert sorted(os.listdir(elsewhere)) == before and os.path.islink(state_of(out)) and not out.exists()


def drop_middle(m):
    del m["segments"][2]


def duplicate(m):
    m["segments"].insert(3, dict(m["segments"][2]))


def finished_early(m):
    m["finished"], m["frames"] = True, m["segments"][-1]["end"]


def traversal(m):
    m["segments"][0]["file"] = "../../../../etc/passwd"


def wrong_types(m):
    m["segments"][1]["start"] = "4"


def wrong_types2(m):
    m["segment_frames"], m["segments"] = "4", {"a": 1}


def finished_no_frames(m):
    m["finished"] = "yes"


@pytest.mark.parametrize(
    "change,word",
    [
        (drop_middle, "damaged resume manifest"),
        (duplicate, "damaged resume manifest"),
        (finished_early, "more frames"),
        (traversal, "names"),
        (wrong_types, "bad start"),
        (wrong_types2, "bad segment_frames"),
        (finished_no_frames, "finished"),
    ],
    ids=["drop-middle", "duplicate", "finished-early", "path-traversal", "wrong-type", "wrong-types", "bad-finished"],
)
def test_edited_manifest_is_refused(tmp_path, interrupted, change, word):
    src, out, mpath = copy_state(interrupted, tmp_path)
    edit(mpath, change)
    before = sorted(os.listdir(state_of(out)))
    one_line(*cli("upscale", src, str(out), *RESUMABLE, "--resume"), 8, word)
    assert not out.exists() and sorted(os.listdir(state_of(out))) == before


def _swap_files(sdir, mpath):
    a, b = (os.path.join(sdir, f"seg_00000{i}.vsrseg") for i in (1, 2))
    os.rename(a, a + ".x")
    os.rename(b, a)
    os.rename(a + ".x", b)

    def swap(m):
        s1, s2 = m["segments"][1], m["segments"][2]
        for k in ("size", "sha256"):
            s1[k], s2[k] = s2[k], s1[k]

    edit(mpath, swap)


def test_swapped_or_foreign_segment_with_matching_sha256_is_refused(tmp_path, interrupted):
    from videosr.resume import sha256_file

    src, out, mpath = copy_state(interrupted, tmp_path)
    _swap_files(state_of(out), mpath)
    one_line(*cli("upscale", src, str(out), *RESUMABLE, "--resume"), 8, "another job or another place")
    assert not out.exists()
    # a segment of another job (the same input and options, another state) put in place of segment 3
    src, out2, mpath = copy_state(interrupted, tmp_path, "two.mkv")
    other = tmp_path / "other.mkv"
    with pytest.raises(Interrupted):
        from videosr.pipeline import upscale

        def stop(n):
            if n == 20:
                raise KeyboardInterrupt

        upscale(src, str(other), model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=stop)
    seg = os.path.join(state_of(out2), "seg_000003.vsrseg")
    shutil.copy(os.path.join(state_of(other), "seg_000003.vsrseg"), seg)

    def adopt(m):
        m["segments"][3].update(size=os.path.getsize(seg), sha256=sha256_file(seg))

    edit(mpath, adopt)
    one_line(*cli("upscale", src, str(out2), *RESUMABLE, "--resume"), 8, "job")
    assert not out2.exists()


def test_joined_frame_count_is_checked(tmp_path, interrupted, monkeypatch):
    """A join that does not give the planned number of frames fails loudly (never exit 0, never --json)."""
    import videosr.io.segments as segments

    src, out, _ = copy_state(interrupted, tmp_path)
    real = segments.concat_segments
    monkeypatch.setattr(segments, "concat_segments", lambda *a, **k: real(*a, **k) - 1)
    one_line(*cli("upscale", src, str(out), *RESUMABLE, "--resume", "--json"), 8, "joined video has 39 frames")
    assert not out.exists()


def test_input_changed_before_resume_is_exit_3_and_keeps_state(tmp_path, interrupted):
    src0, _ = interrupted
    src = tmp_path / "in.mkv"
    shutil.copy2(src0, src)
    out = tmp_path / "out.mkv"
    from videosr.pipeline import upscale

    def stop(n):
        if n == 10:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        upscale(str(src), str(out), model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=stop)
    new = clips.make_video(tmp_path / "new.mkv", frames=FRAMES, width=32, height=24, audio=True)
    os.replace(new, src)  # same path, another file
    one_line(*cli("upscale", str(src), str(out), *RESUMABLE, "--resume"), 3, "input changed", "state kept")
    assert os.path.isdir(state_of(out)) and not out.exists()


def test_input_replaced_during_the_run_is_exit_3_before_the_join(tmp_path):
    from videosr.pipeline import upscale

    src = clips.make_video(tmp_path / "in.mkv", frames=12, width=32, height=24, audio=True)
    other = clips.make_video(tmp_path / "other.mkv", frames=12, width=32, height=24, audio=True, fps=30)
    out = tmp_path / "out.mkv"

    def replace(n):
        if n == 6:
            os.replace(other, src)

    with pytest.raises(InputChangedError, match="input changed"):
        upscale(src, str(out), model="bicubic", scale=2, codec="ffv1", segment=4, progress=False, on_frame=replace)
    assert not out.exists() and os.path.isdir(state_of(out))
    assert not [n for n in os.listdir(state_of(out)) if n.startswith("final")]


def test_overwrite_discards_stale_state(tmp_path, interrupted):
    src, out, _ = copy_state(interrupted, tmp_path)
    one_line(*cli("upscale", src, str(out), *RESUMABLE), 8, "found resume state")
    assert cli("upscale", src, str(out), *RESUMABLE, "--overwrite")[0] == 0
    assert frames_of(out) == FRAMES and sorted(os.listdir(tmp_path)) == ["out.mkv"]


# --------------------------------------------------------------------------------------------- concurrency
def test_second_run_on_the_same_output_fails_fast_naming_the_pid(tmp_path):
    src = clips.make_video(tmp_path / "in.mkv", frames=FRAMES, width=32, height=24)
    out = tmp_path / "out.mkv"
    p = start_slow(tmp_path, src, str(out), *RESUMABLE)
    try:
        manifest = os.path.join(state_of(out), "manifest.json")
        assert clips.wait_for(lambda: os.path.exists(manifest) and json.load(open(manifest))["segments"], p), (
            p.stderr.read()
        )
        listed = [s["file"] for s in json.load(open(manifest))["segments"]]
        for extra in (["--resume"], [], ["--overwrite"]):
            t0 = time.monotonic()
            one_line(*cli("upscale", src, str(out), *RESUMABLE, *extra), 8, f"process {p.pid}", "writing this output")
            assert time.monotonic() - t0 < 2
        assert set(listed) <= set(os.listdir(state_of(out)))  # the other run's work is untouched
        p.send_signal(signal.SIGKILL)  # the lock goes with the process
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    assert cli("upscale", src, str(out), *RESUMABLE, "--resume")[0] == 0
    assert frames_of(out) == FRAMES and hidden(tmp_path) == []


# --------------------------------------------------------------------------------------------- temp files
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_killed_runs_temp_files_are_swept_by_the_next_success(tmp_path, small):
    # a real SIGKILL while a PNG folder is being written
    out = tmp_path / "pngs"
    p = start_slow(tmp_path, small, str(out), *BICUBIC, "--format", "png")
    try:
        assert clips.wait_for(lambda: any(".videosr-tmp-" in n for n in os.listdir(tmp_path)), p), p.stderr.read()
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()
    assert any(".pngs.videosr-tmp-" in n for n in os.listdir(tmp_path))
    # y4m: a leftover of a process that is gone, and one of a live process (kept)
    dead = _dead_pid()
    (tmp_path / f".o.y4m.videosr-tmp-{dead}-0badf00d.y4m").write_bytes(b"junk")
    live = subprocess.Popen(["sleep", "60"])
    try:
        keep = tmp_path / f".o.y4m.videosr-tmp-{live.pid}-0badf00d.y4m"
        keep.write_bytes(b"in use")
        assert cli("upscale", small, str(out), *BICUBIC, "--format", "png")[0] == 0
        assert cli("upscale", small, str(tmp_path / "o.y4m"), *BICUBIC)[0] == 0
        assert hidden(tmp_path) == [keep.name]
    finally:
        live.kill()
        live.wait()
