"""Live sources and sinks for `videosr upscale --live`: network streams and capture devices in, low-latency
MPEG-TS (or y4m on stdout) out.

Sources (:class:`LiveSource`), anything the bundled FFmpeg (PyAV's) reads as it arrives:

* ``udp://HOST:PORT``, ``rtp://HOST:PORT``, ``tcp://HOST:PORT``, ``rtsp://...``; ``srt://...`` only where the
  FFmpeg build has the protocol (PyAV's wheels do not: refused with a clear error);
* ``/dev/videoN`` (V4L2 capture);
* with ``pace=True``, a video file played at its own rate (frames released at their timestamps, as
  ``ffmpeg -re`` does): a stand-in for a live source in tests and demos. A pipe (``-``) is read as it comes.

Opened with low-delay options (no demuxer buffering, a short probe), the first frame is decoded at once, within
``timeout`` seconds: an unreachable or silent source is an :class:`InputError` naming the timeout. Later, a
source silent for ``timeout`` seconds ends the stream (a UDP stream has no end marker). Damaged data does not end
the run: a packet the decoder refuses is counted (``corrupt_packets``) and skipped, a frame it conceals is counted
(``concealed_frames``) and kept, frames lost on the way show as gaps in the timestamps (``missing_frames``). Frames may change size mid-stream: each :class:`LiveFrame` carries its own.

Sinks (:func:`open_live_sink`): frames of one fixed size, 8-bit 4:2:0, written as soon as they come:

* ``udp://HOST:PORT`` (and ``tcp://``, ``srt://`` where built): MPEG-TS, libx264 ``tune=zerolatency`` (no
  B-frames, no look-ahead, sliced threads), a keyframe every second so a receiver can join, packets flushed
  at once in 1316-byte datagrams (7 TS packets);
* ``-``: y4m on stdout, flushed after each frame (no timestamps: frames follow each other at the source rate);
* a character device such as ``/dev/null``: frames counted and discarded.

Timestamps: the sink's are the source's, from 0 at the first frame, kept increasing (a frame that would not
advance the clock is moved one tick on): dropped frames leave gaps, as in the source.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

from ..errors import InputError, OutputError, UsageError
from . import _pixfmt
from .convert import tensor_to_planes, tensors_to_frame_planes
from .writer import OutputPlan

SOURCE_SCHEMES = ("udp", "rtp", "rtsp", "srt", "tcp")
SINK_SCHEMES = ("udp", "srt", "tcp")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
_DEVICE = re.compile(r"^/dev/video\d+$")
TS_PACKET = 1316  # bytes per UDP datagram: 7 MPEG-TS packets, under any Ethernet MTU
MPEGTS_TB = Fraction(1, 90000)


def url_scheme(path) -> str | None:
    """The lower-case scheme of ``scheme://...``, else None (a plain path, ``-``, a file object)."""
    if not isinstance(path, str):
        return None
    m = _URL.match(path)
    return m.group(1).lower() if m else None


def is_device(path) -> bool:
    """A V4L2 capture device path (/dev/videoN)."""
    return isinstance(path, str) and bool(_DEVICE.match(path))


def is_live_source(path) -> bool:
    """INPUT that only `--live` reads: a network URL or a capture device."""
    return url_scheme(path) in SOURCE_SCHEMES or is_device(path)


def is_live_sink(path) -> bool:
    """OUTPUT that only `--live` writes: a network URL."""
    return url_scheme(path) in SINK_SCHEMES


def _msg(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e).strip().rstrip(".")


def _no_protocol(url: str) -> UsageError:
    scheme = url_scheme(url) or url
    return UsageError(
        f"{url}: this FFmpeg build (PyAV's) has no {scheme}:// protocol; send MPEG-TS over "
        f"udp://HOST:PORT instead (or relay it with an ffmpeg that has {scheme})"
    )


@dataclass
class LiveFrame:
    """A decoded frame with its timing: ``pts`` in seconds from the source's clock (None: the source gave none),
    ``arrival``: ``time.monotonic()`` when it was decoded (or, paced, released)."""

    frame: av.VideoFrame
    pts: float | None
    arrival: float
    index: int

    @property
    def size(self) -> tuple[int, int]:
        return self.frame.width, self.frame.height


