"""videosr.eval.metrics (PSNR/SSIM as the MATLAB reference, tOF, warping error) and videosr.flow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from videosr.errors import UsageError
from videosr.eval.metrics import clip_flows, psnr, rgb_to_y, ssim, tof, warping_error
from videosr.flow import estimate_flow, flow_warp, occlusion_mask


def _rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _texture(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(1, 3, h, w)
    for s in (2, 4, 8, 16):
        y = torch.rand(1, 3, h // s + 1, w // s + 1, generator=g)
        out += F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
    return (out / 4).clamp(0, 1)


def _fourier_shift(x, dx, dy):
    """Content moved by (+dx, +dy) (periodic, band-limited)."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.fftfreq(w).view(1, -1)
    return torch.fft.ifft2(torch.fft.fft2(x.double()) * torch.exp(-2j * math.pi * (fx * dx + fy * dy))).real.float()


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


# ---- Y, PSNR, SSIM ---------------------------------------------------------------------------------


def test_rgb_to_y_values():
    x = torch.tensor([[[0.0]], [[0.0]], [[0.0]]])
    assert rgb_to_y(x).item() == pytest.approx(16.0)
    x = torch.ones(3, 1, 1)
    assert rgb_to_y(x).item() == pytest.approx(235.0)
    x = torch.tensor([1.0, 0.5, 0.25]).view(3, 1, 1)
    assert rgb_to_y(x).item() == pytest.approx(16 + 65.481 + 128.553 / 2 + 24.966 / 4)
    assert rgb_to_y(torch.rand(2, 5, 3, 4, 6)).shape == (2, 5, 1, 4, 6)
    assert rgb_to_y(x).dtype == torch.float64
    with pytest.raises(UsageError):
        rgb_to_y(torch.rand(2, 4, 4))


def test_psnr_constant_offset():
    a = torch.full((3, 20, 30), 0.5, dtype=torch.float64)
    b = a + 10 / 255
    # RGB: MSE = 100 -> 10 log10(255^2 / 100)
    assert psnr(a, b, y_channel=False).item() == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)
    # Y: offset (65.481 + 128.553 + 24.966) * 10 / 255 = 219 * 10 / 255
    dy = 219 * 10 / 255
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-9)
    assert psnr(a, a).item() == math.inf


def test_psnr_crop_border_and_batch():
    a = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    b = a.clone()
    b[..., :2, :] = 1.0  # only a 2-pixel top band differs
    assert torch.isinf(psnr(a, b, crop_border=2)).all()
    p = psnr(a, b, y_channel=False)
    assert p.shape == (2,) and p.dtype == torch.float64
    assert p[0].item() == pytest.approx(10 * math.log10(255**2 / (255**2 * 2 / 16)))
    with pytest.raises(UsageError):
        psnr(a, b, crop_border=8)
    with pytest.raises(UsageError):
        psnr(a, b[..., :8])


