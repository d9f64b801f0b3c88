"""Distributed runs on Ray (videosr.distributed, videosr batch; docs/distributed.md).

Needs the ``[ray]`` extra (``.ci/run`` installs it); without it every test here skips but
``test_without_ray_extra_exit_2``. A local Ray runtime with 2 one-CPU workers is started once for the module
(with ``VIDEOSR_FAULT_DIR`` set, so a test can make a task SIGKILL its own worker). The two-node cluster
(``ray start --head`` + ``ray start --address`` on loopback, killed by process group at the end) and the
driver-kill test are ``slow`` (pytest -m slow).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import av
import clips
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEOSR = os.path.join(os.path.dirname(sys.executable), "videosr")
KEYINT = {"x264-params": "keyint=5:min-keyint=5:scenecut=0"}  # keyframes every 5 frames: tasks seek
BFRAMES = {"x264-params": "keyint=6:min-keyint=6:scenecut=0:bframes=2"}  # reordered frames, closed GOPs


def _frames(path):
    with av.open(os.fspath(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _same_video(a, b):
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == len(fb)
    for i, (x, y) in enumerate(zip(fa, fb)):
        assert np.array_equal(x, y), f"frame {i} differs"


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    fault = tmp_path_factory.mktemp("faults")
    os.environ["VIDEOSR_FAULT_DIR"] = str(fault)  # inherited by the workers started below
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, log_to_driver=False)
    for sig, h in handlers.items():  # Ray's core worker replaces them; keep pytest's
        if h is not None:
            signal.signal(sig, h)
    try:
        yield {"ray": ray, "fault": str(fault), "address": ray.get_runtime_context().gcs_address}
    finally:
        ray.shutdown()
        os.environ.pop("VIDEOSR_FAULT_DIR", None)


def _cli(*args, timeout=120, env=None):
    return subprocess.run(
        [VIDEOSR, *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


# ----------------------------------------------------------------------------------------- always runs
def test_without_ray_extra_exit_2(tmp_path):
    clip = clips.make_video(tmp_path / "in.mp4", frames=3, width=16, height=16)
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from videosr.cli import main\n"
        f"sys.exit(main(['upscale', {clip!r}, {str(tmp_path / 'o.mp4')!r}, '--model', 'bicubic', "
        "'--workers', '2']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install -e '.[ray]'" in r.stderr
    code = (
        code.replace("['upscale', ", "['batch', ")
        .replace(f", {str(tmp_path / 'o.mp4')!r}", "")
        .replace("'--workers', '2'", f"'--out-dir', {str(tmp_path / 'out')!r}")
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install -e '.[ray]'" in r.stderr
    assert not os.path.exists(tmp_path / "o.mp4")


def test_probe_plans_exact_keyframes(tmp_path):
    from videosr.distributed import probe_packets

    clip = clips.make_video(tmp_path / "k.mp4", frames=12, width=16, height=16, options=KEYINT)
    plan = probe_packets(clip)
    assert plan["frames"] == 12 and sorted(plan["seek"]) == [0, 5, 10]
    # B-frames (open reordering): the keyframes stay exact seek points, the pts plan is in presentation order
    clip = clips.make_video(tmp_path / "b.mp4", frames=12, width=16, height=16, options=BFRAMES)
    plan = probe_packets(clip)
    assert plan["pts"] == sorted(plan["pts"]) and 6 in plan["seek"]


# ----------------------------------------------------------------------------------------- local runtime
@pytest.mark.parametrize(
    "model,frames,segment",
    [
        ("bicubic", 14, 4),  # image model: chunk 1
        ("fast-x4", 20, 8),  # sliding window (context 1): warm-up on both sides of every segment
        ("quality-x4", 40, 16),  # recurrent (context 8, chunk 32 on the planes path): 2 segments
    ],
)
def test_two_workers_pixel_identical(ray_local, tmp_path, model, frames, segment):
    """The same command with and without workers: the same video, pixel for pixel. Lossless FFV1, so the
    decoded frames are exactly the model's quantized output (libx264 with its automatic threads is not
    reproducible run to run even in one process: identical planes gave different bitstreams under load)."""
    from videosr import distributed, pipeline

    clip = clips.make_video(
        tmp_path / "in.mp4",
        frames=frames,
        width=24,
        height=16,
        audio=True,
        options=BFRAMES if model == "fast-x4" else KEYINT,
    )
    kw = dict(model=model, segment=segment, codec="ffv1", progress=False)
    one = pipeline.upscale(clip, tmp_path / "one.mkv", **kw)
    many = distributed.upscale(clip, tmp_path / "many.mkv", workers=2, **kw)
    assert many["frames"] == one["frames"] == frames
    assert many["segments"] > 1 and many["seeked"] >= 1  # later segments started at a keyframe
    _same_video(tmp_path / "one.mkv", tmp_path / "many.mkv")
    assert clips.video_pts(tmp_path / "many.mkv") == clips.video_pts(tmp_path / "one.mkv")
    assert clips.packets(tmp_path / "many.mkv", "audio") == clips.packets(tmp_path / "one.mkv", "audio")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no state, lock or temp left


@pytest.mark.parametrize("source", ["one-gop", "images"])
def test_no_keyframes_to_seek_to(ray_local, tmp_path, source):
    """One keyframe only, or an image folder (nothing to seek to): every task decodes from the start (images:
    skips files); the same video."""
    from videosr import distributed, pipeline

    if source == "images":
        clip = clips.make_images(tmp_path / "imgs", [f"f{i}.png" for i in range(9)], width=16, height=16)
        kw = {"fps": "30"}
    else:
        clip = clips.make_video(tmp_path / "in.mkv", frames=9, width=16, height=16, fmt="matroska")
        kw = {}
    pipeline.upscale(clip, tmp_path / "one.mkv", model="bicubic", segment=3, codec="ffv1", progress=False, **kw)
    s = distributed.upscale(
        clip, tmp_path / "many.mkv", workers=2, model="bicubic", segment=3, codec="ffv1", progress=False, **kw
    )
    assert s["segments"] == 3 and s["seeked"] == 0
    _same_video(tmp_path / "one.mkv", tmp_path / "many.mkv")
    assert clips.video_pts(tmp_path / "many.mkv") == clips.video_pts(tmp_path / "one.mkv")


@pytest.mark.parametrize("then", ["distributed", "single"])
def test_interrupted_then_resumed(ray_local, tmp_path, then):
    """A distributed run stopped after its first segment keeps its state; `--resume`, distributed or
    single-process, reuses it and makes the same video. The first attempt at segment 0 dies, so the segment that
    comes back first is a later one: the state holds only segments `ahead` of the contiguous ones."""
    import threading

    from videosr import distributed, pipeline
    from videosr.errors import Interrupted

    clip = clips.make_video(tmp_path / "in.mp4", frames=24, width=16, height=16, options=KEYINT)
    kw = dict(model="bicubic", segment=4, codec="ffv1", progress=False)
    pipeline.upscale(clip, tmp_path / "one.mkv", **kw)
    out = tmp_path / "many.mkv"
    stop = threading.Event()
    open(os.path.join(ray_local["fault"], "kill-0"), "w").close()
    with distributed.ray_runtime() as rt, pytest.raises(Interrupted, match="--resume"):
        distributed.upscale_on(rt, clip, out, on_frames=lambda n: stop.set(), stop=stop, **kw)
    m = _manifest(out)
    made = len(m["segments"]) + len(m.get("ahead", []))
    assert 1 <= made < 6 and not out.exists()
    assert m["segments"] == [] and m["ahead"]  # kept although no segment is in order yet
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(ray_local["fault"], "kill-0"))  # if its task had not started
    if then == "distributed":
        s = distributed.upscale(clip, out, workers=2, resume=True, **kw)
        assert s["reused"] == made and s["segments"] == 6
    else:
        pipeline.upscale(clip, out, resume=True, **kw)
    _same_video(tmp_path / "one.mkv", out)
    assert clips.video_pts(out) == clips.video_pts(tmp_path / "one.mkv")


@pytest.mark.filterwarnings("ignore:.*non-increasing timestamp")
def test_repeated_timestamps_chain_across_segments(ray_local, tmp_path):
    """Timestamps that repeat across a segment boundary: a single pass shifts them on (240, 241, 242, 243); the
    task after the boundary cannot know the shift, so its segment is remade on the real chain."""
    from videosr import distributed, pipeline

    pts = [0, 40, 80, 120, 160, 200, 240, 240, 240, 240, 280, 320]
    clip = clips.make_video(
        tmp_path / "in.mkv", frames=12, width=16, height=16, pts=pts, time_base="1/1000", fmt="matroska"
    )
    kw = dict(model="bicubic", segment=3, codec="ffv1", progress=False)
    pipeline.upscale(clip, tmp_path / "one.mkv", **kw)
    s = distributed.upscale(clip, tmp_path / "many.mkv", workers=2, **kw)
    assert s["remade"] >= 1
    assert clips.video_pts(tmp_path / "many.mkv") == clips.video_pts(tmp_path / "one.mkv")
    _same_video(tmp_path / "one.mkv", tmp_path / "many.mkv")


def test_torch_threads_follow_granted_cpus(ray_local, tmp_path):
    """A task's torch threads are the CPUs Ray grants it: 2 workers x 1 CPU -> 1 thread each; 1 x 2 -> 2."""
    from videosr import distributed

    clip = clips.make_video(tmp_path / "in.mp4", frames=8, width=16, height=16, options=KEYINT)
    s = distributed.upscale(clip, tmp_path / "a.mkv", workers=2, model="fast-x4", segment=8, progress=False)
    assert s["threads"] == [1]
    s = distributed.upscale(
        clip, tmp_path / "b.mkv", workers=1, cpus_per_worker=2, model="fast-x4", segment=8, progress=False
    )
    assert s["threads"] == [2]


