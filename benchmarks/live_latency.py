"""End-to-end latency of `videosr upscale --live` over loopback UDP (issue 17, item 3).

For each case a sender process encodes a synthetic moving pattern (no test-set images) at the case's size and
25 fps, with libx264 ``tune=zerolatency`` as MPEG-TS over udp://127.0.0.1, stamping each frame's send time; the
frame's index is drawn into its pixels as 24 big black/white blocks (12 bits of index, 12 of check). `videosr
upscale --live` runs in a subprocess from that port to another; this process reads its output back over loopback
and stamps each output frame's arrival (its packet demuxed). videosr keeps the source's timestamps, so an output
frame's index is its timestamp x 25 plus an offset, which the indices drawn in the pixels of the first
``VOTES`` decoded output frames fix (and check: they must agree); only those are decoded: on 2 cores, decoding
every 1080p frame in this process fell behind and its backlog, not videosr, made the latency. Per-frame latency =
receive time - send time (CLOCK_MONOTONIC, one machine). Reported per case: p50/p95/p99/max latency, frames sent / received,
sustained fps (frames received per second over the stream), and videosr's own counts (upscaled, passed through,
dropped) and its internal latency (arrival decoded -> sent). The first ``--warmup`` seconds of frames are
excluded from the latency and fps figures (the model's first calls; a receiver joining at the first keyframe),
and so is the last second (an MPEG-TS demuxer hands a video frame over when the next one begins, so the last
frames wait for the end of the stream: --timeout), but not from the counts. The sender writes each PES packet's
length (``omit_video_pes_length=0``), so videosr's demuxer takes a frame as soon as it is complete; videosr's
1080p frames are mostly too large for the 16-bit field, so the receiver takes each about one frame interval
(40 ms) late: part of the figures, as for any MPEG-TS player. Models without weights are skipped with a note (videosr refuses to run them).

    .venv/bin/python benchmarks/live_latency.py [--seconds 20] [--cases x4-480,...] [--json F]

Writes benchmarks/results/live_latency.json. The sender, videosr and the receiver share the CPUs (and, on the
machine measured, with other work: the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT = os.path.join(ROOT, "benchmarks", "results", "live_latency.json")
FPS = 25
BITS = 24  # 12 bits of index, 12 of check
BLOCK = 12  # LR pixels per code block side
CODE_Y = 8  # top of the code row (LR pixels)
TAIL = FPS  # the stream's last second, left out of the figures: a demuxer hands a frame over when the next begins
VOTES = 8  # output frames decoded to tie the output's timestamps to the frame indices drawn in the pixels

# name -> (input width, height, scale, models); MODEL:PRECISION runs it with --precision PRECISION
CASES = {
    "x4-480x270": (480, 270, 4, ["bicubic", "fast-x4-causal", "fast-x4-causal:bf16", "online-x4"]),
    "x2-1280x720": (1280, 720, 2, ["bicubic"]),
    "x4-640x360": (640, 360, 4, ["bicubic"]),
}


def code_bits(index: int) -> list[int]:
    word = (index & 0xFFF) | (_check(index) << 12)
    return [(word >> b) & 1 for b in range(BITS)]


def decode_index(y: np.ndarray, scale: int) -> int | None:
    """The frame index drawn into an upscaled luma plane, or None when the code does not check."""
    word = 0
    for b in range(BITS):
        cx = int((8 + b * (BLOCK + 4) + BLOCK / 2) * scale)
        cy = int((CODE_Y + BLOCK / 2) * scale)
        v = float(y[cy - scale : cy + scale, cx - scale : cx + scale].mean())
        word |= (1 if v > 128 else 0) << b
    index = word & 0xFFF
    return index if (word >> 12) == _check(index) else None


def _check(index: int) -> int:
    return ((index * 2654435761) >> 9) & 0xFFF


def pattern(i: int, w: int, h: int) -> np.ndarray:
    """A moving test pattern (gradients, a sliding bar and a checker patch) with the index code on top."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(w - 1, 1) + 3 * i) % 256
    img[..., 1] = (yy * 255 // max(h - 1, 1) + 2 * i) % 256
    img[..., 2] = ((xx // 8 + yy // 8 + i // 2) % 2) * 160 + 40
    x0 = (4 * i) % w
    img[:, x0 : x0 + 12] = 250
    img[CODE_Y - 4 : CODE_Y + BLOCK + 4, : 8 + BITS * (BLOCK + 4) + 4] = 128
    for b, bit in enumerate(code_bits(i)):
        x = 8 + b * (BLOCK + 4)
        img[CODE_Y : CODE_Y + BLOCK, x : x + BLOCK] = 255 if bit else 0
    return img


def send(port: int, w: int, h: int, seconds: float, out: str) -> None:
    """The sender: frames at FPS as MPEG-TS over UDP; writes {index: send time} to ``out``."""
    import av

    oc = av.open(
        f"udp://127.0.0.1:{port}?pkt_size=1316",
        "w",
        format="mpegts",
        options={"flush_packets": "1", "omit_video_pes_length": "0"},
    )
    vs = oc.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "tune": "zerolatency", "crf": "18"})
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.codec_context.time_base = Fraction(1, FPS)
    vs.codec_context.gop_size = FPS
    frames = [
        av.VideoFrame.from_ndarray(pattern(i, w, h), format="rgb24").reformat(format="yuv420p")
        for i in range(int(seconds * FPS))
    ]
    print("ready", flush=True)  # the frames are made: videosr may start (it waits --timeout for the first)
    while not _bound(port):
        time.sleep(0.02)
    sent = {}
    t0 = time.monotonic() + 0.2
    for i, f in enumerate(frames):
        delay = t0 + i / FPS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f.pts, f.time_base = i, Fraction(1, FPS)
        for p in vs.encode(f):
            oc.mux(p)
        sent[i] = time.monotonic()
    for p in vs.encode(None):
        oc.mux(p)
    oc.close()
    with open(out, "w") as fh:
        json.dump(sent, fh)


def _bound(port: int) -> bool:
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(f":{port:04X}") for line in lines):
            return True
    return False


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, int(np.ceil(q * len(v))) - 1))], 1)


