"""Make the sample clip shipped in the repo: `src/videosr/assets/sample.mp4`.

Real photographic content: public-domain / CC0 photos bundled with scikit-image (see
`src/videosr/assets/PROVENANCE.md`), filmed by a virtual camera (sub-pixel pans and a slow zoom),
rendered at 320x180, 24 fps, 72 frames, H.264 (libx264 crf 20) plus a 48 kHz stereo AAC track
(a soft chord) so that the upscaler's audio handling shows.

    .venv/bin/pip install scikit-image   # only this script needs it
    .venv/bin/python scripts/make_sample.py [OUT.mp4]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

W, H, FPS, FRAMES = 320, 180, 24, 72
RATE = 48000


def shots():
    import skimage.data as d

    # (photo, start centre, end centre, start zoom, end zoom) in normalised coordinates; zoom = crop scale
    yield d.coffee(), (-0.25, -0.10), (0.20, 0.05), 0.62, 0.55
    yield d.rocket(), (0.10, -0.15), (-0.05, 0.10), 0.50, 0.40
    yield d.astronaut(), (-0.05, -0.58), (0.02, -0.45), 0.48, 0.56


def render(photo: np.ndarray, c0, c1, z0, z1, n: int) -> list[np.ndarray]:
    img = torch.from_numpy(photo).permute(2, 0, 1).float()[None] / 255  # (1, 3, h, w)
    ih, iw = img.shape[-2:]
    out = []
    for i in range(n):
        a = i / max(1, n - 1)
        a = 0.5 - 0.5 * np.cos(np.pi * a)  # ease in/out
        cx, cy = (1 - a) * c0[0] + a * c1[0], (1 - a) * c0[1] + a * c1[1]
        z = (1 - a) * z0 + a * z1
        # crop of aspect W/H, z = crop width / image width, rendered by an affine sampling grid
        sx = z
        sy = sx * iw * H / (ih * W)  # crop aspect W:H
        theta = torch.tensor([[[sx, 0, cx], [0, sy, cy]]], dtype=torch.float32)
        # supersample 2x then area-average: antialiasing for the downscale from the photo
        grid = F.affine_grid(theta, (1, 3, 2 * H, 2 * W), align_corners=False)
        frame = F.grid_sample(img, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
        frame = F.avg_pool2d(frame, 2).clamp(0, 1)
        out.append((frame[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    return out


def chord(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    env = np.minimum(1, np.minimum(t / 0.3, (seconds - t) / 0.3))
    left = 0.2 * tone * env
    right = 0.2 * np.roll(tone, 240) * env
    return np.stack([left, right]).astype(np.float32)  # (2, samples)


def main(out: Path) -> None:
    frames: list[np.ndarray] = []
    per = FRAMES // 3
    for photo, c0, c1, z0, z1 in shots():
        frames += render(photo, c0, c1, z0, z1, per)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=FPS, options={"crf": "20", "preset": "slow"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.color_primaries = 1  # BT.709
        v.codec_context.color_trc = 1
        v.codec_context.colorspace = 1
        v.codec_context.color_range = 1  # limited ("tv")
        a = c.add_stream("aac", rate=RATE, layout="stereo")
        a.metadata["language"] = "eng"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p", dst_colorspace="itu709")
            vf.pts = i
            vf.time_base = Fraction(1, FPS)
            for p in v.encode(vf):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        samples = chord(FRAMES / FPS)
        step = 1024
        for i in range(0, samples.shape[1], step):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, i : i + step]), format="fltp", layout="stereo"
            )
            af.sample_rate = RATE
            af.pts = i
            af.time_base = Fraction(1, RATE)
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, {len(frames)} frames {W}x{H} @ {FPS} fps)")


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "src" / "videosr" / "assets" / "sample.mp4"
    )