class LiveSource:
    """Iterate to get :class:`LiveFrame` s as they arrive (see the module docstring). ``first`` is the first frame,
    decoded when the source is opened; ``width``, ``height``, ``fps`` (None if unknown), ``colorspace`` and
    ``color_range`` describe it. ``ended`` says why iteration stopped: ``"end of input"`` or ``"source silent for
    N s"``."""

    def __init__(self, src, *, timeout: float = 10.0, pace: bool = False, name: str | None = None) -> None:
        self.name = name or str(src)
        self.timeout, self.pace = float(timeout), pace
        self.corrupt_packets = 0
        self.concealed_frames = 0
        self.missing_frames = 0  # gaps in the source's timestamps (frames lost before or in the decoder)
        self.ended: str | None = None
        self._index = 0
        fmt, opts = None, {}
        scheme = url_scheme(src)
        if scheme:  # no demuxer buffering, a short probe (a file played as live keeps FFmpeg's defaults)
            opts = {"fflags": "nobuffer", "flags": "low_delay", "probesize": "500000", "analyzeduration": "500000"}
        if scheme == "udp" or scheme == "rtp":
            src = _with_query(src, {"fifo_size": "1000000", "overrun_nonfatal": "1", "buffer_size": "4194304"})
        if is_device(src):
            fmt = "video4linux2"
        if src == "-":
            if sys.stdin is None:
                raise InputError("<stdin>: standard input is closed; pipe y4m, nut or MPEG-TS into videosr")
            src, self.name = sys.stdin.buffer, "<stdin>"
        t0 = time.monotonic()
        try:
            self._c = av.open(
                src, "r", format=fmt, options=opts, timeout=(self.timeout, self.timeout), metadata_errors="replace"
            )
        except av.error.ProtocolNotFoundError:
            raise _no_protocol(self.name) from None
        except av.error.ExitError:
            raise InputError(
                f"{self.name}: no data within {self.timeout:g} s (--timeout): the source is unreachable or silent"
            ) from None
        except av.error.FFmpegError as e:
            raise InputError(f"{self.name}: cannot open the live source ({_msg(e)})") from None
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"{self.name}: cannot open the live source ({_msg(e)})") from None
        try:
            vstreams = list(self._c.streams.video)
            if not vstreams:
                raise InputError(f"{self.name}: no video stream")
            self._stream = s = vstreams[0]
            cc = s.codec_context
            if cc is None:
                raise InputError(f"{self.name}: the video stream's codec cannot be decoded")
            cc.thread_type = "SLICE"  # frame threads would hold frames back: latency
            cc.options = {**dict(cc.options or {}), "flags": "low_delay"}
            self._t0 = t0
            self._gen = self._frames()
            try:
                self.first = next(self._gen)
            except StopIteration:
                raise InputError(self.ended_error()) from None
        except BaseException:
            self.close()
            raise
        f = self.first.frame
        self.width, self.height = f.width, f.height
        rate = s.average_rate or s.guessed_rate
        self.fps = Fraction(rate) if rate and 0 < rate <= 1000 else None
        self.colorspace = f.colorspace if f.colorspace not in (None, _pixfmt.UNSPECIFIED) else None
        rng = f.color_range or None
        self.color_range = 2 if f.format.name.startswith("yuvj") else rng

    def ended_error(self) -> str:
        """The message for a source that ended before its first frame."""
        if self.ended and self.ended.startswith("source silent"):
            return f"{self.name}: no video within {self.timeout:g} s (--timeout): the source is unreachable or silent"
        return f"{self.name}: the stream ended before its first frame"

    def _frames(self) -> Iterator[LiveFrame]:
        c, s = self._c, self._stream
        start_pts = last_pts = None
        rate = s.average_rate or s.guessed_rate
        step = 1 / float(rate) if rate and 0 < rate <= 1000 else None
        try:
            for packet in c.demux(s):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    self.corrupt_packets += 1  # damaged data: skipped, the stream goes on
                    continue
                for f in frames:
                    if f.is_corrupt:
                        self.concealed_frames += 1
                    pts = float(f.pts * f.time_base) if f.pts is not None and f.time_base is not None else None
                    if pts is not None and last_pts is not None and step and pts - last_pts > 1.5 * step:
                        self.missing_frames += round((pts - last_pts) / step) - 1
                    last_pts = pts if pts is not None else last_pts
                    if self.pace and pts is not None:  # a file played as live: released at its timestamps
                        if start_pts is None:
                            self._start_wall, start_pts = time.monotonic(), pts
                        delay = self._start_wall + (pts - start_pts) - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    lf = LiveFrame(frame=f, pts=pts, arrival=time.monotonic(), index=self._index)
                    self._index += 1
                    yield lf
        except av.error.ExitError:  # the read timeout: nothing came for `timeout` seconds
            self.ended = f"source silent for {self.timeout:g} s"
            return
        except av.error.FFmpegError as e:
            self.ended = f"read error ({_msg(e)})"
            return
        except (OSError, EOFError) as e:
            self.ended = f"read error ({_msg(e)})"
            return
        self.ended = "end of input"

    def __iter__(self) -> Iterator[LiveFrame]:
        if self.pace:  # a file played as live starts now, not when it was opened
            self._start_wall = self.first.arrival = time.monotonic()
        yield self.first
        yield from self._gen

    def close(self) -> None:
        c, self._c = getattr(self, "_c", None), None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a broken stream must not hide the real error
                pass


