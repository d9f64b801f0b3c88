"""Streaming input: a video file (anything FFmpeg decodes), a folder of images, or y4m on stdin.

Behaviour on hostile input (all raise ``videosr.errors`` types; raw ``av`` errors never escape):

* missing path -> InputError; unreadable (permissions) -> InputError; zero-byte file -> InputError;
  random bytes / mp4 without moov / unknown format -> InputError.
* audio-only file (or only cover art) -> NoVideoStreamError.
* a video stream that decodes to zero frames / empty image folder -> EmptyInputError
  (raised by ``open_input``, which decodes the first frame eagerly).
* declared frame size over 16384 on a side or over 2**28 pixels -> InputError, before decoding.
* an image renamed to .mp4: FFmpeg probes the content, so it is accepted as a 1-frame video.
* a decode error in the middle of a stream -> InputError naming the frame index (frames are never
  silently skipped); frames the decoder flags as corrupt (concealed errors) -> InputError too.
* a truncated mp4/mov whose index declares more frames than could be decoded -> InputError
  ("truncated") at the end of iteration; an mp4 cut before its moov index fails at open.
  Containers without a frame count (mkv/webm/y4m/avi) cut mid-stream end at the last complete
  frame: this cannot be told apart from a short file, so it is not an error.

Image folders: png/jpg/jpeg/bmp/tif/tiff/webp files in natural sort order (frame2 before
frame10); alpha is dropped (not composited); 16-bit PNGs give uint16 frames; all images must have
the first image's size. fps is 25 (``fps``: another rate, e.g. ``--fps 30000/1001``), time_base 1/fps and
pts = index.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from ..errors import EmptyInputError, InputError, NoVideoStreamError
from . import _pixfmt
from ._streams import warn
from ._types import Frame, VideoInfo

MAX_SIDE = 16384
MAX_PIXELS = 1 << 28
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_FPS = Fraction(25)

STDIN_PATHS = ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
STDIN_CLOSED = "<stdin>: standard input is closed (nothing to read); pipe y4m into videosr or give an input file"
STREAM_HINT = (
    "a pipe or device is read once, from its start, without seeking: send y4m, mkv, ts or nut (an mp4 "
    "streams only with its moov index at the front: ffmpeg -movflags +faststart)"
)

_KEEP_VIDEO_META = ("language", "title", "handler_name")
_DROP_CONTAINER_META = ("encoder", "major_brand", "minor_version", "compatible_brands", "creation_time")


def _check_size(w: int, h: int, what: str) -> None:
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise InputError(
            f"{what}: declared frame size {w}x{h} is too large (limit {MAX_SIDE} per side, {MAX_PIXELS} pixels)"
        )


def _av_msg(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).strip().rstrip(".")


def _y4m_problem(src) -> str | None:
    """What is wrong with the header line of a y4m file FFmpeg refused (None: not a y4m file, or no header
    problem found): FFmpeg's own error for e.g. ``W0`` is a meaningless errno."""
    if not isinstance(src, (str, os.PathLike)) or not os.path.isfile(src):
        return None  # a pipe must not be opened again: it would block (no writer left) or read other bytes
    try:
        with open(src, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    if not head.startswith(b"YUV4MPEG2"):
        return None
    line = head.split(b"\n", 1)
    if len(line) < 2:
        return "no end of line within its first 1024 bytes"
    tags = {t[:1]: t[1:].decode("ascii", "replace") for t in line[0].split()[1:] if t}
    for key, what in ((b"W", "width"), (b"H", "height")):
        v = tags.get(key)
        if v is None:
            return f"no {what} ({key.decode()} tag)"
        if not v.isdigit() or int(v) <= 0:
            return f"{what} {v!r} is not a positive number"
    rate = tags.get(b"F")
    if rate is not None:
        num, _, den = rate.partition(":")
        if not (num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0):
            return f"frame rate {rate!r} is not N:D with positive numbers"
    return None


def natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_to_array(f: av.VideoFrame, deep: bool, cs: int | None, rng: int | None) -> np.ndarray:
    """A decoded frame -> (H, W, 3) RGB array (uint8, or uint16 when ``deep``), converted with the exact-rounding
    swscale flags and the stream's colour matrix ``cs`` and range ``rng`` (None: FFmpeg's guess)."""
    kw = {}
    if cs is not None:
        kw["src_colorspace"] = cs
    if rng:
        kw["src_color_range"] = rng
    fmt = "rgb48le" if deep else "rgb24"
    if f.format.name == fmt:
        return f.to_ndarray()
    return f.to_ndarray(format=fmt, interpolation=_pixfmt.SWS_TO_RGB, **kw)  # unbiased: see SWS_TO_RGB


def _rotation_from_matrix(m) -> int:
    import math

    a, b = m[0] / 65536.0, m[1] / 65536.0
    c, d = m[3] / 65536.0, m[4] / 65536.0
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return 0
    # Same convention as av_display_rotation_get (counterclockwise degrees), folded to 0..359.
    deg = -math.degrees(math.atan2(b / sy, a / sx))
    return int(round(deg / 90.0)) * 90 % 360


class VideoReader:
    """Iterate to get :class:`Frame` s lazily; ``.info`` is a :class:`VideoInfo`. Iterate once.

    ``planes = True`` (allowed when :attr:`plane_format` is not None): each ``Frame.image`` is instead the
    tuple of the decoded frame's own (h, w) uint8 Y, U, V planes, with no colour conversion."""

    planes = False

    def __init__(
        self,
        src,
        *,
        name: str,
        source: str | None,
        format: str | None = None,
        threads: int = 0,
        hint: str | None = None,
    ):
        self.name = name
        try:
            self._c = av.open(src, "r", format=format, metadata_errors="replace")
        except av.error.FFmpegError as e:
            bad = _y4m_problem(src)
            if bad:
                raise InputError(f"{name}: invalid y4m header ({bad})") from None
            raise InputError(
                f"{name}: cannot open as a video ({_av_msg(e)}); "
                + (hint or "the file is corrupt, truncated (e.g. an mp4 without its moov index) or not a video")
            ) from None
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"{name}: cannot read input ({_av_msg(e)})") from None
        try:
            self._setup(source, threads)
        except BaseException:
            self.close()
            raise

    def _setup(self, source, threads):
        c = self._c
        vstreams = [s for s in c.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        n_audio = len(c.streams.audio)
        n_sub = len(c.streams.subtitles)
        if not vstreams:
            extra = f" (it has {n_audio} audio stream(s))" if n_audio else ""
            raise NoVideoStreamError(f"{self.name}: no video stream{extra}")
        s = self._stream = vstreams[0]
        cc = s.codec_context
        if cc is None:  # a codec id FFmpeg has no decoder for (e.g. a corrupt sample description)
            raise InputError(f"{self.name}: the video stream's codec cannot be decoded (unknown or corrupt)")
        _check_size(cc.width or 0, cc.height or 0, self.name)
        cc.thread_type = "AUTO"
        cc.thread_count = threads
        self._index = 0
        self._last_pts: int | None = None
        self._gen = self._decode()
        try:
            first = next(self._gen)
        except StopIteration:
            raise EmptyInputError(f"{self.name}: the video stream has no frames") from None
        self._first: av.VideoFrame | None = first

        tb = s.time_base or Fraction(1, 25)
        fps = s.average_rate or s.guessed_rate or s.base_rate
        # over 10000 fps is usually a container's tick, not a frame rate; a y4m header's F is the real rate
        if fps is not None and (fps <= 0 or (fps > 10000 and c.format.name != "yuv4mpegpipe")):
            fps = None
        dur = None
        if s.duration is not None and s.duration > 0:
            dur = float(s.duration * tb)
        elif c.duration:
            dur = c.duration / 1_000_000
        frames = s.frames if s.frames and s.frames > 0 else None
        pix_fmt = first.format.name
        depth = _pixfmt.bit_depth(pix_fmt)

        def spec(v):
            return None if v in (None, _pixfmt.UNSPECIFIED) else int(v)

        matrix = None
        rotation = 0
        try:
            from av.sidedata.sidedata import Type

            for sd in first.side_data:
                if sd.type == Type.DISPLAYMATRIX and len(bytes(sd)) == 36:
                    import struct

                    matrix = struct.unpack("<9i", bytes(sd))
                    rotation = _rotation_from_matrix(matrix)
        except Exception:  # pragma: no cover - side data API differences
            try:
                rotation = int(first.rotation) % 360
            except Exception:
                rotation = 0
        rng = first.color_range or None
        if pix_fmt.startswith("yuvj"):
            rng = 2
        self.info = VideoInfo(
            width=first.width,
            height=first.height,
            frames=frames,
            fps=Fraction(fps) if fps else None,
            time_base=Fraction(tb),
            bit_depth=depth,
            pix_fmt=pix_fmt,
            codec=cc.name,
            duration=dur,
            color_primaries=spec(first.color_primaries) if first.color_primaries else spec(cc.color_primaries),
            color_trc=spec(first.color_trc) if first.color_trc else spec(cc.color_trc),
            colorspace=spec(first.colorspace) if first.colorspace else spec(cc.colorspace),
            color_range=rng or (cc.color_range or None),
            rotation=rotation,
            source=source,
            audio_streams=n_audio,
            subtitle_streams=n_sub,
            display_matrix=matrix,
            metadata={k: v for k, v in s.metadata.items() if k.lower() in _KEEP_VIDEO_META},
            container_metadata={k: v for k, v in c.metadata.items() if k.lower() not in _DROP_CONTAINER_META},
            chroma=_pixfmt.chroma(pix_fmt),
        )
        self._deep = depth > 8
        self._cs = _pixfmt.sws_colorspace(self.info.colorspace)
        self._rng = self.info.color_range

    # -- decoding -------------------------------------------------------------------------
    def _decode(self) -> Iterator[av.VideoFrame]:
        s = self._stream
        n = 0
        try:
            for packet in self._c.demux(s):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    raise InputError(f"{self.name}: corrupt video data at frame {n} ({_av_msg(e)})") from None
                for f in frames:
                    if f.is_corrupt:
                        raise InputError(f"{self.name}: frame {n} is corrupt")
                    _check_size(f.width, f.height, self.name)
                    n += 1
                    yield f
        except av.error.FFmpegError as e:
            raise InputError(f"{self.name}: cannot read video data after frame {n} ({_av_msg(e)})") from None
        except (OSError, EOFError) as e:
            raise InputError(f"{self.name}: read error after frame {n} ({_av_msg(e)})") from None
        declared = s.frames
        if declared and n < declared and self._c.format.name.startswith("mov"):
            raise InputError(f"{self.name}: truncated or corrupt: decoded {n} of {declared} frames")

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self._first is not None:
            f, self._first = self._first, None
        else:
            f = next(self._gen)
        info = self.info
        if f.width != info.width or f.height != info.height:
            raise InputError(
                f"{self.name}: frame size changes mid-stream at frame {self._index} "
                f"({info.width}x{info.height} -> {f.width}x{f.height}); not supported"
            )
        img = self._planes(f) if self.planes else frame_to_array(f, self._deep, self._cs, self._rng)
        pts = self._frame_pts(f)
        fr = Frame(image=img, pts=pts, time_base=info.time_base, index=self._index)
        self._index += 1
        return fr

    @property
    def position(self) -> int:
        """The index of the frame ``next()`` returns next (frames read or skipped so far)."""
        return self._index

    @property
    def plane_format(self) -> str | None:
        """The source pix_fmt when its frames can be handed out as their own 8-bit Y, U, V planes
        (:data:`_pixfmt.PLANAR_YUV8`, evenly subsampled size), else None."""
        i = self.info
        return i.pix_fmt if _pixfmt.plane_sizes(i.pix_fmt, i.width, i.height) else None

    def _planes(self, f: av.VideoFrame) -> tuple[np.ndarray, ...]:
        fmt = self.plane_format
        if fmt is None:
            raise ValueError(f"{self.name}: {self.info.pix_fmt} frames cannot be read as 8-bit YUV planes")
        if f.format.name != fmt:  # the decoder switched formats mid-stream: convert to the first one's
            f = f.reformat(format=fmt)
        return tuple(np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in f.planes)

    def _frame_pts(self, f) -> int:
        """The frame's pts in ``info.time_base`` (synthesised from the index when missing); remembered."""
        tb = self.info.time_base
        pts = f.pts
        if pts is None:
            pts = self._synth_pts(self._index)
        elif f.time_base is not None and Fraction(f.time_base) != tb:
            pts = int(round(Fraction(pts) * Fraction(f.time_base) / tb))
        self._last_pts = pts
        return pts

    def skip(self, n: int) -> list[int]:
        """Decode and discard the next ``n`` frames without converting them to RGB (resume: frames
        already done). Returns their pts (as ``__next__`` would give them); fewer if the stream ends."""
        out = []
        for _ in range(n):
            if self._first is not None:
                f, self._first = self._first, None
            else:
                try:
                    f = next(self._gen)
                except StopIteration:
                    break
            out.append(self._frame_pts(f))
            self._index += 1
        return out

    def seek_keyframe(self, index: int, pts: int) -> bool:
        """Continue from frame ``index`` of the video, a keyframe whose timestamp is ``pts`` (from a packet scan:
        :func:`videosr.distributed.probe_packets`), for a reader just opened. False where the container cannot
        seek there or the first frame decoded is not that one (then read from the start again)."""
        c, s = self._c, self._stream
        try:
            c.seek(pts, stream=s, backward=True, any_frame=False)
        except (av.error.FFmpegError, OSError):
            return False
        name = self.name

        def gen():
            n = index
            try:
                for packet in c.demux(s):
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError as e:
                        raise InputError(f"{name}: corrupt video data at frame {n} ({e})") from None
                    for f in frames:
                        if f.pts is not None and f.pts < pts:
                            continue  # decoded before the keyframe (not shown from here)
                        if f.is_corrupt:
                            raise InputError(f"{name}: frame {n} is corrupt")
                        n += 1
                        yield f
            except av.error.FFmpegError as e:
                raise InputError(f"{name}: cannot read video data after frame {n} ({e})") from None

        self._gen, self._first, self._index, self._last_pts = gen(), None, index, None
        try:
            f = next(self._gen)
        except StopIteration:
            return False
        got = self._frame_pts(f)
        self._last_pts = None
        if got != pts:  # the keyframe's own timestamp (the plan's frame ``index``)
            return False
        self._first = f
        return True

    def _synth_pts(self, index: int) -> int:
        fps = self.info.fps or Fraction(25)
        pts = int(round(Fraction(index) / fps / self.info.time_base))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        return pts

    def close(self) -> None:
        c = getattr(self, "_c", None)
        if c is not None:
            self._c = None
            try:
                c.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ImageFolderReader:
    """A folder of images as a video (see module docstring)."""

    def __init__(self, folder: str, fps: Fraction | None = None):
        self.name = folder
        rate = Fraction(fps) if fps is not None else IMAGE_FPS
        try:
            names = os.listdir(folder)
        except OSError as e:
            raise InputError(f"{folder}: cannot list folder ({e.strerror})") from None
        files = sorted((n for n in names if n.lower().endswith(IMAGE_EXTS) and not n.startswith(".")), key=natural_key)
        self._files = [os.path.join(folder, n) for n in files]
        if not self._files:
            raise EmptyInputError(f"{folder}: no images (png/jpg/...) in folder")
        first = self._load(0)
        h, w = first.height, first.width
        depth = _pixfmt.bit_depth(first.format.name)
        self._deep = depth > 8
        self._first = first
        self._index = 0
        self.info = VideoInfo(
            width=w,
            height=h,
            frames=len(self._files),
            fps=rate,
            time_base=1 / rate,
            bit_depth=16 if depth > 8 else 8,
            pix_fmt=first.format.name,
            codec=os.path.splitext(files[0])[1].lstrip(".").lower(),
            duration=len(self._files) / float(rate),
            source=None,
            chroma="444",
        )

    @property
    def position(self) -> int:
        """The index of the frame ``next()`` returns next (frames read or skipped so far)."""
        return self._index

    def _load(self, i: int) -> av.VideoFrame:
        path = self._files[i]
        try:
            with av.open(path, "r") as c:
                s = c.streams.video[0]
                _check_size(s.codec_context.width or 0, s.codec_context.height or 0, path)
                for f in c.decode(s):
                    return f
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: cannot decode image ({_av_msg(e)})") from None
        except (OSError, IndexError) as e:
            raise InputError(f"{path}: cannot read image ({_av_msg(e)})") from None
        raise InputError(f"{path}: cannot decode image")

    def __iter__(self):
        return self

    def __next__(self) -> Frame:
        i = self._index
        if i >= len(self._files):
            raise StopIteration
        if self._first is not None:
            f, self._first = self._first, None
        else:
            f = self._load(i)
        if f.width != self.info.width or f.height != self.info.height:
            raise InputError(
                f"{self._files[i]}: image is {f.width}x{f.height}, expected {self.info.width}x{self.info.height}"
            )
        img = frame_to_array(f, self._deep, None, None)
        self._index += 1
        return Frame(image=img, pts=i, time_base=self.info.time_base, index=i)

    def skip(self, n: int) -> list[int]:
        """Skip the next ``n`` images without decoding them; returns their pts."""
        start = self._index
        end = min(len(self._files), start + n)
        if end > start:
            self._first = None
        self._index = end
        return list(range(start, end))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parse_fps(value) -> Fraction:
    """A frame rate from ``25``, ``29.97`` or ``30000/1001`` (0 < fps <= 1000); UsageError otherwise."""
    from ..errors import UsageError

    try:
        rate = Fraction(str(value).strip()).limit_denominator(1001 * 1000)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"--fps takes a frame rate such as 25, 29.97 or 30000/1001, not {value!r}") from None
    if not 0 < rate <= 1000:
        raise UsageError(f"--fps must be above 0 and at most 1000, not {value}")
    return rate


