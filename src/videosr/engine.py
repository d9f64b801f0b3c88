"""Inference engine shared by `upscale`, `eval` and `bench`.

* Temporal chunking: a video is cut into chunks of ``chunk`` frames; each chunk is run with the model's
  ``context`` frames of warm-up on each side (only the past side for causal models) and the warm-up
  outputs are discarded. Memory is bounded by ``chunk + 2 * context`` frames, never by video length.
  For sliding-window models (``context`` = window radius) this is exact; for recurrent models the
  warm-up lets the hidden state converge so seams do not show.
* Spatial tiling: large frames are cut into overlapping LR tiles; each tile's centre is kept.
* Precision: fp32 (channels_last on CPU), bf16 (autocast; a variant's default only where measured to be
  both faster and within 0.05 dB of fp32), fp16 (CUDA), int8 (CPU, asked for only: the conv trunk quantized in
  ONNX Runtime, for the variants whose int8 Vid4 PSNR is within 0.1 dB of fp32; videosr.int8).
* ``compile``: torch.compile (inductor) of the model's forward; each new clip shape (a video's first and
  last chunks are shorter) pays a compilation (long cold, shorter from inductor's cache). Once compiled a
  frame runs faster than eager, but on a short video the compilations cost more than that saves (one-off
  measurements, no committed result: `videosr bench --compile` measures it). Off by default.

Frames are (C, H, W) float RGB tensors in [0, 1]; a clip is (T, C, H, W); the model sees (B, T, C, H, W).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_has_fast_bf16() -> bool:
    """True where bf16 convolutions are much faster than fp32: CPUs with AMX tiles. Measured on a Xeon with AMX
    (benchmarks/results/int8_speed.json): fast-x4's convolution trunk ran 2.4-2.9x faster in bf16 than in fp32,
    and 0.4-0.5x with oneDNN held below AMX (ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI); whole models gain less
    (benchmarks/results/model_speed_amx.json: fast-x4 1.2x, quality-x4 1.5x). On a Zen 5 (AVX512-BF16 alone)
    bf16 autocast was slower than fp32 too."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    if isa != "ALL" and "AMX" not in isa:
        return False
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device, model: nn.Module, verify_int8: bool = True) -> str:
    """``auto`` takes the variant's verified default (``Variant.precision``: bf16 only where its Vid4 PSNR is
    within 0.05 dB of fp32) where the device runs it fast (on a CPU: AMX), else fp32; never int8. ``int8``: only
    on the CPU, for a variant whose int8 trunk passed its Vid4 gate (``verify_int8=False``: without the gate, for
    `videosr eval` measuring it)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision == "auto":
        variant = getattr(model, "variant", None)
        precision = getattr(variant, "precision", "fp32") or "fp32"
        if precision == "bf16" and device.type == "cpu" and not (cpu_has_native_bf16() and cpu_has_fast_bf16()):
            precision = "fp32"
        if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
            precision = "fp16"
    if precision == "fp16" and device.type == "cpu":
        raise UsageError("fp16 is for CUDA; on a CPU use bf16 or fp32")
    if precision == "int8":
        if device.type != "cpu":
            raise UsageError("int8 runs on the CPU (ONNX Runtime); on CUDA use fp16 or bf16")
        from .int8 import check_int8

        check_int8(model, verified=verify_int8)
    return precision


def auto_tile(
    h: int, w: int, scale: int, device: torch.device, frames: int = 1, bytes_per_hr_pixel: int = 4 * 3 * 24
) -> int | None:
    """Pick an LR tile size so one chunk's activations fit in a quarter of free memory.

    ``bytes_per_hr_pixel`` is a deliberately generous estimate of activation memory per output pixel
    per frame (features at LR plus upsampling stages). Returns None when the whole frame fits.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = _available_memory()
    budget = free // 4
    need = h * w * scale * scale * frames * bytes_per_hr_pixel
    if need <= budget:
        return None
    side = int((budget / (scale * scale * frames * bytes_per_hr_pixel)) ** 0.5)
    return max(64, side // 8 * 8)


def _available_memory() -> int:
    """Free RAM, or the room left under an address-space limit (``ulimit -v``) where that is less."""
    free = 4 << 30
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
                        break
            free = min(free, max(0, limit - used))
    except (OSError, ValueError, IndexError):
        pass
    return free


def default_chunk(context: int, device: torch.device) -> int:
    """Frames per temporal chunk when none is asked for: ``2 * context`` (at least 8) for video models; image
    models (context 0) one frame at a time on a CPU, 8 on CUDA."""
    # image models: batching frames does not make the convolutions faster on a CPU, and keeps several 1080p
    # float frames (25 MB each) out of cache: bicubic x4 to 1080p cost several times more per frame in batches
    # of 4 than one at a time (a one-off measurement). On CUDA they take 8 frames per call (a batch: the GPU
    # needs the parallelism).
    return (8 if device.type == "cuda" else 1) if context == 0 else max(8, 2 * context)


@dataclass
class Engine:
    """Runs a registered model over clips or frame streams with chunking, tiling and precision."""

    model: nn.Module
    device: str | torch.device = "auto"
    precision: str = "auto"
    tile: int | str | None = None  # LR tile side in pixels, "auto", or None for whole frames
    tile_overlap: int = 16  # LR pixels of overlap on each side of a tile
    chunk: int | None = None  # frames per temporal chunk (None: by model type)
    clamp: bool = True  # clamp outputs to [0, 1]; the video writer quantizes with clamping, so it skips this
    # (3, 4) RGB -> YUV map of the output video: stream 4:2:0 planes (Y, U, V) from the model's
    # ``forward_planes`` instead of RGB frames (models with ``supports_planes``; whole frames only). Decided at
    # construction, like every field: an Engine is not changed after its checks (make another one instead)
    planes: torch.Tensor | None = None
    compile: bool = False  # torch.compile the model's forward (and forward_planes)
    verify_int8: bool = True  # False: int8 without its Vid4 gate (only `videosr eval`, which measures the gate)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device) if isinstance(self.device, str) else self.device
        self.precision = resolve_precision(self.precision, self.device, self.model, self.verify_int8)
        if self.precision == "int8":
            from .int8 import int8_model

            self.model = int8_model(self.model)  # a copy: the trunk in ONNX Runtime int8, the rest float32
        self.scale = int(self.model.scale)
        self.context = int(getattr(self.model, "context", 0))
        self.causal = bool(getattr(self.model, "causal", False))
        if self.chunk is None:
            self.chunk = default_chunk(self.context, self.device)
        if self.chunk < 1:
            raise UsageError("chunk must be >= 1 frame")
        if isinstance(self.tile, str) and self.tile != "auto":
            raise UsageError(f"tile must be a number of pixels or 'auto', not {self.tile!r}")
        if isinstance(self.tile, int) and self.tile < 8:
            raise UsageError("tile must be at least 8 pixels")
        # channels_last: fp32 3x3 convolutions run faster in channels_last than NCHW on the CPU (whole models:
        # the fp32 and fp32_cl columns of benchmarks/results/model_speed_*.json); bf16 autocast is *slower* than
        # fp32 on CPUs without AMX (AVX512-BF16 alone), faster with AMX (cpu_has_fast_bf16)
        self.channels_last = self.device.type == "cpu" or self.precision in ("bf16", "fp16")
        self.model = self.model.to(self.device).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._tile_cache: dict[tuple[int, int], int | None] = {}
        self._call, self._call_planes = self.model, getattr(self.model, "forward_planes", None)
        # a model whose forward takes ``keep=(a, b)`` returns only the frames a chunk keeps, so its context
        # frames are never reconstructed at the output size (recurrent models: most of a chunk's memory)
        import inspect

        try:
            self._keep = "keep" in inspect.signature(self.model.forward).parameters
        except (TypeError, ValueError):
            self._keep = False
        if self.compile:
            self._call = torch.compile(self.model)
            self._call_planes = torch.compile(self._call_planes) if self._call_planes is not None else None
        if self.planes is not None and (self.tile is not None or not getattr(self.model, "supports_planes", False)):
            raise UsageError("planes output needs whole frames (no tile) and a model with supports_planes")

    # ------------------------------------------------------------------ clips
    @torch.inference_mode()
    def run_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, C, H, W) -> (T, C, sH, sW) for a clip held in memory, chunked like a stream."""
        return torch.stack(list(self.stream(iter(frames))))

    # ---------------------------------------------------------------- streams
    def stream(
        self, frames: Iterable[torch.Tensor], first: int = 0, start: int | None = None
    ) -> Iterator[torch.Tensor]:
        """Upscale a stream of (C, H, W) frames lazily, yielding (C, sH, sW) frames in order (on CPU).

        ``first``: the video index of the stream's first frame; ``start``: the index of the first output
        wanted (default ``first``). Frames in [first, start) are warm-up only: a resumed run passes
        ``first = start - context`` with ``start`` a multiple of ``chunk``, and then cuts exactly the
        clips an uninterrupted run cuts, so every output frame comes from the same input clip."""
        ctx = self.context
        chunk = self.chunk
        buf: deque[torch.Tensor] = deque()  # frames [base, base + len(buf))
        base = first  # index of buf[0]
        next_out = first if start is None else start  # index of the next frame to emit
        it = iter(frames)
        ended = False
        while True:
            # fill: need the core [next_out, next_out + chunk) plus ctx future frames (non-causal)
            want = next_out + chunk + (0 if self.causal else ctx)
            while not ended and base + len(buf) < want:
                try:
                    buf.append(next(it))
                except StopIteration:
                    ended = True
            have = base + len(buf)
            if next_out >= have:
                return
            core_end = min(next_out + chunk, have)
            lo = max(base, next_out - ctx)
            hi = core_end if self.causal else min(have, core_end + ctx)
            clip = torch.stack([buf[i - base] for i in range(lo, hi)])  # (t, C, H, W)
            if self.planes is not None:
                yuv = self._forward_planes(clip, (next_out - lo, core_end - lo))  # Y, U, V: (core, ., .) each
                for i in range(core_end - next_out):
                    yield tuple(p[i] for p in yuv)
            elif self._keep:
                out = self._run(clip, (next_out - lo, core_end - lo))  # (core, C, sH, sW): the kept frames
                for i in range(core_end - next_out):
                    # a copy per frame: a view would keep the whole chunk's block alive while the next chunk
                    # is computed (frames wait in the encoder's queue), two chunks of full-size frames at once
                    yield out[i].clone()
                del out
            else:
                out = self._run(clip)  # (t, C, sH, sW)
                for i in range(next_out, core_end):
                    yield out[i - lo]
            next_out = core_end
            while base < next_out - ctx and buf:  # keep ctx past frames as warm-up for the next chunk
                buf.popleft()
                base += 1

    # ----------------------------------------------------------------- tiles
    @torch.inference_mode()
    def _run(self, clip: torch.Tensor, keep: tuple[int, int] | None = None) -> torch.Tensor:
        """(t, C, H, W) -> (t, C, sH, sW), or only frames ``keep = (a, b)`` of the clip (models with ``keep``)."""
        t, c, h, w = clip.shape
        fwd = self._forward if keep is None else (lambda x: self._forward(x, keep))
        tile = self.tile
        if tile == "auto":
            key = (h, w)
            if key not in self._tile_cache:
                self._tile_cache[key] = auto_tile(h, w, self.scale, self.device, frames=t)
            tile = self._tile_cache[key]
        if tile is None or (h <= tile and w <= tile):
            return fwd(clip)
        s = self.scale
        out = torch.empty(t if keep is None else keep[1] - keep[0], c, h * s, w * s)
        ov = self.tile_overlap
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                # input window with overlap, clipped to the frame
                ya, xa = max(0, y0 - ov), max(0, x0 - ov)
                yb, xb = min(h, y1 + ov), min(w, x1 + ov)
                part = fwd(clip[:, :, ya:yb, xa:xb])  # (t or kept, C, s*(yb-ya), s*(xb-xa))
                out[:, :, y0 * s : y1 * s, x0 * s : x1 * s] = part[
                    :, :, (y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s
                ]
        return out

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision == "fp16":
            return torch.autocast(self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _compile_errors(self):
        """torch.compile's failures (no C++ compiler, an unsupported op) as one clear line."""
        if not self.compile:
            yield
            return
        try:
            yield
        except Exception as e:  # noqa: BLE001 - inductor raises many types; eager errors pass through unchanged
            mod = type(e).__module__ or ""
            if not mod.startswith(("torch._dynamo", "torch._inductor")):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"torch.compile failed ({first}); run without --compile") from None

    @torch.inference_mode()
    def _forward_planes(self, clip: torch.Tensor, keep: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        x = clip.to(self.device, non_blocking=True)[None]  # (1, t, C, h, w)
        with self._autocast(), self._compile_errors():
            yuv = self._call_planes(x, self.planes.to(self.device), keep=keep)
        return tuple(p[0].float().cpu() for p in yuv)  # (t', sH, sW), (t', sH/2, sW/2) x 2

    def _forward(self, clip: torch.Tensor, keep: tuple[int, int] | None = None) -> torch.Tensor:
        x = clip.to(self.device, non_blocking=True)[None]  # (1, t, C, h, w)
        with self._autocast(), self._compile_errors():
            y = self._call(x) if keep is None else self._call(x, keep=keep)
        y = y[0].float()
        return (y.clamp_(0, 1) if self.clamp else y).cpu()


def set_threads(n: int | None = None) -> None:
    """Use all cores for intra-op parallelism (the default may be lower in containers)."""
    n = n or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)


@torch.no_grad()
def run_clip(model: nn.Module, frames: torch.Tensor, **engine_kwargs) -> torch.Tensor:
    """Upscale a whole clip: (T, C, H, W) float RGB [0, 1] -> (T, C, sH, sW), clamped to [0, 1]."""
    return Engine(model, **engine_kwargs).run_clip(frames)
