"""`videosr.upscale`: decode -> model (chunked, tiled) -> encode, streaming, with overlapping stages.

Three stages run concurrently, joined by bounded queues so memory stays bounded by a few frames:
a decoder thread (PyAV releases the GIL while decoding), the model in the calling thread (torch
releases it while computing), and an encoder thread. Any failure in a stage stops the others; the
writer then removes its temporary file, so a failed run never leaves a file at OUTPUT.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .errors import ModelError, UsageError
from .io import Frame
from .progress import Progress

SCALES = (2, 3, 4)
_END = object()


def default_model_name(scale: int) -> str:
    """The best shipped video model for this scale (highest measured Vid4 PSNR), else bicubic."""
    from .models import list_models

    trained = [v for v in list_models() if v.scale == scale and v.weights and v.vid4_psnr_y is not None]
    if trained:
        return max(trained, key=lambda v: v.vid4_psnr_y).name
    return "bicubic"


def load_model(model: str | None, scale: int | None, weights: str | None = None,
               backend: str = "torch") -> nn.Module:
    """Resolve ``--model``/``--scale``: a variant name, a family name (``pan`` + scale 2 -> ``pan-x2``)
    or a training checkpoint path. Returns the model in eval mode with ``.scale`` set."""
    from .models import VARIANTS, create_model

    if scale is not None and scale not in SCALES:
        raise UsageError(f"unsupported scale {scale} (use one of {', '.join(map(str, SCALES))})")
    if model is None:
        model = default_model_name(scale or 4)
    if model not in VARIANTS and os.path.exists(model):
        from .train import load_checkpoint_model

        net = load_checkpoint_model(model)
    else:
        if model not in VARIANTS and scale is not None and f"{model}-x{scale}" in VARIANTS:
            model = f"{model}-x{scale}"
        if model not in VARIANTS:
            create_model(model)  # raises ModelError listing the known names
        v = VARIANTS[model]
        from .models import ARCHS

        any_scale = bool(getattr(ARCHS[v.arch], "any_scale", False))
        if scale is not None and scale != v.scale and not any_scale:
            others = [n for n, o in VARIANTS.items() if o.scale == scale and o.arch == v.arch]
            hint = f" (try {', '.join(others)})" if others else ""
            raise UsageError(f"model {model} upscales x{v.scale}, not x{scale}{hint}")
        overrides = {"scale": scale} if (any_scale and scale is not None and scale != v.scale) else {}
        net = create_model(model, weights=weights, **overrides)
    if scale is not None and net.scale != scale:
        raise UsageError(f"model {model} upscales x{net.scale}, not x{scale}")
    if net.scale not in SCALES:
        raise ModelError(f"model {model} has unsupported scale {net.scale}")
    if backend == "onnxruntime":
        from .export import to_onnxruntime

        net = to_onnxruntime(net)
    elif backend != "torch":
        raise UsageError(f"unknown backend {backend!r} (use torch or onnxruntime)")
    net.display_name = model  # type: ignore[attr-defined]
    return net


class _Stage(threading.Thread):
    """A daemon thread whose exception is kept and re-raised in the caller."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def upscale(input: str, output: str, *, scale: int | None = None, model: str | None = None,
            weights: str | None = None, tile: int | str | None = None, device: str = "auto",
            precision: str = "auto", chunk: int | None = None, codec: str = "libx264",
            crf: int | None = None, preset: str | None = None, pix_fmt: str | None = None,
            overwrite: bool = False, progress: bool = True, backend: str = "torch",
            on_frame: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Upscale INPUT to OUTPUT; returns ``{"input", "output", "model", "scale", "frames", "seconds", "fps"}``.

    INPUT: a video file, a folder of images, or ``-`` (y4m on stdin). OUTPUT: .mp4/.mkv/.mov/.webm,
    a folder of PNGs, or ``-`` (y4m on stdout). Audio and subtitle streams, timestamps and colour
    metadata are kept. The output appears only when complete.
    """
    from .engine import Engine, set_threads
    from .io import image_to_tensor, open_input, open_output

    t0 = time.perf_counter()
    set_threads()
    with open_input(input) as reader:
        info = reader.info
        net = load_model(model, scale, weights, backend=backend)
        s = net.scale
        engine = Engine(net, device=device, precision=precision, tile=tile, chunk=chunk)
        out_w, out_h = info.width * s, info.height * s
        with open_output(output, info, out_w, out_h, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt,
                         overwrite=overwrite) as writer:
            frames = _run_stages(reader, writer, engine, image_to_tensor,
                                 Progress(info.frames, label="upscale", enabled=progress), on_frame)
    seconds = time.perf_counter() - t0
    return {"input": str(input), "output": str(output), "model": getattr(net, "display_name", str(model)),
            "scale": s, "frames": frames, "seconds": round(seconds, 3),
            "fps": round(frames / seconds, 3) if seconds > 0 else None}


def _run_stages(reader, writer, engine, image_to_tensor, bar: Progress,
                on_frame: Callable[[int], None] | None) -> int:
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(maxsize=max(4, engine.chunk + 2 * engine.context))
    encoded: queue.Queue = queue.Queue(maxsize=4)
    meta: deque = deque()  # Frame objects (timestamps) in decode order, matched to outputs in order

    def decode() -> None:
        for frame in reader:
            meta.append(frame)
            if not _put(decoded, image_to_tensor(frame.image), stop):
                return
        _put(decoded, _END, stop)

    def encode() -> None:
        while True:
            try:
                item = encoded.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if item is _END or stop.is_set():
                return
            src, hr = item
            # the writer quantises the float (3, sH, sW) tensor straight into its frame planes
            writer.write(Frame(image=hr, pts=src.pts, time_base=src.time_base, index=src.index))

    def lr_frames() -> Iterator[torch.Tensor]:
        while True:
            try:
                item = decoded.get(timeout=0.1)
            except queue.Empty:
                if dec.error is not None or not dec.is_alive():
                    if dec.error is not None:
                        raise dec.error
                    if decoded.empty():
                        return
                continue
            if item is _END:
                return
            yield item

    dec = _Stage(decode, "videosr-decode")
    enc = _Stage(encode, "videosr-encode")
    dec.start()
    enc.start()
    n = 0
    try:
        for hr in engine.stream(lr_frames()):
            if enc.error is not None:
                raise enc.error
            if not _put(encoded, (meta.popleft(), hr), stop):
                break
            n += 1
            bar.update()
            if on_frame is not None:
                on_frame(n)
        _put(encoded, _END, stop)
        enc.join()
        if enc.error is not None:
            raise enc.error
        if dec.error is not None:
            raise dec.error
    except BaseException:
        stop.set()
        raise
    finally:
        # Stop both stages and wait for them before the caller closes the reader and the writer:
        # a container must never be closed while another thread is inside it.
        stop.set()
        dec.join()
        enc.join()
        bar.close()
    if n == 0:
        from .errors import EmptyInputError

        raise EmptyInputError(f"{reader.info.source or 'input'}: no frames could be decoded")
    return n
