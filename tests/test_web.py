"""`videosr serve`: the job store/queue (no Gradio), the page's API through ``gradio_client``, the safety rules
(loopback by default, files served only from the jobs folder, bad uploads), and one end-to-end run in a real
headless browser (Debian's chromium driven by Playwright; skipped with the reason when absent).

Set VIDEOSR_SCREENSHOTS=1 to write the browser test's two screenshots into docs/ (they are committed)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from videosr.web.jobs import JobError, JobQueue, JobStore, run_upscale, safe_ext, safe_stem

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # pandas 3 notes from gradio

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "videosr" / "assets" / "sample.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _video(path):
    """(frames, width, height, audio streams) of a video file, decoded through the library."""
    from videosr.io import open_input

    with open_input(str(path)) as r:
        n = sum(1 for _ in r)
        return n, r.info.width, r.info.height, r.info.audio_streams


# -- no Gradio needed --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, stem, ext",
    [
        ("clip.mp4", "clip", ".mp4"),
        ("../../etc/passwd", "passwd", ".video"),
        ("$(touch pwned); rm -rf ~.mkv", "touch_pwned_rm_-rf", ".mkv"),
        ("..\\..\\win.MOV", "win", ".mov"),
        (".hidden", "hidden", ".video"),
        ("", "video", ".video"),
        ("a" * 300 + ".webm", "a" * 60, ".webm"),
    ],
)
def test_names_from_uploads_are_sanitized(name, stem, ext):
    assert safe_stem(name) == stem
    assert safe_ext(name) == ext


def test_store_refuses_ids_that_are_not_its_own(tmp_path):
    store = JobStore(tmp_path)
    for bad in ["../../etc", "/etc/passwd", "0123456789ab/../..", "", None, "ABCDEF012345", "0" * 13]:
        with pytest.raises(JobError):
            store.job_dir(bad)
        with pytest.raises(JobError):
            store.upload_path(bad)
        with pytest.raises(JobError):
            store.output_path(bad)


def _upload(store, src=SAMPLE, name="sample.mp4"):
    uid, dst = store.new_upload_path(name)
    shutil.copyfile(src, dst)
    return uid


def test_queue_runs_cancels_and_records(tmp_path):
    store = JobStore(tmp_path)
    gate = threading.Event()
    calls = []

    def runner(inp, out, opts, on_frame):
        calls.append(opts["model"])
        for n in range(1, 1000):
            if opts["model"] == "slow":
                gate.wait(0.01)
            on_frame(n)
            if n == 5 and opts["model"] != "slow":
                break
        Path(out).write_bytes(b"x")
        return {"frames": 5, "model": opts["model"], "scale": 2, "seconds": 0.1, "fps": 50.0}

    q = JobQueue(store, runner=runner)
    q.start()
    slow = q.submit(_upload(store), name="a.mp4", options={"model": "slow", "scale": 2}, info={"frames": 999})
    queued = q.submit(_upload(store), name="b.mp4", options={"model": "fast", "scale": 2}, info={"frames": 5})
    deadline = time.monotonic() + 60
    while store.get(slow["id"])["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.get(queued["id"])["state"] == "queued"  # one job at a time
    assert "cancelled" in q.cancel(queued["id"])
    assert "cancelling" in q.cancel(slow["id"])
    assert q.wait(slow["id"], 30)["state"] == "cancelled"
    third = q.submit(_upload(store), name="c.mp4", options={"model": "fast", "scale": 2}, info={"frames": 5})
    done = q.wait(third["id"], 10)
    assert done["state"] == "done" and done["result"]["frames"] == 5
    assert calls == ["slow", "fast"]  # the cancelled queued job never ran
    assert store.output_path(third["id"]).endswith("c_x2.mp4")
    with pytest.raises(JobError, match="cancelled"):
        store.output_path(slow["id"])
    assert os.listdir(store.uploads_dir) == []  # every upload moved into its job
    q.stop()


def test_failed_job_keeps_its_message(tmp_path):
    store = JobStore(tmp_path)

    def runner(inp, out, opts, on_frame):
        raise ValueError("boom\nsecond line")

    q = JobQueue(store, runner=runner)
    q.start()
    job = q.wait(q.submit(_upload(store), name="x.mp4", options={"scale": 2}, info={})["id"], 10)
    assert job["state"] == "failed" and job["error"] == "boom"
    q.stop()


def test_job_interrupted_by_a_restart_resumes(tmp_path):
    """A server stopping mid-job leaves its committed segments; the next server continues from them."""
    store = JobStore(tmp_path / "jobs")
    seen = []

    def first_server(inp, out, opts, on_frame):
        def hook(n):
            seen.append(n)
            if n >= 40:
                q1._stopping.set()  # what a shutdown does, at a known frame
            on_frame(n)

        return run_upscale(inp, out, opts, hook)

    q1 = JobQueue(store, runner=first_server)
    q1.start()
    opts = {"model": "bicubic", "scale": 2, "codec": "libx264", "segment": 24, "preset": "ultrafast"}
    job = q1.submit(_upload(store), name="sample.mp4", options=opts, info={"frames": 72})
    deadline = time.monotonic() + 150
    while store.get(job["id"])["state"] != "queued" or not seen:
        rec = store.get(job["id"])
        assert rec["state"] in ("queued", "running"), rec
        assert time.monotonic() < deadline, (rec, seen[-1:])
        time.sleep(0.05)
    q1.stop()
    store.update(job["id"], state="running")  # as a killed server leaves it
    state = [d for d in os.listdir(store.job_dir(job["id"])) if d.endswith(".videosr-resume")]
    assert state, "the interrupted job kept its resume state"

    q2 = JobQueue(store)
    assert q2.start() == [job["id"]]
    done = q2.wait(job["id"], 120)
    assert done["state"] == "done", done
    assert done["resumed_from"] in (24, 48) and done["runs"] == 2
    frames, w, h, audio = _video(store.output_path(job["id"]))
    assert (frames, w, h, audio) == (72, 640, 360, 1)
    q2.stop()


def test_model_facts_come_from_the_committed_measurements():
    from videosr.web import media

    info = media.probe(str(SAMPLE))
    assert (info["width"], info["height"], info["frames"], info["audio_streams"]) == (320, 180, 72, 1)
    rows = {r["model"]: r for r in media.model_facts(4, info)}
    assert rows["fast-x4"]["vid4_psnr_y"] == pytest.approx(24.39, abs=0.01)
    assert rows["fast-x4"]["speed"] and rows["fast-x4"]["estimate_s"] > 0
    assert rows["quality-x4"]["estimate_s"] > rows["fast-x4"]["estimate_s"]  # slower model, longer estimate
    assert "fast-x2" not in rows and "bicubic" in rows
    assert "Vid4" in media.model_label(rows["fast-x4"]) and "for this clip" in media.model_label(rows["fast-x4"])
    assert "quality-x4" in media.tables_markdown()
    assert any(name == "fast-x4" for name, _ in media.model_cards())


def test_preview_far_into_a_clip_seeks_to_the_same_frames(make_clip, monkeypatch):
    import numpy as np

    from videosr.web import media

    clip = make_clip("long.mp4", frames=320, width=64, height=48, options={"g": "50"})
    monkeypatch.setattr(media, "SEEK_AFTER", 10**9)
    slow = media.read_frames(clip, 300, 1, 1)
    monkeypatch.setattr(media, "SEEK_AFTER", 100)
    fast = media.read_frames(clip, 300, 1, 1)
    assert media._seek_frames(clip, 300, 1, 1, fast[3]) is not None  # it did seek
    assert fast[1:3] == slow[1:3] == (1, 300) and len(fast[0]) == len(slow[0]) == 3
    for a, b in zip(fast[0], slow[0]):
        assert np.array_equal(a, b)
    assert media.read_frames(clip, 5000, 1, 1)[2] == 319  # past the end: the last frame


def test_serve_refuses_other_hosts_without_auth(capsys):
    from videosr.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--jobs", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert "--auth USER:PASS" in err and "0.0.0.0" in err
    assert main(["serve", "--auth", "nopassword"]) == 2
    assert "USER:PASS" in capsys.readouterr().err
    assert main(["serve", "--max-upload", "lots"]) == 2


def test_auth_takes_user_pass_or_a_token():
    from videosr.cli.serve import is_loopback, parse_auth
    from videosr.errors import UsageError

    assert parse_auth("ann:pa:ss") == ("ann", "pa:ss")
    check = parse_auth("t0ken-0123456789")
    assert check("anyone", "t0ken-0123456789") and not check("anyone", "t0ken-012345678")
    for bad in ("short", ":pass", "user:"):
        with pytest.raises(UsageError):
            parse_auth(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")


def test_serve_without_the_extra_says_how_to_get_it(monkeypatch, capsys):
    from videosr.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve"]) == 2
    assert "pip install -e '.[web]'" in capsys.readouterr().err


# -- through the page's API (gradio_client) ------------------------------------------------------------------
def _need(module: str, reason: str):
    """The module, or a skip with ``reason`` (any ImportError: absent or broken)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need("gradio", "the web extra is not installed (pip install -e '.[web]')")
    _need("gradio_client", "the web extra is not installed (pip install -e '.[web]')")
    from videosr.web.app import launch

    root = tmp_path_factory.mktemp("jobs")
    port = _free_port()
    old = os.environ.get("GRADIO_TEMP_DIR")
    app, demo = launch(str(root), port=port, block=False, quiet=True, max_upload="5mb")
    yield {"app": app, "url": f"http://127.0.0.1:{port}/", "root": Path(app.root)}
    demo.close()
    app.queue.stop(5)
    if old is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = old


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server["url"], verbose=False, download_files=str(tmp_path / "downloads"))


