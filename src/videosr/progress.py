"""A small progress display: frames done/total, fps, ETA; a live counter when the total is unknown.

The first line is drawn at once (:meth:`Progress.begin`), and :func:`announce` prints one-off lines (which model
and why, "loading model ...") before the model loads, so a run never starts with silence. The ETA waits for
the warm-up: a model that emits its frames a chunk at a time (a recurrent model's first chunk can take tens of
seconds) makes the rate until its first output meaningless, so the rate counts from the first output frame and
the ETA shows once ``warmup`` more frames (a chunk) have come out: "ETA after warm-up" until then.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def announce(text: str, enabled: bool = True, stream: TextIO | None = None) -> None:
    """Print one line now (e.g. ``loading model fast-x4 ...``), flushed; nothing when not ``enabled``."""
    if enabled:
        stream = stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()


class Progress:
    """Redraws one line on a terminal; prints a line every ``interval`` seconds otherwise."""

    def __init__(
        self,
        total: int | None,
        label: str = "",
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float | None = None,
        header: str | None = None,
        warmup: int = 1,
    ) -> None:
        self.total = total if total and total > 0 else None
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._width = 0
        self.header = header  # one line printed above the first progress line (e.g. which model and why)
        self.warmup = max(1, int(warmup))  # frames after the first output before the rate is trusted for an ETA
        self._first: tuple[float, int] | None = None  # (time, frames done) at the first output frame

    def begin(self) -> None:
        """Draw the first line now (0 frames), before the model's warm-up produces anything."""
        if self.enabled:
            self._last = time.perf_counter()
            self._draw(self._last)

    def update(self, n: int = 1) -> None:
        now = time.perf_counter()
        self.done += n
        if self._first is None:  # the rate counts the frames after the first output, from its time
            self._first = (now, self.done)
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = now or time.perf_counter()
        elapsed = now - self.start
        fps = self.done / elapsed if elapsed > 0 else 0.0
        rate = self.rate(now)
        head = f"{self.label}: " if self.label else ""
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            if self.done >= self.total:
                eta_s = "00:00"
            elif rate is None:
                eta_s = "after warm-up"
            else:
                eta_s = _fmt_time((self.total - self.done) / rate)
            return (
                f"{head}[{bar:<24}] {self.done}/{self.total} frames {frac * 100:5.1f}% "
                f"{fps:6.2f} fps  elapsed {_fmt_time(elapsed)}  ETA {eta_s}"
            )
        return f"{head}{self.done} frames  {fps:6.2f} fps  elapsed {_fmt_time(elapsed)}"

    def rate(self, now: float | None = None) -> float | None:
        """Frames per second since the first output frame, once ``warmup`` more frames came out; else None
        (the model is still warming up: model load and a first chunk say nothing about the steady rate)."""
        if self._first is None:
            return None
        t0, d0 = self._first
        dt = (now or time.perf_counter()) - t0
        if self.done - d0 < self.warmup or dt <= 0:
            return None
        return (self.done - d0) / dt

    def _draw(self, now: float) -> None:
        if self.header:
            self.stream.write(self.header + "\n")
            self.header = None
        text = self.line(now)
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._draw(time.perf_counter())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