def _with_query(url: str, defaults: dict[str, str]) -> str:
    """``url`` with ``defaults`` added to its query string (values the URL sets are kept)."""
    base, _, query = url.partition("?")
    have = {kv.split("=", 1)[0] for kv in query.split("&") if kv}
    extra = [f"{k}={v}" for k, v in defaults.items() if k not in have]
    return base + "?" + "&".join([q for q in [query] if q] + extra) if extra else url


def open_live_source(src, *, timeout: float = 10.0) -> LiveSource:
    """Open a live source (see the module docstring); a regular video file is played at its own rate."""
    pace = False
    if isinstance(src, str) and not is_live_source(src) and src != "-":
        try:
            mode = os.stat(src).st_mode
        except OSError:
            raise InputError(
                f"{src}: no such file, and not a live source (udp://, rtp://, rtsp://, tcp://, /dev/videoN)"
            ) from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"{src}: an image folder is not a live source")
        pace = stat.S_ISREG(mode)
    return LiveSource(src, timeout=timeout, pace=pace)


# -- sinks ---------------------------------------------------------------------------------------------------


def plan_live_output(
    target, width: int, height: int, *, codec: str = "libx264", crf: int | None = None, preset: str | None = None
) -> OutputPlan:
    """How a live OUTPUT is written (:class:`videosr.io.writer.OutputPlan`; see the module docstring): a stream as
    MPEG-TS of libx264 (``kind`` ``"mpegts"``), ``-`` as y4m, a character device discarded (``"null"``); always
    8-bit 4:2:0. A UsageError for another codec or an OUTPUT `--live` does not write."""
    kind = check_live_sink(target)
    if codec not in ("libx264", "h264", "x264"):
        raise UsageError(f"--live encodes MPEG-TS with libx264 (low latency), not {codec}")
    if kind == "null":
        return OutputPlan("null", width, height, None, None, None, None)
    if kind == "-":
        return OutputPlan("-", width, height, "wrapped_avframe", None, None, "yuv420p")
    return OutputPlan("mpegts", width, height, "libx264", crf, preset, "yuv420p")


