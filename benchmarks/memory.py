"""Peak memory (RSS) of `videosr upscale`, measured on the real executable in a subprocess.

* 100 vs 1000 frames of the same clip: memory must not grow with video length (bounded queues, no frame
  folders, segments streamed to disk): the 1000-frame peak must be within 10% of the 100-frame peak.
* a 4K input (3840x2160, a few frames, x2 bicubic, ``--tile auto``): the figure to expect for big frames.

Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (exact for that process, whatever ran before).
Writes JSON (default ``benchmarks/memory.json``)::

    .venv/bin/python benchmarks/memory.py [--out FILE] [--size 320x180] [--skip-4k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``videosr ARGS``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "videosr", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"videosr {' '.join(args)} failed ({proc.returncode}): {err}")
    return ru.ru_maxrss / 1024, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "memory.json"))
    ap.add_argument("--size", default="320x180", help="frame size of the 100/1000-frame clip")
    ap.add_argument("--frames-4k", type=int, default=3)
    ap.add_argument("--skip-4k", action="store_true")
    a = ap.parse_args()
    import clips

    from videosr.bench import machine

    w, h = map(int, a.size.split("x"))
    res: dict = {"machine": {**machine(), "python": platform.python_version(), "load_avg": os.getloadavg()}}
    with tempfile.TemporaryDirectory() as d:
        common = ["--model", "bicubic", "--scale", "2", "--quiet"]
        for n in (100, 1000):
            src = clips.make_video(os.path.join(d, f"in{n}.mp4"), frames=n, width=w, height=h, audio=True)
            args = ["upscale", src, os.path.join(d, f"out{n}.mp4"), *common]
            mib, sec = peak_rss(args)
            res[f"frames_{n}"] = {
                "size": f"{w}x{h}",
                "peak_rss_mib": round(mib, 1),
                "seconds": round(sec, 1),
                "command": "videosr " + " ".join(args).replace(d, "$TMP"),
            }
            print(f"{n} frames {w}x{h}: peak RSS {mib:.0f} MiB ({sec:.1f} s)", flush=True)
        ratio = res["frames_1000"]["peak_rss_mib"] / res["frames_100"]["peak_rss_mib"]
        res["ratio_1000_over_100"] = round(ratio, 3)
        res["within_10_percent"] = ratio <= 1.10
        if not a.skip_4k:
            src = clips.make_video(os.path.join(d, "in4k.mp4"), frames=a.frames_4k, width=3840, height=2160)
            args = ["upscale", src, os.path.join(d, "out8k.mp4"), *common, "--tile", "auto"]
            mib, sec = peak_rss(args)
            res["4k_x2"] = {
                "input": "3840x2160",
                "output": "7680x4320",
                "frames": a.frames_4k,
                "peak_rss_mib": round(mib, 1),
                "seconds": round(sec, 1),
                "command": "videosr " + " ".join(args).replace(d, "$TMP"),
            }
            print(f"4K x2 ({a.frames_4k} frames): peak RSS {mib:.0f} MiB ({sec:.1f} s)", flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
