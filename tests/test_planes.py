"""The plane path: per-channel resamplers (bicubic, lanczos) scale 8-bit planar YUV video plane by plane."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from clips import make_video
from videosr.degrade import upsample
from videosr.io import Frame, open_input, open_output
from videosr.io._pixfmt import plane_sizes
from videosr.io.convert import _quantize_u8, planes_to_tensors
from videosr.models.interp import Interp
from videosr.pipeline import upscale


def decoded(path, fmt="rgb24"):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def test_plane_sizes():
    assert plane_sizes("yuv420p", 64, 48) == [(48, 64), (24, 32), (24, 32)]
    assert plane_sizes("yuvj422p", 64, 48) == [(48, 64), (48, 32), (48, 32)]
    assert plane_sizes("yuv444p", 5, 3) == [(3, 5)] * 3
    assert plane_sizes("yuv420p", 321, 240) is None  # odd width: 4:2:0 does not subsample evenly
    assert plane_sizes("yuv420p10le", 64, 48) is None and plane_sizes("rgb24", 64, 48) is None


def test_reader_planes_are_the_decoded_frame(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=3, width=64, height=48, codec="ffv1", pix_fmt="yuv420p")
    want = decoded(src, "yuv420p")  # (h * 3/2, w): Y then U then V
    with open_input(src) as r:
        assert r.plane_format == "yuv420p"
        r.planes = True
        got = list(r)
    assert len(got) == 3
    for fr, ref in zip(got, want):
        y, u, v = fr.image
        assert y.shape == (48, 64) and u.shape == (24, 32) and v.shape == (24, 32)
        flat = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
        assert np.array_equal(flat, ref.ravel())


def test_writer_planes_lossless_roundtrip(tmp_path):
    """Float planes in [0, 1] are rounded to the nearest code value (clamped) into an ffv1 yuv420p frame."""
    src = make_video(tmp_path / "in.mkv", frames=2, width=32, height=16, codec="ffv1", pix_fmt="yuv420p")
    with open_input(src) as r:
        info = r.info
    g = torch.Generator().manual_seed(0)
    planes = [tuple(torch.rand(s, generator=g) * 1.2 - 0.1 for s in [(16, 32), (8, 16), (8, 16)]) for _ in range(2)]
    out = tmp_path / "out.mkv"
    w = open_output(str(out), info, 32, 16, codec="ffv1")
    assert w.pix_fmt == "yuv420p"
    for i, p in enumerate(planes):
        w.write(Frame(image=p, pts=i, time_base=info.time_base, index=i))
    w.close()
    for ref, got in zip(planes, decoded(out, "yuv420p")):
        want = np.concatenate([torch.round(t * 255).clamp(0, 255).to(torch.uint8).numpy().ravel() for t in ref])
        assert np.array_equal(got.ravel(), want)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_plane_path_is_exact_upsampling_of_each_plane(tmp_path, pix_fmt, monkeypatch):
    """Lossless in and out: every output plane is the rounded bicubic x2 of the input plane."""
    src = make_video(tmp_path / "in.mkv", frames=4, width=40, height=24, codec="ffv1", pix_fmt=pix_fmt)
    calls = []
    real = Interp.upsample_plane
    monkeypatch.setattr(Interp, "upsample_plane", lambda self, x: calls.append(x.shape) or real(self, x))
    out = tmp_path / "out.mkv"
    r = upscale(src, str(out), model="bicubic", scale=2, codec="ffv1", progress=False)
    assert r["frames"] == 4 and len(calls) == 12  # 3 planes per frame: the plane path ran
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == pix_fmt
    with av.open(src) as c:
        lr = [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
              for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        hr = [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
              for f in c.decode(video=0)]
    assert len(hr) == 4
    for lo, hi in zip(lr, hr):
        for a, b in zip(planes_to_tensors(lo), hi):
            assert np.array_equal(b, _quantize_u8(upsample(a, 2, "cubic")).numpy())


def test_plane_path_matches_rgb_path(tmp_path):
    """Natural-looking content, x264 in and out: the two paths agree far beyond compression noise."""
    from videosr.bench import make_clip

    src = make_clip(tmp_path / "in.mp4", 6, width=96, height=64)
    a, b = tmp_path / "rgb.mkv", tmp_path / "yuv.mkv"
    upscale(src, str(a), model="bicubic", scale=4, codec="ffv1", progress=False, planes=False)
    upscale(src, str(b), model="bicubic", scale=4, codec="ffv1", progress=False)
    fa, fb = decoded(a), decoded(b)
    assert len(fa) == len(fb) == 6
    mse = np.mean([np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(fa, fb)])
    assert 10 * np.log10(255 ** 2 / mse) > 38  # chroma filtered at its own resolution, rounding in YUV


def test_rgb_path_for_formats_without_planes(tmp_path, monkeypatch):
    """Odd sizes (4:2:0 cannot subsample them), and any model with weights, go through RGB and the Engine."""
    called = []
    monkeypatch.setattr(Interp, "upsample_plane", lambda self, x: called.append(1))
    src = make_video(tmp_path / "odd.mkv", frames=3, width=33, height=17, codec="ffv1", pix_fmt="yuv420p")
    r = upscale(src, str(tmp_path / "o.mkv"), model="bicubic", scale=2, codec="ffv1", progress=False)
    assert r["frames"] == 3 and not called
    src = make_video(tmp_path / "deep.mkv", frames=3, width=32, height=16, codec="ffv1", pix_fmt="yuv420p10le")
    r = upscale(src, str(tmp_path / "o10.mkv"), model="bicubic", scale=2, codec="ffv1", progress=False)
    assert r["frames"] == 3 and not called
    r = upscale(src, str(tmp_path / "o8.mkv"), model="bicubic", scale=2, codec="ffv1", progress=False,
                pix_fmt="yuv420p")  # 8-bit planar out, but not the source's pix_fmt
    assert r["frames"] == 3 and not called
