"""int8 vs fp32 vs bf16: model-stage ms per 480x270 -> 1920x1080 frame, on this CPU, in one run.

    .venv/bin/python benchmarks/int8_speed.py [--model fast-x4] [--frames 24] [--rounds 7]
        [--json benchmarks/results/int8_speed.json]

The model stage as `videosr upscale` runs it on 4:2:0 video (``Engine.stream`` with ``planes``: the model
reconstructs the output's Y, U, V planes; `videosr bench`'s "model planes" path), on the frames of `videosr
bench`'s clip (the sample's content at 480x270), with the engine's threads (all cores) and the CLI's allocator
setting (``videosr._alloc.keep_freed_memory``; before 2026-12-03 evening this script ran without it, which
page-faulted every frame's large tensors in again and inflated the float work int8 leaves alone). Flows:

* ``fp32``: float32, channels_last (`--precision fp32`);
* ``bf16``: autocast bf16, channels_last (`--precision bf16`; the default where the CPU has AMX);
* ``int8_ort``: the shipped flow (`--precision int8`, videosr.int8): the conv trunk statically quantized by
  ONNX Runtime (QDQ, calibrated on the training set), run by ONNX Runtime; the rest float32;
* ``int8_onednn``: the same trunk on PyTorch's x86 int8 kernels (``torch.ops.onednn.qconv_pointwise``: what
  inductor lowers PT2E's X86InductorQuantizer graphs to; torch 2.13 itself no longer ships PT2E, now in torchao),
  called eagerly: per-channel int8 weights, uint8 activations with ranges calibrated here on the training set
  (datasets/vsr; the flow is skipped where it is not built). oneDNN has no fused LeakyReLU for int8
  convolutions, so each conv writes float32 and the activation + requantization are separate passes.

Each pass runs at the engine's threads (all cores), then again at one thread (on a shared machine OpenMP
threads spin at barriers while the other core is busy, which can cost the 2-thread runs several times).
Every round runs every flow once over the clip (interleaved, so load changes hit all flows alike) after one
warm-up pass each, then the trunk alone (feat, fuse, body: the part int8 changes) on one engine chunk
(10 frames, 8 kept); reported: median and best of the rounds in wall ms per frame, and process CPU ms per frame.
The machine is shared (load average recorded before and after each round): compare flows within one run only.
A second pass of the same measurements runs in a child process with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI``
(oneDNN held below AMX: AVX-512 with VNNI int8 dot products, no AMX tiles, no AVX512-BF16), an emulation of a
CPU without AMX for the oneDNN flows (fp32, bf16, int8_onednn). ONNX Runtime's kernels (int8_ort) pick their
own instruction set from CPUID and ignore that cap: its capped figure is not a no-AMX figure.
The JSON describes the machine as the other benchmarks do (``machine``: ``videosr.bench.machine``), plus the
CPU flags int8 depends on (``isa_flags``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ("fp32", "bf16", "int8_ort", "int8_onednn")
CAP = "AVX512_CORE_VNNI"
CL = torch.channels_last


# ------------------------------------------------------------------------------ the oneDNN int8 trunk


def _qparams(lo: float, hi: float) -> tuple[float, int]:
    """uint8 affine parameters covering [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    s = max(hi - lo, 1e-8) / 255
    return s, int(round(-lo / s))


def _quant(t: torch.Tensor, q: tuple[float, int]) -> torch.Tensor:
    """float -> uint8 codes (round half up), in place on ``t``, channels last kept."""
    return t.mul_(1 / q[0]).add_(q[1] + 0.5).clamp_(0, 255).to(torch.uint8)


class _QConv:
    """One conv on oneDNN int8: weights int8 per output channel (symmetric), input uint8 with ``xq``."""

    def __init__(self, conv: torch.nn.Conv2d, xq: tuple[float, int]) -> None:
        w = conv.weight.detach().float()
        self.wsc = (w.abs().amax((1, 2, 3)) / 127).clamp_min(1e-12)
        qw = torch.round(w / self.wsc[:, None, None, None]).clamp(-127, 127).to(torch.int8)
        self.pad = [conv.padding[0], conv.padding[1]]
        self.xq = xq
        self.pw = torch.ops.onednn.qconv_prepack(qw, self.wsc, xq[0], xq[1], [1, 1], self.pad, [1, 1], 1, None)
        self.wzp = torch.zeros(w.shape[0], dtype=torch.int64)
        self.b = conv.bias.detach().float()

    def __call__(self, qx: torch.Tensor, accum: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (N, C, H, W) channels last -> float32; ``accum``: + this float32 tensor (in place, fused)."""
        a = (qx, self.xq[0], self.xq[1], self.pw, self.wsc, self.wzp)
        if accum is None:
            return torch.ops.onednn.qconv_pointwise(
                *a, self.b, [1, 1], self.pad, [1, 1], 1, 1.0, 0, torch.float32, "none", [], ""
            )
        return torch.ops.onednn.qconv2d_pointwise.binary(
            *a, accum, self.b, [1, 1], self.pad, [1, 1], 1, 1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], ""
        )


class OneDnnTrunk:
    """FastVSR's trunk (feat, fuse, body) on oneDNN int8 convolutions, with the interface of
    ``videosr.int8.Int8Trunk``: ``(u, idx) -> (K, width, h', w')`` float32 channels last."""

    def __init__(self, model: torch.nn.Module, batches) -> None:
        m = model
        lo: dict[str, float] = {}
        hi: dict[str, float] = {}

        def seen(key: str, t: torch.Tensor) -> torch.Tensor:
            lo[key] = min(lo.get(key, 0.0), float(t.min()))
            hi[key] = max(hi.get(key, 0.0), float(t.max()))
            return t

        with torch.inference_mode():  # calibration: post-activation ranges, as the float trunk computes them
            for u, idx in batches:
                f = seen("feat", m.act(m.feat(u)))
                win = f[idx].reshape(idx.shape[0], -1, *f.shape[-2:])
                y = seen("fuse", m.act(m.fuse(win)))
                for i, blk in enumerate(m.body):
                    seen(f"conv1.{i}", blk.act(blk.conv1(y)))
                    y = seen(f"block.{i}", blk(y))
        q = {k: _qparams(lo[k], hi[k]) for k in lo}
        self.q = q
        self.feat = _QConv(m.feat, (1 / 255, 0))  # the input: 8-bit video, exact
        self.fuse = _QConv(m.fuse, q["feat"])
        self.blocks = []
        prev = "fuse"
        for i, blk in enumerate(m.body):
            self.blocks.append(
                (_QConv(blk.conv1, q[prev]), _QConv(blk.conv2, q[f"conv1.{i}"]), q[f"conv1.{i}"], q[f"block.{i}"])
            )
            prev = f"block.{i}"
        self.slope = float(m.act.negative_slope)

    def __call__(self, u: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        qu = u.mul(255).add_(0.5).to(torch.uint8).contiguous(memory_format=CL)
        f = _quant(F.leaky_relu_(self.feat(qu), self.slope), self.q["feat"])  # (N, feat, h', w') uint8
        win = torch.cat([f[idx[:, j]] for j in range(idx.shape[1])], 1).contiguous(memory_format=CL)
        y = F.leaky_relu_(self.fuse(win), self.slope)  # float32, the residual stream
        qy = _quant(y.clone(), self.q["fuse"])
        for k, (c1, c2, q1, qb) in enumerate(self.blocks):
            h = _quant(F.leaky_relu_(c1(qy), self.slope), q1)
            y = c2(h, accum=y.contiguous(memory_format=CL))
            if k + 1 < len(self.blocks):
                qy = _quant(y.clone(), qb)
        return y


def _training_batches(model: torch.nn.Module):
    """The calibration data of scripts/quantize_int8.py (the training set), or None where it is not built."""
    data = ROOT / "datasets" / "vsr"
    if not (data / "manifest.json").is_file():
        return None
    spec = importlib.util.spec_from_file_location("quantize_int8", ROOT / "scripts" / "quantize_int8.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import itertools

    # the first 12 calibration clips (video runs) of the shipped flow's calibration: speed does not depend on it
    return list(itertools.islice(mod.batches(model, data, model.variant.vid4_degradation, []), 12))


# ------------------------------------------------------------------------------------ measurement


def _isa_flags() -> list[str]:
    """The CPU flags int8 and bf16 kernels depend on (VNNI dot products, AMX tiles), from /proc/cpuinfo: what
    the shared machine description (videosr.bench.machine) does not list."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), []))
    except OSError:
        pass
    keep = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
    return [k for k in keep if k in flags]


def _frames(n: int, tmp: Path) -> tuple[list[torch.Tensor], torch.Tensor]:
    from videosr.bench import make_clip
    from videosr.io import image_to_tensor, open_input, rgb_to_yuv

    clip = make_clip(tmp / "clip.mp4", n)
    with open_input(clip) as r:
        info = r.info
        frames = [image_to_tensor(f.image) for f in r]
    return frames, torch.tensor(rgb_to_yuv(info.colorspace, info.color_range), dtype=torch.float32)


def measure(args: argparse.Namespace, threads: int | None) -> dict:
    """One pass: every flow at ``threads`` intra-op threads (None: the engine's, all cores)."""
    from videosr.engine import Engine, set_threads
    from videosr.int8 import int8_model
    from videosr.models import create_model

    set_threads(threads)
    model = create_model(args.model).eval()
    notes = {}
    with tempfile.TemporaryDirectory() as tmp:
        frames, planes = _frames(args.frames, Path(tmp))
    engines = {}
    for flow in args.flows:
        if flow == "int8_onednn":
            batches = _training_batches(model)
            if batches is None:
                notes[flow] = "skipped: the training set (datasets/vsr) is not built here"
                continue
            net = int8_model(model)
            net.int8_trunk = OneDnnTrunk(model, batches)
            eng = Engine(net, device="cpu", precision="fp32", clamp=False, planes=planes)
        else:
            eng = Engine(model, device="cpu", precision=flow.split("_")[0], clamp=False, planes=planes)
        engines[flow] = eng
    ref = None
    diffs = {}
    with torch.inference_mode():
        for flow, eng in engines.items():  # warm-up, and each flow's planes against fp32's on the clip
            out = list(eng.stream(iter(frames)))
            if ref is None:
                ref = out
            y = torch.stack([o[0] for o in out]) * 255
            yr = torch.stack([o[0] for o in ref]) * 255
            diffs[flow] = {
                "y_mean_abs_code_values": round(float((y - yr).abs().mean()), 4),
                "y_max_abs_code_values": round(float((y - yr).abs().max()), 3),
            }
        walls: dict[str, list[float]] = {f: [] for f in engines}
        cpus: dict[str, list[float]] = {f: [] for f in engines}
        trunk: dict[str, list[float]] = {f: [] for f in engines}
        chunk = torch.stack(frames[:10])[None]  # (1, 10, 3, H, W): an engine chunk of 8 frames + 1 context each side
        loads = []
        for _ in range(args.rounds):
            loads.append(round(os.getloadavg()[0], 2))
            for flow, eng in engines.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in eng.stream(iter(frames)):
                    pass
                walls[flow].append(1000 * (time.perf_counter() - t0) / len(frames))
                cpus[flow].append(1000 * (time.process_time() - c0) / len(frames))
                with eng._autocast():  # the trunk alone (feat, fuse, body): the part int8 changes
                    t0 = time.perf_counter()
                    eng.model._features(chunk, (1, 9))
                    trunk[flow].append(1000 * (time.perf_counter() - t0) / 8)
        loads.append(round(os.getloadavg()[0], 2))
    rows = {}
    for flow in engines:
        rows[flow] = {
            "ms_per_frame_median": round(statistics.median(walls[flow]), 2),
            "ms_per_frame_best": round(min(walls[flow]), 2),
            "ms_per_frame_rounds": [round(w, 2) for w in walls[flow]],
            "cpu_ms_per_frame_median": round(statistics.median(cpus[flow]), 2),
            "trunk_ms_per_frame_median": round(statistics.median(trunk[flow]), 2),
            "trunk_ms_per_frame_best": round(min(trunk[flow]), 2),
            "vs_fp32": diffs[flow],
        }
    base = rows.get("fp32")
    if base:
        for r in rows.values():
            r["speedup_vs_fp32_median"] = round(base["ms_per_frame_median"] / r["ms_per_frame_median"], 3)
            r["speedup_vs_fp32_best"] = round(base["ms_per_frame_best"] / r["ms_per_frame_best"], 3)
            r["trunk_speedup_vs_fp32_median"] = round(
                base["trunk_ms_per_frame_median"] / r["trunk_ms_per_frame_median"], 3
            )
    return {
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL"),
        "threads": torch.get_num_threads(),
        "load_average_1min_per_round": loads,
        "flows": rows,
        "notes": notes,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fast-x4")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--flows", nargs="+", default=list(FLOWS), choices=FLOWS)
    p.add_argument("--no-capped", action="store_true", help=f"skip the ONEDNN_MAX_CPU_ISA={CAP} pass")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="write the results here as well")
    args = p.parse_args()
    from videosr._alloc import keep_freed_memory
    from videosr.bench import machine
    from videosr.engine import set_threads

    keep_freed_memory()  # as the videosr CLI runs (videosr._alloc): freed frames reused, not page-faulted in again
    set_threads(None)
    mach = machine()  # its threads: the engine's (all cores), the first pass's; each pass records its own
    res = [measure(args, t) for t in (None, 1)]  # the engine's threads (all cores), then one thread
    if args.child:
        print(json.dumps(res))
        return 0
    import onnxruntime

    out = {
        "benchmark": "int8_speed",
        "model": args.model,
        "size": "480x270",
        "output": "1920x1080 (4:2:0 planes)",
        "frames_per_round": args.frames,
        "rounds": args.rounds,
        "machine": mach,
        "isa_flags": _isa_flags(),
        "onnxruntime": onnxruntime.__version__,
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "note": "machine possibly shared: load averages per round are recorded; speeds are "
        "comparable only within this run. "
        + (
            "The issue's target (int8 >= 1.5x fp32 on a CPU without AMX) cannot be measured on this CPU, which "
            "has AMX; the capped pass emulates one for oneDNN only."
            if mach["amx"]
            else f"This CPU has no AMX ({mach['isa']}): the issue's target (int8 >= 1.5x fp32 on a CPU without "
            "AMX) is measured here directly; no capped pass (it emulates a CPU without AMX on one with it)."
        ),
        "passes": res,
    }
    if not args.no_capped and mach["amx"]:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--model",
            args.model,
            "--frames",
            str(args.frames),
            "--rounds",
            str(args.rounds),
            "--flows",
            *args.flows,
        ]
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": CAP}
        child = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        for r in json.loads(child.stdout.strip().splitlines()[-1]):
            r["note"] = (
                "oneDNN held below AMX (AVX-512 + VNNI): fp32, bf16 and int8_onednn as on a CPU without "
                "AMX; int8_ort's ONNX Runtime kernels are not capped"
            )
            out["passes"].append(r)
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
