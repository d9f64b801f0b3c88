"""Plain data types shared by the reader and the writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass
class VideoInfo:
    """What the reader knows about its input (and what the writer copies from it).

    ``width``/``height`` are the coded frame size as decoded (before any rotation).
    Colour fields hold FFmpeg enum values (``AVColorPrimaries``, ``AVColorTransferCharacteristic``,
    ``AVColorSpace``, ``AVColorRange``); ``None`` when unspecified.
    """

    width: int
    height: int
    frames: int | None
    fps: Fraction | None
    time_base: Fraction
    bit_depth: int
    pix_fmt: str
    codec: str
    duration: float | None = None
    color_primaries: int | None = None
    color_trc: int | None = None
    colorspace: int | None = None
    color_range: int | None = None
    rotation: int = 0
    source: str | None = None
    audio_streams: int = 0
    subtitle_streams: int = 0
    # Raw 3x3 display matrix (9 ints, FFmpeg layout) when the source has one; the writer copies it.
    display_matrix: tuple[int, ...] | None = field(default=None, repr=False)
    # Video stream metadata worth keeping (language, title, handler_name).
    metadata: dict[str, str] = field(default_factory=dict, repr=False)
    # Container-level metadata (title, comment, ...), minus encoder tags.
    container_metadata: dict[str, str] = field(default_factory=dict, repr=False)
    # Source chroma layout, e.g. "420", "422", "444", "gray" (used to pick output pix_fmts).
    chroma: str = "420"


@dataclass
class Frame:
    """One decoded frame. ``image`` is (H, W, 3) RGB, uint8 for 8-bit sources,
    uint16 (full 0..65535 scale) for sources deeper than 8 bits; from a reader in planes mode, the
    tuple of the source's (h, w) uint8 Y, U, V planes."""

    image: np.ndarray | tuple
    pts: int | None
    time_base: Fraction
    index: int