def test_ssim_identical_and_constant():
    a = _rand(3, 24, 20)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a, y_channel=False).item() == pytest.approx(1.0, abs=1e-12)
    # constants: sigma = 0, so SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) on 0..255
    c1 = (0.01 * 255) ** 2
    x, y = torch.full((1, 16, 16), 0.2, dtype=torch.float64), torch.full((1, 16, 16), 0.6, dtype=torch.float64)
    m1, m2 = 0.2 * 255, 0.6 * 255
    assert ssim(x, y, y_channel=False).item() == pytest.approx((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1))


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Straight transcription of the MATLAB reference for one 2-D image on 0..255 (valid region)."""
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w = a.shape
    vals = []
    for i in range(h - 10):
        for j in range(w - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mu1, mu2 = (win * pa).sum(), (win * pb).sum()
            s1 = (win * pa * pa).sum() - mu1**2
            s2 = (win * pb * pb).sum() - mu2**2
            s12 = (win * pa * pb).sum() - mu1 * mu2
            vals.append(((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2)))
    return float(np.mean(vals))


def test_ssim_matches_reference_small():
    a, b = _rand(3, 14, 13, seed=1), _rand(3, 14, 13, seed=2)
    b = 0.7 * a + 0.3 * b
    ya, yb = rgb_to_y(a)[0].numpy(), rgb_to_y(b)[0].numpy()
    assert ssim(a, b).item() == pytest.approx(_ssim_reference(ya, yb), abs=1e-12)
    per_ch = [_ssim_reference(a[c].numpy() * 255, b[c].numpy() * 255) for c in range(3)]
    assert ssim(a, b, y_channel=False).item() == pytest.approx(np.mean(per_ch), abs=1e-12)
    # 11x11 after cropping: a single window
    a2, b2 = _rand(3, 15, 15, seed=3), _rand(3, 15, 15, seed=4)
    ref = _ssim_reference(rgb_to_y(a2)[0, 2:-2, 2:-2].numpy(), rgb_to_y(b2)[0, 2:-2, 2:-2].numpy())
    assert ssim(a2, b2, crop_border=2).item() == pytest.approx(ref, abs=1e-12)
    with pytest.raises(UsageError):
        ssim(a2, b2, crop_border=3)
    assert ssim(torch.stack([a, b]), torch.stack([b, b])).shape == (2,)


# ---- flow ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [(1.3, -0.7), (0.25, 0.4), (-5.6, 3.2)])
def test_flow_recovers_subpixel_translation(d):
    ref = _texture(160, 224)
    sup = _fourier_shift(ref, *d)  # content moved by +d: the flow warping sup onto ref is +d
    flow = estimate_flow(ref, sup)
    assert flow.shape == (1, 2, 160, 224)
    err = (flow[..., 24:-24, 24:-24] - torch.tensor(d).view(1, 2, 1, 1)).abs()
    assert err.mean() < 0.05 and err.max() < 0.15, (err.mean(), err.max())
    warped = flow_warp(sup, flow)
    assert (warped - ref)[..., 24:-24, 24:-24].abs().mean() < 0.01


def test_flow_batched_and_warp():
    ref = _texture(96, 128)
    sups = torch.cat([_fourier_shift(ref, 1.0, 0.0), _fourier_shift(ref, 0.0, -2.0)])
    flow = estimate_flow(ref.expand(2, -1, -1, -1), sups)
    inner = flow[..., 16:-16, 16:-16].mean(dim=(-2, -1))
    torch.testing.assert_close(inner, torch.tensor([[1.0, 0.0], [0.0, -2.0]]), atol=0.05, rtol=0)
    # flow_warp: an integer flow is an exact shift
    x = torch.arange(20.0).view(1, 1, 4, 5)
    f = torch.zeros(1, 2, 4, 5)
    f[:, 0] = 1.0
    assert torch.equal(flow_warp(x, f)[..., :4], x[..., 1:])
    with pytest.raises(UsageError):
        flow_warp(x, f[:, :1])


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_dis_flow_same_convention_as_estimate_flow(preset):
    """OpenCV's DIS (videosr.flow.dis_flow) returns the flow that warps sup onto ref, like estimate_flow, per
    batch item; a bad preset is a UsageError."""
    pytest.importorskip("cv2")
    from videosr.flow import dis_flow

    ref = _texture(96, 128)
    sups = torch.cat([_fourier_shift(ref, 2.0, 0.0), _fourier_shift(ref, 0.0, -3.0)])
    flow = dis_flow(ref.expand(2, -1, -1, -1), sups, preset)
    assert flow.shape == (2, 2, 96, 128) and flow.dtype == torch.float32
    inner = flow[..., 16:-16, 16:-16].median(-1).values.median(-1).values
    torch.testing.assert_close(inner, torch.tensor([[2.0, 0.0], [0.0, -3.0]]), atol=0.25, rtol=0)
    with pytest.raises(UsageError):
        dis_flow(ref, ref, "slow")


def test_recurrent_model_with_dis_aligner():
    """flow="dis": a recurrent model aligned by DIS runs (parameter-free, as the classical flow)."""
    pytest.importorskip("cv2")
    from videosr.models import create_model

    net = create_model("quality-x4-full", pretrained=False, flow="dis").eval()
    assert type(net.flow).__name__ == "DISFlow"
    with torch.no_grad():
        y = net(torch.rand(1, 3, 3, 16, 20))
    assert y.shape == (1, 3, 3, 64, 80)


def test_occlusion_mask():
    fw = torch.zeros(1, 2, 10, 12)
    fw[:, 0] = 2.0
    bw = -fw
    m = occlusion_mask(fw, bw)
    assert m.shape == (1, 1, 10, 12)
    assert m[..., :10].eq(1).all() and m[..., 10:].eq(0).all()  # x + 2 leaves the frame for x >= 10
    assert occlusion_mask(fw, fw).sum() == 0  # inconsistent everywhere


# ---- temporal metrics ------------------------------------------------------------------------------


def test_tof_and_warping_error():
    base = _texture(64, 80, seed=5)
    clip = torch.cat([_fourier_shift(base, 0.7 * t, 0.3 * t) for t in range(4)]).clamp(0, 1)  # (4, 3, H, W)
    assert tof(clip, clip).item() == 0.0
    gt_flows = clip_flows(clip)
    assert gt_flows.shape == (3, 2, 64, 80)
    # a static output against a moving GT: tOF ~ the GT motion |(-0.7, -0.3)| (flow warps t + 1 onto t)
    static = clip[:1].expand(4, -1, -1, -1).contiguous()
    v = tof(static, gt_flows=gt_flows).item()
    assert abs(v - math.hypot(0.7, 0.3)) < 0.1
    # warping error: the true clip is consistent with its own motion (what is left is bilinear
    # interpolation of this busy texture, ~2.5 levels); 10% flicker is not (~12.6 levels)
    we = warping_error(clip, clip).item()
    flicker = clip * torch.tensor([1.0, 0.9, 1.0, 0.9]).view(4, 1, 1, 1)
    assert we < 3.5 and warping_error(flicker, clip).item() > 3 * we
    # LR inputs are upsampled to the output size
    lr = F.avg_pool2d(clip, 2)
    assert warping_error(clip, lr).item() < 4.0
    with pytest.raises(UsageError):
        warping_error(clip, clip[..., :30, :30])
    with pytest.raises(UsageError):
        tof(clip[:1], clip[:1])
