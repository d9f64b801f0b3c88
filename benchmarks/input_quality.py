"""How many bits per pixel does compressed LR video spend at each CRF, per codec? The curve that places an
input on the CRF axis for ``--model auto`` (videosr.models.auto.crf_from_bpp).

Vid4 GT -> BI x4 LR (8 bits) -> encoded to a file at 25 fps, yuv420p, as `videosr eval --lr-codec` does
(x264 preset medium, x265 preset fast, VP9 cpu-used 4; one thread) -> bits per pixel measured and the mean
H.264 quantiser exactly as ``auto.probe_source`` measures an input (packet sizes; QP from FFmpeg's
venc_params side data), and the LR's PSNR-Y against
the clean 8-bit LR (how much the codec lost). For x265 and VP9 the script also reports how many bits they
spend, relative to x264, for the same LR PSNR-Y (auto.CODEC_BITS).

    .venv/bin/python benchmarks/input_quality.py --json benchmarks/results/input_quality.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from videosr.eval.degrade import bi_degrade
from videosr.eval.metrics import psnr
from videosr.eval.protocol import find_clips, load_clip
from videosr.models.auto import probe_source  # with the frames of the whole clip: PROBE_FRAMES >= 50

VID4 = Path(__file__).resolve().parents[2] / "shared" / "data" / "Vid4" / "GT"
CRFS = {
    "libx264": [10, 15, 20, 25, 30, 35, 40, 45],
    "libx265": [15, 20, 25, 30, 35, 40],
    "libvpx-vp9": [20, 30, 40, 50, 60],
}
CODEC_NAME = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9"}


def encode(lr: torch.Tensor, path: str, codec: str, crf: int) -> None:
    frames = (lr * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    with av.open(path, "w") as out:
        st = out.add_stream(codec, rate=25)
        st.width, st.height, st.pix_fmt = lr.shape[-1], lr.shape[-2], "yuv420p"
        st.codec_context.thread_count = 1
        if codec == "libvpx-vp9":
            st.bit_rate = 0
            st.options = {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "0"}
        elif codec == "libx265":
            st.options = {"crf": str(crf), "preset": "fast", "x265-params": "log-level=error:pools=1:frame-threads=1"}
        else:
            st.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        for a in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def decode(path: str) -> torch.Tensor:
    with av.open(path) as c:
        return (
            torch.stack(
                [torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1) for f in c.decode(video=0)]
            ).float()
            / 255
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(VID4))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    clips = [(c.name, bi_degrade(load_clip(c), 4, quantize_lr=True)) for c in find_clips(args.data)[0]]
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        for codec, crfs in CRFS.items():
            for crf in crfs:
                per = {}
                for name, lr in clips:
                    path = f"{d}/{name}.mkv"
                    encode(lr, path, codec, crf)
                    src = probe_source(path, frames=len(lr))
                    per[name] = {"bpp": src.bpp, "qp": src.qp, "lr_psnr_y": float(psnr(decode(path), lr).mean())}
                bpp = math.exp(sum(math.log(v["bpp"]) for v in per.values()) / len(per))  # geometric mean
                lp = sum(v["lr_psnr_y"] for v in per.values()) / len(per)
                qps = [v["qp"] for v in per.values() if v["qp"] is not None]
                qp = sum(qps) / len(qps) if qps else None
                rows.append({"codec": codec, "crf": crf, "bpp": bpp, "qp": qp, "lr_psnr_y": lp, "clips": per})
                print(f"{codec:11s} crf {crf:2d}: {bpp:.4f} bits/pixel, mean QP {qp}, LR PSNR-Y {lp:.2f} dB")
    # bits relative to x264 at equal LR PSNR-Y (log-linear interpolation of x264's curve)
    x = sorted((r["lr_psnr_y"], math.log2(r["bpp"])) for r in rows if r["codec"] == "libx264")
    ratios = {}
    for codec in ("libx265", "libvpx-vp9"):
        rs = []
        for r in rows:
            if r["codec"] != codec or not x[0][0] <= r["lr_psnr_y"] <= x[-1][0]:
                continue
            lb = float(np.interp(r["lr_psnr_y"], [p[0] for p in x], [p[1] for p in x]))
            rs.append(r["bpp"] / 2**lb)
        ratios[CODEC_NAME[codec]] = math.exp(sum(map(math.log, rs)) / len(rs)) if rs else None
        print(f"{codec}: {ratios[CODEC_NAME[codec]]} x the bits of x264 for the same LR PSNR-Y")
    out = {
        "data": "Vid4 GT, BI x4 LR, 8 bits, 25 fps yuv420p, one encoder thread",
        "rows": rows,
        "bits_vs_x264": ratios,
        "seconds": round(time.time() - t0, 1),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