def test_api_upload_preview_run_download(server, client, tmp_path):
    from gradio_client import handle_file

    probe, message, *_ = client.predict(handle_file(str(SAMPLE)), 4, api_name="/upload")
    assert "320x180" in probe and "24 fps" in probe and "1 audio stream" in probe and "h264" in message
    slider, crop, note = client.predict(4, "fast-x4", "bicubic", 1.5, 50, 50, api_name="/preview")
    from PIL import Image

    before, after = (Image.open(p) for p in slider)
    assert before.size == after.size == (1280, 720)
    assert Image.open(crop).size == (256 * 2 + 4, 256)
    assert "frame 36" in note and "fast-x4" in note
    job_id, text, _ = client.predict(2, "bicubic", "libx264", 23, "ultrafast", api_name="/run")
    assert "queued" in text
    job = server["app"].queue.wait(job_id, 150)
    assert job["state"] == "done", job
    assert "done" in client.predict(job_id, api_name="/status")
    rows = client.predict(api_name="/jobs")
    assert any(r[0] == job_id and r[1] == "done" for r in rows)
    msg, path = client.predict(job_id, api_name="/download")
    assert "ready" in msg and Path(path).name == "sample_x2.mp4"
    assert _video(path) == (72, 640, 360, 1)
    # each codec's own CRF range and presets, as `videosr upscale` checks them: no job is queued
    _, text, _ = client.predict(2, "bicubic", "libx264", 60, "ultrafast", api_name="/run")
    assert "0..51" in text and "queued" not in text
    _, text, _ = client.predict(2, "bicubic", "libsvtav1", 60, "ultrafast", api_name="/run")
    assert "preset" in text and "0..13" in text and "queued" not in text


