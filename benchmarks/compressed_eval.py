"""Models on compressed LR: Vid4 x4 BI with the LR clean and through x264 at CRF 15 / 25 / 35.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compressed_eval.py \
        --model bicubic --model fast-x4 --peer pan-x4=../shared/peers/PAN/PANx4_DF2K.pth --doc
    # later, add or re-run some models and merge them into the same JSONs:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compressed_eval.py --update --model quality-x4 --doc
    # only rebuild the table (stdout, and docs/evaluation.md with --doc) from the JSONs:
    .venv/bin/python benchmarks/compressed_eval.py --table-only --doc

Each LR set is one `videosr eval` run through the library (`videosr.eval.protocol.evaluate`, the same as the CLI
with `--lr-codec libx264 --lr-crf N --lr-preset medium`): all models of a run see the same LR. One JSON per
LR set, in `videosr eval --json`'s format (a list of per-model results, each with its `"lr"` recipe), under
benchmarks/results/compressed/ (vid4_x4_clean.json, vid4_x4_crf15.json, ...). Peers (`NAME=WEIGHTS`: a
registered variant with a third-party weights file, like `videosr eval --model NAME --weights WEIGHTS`) get
`"weights"` and `"peer": true` in their entries and are skipped, with a message, when the file is absent.
Without `--update` the given models replace each JSON; with `--update` they replace their own entries and
the others are kept. `--doc` rewrites the table between the markers in docs/evaluation.md. Exits 0 with a
message when the data (../shared/data/Vid4/GT) is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results" / "compressed"
DOC = ROOT / "docs" / "evaluation.md"
BEGIN, END = "<!-- compressed-table:begin -->", "<!-- compressed-table:end -->"
# LR set name -> (column title, recipe for videosr.eval.protocol.evaluate)
LR_SETS = {
    "clean": ("clean", {}),
    "crf15": ("CRF 15", {"lr_codec": "libx264", "lr_crf": 15, "lr_preset": "medium"}),
    "crf25": ("CRF 25", {"lr_codec": "libx264", "lr_crf": 25, "lr_preset": "medium"}),
    "crf35": ("CRF 35", {"lr_codec": "libx264", "lr_crf": 35, "lr_preset": "medium"}),
}


def json_path(out: Path, prefix: str, lr_set: str) -> Path:
    return out / f"{prefix}_{lr_set}.json"


def load_set(path: Path) -> list[dict]:
    if not path.exists():
        return []
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, list) else [doc]


def parse_peer(spec: str) -> tuple[str, str]:
    name, sep, weights = spec.partition("=")
    if not sep or not name or not weights:
        raise SystemExit(f"--peer {spec!r}: use NAME=WEIGHTS, e.g. pan-x4=../shared/peers/PAN/PANx4_DF2K.pth")
    return name, weights


def run_set(lr_set: str, models: list[str], weights: list[str | None], args) -> list[dict]:
    from videosr.eval.protocol import evaluate, to_json
    from videosr.eval.report import format_table

    _, recipe = LR_SETS[lr_set]
    t0 = time.perf_counter()
    res = evaluate(
        models,
        str(args.data),
        scale=args.scale,
        degradation="BI",
        weights=weights,
        temporal=args.tof,
        max_frames=args.max_frames,
        threads=1,
        lr_cache=None if args.no_cache else args.lr_cache,
        **recipe,
    )
    sys.stderr.write(format_table(res))
    print(f"{lr_set}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    docs = to_json(res)
    docs = docs if isinstance(docs, list) else [docs]
    for d, w in zip(docs, weights):
        if w is not None:
            d["weights"] = w
            d["peer"] = True
    return docs


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with the entries of ``new``'s models replaced (in place) and new models appended."""
    by_model = {d["model"]: d for d in new}
    out = [by_model.pop(d["model"], d) for d in old]
    return out + [d for d in new if d["model"] in by_model]


