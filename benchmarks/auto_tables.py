"""Write the tables ``--model auto`` reads (package data, videosr/weights/) from committed benchmark JSONs.

* ``speed.json``: fraction of the floor per model and CPU kind, from the ``videosr bench`` JSONs in
  benchmarks/results/ (``machine.amx`` tells the kind; the latest file that has a model wins).
* ``quality.json``: Vid4 x4 PSNR-Y per model on clean BI LR and at x264 CRF 15/25/35 (benchmarks/results/
  compressed/, written by benchmarks/compressed_eval.py), the x264 CRF -> bits-per-pixel curve and the bits
  of x265 / VP9 relative to x264 (benchmarks/results/input_quality.json).

    .venv/bin/python benchmarks/auto_tables.py          # add --doc to rewrite docs/models.md's decision table

``--doc`` also writes, between markers in docs/models.md, what ``--model auto`` picks at x4 for each CPU kind,
input quality and ``--quality``, computed by ``videosr.models.auto.choose`` from the tables just written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "src" / "videosr" / "weights"
BENCHES = [
    "bench_480x270_x4_fp32_no-amx.json",
    "bench_480x270_x4_online.json",
    "bench_480x270_x4.json",
    "bench_480x270_x4_w48.json",
    "bench_960x540_x2.json",  # x2 at the same 1080p output
    "bench_480x270_x4_no-amx_avx2.json",  # AMD EPYC (Zen 3, AVX2 only), after the cheaper exact clamp
    "bench_960x540_x2_no-amx_avx2.json",  # x2 on the same machine
]  # oldest or noisiest first: a later file that has a model wins


def speed() -> dict:
    table: dict = {"amx": {}, "no-amx": {}}
    src: dict = {"amx": [], "no-amx": []}
    for name in BENCHES:  # oldest first: later files replace a model's figure
        d = json.loads((RESULTS / name).read_text())
        kind = "amx" if d["machine"].get("amx") else "no-amx"
        src[kind].append(name)
        for m in d["models"]:
            table[kind][m["model"]] = m["fraction_of_floor"]
    return {**table, "sources": src}


def quality() -> dict:
    iq = json.loads((RESULTS / "input_quality.json").read_text())
    x264 = [r for r in iq["rows"] if r["codec"] == "libx264"]
    out = {
        "x264_bpp": {"crf": [r["crf"] for r in x264], "bpp": [round(r["bpp"], 5) for r in x264]},
        "x264_qp": {"crf": [r["crf"] for r in x264], "qp": [round(r["qp"], 3) for r in x264]},
        "bits_vs_x264": {k: round(v, 3) for k, v in iq["bits_vs_x264"].items() if v},
        "vid4_x4": {},
        "sources": ["input_quality.json"],
    }
    comp = RESULTS / "compressed"
    for f in sorted(comp.glob("vid4_x4_*.json")) if comp.is_dir() else []:
        d = json.loads(f.read_text())
        rows = d if isinstance(d, list) else d.get("results", [d])
        for r in rows:
            lr = r.get("lr") or {}
            key = "clean" if not lr.get("codec") else str(lr["crf"])
            if lr.get("codec") not in (None, "libx264") or lr.get("noise"):
                continue
            out["vid4_x4"].setdefault(r["model"], {})[key] = round(float(r["mean"]["psnr_y"]), 4)
        out["sources"].append(f"compressed/{f.name}")
    return out


DOC = ROOT / "docs" / "models.md"
BEGIN, END = "<!-- auto-table:begin -->", "<!-- auto-table:end -->"


def decision_table(scale: int = 4) -> str:
    """What ``--model auto`` picks, from the package's tables (run after writing them)."""
    from videosr.models import auto

    auto.committed_table.cache_clear()
    inputs = [("clean (lossless)", None), ("~CRF 15", 15.0), ("~CRF 25", 25.0), ("~CRF 35", 35.0)]
    lines = [
        "| CPU | input | `--quality auto` (default) | `--quality best` | `--quality fast` |",
        "|---|---|---|---|---|",
    ]
    for kind in ("amx", "no-amx"):
        for label, crf in inputs:
            src = auto.Source("h264", None, crf, label)
            cells = []
            for q in ("auto", "best", "fast"):
                c = auto.choose(scale, src, quality=q, kind=kind)
                v = auto.VARIANTS.get(c.model)
                psnr = auto.expected_psnr(v, src) if v is not None else None
                frac = auto.speed(v, kind) if v is not None else None
                extra = ", ".join(x for x in (f"{psnr:.2f} dB" if psnr else "", f"{frac:.2f}x" if frac else "") if x)
                cells.append(f"{c.model} ({extra})" if extra else c.model)
            lines.append(f"| {kind} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_doc(table: str) -> None:
    text = DOC.read_text()
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < 0:
        raise SystemExit(f"markers {BEGIN} / {END} not found in {DOC}")
    DOC.write_text(text[: i + len(BEGIN)] + "\n" + table + text[j:])
    print(f"wrote the decision table in {DOC}")


def main() -> None:
    for name, table in (("speed.json", speed()), ("quality.json", quality())):
        (OUT / name).write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUT / name}")
    table = decision_table()
    print(table)
    if "--doc" in sys.argv[1:]:
        write_doc(table)


if __name__ == "__main__":
    main()
