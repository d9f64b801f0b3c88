"""Inference engine: chunked = whole clip, tiled = untiled, causal chunking, precision resolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from videosr.engine import Engine, auto_tile, resolve_precision
from videosr.errors import UsageError


class Window(nn.Module):
    """A sliding-window toy model: weighted mean of 2r+1 frames (edges replicated), then x2 nearest."""

    scale = 2
    causal = False

    def __init__(self, r: int = 2) -> None:
        super().__init__()
        self.context = r
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        r = self.context
        xp = torch.cat([x[:, :1]] * r + [x] + [x[:, -1:]] * r, dim=1)  # (b, t+2r, c, h, w)
        y = sum(xp[:, i : i + t] * (i + 1) for i in range(2 * r + 1)) / sum(range(1, 2 * r + 2))
        y = self.conv(y.reshape(b * t, c, h, w))  # (b*t, c, h, w)
        return F.interpolate(y, scale_factor=2).reshape(b, t, c, 2 * h, 2 * w)


class Causal(nn.Module):
    """Running mean over the past frames (a toy recurrent model): output t depends on frames <= t."""

    scale = 1
    causal = True
    context = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, 1) / torch.arange(1, x.shape[1] + 1).view(1, -1, 1, 1, 1)


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 40])
def test_chunked_stream_equals_whole_clip(chunk: int) -> None:
    torch.manual_seed(0)
    m = Window(r=2).eval()
    x = torch.rand(23, 3, 12, 10)
    with torch.no_grad():
        whole = m(x[None])[0].clamp(0, 1)
    out = list(Engine(m, device="cpu", precision="fp32", chunk=chunk).stream(iter(x)))
    assert len(out) == 23
    assert torch.allclose(torch.stack(out), whole, atol=1e-6)


def test_stream_is_lazy_and_bounded() -> None:
    """The engine never holds more than chunk + 2*context input frames."""
    m = Window(r=2).eval()
    taken = 0

    def frames():
        nonlocal taken
        for _ in range(100):
            taken += 1
            yield torch.rand(3, 8, 8)

    it = Engine(m, device="cpu", precision="fp32", chunk=4).stream(frames())
    next(it)
    assert taken <= 4 + 2 * 2
    assert sum(1 for _ in it) == 99


def test_causal_chunks_use_only_past_frames() -> None:
    m = Causal()
    x = torch.rand(10, 3, 4, 4)
    eng = Engine(m, device="cpu", precision="fp32", chunk=4)
    out = torch.stack(list(eng.stream(iter(x))))
    # within the first chunk, the output is the exact running mean; later chunks restart from ctx frames
    assert torch.allclose(out[:4], m(x[None])[0][:4], atol=1e-6)
    for t in range(4, 10):
        lo = max(0, (t // 4) * 4 - 3)
        assert torch.allclose(out[t], x[lo : t + 1].mean(0), atol=1e-6)


@pytest.mark.parametrize("tile", [8, 13, 32])
def test_tiled_equals_untiled(tile: int) -> None:
    torch.manual_seed(0)
    m = Window(r=1).eval()
    x = torch.rand(3, 3, 37, 29)
    ref = Engine(m, device="cpu", precision="fp32").run_clip(x)
    tiled = Engine(m, device="cpu", precision="fp32", tile=tile, tile_overlap=4).run_clip(x)
    assert (tiled - ref).abs().max() < 1e-3


def test_auto_tile_keeps_small_frames_whole_and_tiles_huge_ones() -> None:
    cpu = torch.device("cpu")
    assert auto_tile(64, 64, 4, cpu) is None
    t = auto_tile(2160 * 8, 3840 * 8, 4, cpu, frames=16)
    assert t is not None and 64 <= t < 3840 * 8


def test_precision_rules() -> None:
    m = Window()
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu, m) == "fp32"  # no variant says bf16
    assert resolve_precision("bf16", cpu, m) == "bf16"
    with pytest.raises(UsageError):
        resolve_precision("fp16", cpu, m)
    with pytest.raises(UsageError):
        resolve_precision("int8", cpu, m)


def test_bf16_close_to_fp32() -> None:
    torch.manual_seed(0)
    m = Window(r=1).eval()
    x = torch.rand(4, 3, 16, 16)
    a = Engine(m, device="cpu", precision="fp32").run_clip(x)
    b = Engine(m, device="cpu", precision="bf16").run_clip(x)
    assert (a - b).abs().mean() < 1e-2


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        Engine(Window(), device="cpu", tile="big")
    with pytest.raises(UsageError):
        Engine(Window(), device="tpu")
    with pytest.raises(UsageError):
        Engine(Window(), device="cpu", chunk=0)


def test_keep_freed_memory_on_glibc():
    """The CLI's allocator setting is accepted where the C library is glibc (CI's), and is idempotent."""
    import platform

    from videosr._alloc import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    x = torch.ones(8 << 20)  # a 32 MB block from the heap now: allocation and freeing still work
    assert float(x.sum()) == float(8 << 20)


def test_auto_precision_is_the_variants_where_the_cpu_runs_bf16_fast(monkeypatch) -> None:
    from videosr import engine
    from videosr.models import create_model, list_models

    bf16 = [v.name for v in list_models() if v.precision == "bf16"]
    if not bf16:
        pytest.skip("no variant defaults to bf16")
    m = create_model(bf16[0], pretrained=False)
    cpu = torch.device("cpu")
    monkeypatch.setattr(engine, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu, m) == "bf16"
    assert resolve_precision("fp32", cpu, m) == "fp32"
    monkeypatch.setattr(engine, "cpu_has_fast_bf16", lambda: False)  # AVX512-BF16 alone: slower than fp32
    assert resolve_precision("auto", cpu, m) == "fp32"


def test_fast_bf16_respects_a_onednn_isa_cap(monkeypatch) -> None:
    from videosr import engine

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # AMX switched off: bf16 convs are slow
    assert engine.cpu_has_fast_bf16() is False


def test_compile_runs_the_compiled_forward_and_maps_its_failures(monkeypatch) -> None:
    """--compile wraps forward and forward_planes in torch.compile (traced here with the eager backend, no
    C++ build) and gives the same output; an inductor failure becomes a one-line UsageError."""
    from videosr.io import rgb_to_yuv
    from videosr.models import create_model

    real = torch.compile
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **k: calls.append(fn) or real(fn, backend="eager"))
    torch.manual_seed(0)
    m = create_model("fast-x2", pretrained=False, blocks=1, width=8, feat=4)
    x = torch.rand(3, 3, 12, 16)
    ref = Engine(m, device="cpu", precision="fp32").run_clip(x)
    out = Engine(m, device="cpu", precision="fp32", compile=True).run_clip(x)
    assert len(calls) == 2 and torch.allclose(out, ref, atol=1e-6)
    planes = torch.tensor(rgb_to_yuv(1, 1), dtype=torch.float32)
    eng = Engine(m, device="cpu", precision="fp32", compile=True, planes=planes)
    y = list(eng.stream(iter(x)))
    assert len(y) == 3 and y[0][0].shape == (24, 32)

    class BackendCompilerFailed(RuntimeError):
        __module__ = "torch._dynamo.exc"

    def broken(fn, **k):
        def f(*a, **kw):
            raise BackendCompilerFailed("backend='inductor' raised:\nCppCompileError: no compiler")

        return f

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(UsageError, match="torch.compile failed .*inductor.*; run without --compile"):
        Engine(m, device="cpu", precision="fp32", compile=True).run_clip(x)
