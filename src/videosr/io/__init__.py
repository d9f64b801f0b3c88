"""Video I/O: the only place that knows about containers, codecs, pixel formats and bit depths.

``open_input`` -> streaming reader of :class:`Frame` (RGB uint8, or uint16 for >8-bit sources);
``open_output`` -> atomic streaming writer that copies audio/subtitles from the source (``plan_output`` decides
the container, encoder and pixel format once, as an ``OutputPlan`` that ``open_planned`` and the resumable
segments take);
``image_to_tensor`` / ``tensor_to_image`` convert between frames and (3, H, W) float tensors.
See ``reader`` and ``writer`` module docstrings for formats, defaults and error behaviour.
"""

from __future__ import annotations

from ._pixfmt import SWS_FROM_RGB, SWS_TO_RGB, choose_pix_fmt, rgb_to_yuv, sws_colorspace
from ._streams import IOWarning
from ._types import Frame, VideoInfo
from .convert import image_to_tensor, tensor_to_image
from .reader import ImageFolderReader, VideoReader, open_input
from .writer import (
    CODEC_DEFAULTS,
    CODECS,
    ImageFolderWriter,
    OutputPlan,
    VideoWriter,
    open_output,
    open_planned,
    plan_output,
)

__all__ = [
    "CODECS",
    "CODEC_DEFAULTS",
    "Frame",
    "IOWarning",
    "ImageFolderReader",
    "ImageFolderWriter",
    "OutputPlan",
    "SWS_FROM_RGB",
    "SWS_TO_RGB",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "choose_pix_fmt",
    "image_to_tensor",
    "open_input",
    "open_output",
    "open_planned",
    "plan_output",
    "rgb_to_yuv",
    "sws_colorspace",
    "tensor_to_image",
]