def open_input(path, *, threads: int = 0, fps=None):
    """Open ``path`` for streaming decode.

    ``path``: a file path; a folder of images; ``"-"`` for y4m on stdin; or a readable binary
    file object (format probed; y4m works). A named pipe, ``<(cmd)`` or ``/dev/stdin`` on a pipe is read
    once like ``-`` (format probed, y4m forced by a .y4m name; see :func:`is_stream`). Returns a
    context-manager reader with ``.info`` that yields :class:`Frame` objects lazily. The first frame is
    decoded here (to fill in the info and to fail early on empty/corrupt input). ``fps``: the frame rate of
    an image folder (default 25); other inputs carry their own timing, so there it is a UsageError."""
    if fps is not None:
        fps = parse_fps(fps)
        if path == "-" or hasattr(path, "read") or (os.path.exists(path) and not os.path.isdir(path)):
            from ..errors import UsageError

            raise UsageError(
                f"--fps sets the frame rate of an image-folder INPUT; {path} is a video, which has its "
                "own timing (re-time it with ffmpeg first)"
            )
    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError(STDIN_CLOSED)
        return VideoReader(sys.stdin.buffer, name="<stdin>", source=None, format="yuv4mpegpipe", threads=threads)
    if hasattr(path, "read"):
        name = getattr(path, "name", None)
        return VideoReader(path, name=str(name) if isinstance(name, str) else "<stream>", source=None, threads=threads)
    path = os.fspath(path)
    if path in STDIN_PATHS and sys.stdin is None:
        raise InputError(STDIN_CLOSED)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(f"{path}: broken symbolic link (its target {os.readlink(path)} does not exist)") from None
        raise InputError(f"{path}: no such file or folder") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{path}: symbolic link loop (too many levels of symbolic links in its path)") from None
        raise InputError(f"{path}: cannot access input ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        return ImageFolderReader(path, fps=fps)
    if not stat.S_ISREG(st.st_mode):
        # a named pipe, <(cmd) (/dev/fd/N), /dev/stdin on a pipe, a device: read once from the start, as "-"
        # is: no peeking byte, no reopening, no seeking (and no audio copied, which would need a reopen)
        fmt = "yuv4mpegpipe" if path.lower().endswith(".y4m") else None
        reader = VideoReader(path, name=path, source=None, format=fmt, threads=threads, hint=STREAM_HINT)
        if reader.info.audio_streams or reader.info.subtitle_streams:
            warn(f"{path}: a pipe is read once, so its audio and subtitle streams are not copied to the output")
        return reader
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read input ({e.strerror})") from None
    if not head and stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: file is empty (0 bytes)")
    fmt = "yuv4mpegpipe" if path.lower().endswith(".y4m") else None
    return VideoReader(path, name=path, source=os.path.abspath(path), format=fmt, threads=threads)


def is_stream(path) -> bool:
    """INPUT is read once as it arrives, like ``-``: stdin, a file object, or a path that is neither a regular
    file nor a folder (a named pipe, ``<(cmd)``'s /dev/fd/N, /dev/stdin on a pipe, a device). Such an input
    cannot be peeked at, reopened, fingerprinted or resumed. A path that does not exist is not a stream
    (:func:`open_input` reports it)."""
    if path == "-" or not isinstance(path, (str, os.PathLike)):
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
