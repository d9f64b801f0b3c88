"""`videosr serve` preview latency: one 480x270 frame at x4 with fast-x4 (vs bicubic), from the click to the
before/after images shown in a real headless browser (Debian's chromium driven by Playwright), and through the
API (``gradio_client``: the request, both models, the JPEG/PNG files and their download). Target: < 2 s in the page.

    .venv/bin/python benchmarks/web_preview.py [--repeat 7] [--out benchmarks/results/web_preview_480x270_x4.json]

The clip is the bundled sample resized to 480x270 (72 frames, 24 fps). Each repeat previews another time of
the clip (no result cache exists anyway). The load average of the machine is recorded with the result: on a
shared 2-core machine other work inflates these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "videosr" / "assets" / "sample.mp4"


def make_clip(path: Path, width: int = 480, height: int = 270) -> None:
    import av
    from PIL import Image

    with av.open(str(SAMPLE)) as src, av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(24))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "18"}
        for f in src.decode(video=0):
            img = Image.fromarray(f.to_ndarray(format="rgb24")).resize((width, height), Image.BICUBIC)
            for p in vs.encode(av.VideoFrame.from_image(img)):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)


def main() -> int:
    from videosr._alloc import keep_freed_memory

    keep_freed_memory()  # as the videosr CLI runs (videosr._alloc): freed frames reused, not page-faulted in
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "web_preview_480x270_x4.json"))
    args = ap.parse_args()

    from gradio_client import Client, handle_file

    from videosr.models.auto import cpu_kind
    from videosr.web.app import launch

    load_before = [round(x, 2) for x in os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="videosr-webbench-"))
    clip = work / "clip_480x270.mp4"
    make_clip(clip)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, demo = launch(str(work / "jobs"), port=port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    times = [round(0.3 + i * (2.4 / max(1, args.repeat)), 2) for i in range(args.repeat)]
    result: dict = {
        "benchmark": "web_preview",
        "clip": "480x270, 72 frames, 24 fps (sample resized)",
        "scale": 4,
        "model": "fast-x4",
        "compare": "bicubic",
        "target_s": 2.0,
    }
    try:
        client = Client(url, verbose=False, download_files=str(work / "dl"))
        client.predict(handle_file(str(clip)), 4, api_name="/upload")
        client.predict(4, "fast-x4", "bicubic", 0.1, 50, 50, api_name="/preview")  # warm-up: loads the models
        api, server = [], []
        for t in times:
            t0 = time.perf_counter()
            note = client.predict(4, "fast-x4", "bicubic", t, 50, 50, api_name="/preview")[2]
            api.append(round(time.perf_counter() - t0, 3))
            server.append(float(note.rsplit("computed in ", 1)[1].split(" s")[0]))
        result["api_s"] = {
            "runs": api,
            "median": round(statistics.median(api), 3),
            "what": "gradio_client: request -> both images and the crop downloaded",
        }
        result["server_s"] = {
            "runs": server,
            "median": round(statistics.median(server), 3),
            "what": "decode + both models + conversion, as the page reports it",
        }
        chromium = shutil.which("chromium")
        if chromium:
            from playwright.sync_api import expect, sync_playwright

            page_s = []
            with sync_playwright() as p:
                b = p.chromium.launch(
                    executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                page = b.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(60_000)
                page.goto(url)
                page.locator("#videosr-upload input[type=file]").set_input_files(str(clip))
                expect(page.locator("#videosr-probe")).to_contain_text("480x270", timeout=60_000)
                for i, t in enumerate([0.1] + times):
                    page.evaluate(
                        """t => { const s = document.querySelector('#videosr-time input[type=number]');
                        s.value = t; s.dispatchEvent(new Event('input', {bubbles: true}));
                        s.dispatchEvent(new Event('change', {bubbles: true})); s.blur(); }""",
                        t,
                    )
                    page.wait_for_timeout(300)
                    old = page.locator("#videosr-slider img").first.get_attribute("src") if i else None
                    t0 = time.perf_counter()
                    page.locator("#videosr-preview").click()
                    page.wait_for_function(
                        """old => { const im = document.querySelectorAll('#videosr-slider img');
                            return im.length >= 2 && im[0].src !== old && [...im].every(x => x.complete
                            && x.naturalWidth > 0); }""",
                        arg=old,
                        timeout=60_000,
                    )
                    if i:  # the first one is a warm-up in the page
                        page_s.append(round(time.perf_counter() - t0, 3))
                b.close()
            result["page_s"] = {
                "runs": page_s,
                "median": round(statistics.median(page_s), 3),
                "what": "click on Preview -> both slider images loaded in headless chromium",
            }
        else:
            result["page_s"] = None
            result["note"] = "no chromium: only the API latency was measured"
    finally:
        demo.close()
        app.queue.stop(2)
    loadavg_after = [round(x, 2) for x in os.getloadavg()]
    import gradio

    from videosr.bench import machine

    result["machine"] = {
        **machine(),
        "cpu_kind": cpu_kind(),
        "python": platform.python_version(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg_after,
        "gradio": gradio.__version__,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