def run_case(
    w: int, h: int, scale: int, model: str, seconds: float, warmup: float, port: int, extra: list[str]
) -> dict:
    import av

    p_in, p_out = port, port + 1
    send_file = os.path.join(ROOT, "benchmarks", "results", f".live_send_{os.getpid()}.json")
    sender = subprocess.Popen(
        [sys.executable, __file__, "--send", str(p_in), str(w), str(h), str(seconds), send_file],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if sender.stdout.readline().strip() != "ready":
        raise RuntimeError("the sender did not start")
    cmd = [
        sys.executable,
        "-m",
        "videosr",
        "upscale",
        "--live",
        f"udp://127.0.0.1:{p_in}",
        f"udp://127.0.0.1:{p_out}",
        "--model",
        model,
        "--scale",
        str(scale),
        "--timeout",
        "4",
        "--json",
        *extra,
    ]
    vs = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    arrived: dict[int, float] = {}  # output frame number (its pts x FPS) -> when its packet had arrived
    votes: list[int] = []  # frame index drawn in the pixels - frame number, for the first decoded frames
    size = None
    try:
        c = av.open(
            f"udp://127.0.0.1:{p_out}?fifo_size=2000000&overrun_nonfatal=1&buffer_size=4194304",
            options={"fflags": "nobuffer", "flags": "low_delay"},
            timeout=(60, 5),
        )
        try:
            for packet in c.demux(video=0):
                now = time.monotonic()
                if packet.pts is None:
                    continue
                k = round(float(packet.pts * packet.time_base) * FPS)
                arrived.setdefault(k, now)
                if len(votes) < VOTES:  # decode only until the pixels have fixed the numbering
                    for f in packet.decode():
                        size = (f.width, f.height)
                        y = np.frombuffer(f.planes[0], np.uint8).reshape(f.planes[0].height, f.planes[0].line_size)
                        i = decode_index(y[:, : f.width], scale)
                        if i is not None:
                            votes.append(i - round(float(f.pts * f.time_base) * FPS))
        except av.error.ExitError:
            pass  # nothing for 5 s: the stream is over
        c.close()
    except av.error.ExitError:
        pass  # no output at all
    offset = max(set(votes), key=votes.count) if votes else None
    recv = {k + offset: t for k, t in arrived.items()} if offset is not None else {}
    sender.wait(timeout=60)
    out, err = vs.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err.strip()[-500:]}
    with open(send_file) as fh:
        sent = {int(k): v for k, v in json.load(fh).items()}
    os.unlink(send_file)
    skip, tail = int(warmup * FPS), len(sent) - TAIL
    lat = [1000 * (recv[i] - sent[i]) for i in sorted(recv) if skip <= i < tail and i in sent]
    steady = [i for i in sorted(recv) if skip <= i < tail]
    span = recv[steady[-1]] - recv[steady[0]] if len(steady) > 1 else 0
    return {
        "input": f"{w}x{h}",
        "output": f"{w * scale}x{h * scale}" if size is None else f"{size[0]}x{size[1]}",
        "scale": scale,
        "model": model,
        "fps_sent": FPS,
        "frames_sent": len(sent),
        "frames_received": len(recv),
        "latency_ms": {
            "p50": _pct(lat, 0.50),
            "p95": _pct(lat, 0.95),
            "p99": _pct(lat, 0.99),
            "max": round(max(lat), 1) if lat else None,
        },
        "sustained_fps": round((len(steady) - 1) / span, 2) if span > 0 else None,
        "received_fraction_after_warmup": round(len(steady) / max(1, tail - skip), 3),
        "index_check": {"decoded": len(votes), "agreeing": votes.count(offset) if votes else 0},
        "videosr": {
            k: summary.get(k)
            for k in (
                "frames_in",
                "frames_out",
                "upscaled",
                "passed_through",
                "dropped",
                "dropped_late",
                "dropped_queue",
                "latency_ms",
                "model_ms",
                "ended",
                "error",
            )
            if k in summary
        },
    }


