"""Write a model card, docs/models/NAME.md, from what training and evaluation recorded.

    .venv/bin/python scripts/model_card.py NAME --run runs/NAME [--eval FILE ...] [--note TEXT]
        [--keep]   (first take the evaluations, their commands and the notes of the existing card)

Reads the checkpoint's resolved config and step (runs/NAME/best.pt), the training log (runs/NAME/log.csv:
validation PSNR against wall-clock time: the learning curve), the shipped weights' sha256, and the
`videosr eval --json` files given; every number in the card comes from those files.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def learning_curve(log: Path) -> list[tuple[int, float, float]]:
    """(step, hours, val PSNR-Y) rows of the training log."""
    rows = []
    done, last = 0.0, 0.0  # the log's clock restarts at each --resume: hours are summed over the segments
    with open(log, newline="") as f:
        for r in csv.DictReader(f):
            if r["time"]:
                t = float(r["time"])
                if t < last:
                    done += last
                last = t
            v = r.get("val_psnr_y") or ""
            if v and not v.startswith("bicubic"):
                rows.append((int(r["step"]), (done + last) / 3600, float(v)))
    return rows


def train_time(log: Path) -> tuple[int, float]:
    """(last step, wall-clock seconds): the log's clock restarts at each --resume, so the segments add up."""
    step, done, last = 0, 0.0, 0.0
    with open(log, newline="") as f:
        for r in csv.DictReader(f):
            if r["time"]:
                t = float(r["time"])
                if t < last:  # a resumed run's first row
                    done += last
                step, last = max(step, int(r["step"])), t
    return step, done + last


def eval_rows(path: Path, name: str) -> list[dict]:
    data = json.loads(path.read_text())
    rows = data if isinstance(data, list) else [data]
    return sorted(rows, key=lambda d: d["model"] != name)  # the card's model first, then what it was run with


def existing_card(name: str) -> tuple[list[str], list[str], list[str]]:
    """(eval JSON files, their commands, notes) of docs/models/NAME.md, for regenerating it."""
    path = ROOT / "docs" / "models" / f"{name}.md"
    evals, cmds, notes = [], [], []
    if not path.exists():
        return evals, cmds, notes
    in_notes = False
    for line in path.read_text().splitlines():
        if line.startswith("`videosr eval ") and " --json " in line:
            cmd = line.strip("`")
            cmds.append(cmd)
            evals.append(str(ROOT / cmd.split(" --json ")[1].split()[0]))
        elif line.startswith("## "):
            in_notes = line == "## Notes"
        elif in_notes and line.startswith("* "):
            notes.append(line[2:])
    return evals, cmds, notes


def codec_note(cfg: dict) -> str:
    """What the codec in the training loop did to the LR (the config's data.codec), or nothing."""
    c = cfg.get("data", {}).get("codec") or {}
    if not c.get("prob"):
        return ""
    return (
        f", then for {c['prob']:.0%} of the clips {'/'.join(c['codecs'])} at a random CRF in "
        f"{c['crf'][0]}..{c['crf'][1]}, decoded"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--run", required=True)
    ap.add_argument("--ckpt", default="best.pt")
    ap.add_argument("--eval", action="append", default=[], help="`videosr eval --json` output (repeatable)")
    ap.add_argument("--command", action="append", default=[], help="the eval command that wrote each --eval")
    ap.add_argument("--note", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="start from the existing card's evals, commands, notes")
    a = ap.parse_args()
    if a.keep:
        evals, cmds, notes = existing_card(a.name)
        a.eval, a.command, a.note = evals + a.eval, cmds + a.command, notes + a.note

    from videosr.models import VARIANTS, create_model
    from videosr.models.flops import count_flops, count_params

    v = VARIANTS[a.name]
    run = Path(a.run)
    ck = torch.load(run / a.ckpt, map_location="cpu", weights_only=True)
    cfg = ck["config"]
    steps, seconds = train_time(run / "log.csv")
    m = create_model(a.name, pretrained=False)
    lines = [
        f"# Model card: {a.name}",
        "",
        f"{v.description}",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{v.arch}` ({', '.join(f'{k}={val}' for k, val in v.kwargs.items())}) |",
        f"| scale | x{v.scale} |",
        f"| parameters | {count_params(m):,} |",
        f"| GFLOPs per output frame, 480x270 input | {count_flops(m, 270, 480) / 1e9:.2f} |",
        f"| weights | `src/videosr/weights/{v.weights}` (EMA, step {ck.get('step')}), sha256 `{v.sha256}` |",
        f"| training data | {v.training_data} |",
        f"| degradation | {v.degradation} (LR made on the fly from HR crops){codec_note(cfg)} |",
        f"| licence | {v.license} |",
        f"| config | `configs/{a.name}.toml` with the overrides below |",
        f"| training | {steps} steps in {seconds / 3600:.2f} h wall-clock on a 2-core CPU |",
        "",
        "Resolved training config (as stored in the checkpoint):",
        "",
        "```json",
        json.dumps(cfg, indent=1),
        "```",
        "",
        "## Evaluation (`videosr eval`, all frames, Y channel, output rounded to 8 bits)",
        "",
    ]
    for path, cmd in zip(a.eval, a.command + [""] * len(a.eval)):
        rows = eval_rows(Path(path), a.name)
        if cmd:
            lines += [f"`{cmd}`", ""]
        lines += [
            "| model | degradation | precision | " + " | ".join(rows[0]["clips"]) + " | mean PSNR-Y | mean SSIM-Y |",
            "|---|---|---|" + "---|" * len(rows[0]["clips"]) + "---|---|",
        ]
        for r in rows:
            clips = " | ".join(f"{c['psnr_y']:.2f}" for c in r["clips"].values())
            lines.append(
                f"| {r['model']} | {r['degradation']} | {r.get('precision', 'fp32')} | {clips} | "
                f"**{r['mean']['psnr_y']:.2f}** ({r['mean']['psnr_y']:.4f}) | {r['mean']['ssim_y']:.4f} |"
            )
        lines.append("")
    curve = learning_curve(run / "log.csv")
    if curve:
        deg = cfg.get("data", {}).get("degradation", "BI")
        deg = deg if deg in ("BI", "BD") else "BI"  # validation runs on the training degradation (BI, BD)
        val = cfg.get("val", {})
        frames = f"first {val['max_frames']} frames" if val.get("max_frames") else "all frames"
        crf = f" + x264 CRF {val['lr_crf']}" if val.get("lr_crf") else ""
        lines += [
            f"## Learning curve (validation: {frames} of each Vid4 clip, {deg}{crf}, EMA weights)",
            "",
            "| step | hours | PSNR-Y |",
            "|---|---|---|",
        ]
        lines += [f"| {s} | {h:.2f} | {p:.2f} |" for s, h, p in curve]
        lines.append("")
    if a.note:
        lines += ["## Notes", ""] + [f"* {n}" for n in a.note] + [""]
    out = ROOT / "docs" / "models" / f"{a.name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