class LiveSink:
    """Writes frames of ``plan.width`` x ``plan.height`` as they come (see the module docstring), as ``plan``
    (:func:`plan_live_output`) says: :meth:`write` takes a yuv420p frame of that size (:func:`to_video_frame`)
    and its time in seconds from the first frame."""

    def __init__(
        self,
        target: str,
        plan: OutputPlan,
        fps: Fraction | None,
        *,
        colorspace: int | None = None,
        color_range: int | None = None,
    ) -> None:
        width, height = plan.width, plan.height
        self.target, self.width, self.height = target, width, height
        self.fps = Fraction(fps or 25).limit_denominator(1001000)
        self.frames_written = 0
        self._cs, self._rng = _pixfmt.sws_colorspace(colorspace), color_range
        self._last_pts: int | None = None
        self._fh = None
        self._closed = False
        self._y4m = False
        scheme = url_scheme(target)
        try:
            if plan.kind == "-":
                self._fh = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
                self._oc = av.open(self._fh, "w", format="yuv4mpegpipe", options={"flush_packets": "1"})
                self._vs = self._oc.add_stream(plan.codec, rate=self.fps)
                self._tb = 1 / self.fps
                self._y4m = True
                self.path = "<stdout>"
            else:
                self.path = target
                url = _with_query(target, {"pkt_size": str(TS_PACKET)}) if scheme == "udp" else target
                # PES lengths written where they fit (frames under 64 KB): a demuxer then hands a frame over as soon
                # as it is complete, not when the next one begins
                self._oc = av.open(
                    url,
                    "w",
                    format="mpegts",
                    options={"flush_packets": "1", "omit_video_pes_length": "0"},
                    timeout=(10.0, 10.0),
                )
                opts = {
                    "preset": str(plan.preset or "ultrafast"),
                    "tune": "zerolatency",
                    "crf": str(23 if plan.crf is None else plan.crf),
                }
                self._vs = self._oc.add_stream(plan.codec, rate=self.fps, options=opts)
                self._tb = MPEGTS_TB
                self._vs.codec_context.time_base = MPEGTS_TB
                self._vs.time_base = MPEGTS_TB
                self._vs.codec_context.gop_size = max(1, round(float(self.fps)))  # a keyframe a second: joinable
            vs = self._vs
            vs.width, vs.height, vs.pix_fmt = width, height, plan.pix_fmt
            cc = vs.codec_context
            for attr, v in (("colorspace", colorspace), ("color_range", color_range)):
                if v is not None:
                    try:
                        setattr(cc, attr, v)
                    except Exception:  # noqa: BLE001 - a tag the codec does not take is left out
                        pass
            if plan.kind != "-":
                cc.open()
                self._oc.start_encoding()  # connects and writes the header now: a bad URL fails here, not later
        except av.error.ProtocolNotFoundError:
            self.abort()
            raise _no_protocol(target) from None
        except av.error.FFmpegError as e:
            self.abort()
            raise OutputError(f"{target}: cannot open the live output ({_msg(e)})") from None
        except OSError as e:
            self.abort()
            raise OutputError(f"{target}: cannot open the live output ({_msg(e)})") from None

    def _pts(self, seconds: float) -> int:
        pts = self.frames_written if self._y4m else int(round(seconds / self._tb))  # y4m: frames in order
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def write(self, vf: av.VideoFrame, seconds: float) -> None:
        """Encode one frame (yuv420p at the sink's size: :func:`to_video_frame`) and send it at once."""
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        vf.pts = self._pts(seconds)
        vf.time_base = self._tb
        try:
            for p in self._vs.encode(vf):
                self._oc.mux(p)
        except BrokenPipeError:
            raise OutputError(f"{self.path}: the reading side closed the pipe") from None
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"{self.path}: cannot send the frame ({_msg(e)})") from None
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the stream."""
        if self._closed:
            return
        try:
            for p in self._vs.encode(None):
                self._oc.mux(p)
        except (av.error.FFmpegError, OSError):
            pass  # the receiver went away: nothing left to deliver
        self.abort()

    def abort(self) -> None:
        self._closed = True
        oc, self._oc = getattr(self, "_oc", None), None
        if oc is not None:
            try:
                oc.close()
            except Exception:  # noqa: BLE001
                pass
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass


class NullSink:
    """A character device as OUTPUT (``/dev/null``): frames counted and discarded."""

    def __init__(self, path: str, plan: OutputPlan) -> None:
        self.path, self.width, self.height = path, plan.width, plan.height
        self.frames_written = 0

    def write(self, vf: av.VideoFrame, seconds: float) -> None:
        self.frames_written += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def check_live_sink(target) -> str:
    """What a live OUTPUT is (``"stream"``, ``"-"`` or ``"null"``), before anything is opened; a UsageError
    names the outputs `--live` writes."""
    if target == "-":
        return "-"
    if is_live_sink(target):
        return "stream"
    if isinstance(target, str):
        try:
            if stat.S_ISCHR(os.stat(target).st_mode):
                return "null"
        except OSError:
            pass
    raise UsageError(
        f"{target}: --live writes udp://HOST:PORT (MPEG-TS; also tcp://, srt:// where FFmpeg has "
        f"it), - (y4m on stdout) or /dev/null, not a file (record it from the stream, e.g. "
        f"ffmpeg -i udp://... -c copy out.ts)"
    )


def open_live_sink(
    target,
    width: int,
    height: int,
    fps: Fraction | None,
    *,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    colorspace: int | None = None,
    color_range: int | None = None,
) -> LiveSink | NullSink:
    """Open ``target`` (see :func:`check_live_sink`) for frames of ``width`` x ``height``, as
    :func:`plan_live_output` plans it."""
    plan = plan_live_output(target, width, height, codec=codec, crf=crf, preset=preset)
    if plan.kind == "null":
        return NullSink(target, plan)
    return LiveSink(target, plan, fps, colorspace=colorspace, color_range=color_range)


def frame_planes(f: av.VideoFrame) -> tuple[torch.Tensor, ...]:
    """A decoded frame as 8-bit 4:2:0 planes, (h, w) float tensors in [0, 1] (converted first if it is in
    another format: a camera's yuyv422, a 10-bit stream)."""
    if f.format.name not in ("yuv420p", "yuvj420p"):
        f = f.reformat(format="yuv420p")
    out = []
    for p in f.planes:
        a = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
        t = torch.empty(a.shape, dtype=torch.float32)
        t.copy_(torch.from_numpy(a))
        out.append(t.div_(255.0))
    return tuple(out)


def frame_rgb(f: av.VideoFrame, colorspace: int | None, color_range: int | None) -> torch.Tensor:
    """A decoded frame as a (3, H, W) float RGB tensor in [0, 1] (as the file reader converts it)."""
    from .convert import image_to_tensor
    from .reader import frame_to_array

    return image_to_tensor(frame_to_array(f, False, _pixfmt.sws_colorspace(colorspace), color_range))


def scale_frame(f: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """The cheap base: ``f`` scaled to ``width`` x ``height`` yuv420p by FFmpeg's bicubic (swscale, 8-bit in and
    out: much cheaper than the float MATLAB bicubic and its quantization)."""
    rng = 2 if f.format.name.startswith("yuvj") else None
    return f.reformat(
        width=width,
        height=height,
        format="yuv420p",
        interpolation="BICUBIC",
        **({"src_color_range": rng, "dst_color_range": rng} if rng else {}),
    )


def to_video_frame(
    image, width: int, height: int, colorspace: int | None = None, color_range: int | None = None
) -> av.VideoFrame:
    """A model's output, 4:2:0 planes (float (h, w) tensors in [0, 1]) or a (3, H, W) RGB float tensor, as a
    yuv420p frame of ``width`` x ``height`` for a sink: quantized (rounded, clamped), RGB converted with the
    source's matrix and range. An output a few pixels larger (odd source sizes) is cropped, one of another size
    (the source's frame size changed) resized."""
    if isinstance(image, tuple):
        sizes = ((height, width), (height // 2, width // 2), (height // 2, width // 2))
        vf = av.VideoFrame(width, height, "yuv420p")
        tensors_to_frame_planes(tuple(_fit(p[None], h, w)[0] for p, (h, w) in zip(image, sizes)), vf.planes)
        return vf
    rgb = av.VideoFrame(width, height, "gbrp")
    tensor_to_planes(_fit(image, height, width), rgb.planes, width, height, False)
    kw: dict = {"interpolation": _pixfmt.SWS_FROM_RGB}
    cs = _pixfmt.sws_colorspace(colorspace)
    if cs is not None:
        kw["dst_colorspace"] = cs
    if color_range:
        kw["dst_color_range"] = color_range
    return rgb.reformat(format="yuv420p", **kw)


def _fit(p: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(C, H', W') -> (C, h, w): cropped when at most a few pixels larger, else resized."""
    ph, pw = p.shape[-2:]
    if (ph, pw) == (h, w):
        return p
    if 0 <= ph - h <= 8 and 0 <= pw - w <= 8:
        return p[..., :h, :w]
    return torch.nn.functional.interpolate(
        p[None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=ph > h or pw > w
    )[0]