def test_worker_sigkilled_mid_task_is_retried(ray_local, tmp_path):
    """The task for segment 1 SIGKILLs its worker after its first frame: Ray retries it, and the output
    has every frame once (the same video as a single-process run)."""
    from videosr import distributed, pipeline

    clip = clips.make_video(tmp_path / "in.mp4", frames=12, width=16, height=16, options=KEYINT)
    pipeline.upscale(clip, tmp_path / "one.mkv", model="bicubic", segment=4, codec="ffv1", progress=False)
    marker = os.path.join(ray_local["fault"], "kill-4")
    open(marker, "w").close()
    s = distributed.upscale(
        clip, tmp_path / "many.mkv", workers=2, model="bicubic", segment=4, codec="ffv1", progress=False
    )
    assert not os.path.exists(marker)
    assert [n for n in os.listdir(ray_local["fault"]) if n.startswith("killed-4-")]  # it did die
    assert s["frames"] == 12
    _same_video(tmp_path / "one.mkv", tmp_path / "many.mkv")
    assert clips.video_pts(tmp_path / "many.mkv") == clips.video_pts(tmp_path / "one.mkv")


def test_cli_upscale_workers_embedded_runtime(tmp_path):
    """`videosr upscale IN OUT --workers 2`: a Ray runtime of its own, started in the process and stopped."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    clip = clips.make_video(
        tmp_path / "in.mkv", frames=8, width=16, height=16, options=KEYINT, subtitles=True, audio=True, fmt="matroska"
    )
    r = _cli(
        "upscale",
        clip,
        tmp_path / "out.mkv",
        "--model",
        "bicubic",
        "--segment",
        "4",
        "--workers",
        "2",
        "--json",
        timeout=170,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["frames"] == 8 and s["segments"] == 2 and "2 local workers" in s["workers"]
    for kind in ("audio", "subtitle"):
        assert clips.packets(tmp_path / "out.mkv", kind) == clips.packets(clip, kind)
    assert len(_frames(tmp_path / "out.mkv")) == 8


def test_cli_unreachable_cluster_and_bad_uses(tmp_path):
    """A --ray-address nothing listens on fails in seconds (exit 2), as do inputs/outputs a distributed run cannot
    take, before any Ray runtime starts."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    clip = clips.make_video(tmp_path / "in.mp4", frames=3, width=16, height=16)
    r = _cli(
        "upscale",
        clip,
        tmp_path / "o.mkv",
        "--model",
        "bicubic",
        "--ray-address",
        f"127.0.0.1:{_free_port()}",
        timeout=60,
    )
    assert r.returncode == 2 and "cannot reach the Ray cluster" in r.stderr, r.stderr
    r = _cli("upscale", clip, tmp_path / "o.y4m", "--model", "bicubic", "--workers", "2", timeout=60)
    assert r.returncode == 2 and "video file output" in r.stderr, r.stderr
    r = _cli("upscale", clip, tmp_path / "o.mkv", "--model", "bicubic", "--worker-cpus", "2", timeout=60)
    assert r.returncode == 2 and "--workers" in r.stderr, r.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith("o")]