BAD_UPLOADS = {
    "empty.mp4": b"",
    "notes.mp4": b"this is not a video\n" * 50,
    "$(touch PWNED).txt": b"\x00\x01garbage" * 100,
}


def test_bad_uploads_are_a_message_and_leave_nothing(server, client, tmp_path):
    from gradio_client import handle_file

    root = server["root"]
    jobs_before = sorted(os.listdir(root / "jobs"))
    uploads_before = sorted(os.listdir(root / "uploads"))
    # an mp4 with its index in front, cut short: opens, but its data ends early
    import av

    full = tmp_path / "front.mp4"
    with av.open(str(SAMPLE)) as src, av.open(str(full), "w", options={"movflags": "faststart"}) as out:
        m = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for p in src.demux():
            if p.dts is not None:
                p.stream = m[p.stream.index]
                out.mux(p)
    files = dict(BAD_UPLOADS)
    files["cut.mp4"] = full.read_bytes()[: full.stat().st_size * 6 // 10]
    for name, data in files.items():
        p = tmp_path / name
        p.write_bytes(data)
        probe, message, *_ = client.predict(handle_file(str(p)), 4, api_name="/upload")
        assert message.startswith("⚠️"), (name, message)
        assert "Traceback" not in message and 'File "' not in message
        assert "not a video" in message or "not a usable video" in message or "truncated" in message, message
        assert str(root) not in message  # no server paths
    assert not (Path.cwd() / "PWNED").exists()
    assert sorted(os.listdir(root / "uploads")) == uploads_before
    assert sorted(os.listdir(root / "jobs")) == jobs_before
    # a run with nothing uploaded in this session is a message too
    _, text, _ = client.predict(4, "bicubic", "libx264", None, "", api_name="/run")
    assert text.startswith("⚠️") and "upload" in text


def test_uploads_over_the_limit_are_refused(server, client, tmp_path):
    from gradio_client import handle_file

    before = sorted(os.listdir(server["root"] / "uploads"))
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (6 << 20))  # the fixture's limit is 5 MB
    with pytest.raises(Exception) as e:
        client.predict(handle_file(str(big)), 4, api_name="/upload")
    assert "Traceback" not in str(e.value)
    assert sorted(os.listdir(server["root"] / "uploads")) == before


