"""The plane path: per-channel resamplers (bicubic, lanczos) scale 8-bit planar YUV video plane by plane."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from clips import make_video

from videosr.io import Frame, open_input, open_output
from videosr.io._pixfmt import plane_sizes
from videosr.io.convert import _quantize_u8, planes_to_tensors
from videosr.models.interp import Interp
from videosr.pipeline import upscale
from videosr.resample import upsample


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
        lr = [
            [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
            for f in c.decode(video=0)
        ]
    with av.open(str(out)) as c:
        hr = [
            [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].copy() for p in f.planes]
            for f in c.decode(video=0)
        ]
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
    assert 10 * np.log10(255**2 / mse) > 38  # chroma filtered at its own resolution, rounding in YUV


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
    r = upscale(
        src, str(tmp_path / "o8.mkv"), model="bicubic", scale=2, codec="ffv1", progress=False, pix_fmt="yuv420p"
    )  # 8-bit planar out, but not the source's pix_fmt
    assert r["frames"] == 3 and not called


@pytest.mark.parametrize("cs,rng", [(None, None), (1, 1), (5, 2), (9, 1)])
def test_rgb_to_yuv_matches_swscale(cs, rng):
    """The matrix the model's plane output uses is the conversion the writer's swscale path applies."""
    from videosr.io._pixfmt import rgb_to_yuv, sws_colorspace

    g = np.random.default_rng(0)
    rgb = np.repeat(np.repeat(g.integers(0, 256, (8, 8, 3), dtype=np.uint8), 2, 0), 2, 1)  # 2x2 flat blocks
    kw = {"dst_colorspace": sws_colorspace(cs)} if sws_colorspace(cs) is not None else {}
    if rng:
        kw["dst_color_range"] = rng
    ref = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p", **kw)
    ref = np.stack([np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in ref.planes])
    m = torch.tensor(rgb_to_yuv(cs, rng), dtype=torch.float64)
    x = torch.from_numpy(rgb).double().permute(2, 0, 1) / 255
    ours = torch.einsum("ij,jhw->ihw", m[:, :3], x) + m[:, 3, None, None]
    ours = (ours * 255).round().clamp(0, 255).numpy()
    assert np.abs(ours - ref).max() <= 1


@pytest.mark.parametrize("name", ["fast-x4", "fast-x4-large", "fast-x2"])
def test_fastvsr_forward_planes_is_forward_in_yuv(name):
    """forward_planes = forward clamped to [0, 1] (as the RGB output path clamps), then the colour matrix and a
    2x2 chroma average, on the kept frames (random weights and frames: many outputs leave [0, 1])."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model

    torch.manual_seed(0)
    net = create_model(name, pretrained=False).eval()
    for p in net.to_rgb.parameters():  # the shipped init is zero: give the learned branch something to carry
        torch.nn.init.normal_(p, std=0.02)
    x = torch.rand(1, 5, 3, 13, 22)
    m = torch.tensor(rgb_to_yuv(1, 1))
    with torch.no_grad():
        rgb = net(x)[0, 1:4]  # (3, 3, sH, sW)
        y, u, v = (p[0] for p in net.forward_planes(x, m, keep=(1, 4)))
    assert ((rgb < 0) | (rgb > 1)).any()  # the clamp is exercised
    rgb = rgb.clamp(0, 1)
    yuv = torch.einsum("ij,tjhw->tihw", m[:, :3], rgb) + m[:, 3].view(1, 3, 1, 1)
    s = net.scale
    assert y.shape == (3, 13 * s, 22 * s) and u.shape == v.shape == (3, 13 * s // 2, 11 * s)
    assert torch.allclose(y, yuv[:, 0], atol=1e-5)
    assert torch.allclose(u, torch.nn.functional.avg_pool2d(yuv[:, 1:2], 2)[:, 0], atol=1e-5)
    assert torch.allclose(v, torch.nn.functional.avg_pool2d(yuv[:, 2:3], 2)[:, 0], atol=1e-5)


def test_fast_model_plane_output_matches_rgb_path(tmp_path, monkeypatch):
    """fast-x4 into a yuv420p video: the planes path runs and agrees with the RGB path."""
    from videosr.bench import make_clip
    from videosr.models.fastvsr import FastVSR

    src = make_clip(tmp_path / "in.mp4", 10, width=64, height=48)
    calls = []
    real = FastVSR.forward_planes
    monkeypatch.setattr(FastVSR, "forward_planes", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    a, b = tmp_path / "rgb.mkv", tmp_path / "yuv.mkv"
    upscale(src, str(a), model="fast-x4", codec="ffv1", pix_fmt="yuv420p", progress=False, planes=False)
    assert not calls
    r = upscale(src, str(b), model="fast-x4", codec="ffv1", pix_fmt="yuv420p", progress=False)
    assert calls and r["frames"] == 10
    fa, fb = decoded(a), decoded(b)
    assert len(fa) == len(fb) == 10
    mse = np.mean([np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(fa, fb)])
    assert 10 * np.log10(255**2 / mse) > 40


@pytest.mark.parametrize("name", ["quality-x4", "online-x4", "quality-x4-full"])
def test_recurrent_forward_planes_is_forward_in_yuv(name):
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model

    torch.manual_seed(0)
    net = create_model(name, pretrained=False).eval()
    x = torch.rand(1, 6, 3, 11, 14)
    m = torch.tensor(rgb_to_yuv(None, None))
    with torch.no_grad():
        rgb = net(x)[0, 2:5].clamp(0, 1)  # (3, 3, sH, sW), clamped as the RGB output path clamps
        y, u, v = (p[0] for p in net.forward_planes(x, m, keep=(2, 5)))
    yuv = torch.einsum("ij,tjhw->tihw", m[:, :3], rgb) + m[:, 3].view(1, 3, 1, 1)
    assert y.shape == (3, 44, 56) and u.shape == v.shape == (3, 22, 28)
    assert torch.allclose(y, yuv[:, 0], atol=1e-5)
    assert torch.allclose(u, torch.nn.functional.avg_pool2d(yuv[:, 1:2], 2)[:, 0], atol=1e-5)
    assert torch.allclose(v, torch.nn.functional.avg_pool2d(yuv[:, 2:3], 2)[:, 0], atol=1e-5)


def test_model_planes_need_whole_frames_and_420(tmp_path, monkeypatch):
    """Tiled runs and non-4:2:0 outputs keep the RGB path (and still work)."""
    from videosr.models.fastvsr import FastVSR

    calls = []
    real = FastVSR.forward_planes
    monkeypatch.setattr(FastVSR, "forward_planes", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    src = make_video(tmp_path / "in.mkv", frames=3, width=40, height=24, codec="ffv1", pix_fmt="yuv420p")
    r = upscale(src, str(tmp_path / "tiled.mkv"), model="fast-x2", scale=2, tile=16, codec="ffv1", progress=False)
    assert r["frames"] == 3 and not calls
    r = upscale(
        src, str(tmp_path / "444.mkv"), model="fast-x2", scale=2, codec="ffv1", pix_fmt="yuv444p", progress=False
    )
    assert r["frames"] == 3 and not calls
    r = upscale(src, str(tmp_path / "420.mkv"), model="fast-x2", scale=2, codec="ffv1", progress=False)
    assert r["frames"] == 3 and calls


def test_jpeg_folder_to_ffv1(tmp_path):
    """A folder of JPEGs decodes as yuvj420p, which ffv1 keeps: image folders always hand out RGB frames."""
    from PIL import Image

    folder = tmp_path / "jpgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((24, 32, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.jpg")
    for model in ("bicubic", "fast-x2"):
        r = upscale(str(folder), str(tmp_path / f"{model}.mkv"), model=model, scale=2, codec="ffv1", progress=False)
        assert r["frames"] == 3


@pytest.mark.parametrize("name", ["fast-x4", "quality-x4"])
def test_bf16_autocast_keeps_the_image_base_in_float32(name):
    """Under bf16 autocast only the learned residual is bf16: with the learned tail zeroed, the output (the
    fixed base of the frame, with the colour offset) equals fp32's to float32 rounding, in both paths; in
    bf16 (8-bit mantissa) a mid-grey 128/255 alone would be half a code unit off."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model

    torch.manual_seed(0)
    net = create_model(name, pretrained=False).eval().to(memory_format=torch.channels_last)
    tail = net.to_rgb if hasattr(net, "to_rgb") else net.conv_last
    for p in tail.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 4, 3, 16, 24)
    m = torch.tensor(rgb_to_yuv(1, 1))
    with torch.inference_mode():
        ref_rgb, ref_planes = net(x), net.forward_planes(x, m)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rgb, planes = net(x), net.forward_planes(x, m)
    assert rgb.dtype == torch.float32 and (rgb - ref_rgb).abs().max() < 1e-5
    for p, r in zip(planes, ref_planes):
        assert p.dtype == torch.float32 and (p - r).abs().max() < 1e-5


def _saturated_frames(t: int, h: int, w: int) -> torch.Tensor:
    """(1, t, 3, h, w): the shipped sample clip's first frames (centre crop) with a black bar, a white patch
    and pure colour ramps painted in: content whose upscale leaves [0, 1] in many places, as real video does."""
    from pathlib import Path

    import videosr

    frames = []
    with av.open(str(Path(videosr.__file__).parent / "assets" / "sample.mp4")) as c:
        for f in c.decode(video=0):
            a = torch.from_numpy(f.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
            y0, x0 = (a.shape[1] - h) // 2, (a.shape[2] - w) // 2
            frames.append(a[:, y0 : y0 + h, x0 : x0 + w].clone())
            if len(frames) == t:
                break
    x = torch.stack(frames)
    x[:, :, : h // 6] = 0  # a letterbox bar
    x[:, :, h // 3 : h // 2, : w // 4] = 1  # a blown-out highlight
    ramp = torch.linspace(0, 1, w // 3)
    x[:, 0, -h // 4 :, -w // 3 :] = ramp  # saturated red, green and blue ramps
    x[:, 1, -h // 4 :, -w // 3 :] = 0
    x[:, 2, -h // 4 :, -w // 3 :] = ramp.flip(0)
    return x[None]


@pytest.mark.parametrize("cs,rng", [(1, 1), (5, 2)], ids=["bt709-limited", "bt601-full"])
@pytest.mark.parametrize("name", ["fast-x4", "fast-x2", "quality-x4"])
def test_planes_clamp_is_exact_with_shipped_weights(name, cs, rng):
    """With the shipped weights on real frames with black, white and saturated areas, the planes equal those
    of the clamped RGB output (what the clamp's cell test lets through is already inside [0, 1])."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model

    net = create_model(name, pretrained=True).eval()
    x = _saturated_frames(3, 48, 72)
    m = torch.tensor(rgb_to_yuv(cs, rng))
    with torch.no_grad():
        rgb = net(x)[0]
        y, u, v = (p[0] for p in net.forward_planes(x, m))
    assert ((rgb < 0) | (rgb > 1)).float().mean() > 0.005  # the clamp is exercised
    yuv = torch.einsum("ij,tjhw->tihw", m[:, :3], rgb.clamp(0, 1)) + m[:, 3].view(1, 3, 1, 1)
    assert (y - yuv[:, 0]).abs().max() < 1e-5
    assert (u - torch.nn.functional.avg_pool2d(yuv[:, 1:2], 2)[:, 0]).abs().max() < 1e-5
    assert (v - torch.nn.functional.avg_pool2d(yuv[:, 2:3], 2)[:, 0]).abs().max() < 1e-5


@pytest.mark.parametrize("kernel,scale,cell", [("cubic", 4, 2), ("cubic", 2, 2), ("linear", 4, 1)])
def test_base_chroma_step_bound(kernel, scale, cell):
    """layers._step_bounds: a base pixel's deviation from its 2x2 block mean never exceeds kv * the window's
    largest vertical step + kh * horizontal, on random, smooth and step windows."""
    from videosr.models.layers import _base_filter, _step_bounds

    _, _, A = _base_filter(kernel, scale, cell)
    A = A.double()
    kv, kh = _step_bounds(A)
    P, nw = A.shape
    g = torch.Generator().manual_seed(0)
    wins = [
        torch.rand(200, nw, nw, generator=g, dtype=torch.float64),
        torch.rand(200, 1, 1, generator=g, dtype=torch.float64) * torch.arange(nw, dtype=torch.float64)[:, None]
        + torch.rand(200, 1, 1, generator=g, dtype=torch.float64) * torch.arange(nw, dtype=torch.float64),
    ]
    step = torch.zeros(2, nw, nw, dtype=torch.float64)
    step[0, nw // 2 :], step[1, :, nw // 2 :] = 1, 1
    wins.append(step)
    w = torch.cat(wins)
    base = A @ w @ A.T  # (n, P, P)
    blocks = base.unflatten(1, (P // 2, 2)).unflatten(3, (P // 2, 2))
    dev = (blocks - blocks.mean((2, 4), keepdim=True)).abs().flatten(1).amax(1)
    bound = kv * (w[:, 1:] - w[:, :-1]).abs().flatten(1).amax(1) + kh * (w[..., 1:] - w[..., :-1]).abs().flatten(
        1
    ).amax(1)
    assert (dev <= bound + 1e-12).all()
    assert (dev[-2:] > 0.3 * bound[-2:]).all()  # and within ~3x of the truth at a sharp edge


def test_clamp_constants_follow_the_weights():
    """layers._clip_constants is computed once per weights and matrix, and again when weights are loaded."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model, layers

    net = create_model("fast-x4", pretrained=True)
    m = tuple(torch.tensor(rgb_to_yuv(1, 1)).flatten().tolist())
    args = (m, "cubic", 4, 2, torch.device("cpu"))
    a = layers._clip_constants(net.to_rgb, layers._version(net.to_rgb), *args)
    assert layers._clip_constants(net.to_rgb, layers._version(net.to_rgb), *args) is a  # cached
    with torch.no_grad():
        net.to_rgb.weight.mul_(2)  # as load_state_dict's copy_: the tensor's version moves
    b = layers._clip_constants(net.to_rgb, layers._version(net.to_rgb), *args)
    assert b is not a and torch.allclose(b["Wr"], 2 * a["Wr"])


@pytest.mark.parametrize("name,arch,attr", [("quality-x4", "recurrent", "conv_last"), ("fast-x4", "fastvsr", "to_rgb")])
def test_folded_tail_is_cached_and_exact(name, arch, attr):
    """layers.folded_tail (a model's RGB tail with the colour matrix and the 4:2:0 chroma average folded in, what
    forward_planes convolves with) is computed once per weights and matrix, again when the weights change, and
    equals, bit for bit, the fold made afresh as forward_planes made it on every call before it was cached."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model, layers

    net = create_model(name, pretrained=False, **PLANE_TINY[arch])
    conv = getattr(net, attr)
    P = int(round((conv.out_channels // 3) ** 0.5))

    def fresh(m):
        T, _ = layers.yuv420_fold(P, m)
        w = torch.einsum("oi,ijkl->ojkl", T, conv.weight.detach().cpu().to(torch.float64)).float()
        return w, (T @ conv.bias.detach().cpu().to(torch.float64)).float()

    x = torch.rand(1, 4, 3, 9, 14, generator=torch.Generator().manual_seed(2))
    for cs, rng in ((1, 1), (5, 2)):
        m = torch.tensor(rgb_to_yuv(cs, rng))
        a = layers.folded_tail(conv, m, P)
        assert layers.folded_tail(conv, m.clone(), P) is a  # cached (keyed on the matrix's values)
        assert all(torch.equal(got, want) for got, want in zip(a, fresh(m)))
        with torch.no_grad():
            first = net.forward_planes(x, m, keep=(1, 3))
            layers._folded_tail.cache_clear()
            again = net.forward_planes(x, m, keep=(1, 3))
        assert all(torch.equal(p, q) for p, q in zip(first, again))
    with torch.no_grad():
        conv.weight.mul_(2)  # as load_state_dict's copy_: the tensor's version moves
    b = layers.folded_tail(conv, m, P)
    assert b is not a and all(torch.equal(got, want) for got, want in zip(b, fresh(m)))


PLANE_TINY: dict[str, dict] = {  # as in test_models.py
    "pan": {"nf": 8, "unf": 8, "nb": 1},
    "fastvsr": {"feat": 4, "width": 8, "blocks": 1},
    "recurrent": {"width": 8, "blocks": 1, "feat_blocks": 1, "flow_width": 8, "up_channels": 4},
}


def _own_variants() -> list[str]:
    from videosr.models import ARCHS, list_models

    return [v.name for v in list_models() if ARCHS[v.arch].__module__.startswith("videosr.")]


@pytest.mark.parametrize("name", _own_variants())
def test_every_variants_plane_path_is_its_forward(name):
    """Every registered variant (tiny, random weights, zero-initialised layers made non-zero): the planes the
    video pipeline writes are ``forward``'s output in YUV. Models with ``forward_planes``: forward clamped, the
    colour matrix, 4:2:0 chroma (odd LR size, kept frames 1..3 of 5); per-channel resamplers: ``upsample_plane``
    of the YUV frame is the YUV of ``forward`` (a linear filter commutes with the matrix); the others have no
    planes path (the pipeline gives them RGB). tests/test_export.py holds the same over the ONNX graphs."""
    from videosr.io import rgb_to_yuv
    from videosr.models import VARIANTS, create_model

    torch.manual_seed(0)
    net = create_model(name, pretrained=False, **PLANE_TINY.get(VARIANTS[name].arch, {})).eval()
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    x = torch.rand(1, 5, 3, 13, 18, generator=torch.Generator().manual_seed(1))
    m = torch.tensor(rgb_to_yuv(1, 1))
    s = net.scale
    with torch.no_grad():
        rgb = net(x)[0]  # (5, 3, sH, sW)
    assert rgb.shape == (5, 3, 13 * s, 18 * s)

    def yuv_of(img):
        return torch.einsum("ij,tjhw->tihw", m[:, :3], img) + m[:, 3].view(1, 3, 1, 1)

    if hasattr(net, "upsample_plane"):
        lr = yuv_of(x[0])  # (5, 3, H, W)
        with torch.no_grad():
            planes = net.upsample_plane(lr)
        assert torch.allclose(planes, yuv_of(rgb), atol=1e-5)
        return
    if not getattr(net, "supports_planes", False):
        assert VARIANTS[name].arch == "pan" or s % 2, name  # no planes path: RGB output
        return
    with torch.no_grad():
        y, u, v = (p[0] for p in net.forward_planes(x, m, keep=(1, 4)))
    yuv = yuv_of(rgb[1:4].clamp(0, 1))
    assert y.shape == (3, 13 * s, 18 * s) and u.shape == v.shape == (3, 13 * s // 2, 9 * s)
    assert torch.allclose(y, yuv[:, 0], atol=1e-5)
    assert torch.allclose(u, torch.nn.functional.avg_pool2d(yuv[:, 1:2], 2)[:, 0], atol=1e-5)
    assert torch.allclose(v, torch.nn.functional.avg_pool2d(yuv[:, 2:3], 2)[:, 0], atol=1e-5)