def test_cli_batch(ray_local, tmp_path):
    """Files, folders and globs; one output each; a broken file reported without stopping the others; a rerun
    skips what is done; --json."""
    src = tmp_path / "src"
    (src / "more").mkdir(parents=True)
    clips.make_video(src / "a.mp4", frames=5, width=16, height=16)
    clips.make_video(src / "more" / "b.mkv", frames=4, width=16, height=16, fmt="matroska")
    clips.make_video(src / "c.mov", frames=3, width=16, height=16)
    (src / "more" / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out"
    args = (
        "batch",
        src / "a.mp4",
        src / "more",
        str(src / "*.mov"),
        "--out-dir",
        out,
        "--model",
        "bicubic",
        "--ray-address",
        ray_local["address"],
        "--json",
    )
    r = _cli(*args)
    assert r.returncode == 1, r.stderr  # one failed
    res = {os.path.basename(x["input"]): x for x in json.loads(r.stdout)}
    assert {k: v["status"] for k, v in res.items()} == {
        "a.mp4": "done",
        "b.mkv": "done",
        "broken.mp4": "failed",
        "c.mov": "done",
    }
    assert res["broken.mp4"]["exit_code"] == 3 and "broken.mp4" in res["broken.mp4"]["error"]
    assert [len(_frames(out / n)) for n in ("a.mp4", "b.mkv", "c.mov")] == [5, 4, 3]
    r = _cli(*args[:-1])  # the table this time
    assert r.returncode == 1
    assert r.stdout.count("skipped") == 3 + 1 and "failed" in r.stdout  # 3 rows + the totals line
    assert "3 skipped, 1 failed of 4 file(s)" in r.stdout


# ----------------------------------------------------------------------------------------- slow
def _manifest(out):
    from videosr.resume import state_dir

    try:
        with open(os.path.join(state_dir(str(out)), "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_driver_killed_then_resume_reuses_segments(ray_local, tmp_path):
    """SIGKILL the driver (`videosr upscale --ray-address`) once segments are done; `--resume` reuses every
    one of them (in order or ahead) and the output is the single-process one."""
    from videosr import pipeline

    clip = clips.make_video(tmp_path / "in.mp4", frames=48, width=24, height=16, options=KEYINT)
    pipeline.upscale(clip, tmp_path / "one.mkv", model="fast-x4", segment=8, codec="ffv1", progress=False)
    out = tmp_path / "many.mkv"
    cmd = [
        VIDEOSR,
        "upscale",
        clip,
        out,
        "--model",
        "fast-x4",
        "--segment",
        "8",
        "--codec",
        "ffv1",
        "--ray-address",
        ray_local["address"],
        "--workers",
        "1",
        "--quiet",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = _manifest(out)
            if m and len(m.get("segments", [])) + len(m.get("ahead", [])) >= 2:
                break
            assert p.poll() is None, p.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no segment done in time")
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    done = _manifest(out)
    made = len(done["segments"]) + len(done.get("ahead", []))
    assert 2 <= made < 6 and not out.exists()
    r = _cli(
        "upscale",
        clip,
        out,
        "--model",
        "fast-x4",
        "--segment",
        "8",
        "--codec",
        "ffv1",
        "--ray-address",
        ray_local["address"],
        "--resume",
        "--json",
        timeout=170,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["reused"] >= made and s["segments"] == 6
    _same_video(tmp_path / "one.mkv", out)


@pytest.mark.slow
def test_cli_sigterm_keeps_state_then_resume(tmp_path):
    """SIGTERM to `videosr upscale --workers 2` stops it like Ctrl-C (exit 130, resume state kept: Ray's own
    SIGTERM handler is not left in charge); `--resume` then reuses what was done."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    clip = clips.make_video(tmp_path / "in.mp4", frames=64, width=32, height=24, options=KEYINT)
    out = tmp_path / "out.mkv"
    args = ["upscale", clip, out, "--model", "fast-x4", "--segment", "8", "--workers", "2"]
    p = subprocess.Popen([VIDEOSR, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            m = _manifest(out)
            if m and len(m.get("segments", [])) + len(m.get("ahead", [])) >= 1:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "--resume" in err and _manifest(out) is not None and not out.exists()
    r = _cli(*args, "--resume", "--json", timeout=170)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["reused"] >= 1 and s["frames"] == 64
    assert len(_frames(out)) == 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_group(p: subprocess.Popen) -> None:
    """Stop a `ray start --block` and everything it started (its own process group): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


def _wait_started(p: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    buf = b""
    os.set_blocking(p.stdout.fileno(), False)
    while time.monotonic() < deadline:
        chunk = p.stdout.read() or b""
        buf += chunk
        if b"Ray runtime started" in buf:
            return
        if p.poll() is not None:
            raise AssertionError(f"ray start exited: {buf.decode(errors='replace')[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"ray start did not start in {timeout} s: {buf.decode(errors='replace')[-2000:]}")


@pytest.mark.slow
def test_two_node_cluster_survives_losing_a_node(tmp_path):
    """`ray start --head` + `ray start --address` (separate process groups, loopback), a job on both nodes;
    the second node is killed mid-job and the job finishes on the head with the single-process output."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install -e '.[ray]')")
    from videosr import pipeline

    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    port = _free_port()
    # loopback only: no token (Ray 2.5x+ may otherwise make one per head; a real cluster keeps its token auth)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
        "RAY_health_check_timeout_ms": "1000",
    }
    env.pop("VIDEOSR_FAULT_DIR", None)
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block", "--disable-usage-stats"]
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    node = None
    try:
        _wait_started(head, 90)
        node = subprocess.Popen(
            [ray_bin, "start", "--address", f"127.0.0.1:{port}", *common],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _wait_started(node, 90)
        clip = clips.make_video(tmp_path / "in.mp4", frames=48, width=24, height=16, options=KEYINT)
        pipeline.upscale(clip, tmp_path / "one.mkv", model="fast-x4", segment=8, codec="ffv1", progress=False)
        out = tmp_path / "many.mkv"
        job = subprocess.Popen(
            [
                VIDEOSR,
                "upscale",
                clip,
                out,
                "--model",
                "fast-x4",
                "--segment",
                "8",
                "--codec",
                "ffv1",
                "--ray-address",
                f"127.0.0.1:{port}",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                m = _manifest(out)
                if m and len(m.get("segments", [])) + len(m.get("ahead", [])) >= 1:
                    break
                assert job.poll() is None, job.stderr.read().decode()
                time.sleep(0.05)
            _kill_group(node)  # the second node goes away, with its raylet and its workers
            stdout, stderr = job.communicate(timeout=240)
        finally:
            if job.poll() is None:
                job.kill()
        assert job.returncode == 0, stderr.decode()
        summary = json.loads(stdout)  # stdout holds the JSON only (Ray's notes go to stderr)
        assert summary["frames"] == 48
        # the lost node had work: its task failed and was retried on the head (or it finished segments before)
        assert len(summary["nodes"]) == 2 or b"retr" in stderr, stderr.decode()
        _same_video(tmp_path / "one.mkv", out)
    finally:
        if node is not None:
            _kill_group(node)
        _kill_group(head)
