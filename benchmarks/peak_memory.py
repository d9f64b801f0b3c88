"""Peak memory (max RSS) of the first command a new user runs: ``videosr upscale`` of the bundled sample
with the default ``--model auto`` (320x180 -> 1280x720 x4, 72 frames), in a subprocess.

Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (exact for that process). Each run also records
the model ``--model auto`` took (from ``--json``), the wall time and the torch thread count. Writes JSON
(default ``benchmarks/results/peak_memory.json``)::

    .venv/bin/python benchmarks/peak_memory.py [--out FILE] [--repeat N] [--label TEXT] [-- EXTRA ARGS]
    .venv/bin/python benchmarks/peak_memory.py --models [--repeat N] [--label TEXT]   # time `videosr models`

EXTRA ARGS go to ``videosr upscale`` (e.g. ``-- --model fast-x4``; ``-- --pix-fmt yuv444p`` takes the RGB path,
as 10-bit, 4:2:2/4:4:4 and PNG outputs do, instead of the 4:2:0 planes path). To measure other code (a
before/after pair), put its ``src`` first on PYTHONPATH: the child ``python -m videosr`` inherits it.
``--label`` names the entry in the JSON (runs with other labels already in the file are kept, so a
before/after pair can sit side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "src", "videosr", "assets", "sample.mp4")


def run_once(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "x.mp4")
        args = [sys.executable, "-m", "videosr", "upscale", SAMPLE, out, "--overwrite", "--json", *extra]
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        if code != 0:
            raise SystemExit(f"videosr upscale failed ({code}): {stderr.strip()}")
        summary = json.loads(stdout.strip().splitlines()[-1])
    return {
        "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
        "seconds": round(wall, 1),
        "model": summary["model"],
        "frames": summary["frames"],
    }


def time_models(repeat: int) -> dict:
    """Wall and CPU seconds and peak RSS of ``videosr models`` (it used to count GFLOPs on every call)."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "videosr", "models"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode()
        proc.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"videosr models failed: {err.strip()}")
        runs.append(
            {
                "seconds": round(wall, 2),
                "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 2),
                "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),
            }
        )
    return {
        "command": "videosr models",
        "runs": runs,
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "results", "peak_memory.json"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--label", default="default")
    ap.add_argument("--note", default="", help="what code ran (e.g. 'HEAD before the fix, via PYTHONPATH')")
    ap.add_argument("--models", action="store_true", help="time `videosr models` instead (entry 'models/LABEL')")
    ap.add_argument("extra", nargs="*", help="extra arguments for videosr upscale (after --)")
    a = ap.parse_args()
    if a.models:
        entry = {**time_models(a.repeat), "note": a.note, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _save(a.out, f"models/{a.label}", entry)
        print(json.dumps(entry, indent=2))
        return
    runs = [run_once(a.extra) for _ in range(a.repeat)]
    from videosr.bench import machine  # imports torch (harmless: the peak RSS measured is the children's)

    entry = {
        "command": "videosr upscale src/videosr/assets/sample.mp4 OUT.mp4 --overwrite --json " + " ".join(a.extra),
        "input": "320x180 x4 -> 1280x720, 72 frames",
        "model": runs[0]["model"],
        "note": a.note,
        "runs": runs,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "machine": {
            **machine(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save(a.out, a.label, entry)
    print(json.dumps(entry, indent=2))


def _save(path: str, label: str, entry: dict) -> None:
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data[label] = entry
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