def test_files_are_served_only_from_the_jobs_folder(server, client, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    outside = server["root"].parent / "outside.txt"
    outside.write_text("outside")
    base = server["url"] + "gradio_api/file="
    for target in [
        str(secret),
        "/etc/passwd",
        str(outside),
        f"{server['root']}/../outside.txt",
        str(ROOT / "pyproject.toml"),
        str(SAMPLE),
        "../../../etc/passwd",
    ]:
        try:
            with urllib.request.urlopen(base + target, timeout=10) as r:
                body = r.read()
            assert b"secret" not in body and b"root:" not in body and b"outside" not in body, target
            pytest.fail(f"served {target}")
        except urllib.error.HTTPError as e:
            assert e.code in (403, 404), (target, e.code)
    # the API takes job ids, never paths
    for jid in ["../../etc/passwd", str(secret), "0" * 12]:
        msg, path = client.predict(jid, api_name="/download")
        assert msg.startswith("⚠️") and path is None


def test_page_stays_responsive_while_a_job_runs(server, client):
    from gradio_client import handle_file

    client.predict(handle_file(str(SAMPLE)), 2, api_name="/upload")
    job_id, _, _ = client.predict(2, "fast-x2", "libx264", None, "ultrafast", api_name="/run")
    app = server["app"]
    deadline = time.monotonic() + 60
    while app.store.get(job_id)["state"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    worst = 0.0
    for _ in range(5):
        t = time.perf_counter()
        with urllib.request.urlopen(server["url"] + "config", timeout=10) as r:
            assert r.status == 200
        client.predict(job_id, api_name="/status")
        worst = max(worst, time.perf_counter() - t)
    assert worst < 5.0, worst
    assert "cancel" in client.predict(job_id, api_name="/cancel")
    assert app.queue.wait(job_id, 60)["state"] in ("cancelled", "done")


def test_auth_is_required_when_set(server, tmp_path):
    from gradio_client import Client

    from videosr.web.app import launch

    port = _free_port()
    app, demo = launch(str(tmp_path / "jobs"), port=port, block=False, quiet=True, auth=("ann", "s3cret"))
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "config", timeout=10)
        assert e.value.code in (401, 403)
        with pytest.raises(ValueError, match="(?i)credentials|login"):
            Client(url, verbose=False, auth=("ann", "wrong"))
        c = Client(url, verbose=False, auth=("ann", "s3cret"), download_files=str(tmp_path / "dl"))
        assert c.predict(api_name="/jobs") == []
    finally:
        demo.close()
        app.queue.stop(2)
        os.environ["GRADIO_TEMP_DIR"] = str(server["root"])


# -- a real browser -----------------------------------------------------------------------------------------
def _screenshot(page, name: str, tmp_path: Path) -> Path:
    """A small PNG (at most 900 px wide, 256 colours); into docs/ with VIDEOSR_SCREENSHOTS=1."""
    from PIL import Image

    raw = tmp_path / f"raw-{name}"
    page.screenshot(path=str(raw), full_page=True)
    img = Image.open(raw).convert("RGB")
    if img.width > 900:
        img = img.resize((900, round(img.height * 900 / img.width)), Image.LANCZOS)
    img = img.quantize(colors=256, method=Image.MEDIANCUT)
    out = (ROOT / "docs" / name) if os.environ.get("VIDEOSR_SCREENSHOTS") else tmp_path / name
    img.save(out, optimize=True)
    return out


def test_browser_upload_preview_slide_run_download(request, tmp_path):
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (CI installs Debian's: apt-get install chromium chromium-driver)")
    sync_api = _need("playwright.sync_api", "playwright is not installed (the [web] extra)")
    server = request.getfixturevalue("server")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(server["url"])
            msg = page.locator("#videosr-msg")
            empty = tmp_path / "empty.mp4"
            empty.write_bytes(b"")
            page.locator("#videosr-upload input[type=file]").set_input_files(str(empty))
            sync_api.expect(msg).to_contain_text("0 bytes", timeout=60_000)  # a message in the page
            assert "Traceback" not in page.content()
            page.locator("#videosr-upload button[aria-label='Clear']").first.click()
            page.locator("#videosr-upload input[type=file]").set_input_files(str(SAMPLE))
            sync_api.expect(msg).to_contain_text("sample", timeout=60_000)
            sync_api.expect(page.locator("#videosr-probe")).to_contain_text("320x180")
            page.locator("#videosr-preview").click()
            sync_api.expect(msg).to_contain_text("computed in", timeout=90_000)
            slider = page.locator("#videosr-slider")
            images = slider.locator("img[data-testid=imageslider-image]")
            sync_api.expect(images.nth(1)).to_be_visible()
            handle = slider.locator("[data-testid=slider]")
            handle.scroll_into_view_if_needed()
            img_box = images.first.bounding_box()
            # a real mouse drag (press on the handle, move, release) to 30% of the image's width
            handle.drag_to(
                images.first, target_position={"x": img_box["width"] * 0.3, "y": img_box["height"] / 2}, force=True
            )
            clip = images.nth(1).evaluate("e => e.style.clipPath")
            left = float(clip.split()[-1].rstrip(")").rstrip("%px"))
            assert "%" in clip and left < 40, clip  # the model's side now starts at ~30%: the handle moved
            sync_api.expect(page.locator("#videosr-crop img")).to_be_visible()
            shot1 = _screenshot(page, "web-preview.png", tmp_path)
            page.locator("#videosr-scale").get_by_text("2", exact=True).click()
            page.wait_for_timeout(1500)  # the model list follows the scale
            page.locator("#videosr-run").click()
            status = page.locator("#videosr-status")
            sync_api.expect(status).to_contain_text("done", timeout=150_000)
            link = page.locator("#videosr-result a").first
            sync_api.expect(link).to_be_visible()
            shot2 = _screenshot(page, "web-job.png", tmp_path)
            with page.expect_download() as dl:
                link.click()
            target = tmp_path / "downloaded.mp4"
            dl.value.save_as(str(target))
        finally:
            browser.close()
    assert _video(target) == (72, 640, 360, 1)
    for shot in (shot1, shot2):
        assert shot.stat().st_size < 400_000
