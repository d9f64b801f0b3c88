#!/usr/bin/env python3
"""Quantize a FastVSR variant's trunk to int8 for ``--precision int8``, calibrated on the training set:

    .venv/bin/python scripts/quantize_int8.py --model fast-x4 [--data datasets/vsr] [--out src/videosr/weights]

Writes ``<out>/<model>.int8.onnx`` (ONNX Runtime static quantization, QDQ: int8 weights per output channel,
uint8 activations per tensor, MinMax ranges; `videosr.int8`) and prints its sha256 for the variant's
``int8_sha256``. Calibration data, from the training set built by ``scripts/build_dataset.py`` only (never a
test set, never the sample clip): every video run of ``clips/`` in chunks of 10 frames, and every still of
``stills/`` (centre crop of at most 1280x800, one frame), each made LR by the variant's own degradation (BI or
BD, 8-bit, as training makes it). The calibration is deterministic: the same data and weights give the same
ranges. Then measure the gate: ``videosr eval --model NAME --data ../shared/data/Vid4/GT --scale S
--degradation BI|BD --precision int8 --json src/videosr/weights/NAME.vid4.int8.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from videosr.int8 import export_trunk, quantize_trunk  # noqa: E402
from videosr.models import VARIANTS, create_model  # noqa: E402
from videosr.models.registry import sha256_file  # noqa: E402
from videosr.training.data import degrade_clip  # noqa: E402

CHUNK = 10
STILL_CROP = (800, 1280)  # (H, W) at most


def _rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255)  # (3, H, W)


def calibration_clips(data: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, HR clip (T, 3, H, W) in [0, 1]) from the training set's manifest: clips in chunks, then stills."""
    manifest = json.loads((data / "manifest.json").read_text())
    for c in manifest.get("clips", []):
        frames = [_rgb(data / c["path"] / f"{i:03d}.png") for i in range(c["frames"])]
        for k in range(0, len(frames), CHUNK):
            yield f"{c['path']}[{k}:{k + CHUNK}]", torch.stack(frames[k : k + CHUNK])
    for s in manifest.get("stills", []):
        img = _rgb(data / s["path"])
        h, w = img.shape[-2:]
        ch, cw = min(h, STILL_CROP[0]), min(w, STILL_CROP[1])
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        yield s["path"], img[None, :, y0 : y0 + ch, x0 : x0 + cw]


def batches(
    model: torch.nn.Module, data: Path, degradation: str, names: list[str]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(u, idx) trunk inputs of each calibration clip, as FastVSR._features makes them."""
    s, d = int(model.scale), int(model.down)
    for name, hr in calibration_clips(data):
        hr = hr[..., : hr.shape[-2] // (s * d) * s * d, : hr.shape[-1] // (s * d) * s * d]
        lr = degrade_clip(hr, s, degradation)  # (T, 3, h, w), 8-bit values
        t = lr.shape[0]
        u = F.pixel_unshuffle(lr, d)
        idx = (torch.arange(t)[:, None] + torch.tensor(model.offsets)).clamp(0, t - 1)
        names.append(name)
        yield u, idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a FastVSR variant with shipped weights (fast-x4, ...)")
    ap.add_argument("--data", default=str(ROOT / "datasets" / "vsr"), help="the training set (build_dataset.py)")
    ap.add_argument("--out", default=str(ROOT / "src" / "videosr" / "weights"))
    args = ap.parse_args()
    v = VARIANTS[args.model]
    if v.weights is None:
        sys.exit(f"{args.model} ships no weights")
    data = Path(args.data)
    if not (data / "manifest.json").is_file():
        sys.exit(f"no training set at {data}: build it with `python scripts/build_dataset.py {data}`")
    model = create_model(args.model).eval()
    out = Path(args.out) / f"{args.model}.int8.onnx"
    names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "trunk.onnx"
        export_trunk(model, fp)
        with torch.inference_mode():
            quantize_trunk(fp, out, batches(model, data, v.vid4_degradation, names))
    _stamp(
        out,
        {
            "model": args.model,
            "weights_sha256": v.sha256,
            "calibration": f"{data.name}: {len(names)} clips ({v.vid4_degradation} x{v.scale}), training set only",
            "method": "onnxruntime quantize_static QDQ, per-channel int8 weights, uint8 activations, MinMax",
        },
    )
    print(
        json.dumps(
            {
                "model": args.model,
                "file": str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
                "sha256": sha256_file(out),
                "bytes": out.stat().st_size,
                "calibration_clips": len(names),
            },
            indent=1,
        )
    )


def _stamp(path: Path, meta: dict[str, str]) -> None:
    """Record what the file was made from in its ONNX metadata (``videosr.*``)."""
    import onnx

    proto = onnx.load(str(path))
    for k, val in meta.items():
        e = proto.metadata_props.add()
        e.key, e.value = f"videosr.{k}", str(val)
    proto.producer_name = "videosr"
    onnx.save(proto, str(path))


if __name__ == "__main__":
    main()
