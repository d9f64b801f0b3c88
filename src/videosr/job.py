"""The options of one upscale job as one value: :class:`JobOptions`.

:func:`videosr.pipeline.upscale` takes them as keywords (its signature and docstring say what each means),
builds one :class:`JobOptions` and hands that down (its job, the resumable segments); a distributed run
(:func:`videosr.distributed.upscale`, ``upscale_on``, ``videosr batch``) takes the same keywords and does the
same. Per-call things that are not options (progress callbacks, the header line, the resume state folder) stay
separate arguments. This module imports nothing of the pipeline, the distributed runner or the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobOptions:
    """What :func:`videosr.pipeline.upscale` was asked for (the defaults are its defaults). ``model`` is what
    was asked until :func:`videosr.pipeline.resolve_model` decides it (``--model auto``), then the model run."""

    scale: int | None = None
    model: str | None = None
    weights: str | None = None
    tile: int | str | None = None
    device: str = "auto"
    precision: str = "auto"
    chunk: int | None = None
    codec: str = "libx264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    format: str | None = None
    overwrite: bool = False
    progress: bool = True
    backend: str = "torch"
    resume: bool = False
    segment: int | None = None
    planes: bool = True
    compile: bool = False
    quality: str = "auto"
    untrained: bool = False
    fps: Any = None  # an image-folder input's frame rate (str, number or Fraction), as open_input takes it

    @classmethod
    def of(cls, where: str, options: dict[str, Any], *, exclude: frozenset[str] = frozenset()) -> JobOptions:
        """The options given to ``where`` as keywords; one it does not take is the TypeError Python raises for
        an unexpected keyword argument (``exclude``: options ``where`` does not take)."""
        for name in options:
            if name not in NAMES or name in exclude:
                raise TypeError(f"{where}() got an unexpected keyword argument {name!r}")
        return cls(**options)

    def replace(self, **changes: Any) -> JobOptions:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def input_args(self) -> dict[str, Any]:
        """The keywords of :func:`videosr.io.open_input` these options set (``fps`` only when given)."""
        return {"fps": self.fps} if self.fps is not None else {}

    def engine_args(self) -> dict[str, Any]:
        """The keywords of :func:`videosr.pipeline.build_stages` (the inference engine) these options set."""
        return {
            "device": self.device,
            "precision": self.precision,
            "tile": self.tile,
            "chunk": self.chunk,
            "compile": self.compile,
        }

    def plan_output(self, output, info, width: int, height: int):
        """:func:`videosr.io.plan_output` for OUTPUT with these options: the one decision of the output's
        container, encoder (``.webm`` replaces the codec), its settings and pixel format."""
        from .io import plan_output

        return plan_output(
            output,
            info,
            width,
            height,
            codec=self.codec,
            crf=self.crf,
            preset=self.preset,
            pix_fmt=self.pix_fmt,
            format=self.format,
        )


NAMES = frozenset(f.name for f in dataclasses.fields(JobOptions))