def _initial_weights(model: str) -> str:
    """A safetensors file of ``model``'s initial weights (a temporary file under benchmarks/results/)."""
    from safetensors.torch import save_file

    from videosr.models import create_model

    path = os.path.join(ROOT, "benchmarks", "results", f".live_{model}_initial.safetensors")
    save_file({k: v.contiguous() for k, v in create_model(model, pretrained=False).state_dict().items()}, path)
    return path


def machine() -> dict:
    """`videosr bench`'s description of the machine (videosr.bench.machine) and the load average now."""
    from videosr.bench import machine as describe

    return {**describe(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--send", nargs=5, metavar=("PORT", "W", "H", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=20.0, help="stream length per case (default 20)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of frames left out of the latency figures")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--models", default=None, help="comma-separated: only these models")
    ap.add_argument("--port", type=int, default=47100)
    ap.add_argument(
        "--untrained",
        action="store_true",
        help="time models that ship no weights yet with their initial weights (speed, not quality)",
    )
    ap.add_argument("--json", default=RESULT)
    ap.add_argument("videosr_args", nargs="*", help="extra `videosr upscale` options (after --)")
    a = ap.parse_args()
    if a.send:
        port, w, h, seconds, out = a.send
        send(int(port), int(w), int(h), float(seconds), out)
        return
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from videosr.models import VARIANTS

    only = set(a.models.split(",")) if a.models else None
    results = {
        "benchmark": "live_latency",
        "command": " ".join(["benchmarks/live_latency.py", *sys.argv[1:]]),
        "seconds_per_case": a.seconds,
        "warmup_seconds": a.warmup,
        "machine_before": machine(),
        "cases": [],
        "skipped": [],
    }
    port = a.port
    for name in a.cases.split(","):
        w, h, scale, models = CASES[name]
        for entry in models:
            model, _, precision = entry.partition(":")
            if only and model not in only and entry not in only:
                continue
            v = VARIANTS.get(model)
            extra, weights = list(a.videosr_args), "shipped" if v is not None and v.weights else None
            if precision:
                extra += ["--precision", precision]
            if v is not None and v.arch != "interp" and v.weights is None:
                if not a.untrained:
                    results["skipped"].append(
                        {
                            "case": name,
                            "model": model,
                            "why": "no weights shipped yet "
                            "(videosr refuses a weightless model; --untrained times it anyway)",
                        }
                    )
                    print(f"{name} {model}: skipped (no weights yet)", file=sys.stderr)
                    continue
                extra += ["--weights", _initial_weights(model)]
                weights = "initial (untrained) weights: the latency and speed of the architecture, not its quality"
            print(f"{name} {entry} ...", file=sys.stderr, flush=True)
            load = [round(x, 2) for x in os.getloadavg()]
            row = {
                "case": name,
                "load_average_before": load,
                **({"weights": weights} if weights else {}),
                "precision": precision or "auto",
                **run_case(w, h, scale, model, a.seconds, a.warmup, port, extra),
            }
            port += 2
            results["cases"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    results["machine_after"] = machine()
    for model in VARIANTS:
        tmp = os.path.join(ROOT, "benchmarks", "results", f".live_{model}_initial.safetensors")
        if os.path.exists(tmp):
            os.unlink(tmp)
    with open(a.json, "w") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
    print(f"wrote {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
