"""A small progress display: frames done/total, fps, ETA; a live counter when the total is unknown."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Redraws one line on a terminal; prints a line every ``interval`` seconds otherwise."""

    def __init__(self, total: int | None, label: str = "", enabled: bool = True,
                 stream: TextIO | None = None, interval: float | None = None, header: str | None = None) -> None:
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

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        fps = self.done / elapsed if elapsed > 0 else 0.0
        head = f"{self.label}: " if self.label else ""
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            eta = (self.total - self.done) / fps if fps > 0 else float("nan")
            eta_s = _fmt_time(eta) if eta == eta else "--:--"
            return (f"{head}[{bar:<24}] {self.done}/{self.total} frames {frac * 100:5.1f}% "
                    f"{fps:6.2f} fps  elapsed {_fmt_time(elapsed)}  ETA {eta_s}")
        return f"{head}{self.done} frames  {fps:6.2f} fps  elapsed {_fmt_time(elapsed)}"

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