def table(out: Path, prefix: str, sets: list[str]) -> str:
    """Markdown: rows models, columns LR sets, PSNR-Y (gain over bicubic on the same LR)."""
    data = {s: {d["model"]: d for d in load_set(json_path(out, prefix, s))} for s in sets}
    models: list[str] = []
    for s in sets:
        for m in data[s]:
            if m not in models:
                models.append(m)
    peers = {m for s in sets for m, d in data[s].items() if d.get("peer")}
    models.sort(key=lambda m: (m != "bicubic", m in peers))  # bicubic, ours, peers; stable otherwise
    head = "| model | " + " | ".join(LR_SETS[s][0] for s in sets) + " |"
    lines = [head, "|---|" + "---|" * len(sets)]
    for m in models:
        cells = []
        for s in sets:
            d = data[s].get(m)
            base = data[s].get("bicubic")
            if d is None or d["mean"]["psnr_y"] is None:
                cells.append("-")
                continue
            p = d["mean"]["psnr_y"]
            if base is not None and m != "bicubic" and base["mean"]["psnr_y"] is not None:
                cells.append(f"{p:.2f} ({p - base['mean']['psnr_y']:+.2f})")
            else:
                cells.append(f"{p:.2f}")
        label = (
            f"{m} (peer: `{Path(next(data[s][m] for s in sets if m in data[s])['weights']).name}`)" if m in peers else m
        )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_doc(md: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} markers")
    a, rest = text.split(BEGIN, 1)
    _, b = rest.split(END, 1)
    DOC.write_text(f"{a}{BEGIN}\n{md}{END}{b}")
    print(f"table written to {DOC.relative_to(ROOT)}", file=sys.stderr)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], help="registered model or checkpoint (repeatable)")
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=WEIGHTS",
        help="a variant with a third-party weights file, e.g. pan-x4=../shared/peers/PAN/PANx4_DF2K.pth",
    )
    p.add_argument("--sets", nargs="+", default=list(LR_SETS), choices=list(LR_SETS), help="LR sets to run")
    p.add_argument("--update", action="store_true", help="merge into the existing JSONs instead of replacing them")
    p.add_argument("--table-only", action="store_true", help="run nothing; print the table from the JSONs")
    p.add_argument("--doc", action="store_true", help="also write the table into docs/evaluation.md")
    p.add_argument("--data", type=Path, default=SHARED / "data" / "Vid4" / "GT")
    p.add_argument("--prefix", default="vid4_x4", help="JSON name prefix (default vid4_x4)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--tof", action="store_true", help="also compute tOF (slower)")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames per clip (quick checks only)")
    p.add_argument(
        "--lr-cache",
        default=os.path.expanduser("~/.cache/videosr/lr"),
        help="where the LR made per clip and recipe is kept (default ~/.cache/videosr/lr)",
    )
    p.add_argument("--no-cache", action="store_true", help="do not keep the LR on disk")
    args = p.parse_args()

    all_sets = list(LR_SETS)
    if not args.table_only:
        if not args.data.is_dir():
            print(f"{args.data} is absent: nothing to measure (it lives in ../shared/data)", file=sys.stderr)
            return 0
        models = list(args.model)
        weights: list[str | None] = [None] * len(models)
        for spec in args.peer:
            name, w = parse_peer(spec)
            if not Path(w).is_file():
                print(f"peer {name}: {w} is absent, skipped", file=sys.stderr)
                continue
            models.append(name)
            weights.append(w)
        if not models:
            print("no models to run (give --model / --peer, or --table-only)", file=sys.stderr)
            return 2 if not args.peer else 0
        args.out.mkdir(parents=True, exist_ok=True)
        for s in args.sets:
            new = run_set(s, models, weights, args)
            path = json_path(args.out, args.prefix, s)
            docs = merge(load_set(path), new) if args.update else new
            path.write_text(json.dumps(docs, indent=2, allow_nan=False) + "\n")
            print(f"wrote {path}", file=sys.stderr)
    md = table(args.out, args.prefix, all_sets)
    sys.stdout.write(md)
    if args.doc:
        write_doc(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
