"""The evaluation's report: the results as a text table, comparison crops and per-frame PSNR plots.

:func:`format_table` formats what :func:`videosr.eval.protocol.evaluate` returns; :class:`ComparisonView`
and :func:`plot_psnr_per_frame` draw the pictures of ``videosr eval --save-images`` (Pillow only).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..resample import upsample
from .degrade import LRRecipe, quantize

# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def describe_lr(result: dict) -> str:
    """The LR of a result in words: ``BI``, ``LR files``, ``BI + libx264 CRF 25 medium (yuv420p, 25 fps)``."""
    lr = result.get("lr")
    if not isinstance(lr, dict) or "degradation" not in lr:
        return str(result.get("degradation", "?"))
    rec = LRRecipe(lr["degradation"], lr.get("codec"), lr.get("crf"), lr.get("preset"), lr.get("noise") or 0.0)
    return rec.describe()


def format_table(results: list[dict]) -> str:
    """The results as a text table: clip, frames, PSNR-Y, SSIM-Y, tOF, seconds (the model's inference only, as
    the footnote says); a row group per model."""

    def f(v, fmt):
        width = int(fmt.split(".")[0])
        return f"{'-':>{width}}" if v is None else format(v, fmt)

    names = [n for r in results for n in r["clips"]]
    w = max([len("clip"), len("mean")] + [len(n) for n in names])
    head = f"{'clip':<{w}}  {'frames':>6}  {'PSNR-Y':>7}  {'SSIM-Y':>7}  {'tOF':>6}  {'seconds':>7}"
    lines = []
    for r in results:
        lines.append(f"{r['model']} (x{r['scale']}, {describe_lr(r)})")
        lines.append(head)
        lines.append("-" * len(head))
        secs = r.get("clip_seconds", {})
        total = 0
        for name, c in r["clips"].items():
            total += c["frames"]
            lines.append(
                f"{name:<{w}}  {c['frames']:>6}  {f(c['psnr_y'], '7.2f')}  {f(c['ssim_y'], '7.4f')}  "
                f"{f(c['tof'], '6.3f')}  {f(secs.get(name), '7.2f')}"
            )
        m = r["mean"]
        lines.append("-" * len(head))
        lines.append(
            f"{'mean':<{w}}  {total:>6}  {f(m['psnr_y'], '7.2f')}  {f(m['ssim_y'], '7.4f')}  "
            f"{f(m['tof'], '6.3f')}  {r['seconds']:>7.2f}"
        )
        if "load_seconds" in r:
            lines.append(
                f"seconds: the model's inference only; its load took {r['load_seconds']:.2f} s and the "
                f"metrics of its outputs {r.get('metric_seconds', 0.0):.2f} s"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------------------
# Pictures: comparison crops and per-frame PSNR plots (Pillow only)
# --------------------------------------------------------------------------------------------------


def _font(size: int = 14):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _to_pil(x: torch.Tensor):
    from PIL import Image

    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (3, H, W) -> (H, W, 3)
    return Image.fromarray(np.ascontiguousarray(a))


class ComparisonView:
    """Collects the same crop of one frame from LR (nearest), bicubic, each model and GT."""

    def __init__(
        self, name: str, gt: torch.Tensor, lr: torch.Tensor, scale: int, crop_border: int, size: int = 160
    ) -> None:
        from .metrics import psnr

        self.name, self.scale = name, scale
        self.frame = gt.shape[0] // 2
        g = gt[self.frame]
        lr_f = lr[self.frame]
        h, w = g.shape[-2:]
        side = min(size // scale * scale, h // scale * scale, w // scale * scale)
        self.side = side
        bic = quantize(upsample(lr_f, scale).clamp(0, 1))
        # the crop where bicubic loses most (the interesting detail), on a grid of scale-aligned windows
        err = ((bic - g) ** 2).mean(0, keepdim=True)[None]  # (1, 1, H, W)
        pooled = torch.nn.functional.avg_pool2d(err, side, stride=max(scale, side // 4))
        iy, ix = divmod(int(pooled.flatten().argmax()), pooled.shape[-1])
        stride = max(scale, side // 4)
        self.y, self.x = iy * stride, ix * stride
        self.y -= self.y % scale
        self.x -= self.x % scale
        self.gt_crop = self._crop(g)
        ly, lx, ls = self.y // scale, self.x // scale, side // scale
        lr_crop = lr_f[:, ly : ly + ls, lx : lx + ls]
        self.panels = [
            ("LR (nearest)", lr_crop.repeat_interleave(scale, -2).repeat_interleave(scale, -1), None),
            ("bicubic", self._crop(bic), float(psnr(bic, g, crop_border=crop_border))),
        ]

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.y : self.y + self.side, self.x : self.x + self.side]

    def add(self, label: str, out: torch.Tensor, psnr_frames: torch.Tensor) -> None:
        self.panels.append((label, self._crop(out[self.frame]), float(psnr_frames[self.frame])))

    def save(self, folder: Path) -> Path:
        from PIL import Image, ImageDraw

        panels = self.panels + [("GT", self.gt_crop, None)]
        zoom = max(1, 192 // max(self.side, 1))
        tile = self.side * zoom
        pad, text_h = 6, 36
        font = _font(13)
        canvas = Image.new("RGB", (pad + len(panels) * (tile + pad), text_h + tile + 2 * pad + 18), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (label, img, p) in enumerate(panels):
            im = _to_pil(img)
            if zoom > 1:
                im = im.resize((tile, tile), Image.NEAREST)
            x0 = pad + i * (tile + pad)
            canvas.paste(im, (x0, pad))
            draw.text((x0, pad + tile + 4), label, fill="black", font=font)
            if p is not None:
                draw.text(
                    (x0, pad + tile + 20), "inf dB" if not math.isfinite(p) else f"{p:.2f} dB", fill="black", font=font
                )
        draw.text(
            (pad, canvas.height - 18),
            f"{self.name} frame {self.frame + 1}, crop at ({self.x},{self.y}), {self.side} px, shown x{zoom}; "
            "PSNR-Y of the whole frame",
            fill="gray",
            font=_font(11),
        )
        path = folder / f"{self.name}_compare.png"
        canvas.save(path)
        return path


_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step) * step
    ticks, v = [], start
    while v <= hi + 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def plot_psnr_per_frame(
    path: Path, title: str, labels: list[str], series: list[list[float]], size: tuple[int, int] = (760, 420)
) -> Path:
    """A line plot of PSNR-Y per frame, one line per model, with axes, ticks and a legend (Pillow)."""
    from PIL import Image, ImageDraw

    w, h = size
    left, right, top, bottom = 62, 16, 34, 48
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font, small = _font(13), _font(11)
    finite = [v for s in series for v in s if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    margin = max(0.2, 0.05 * (hi - lo))
    lo, hi = lo - margin, hi + margin
    n = max(len(s) for s in series)
    x0, x1, y0, y1 = left, w - right, top, h - bottom

    def px(i: float) -> float:
        return x0 + (x1 - x0) * (i / max(n - 1, 1))

    def py(v: float) -> float:
        return y1 - (y1 - y0) * ((v - lo) / (hi - lo))

    for t in _nice_ticks(lo, hi):
        yy = py(t)
        d.line([(x0, yy), (x1, yy)], fill=(230, 230, 230))
        d.line([(x0 - 4, yy), (x0, yy)], fill="black")
        d.text((4, yy - 7), f"{t:g}", fill="black", font=small)
    for t in _nice_ticks(0, n - 1, 8):
        if t != int(t):
            continue
        xx = px(t)
        d.line([(xx, y1), (xx, y1 + 4)], fill="black")
        d.text((xx - 6, y1 + 6), str(int(t) + 1), fill="black", font=small)
    d.rectangle([x0, y0, x1, y1], outline="black")
    d.text((x0 + (x1 - x0) // 2 - 20, h - 20), "frame", fill="black", font=font)
    d.text((4, 8), "PSNR-Y (dB)", fill="black", font=font)
    d.text((x0 + 110, 8), title, fill="black", font=font)
    for k, s in enumerate(series):
        col = _COLOURS[k % len(_COLOURS)]
        pts = [(px(i), py(v)) for i, v in enumerate(s) if math.isfinite(v)]
        if len(pts) > 1:
            d.line(pts, fill=col, width=2)
        for p in pts:
            d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=col)
    # legend, top right inside the axes
    lw = max(len(lbl) for lbl in labels) * 7 + 40
    lx, ly = x1 - lw - 6, y0 + 6
    d.rectangle([lx, ly, x1 - 6, ly + 18 * len(labels) + 4], fill="white", outline=(160, 160, 160))
    for k, lbl in enumerate(labels):
        col = _COLOURS[k % len(_COLOURS)]
        yy = ly + 11 + 18 * k
        d.line([(lx + 6, yy), (lx + 26, yy)], fill=col, width=3)
        d.text((lx + 32, yy - 7), lbl, fill="black", font=small)
    img.save(path)
    return path
