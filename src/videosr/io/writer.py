"""Streaming, atomic output: a video file (.mp4 .mkv .mov .webm .y4m), a folder of PNGs, or y4m on
stdout (``"-"``).

The format is decided once: :func:`plan_output` returns an :class:`OutputPlan` (container, encoder and its
options, pixel format, whether the output is resumable) that every writer of the output takes
(:func:`open_planned`, the segment files of :mod:`videosr.io.segments` and their join); :func:`open_output`
plans and opens in one call.

Atomicity: files are written to a hidden temp file beside the output
(``.NAME.videosr-tmp-PID-XXXXXXXX.ext``) and moved into place by ``close()``; ``abort()`` (and leaving
the ``with`` block with an exception) removes it. A successful ``close()`` also removes temp files of
the same output name that a killed run left (those whose PID is no longer running). An existing output
is never touched unless ``overwrite=True`` (and then only at the final rename). PNG folders go to a
hidden temp folder that is renamed into place once complete, holding a marker file (``.videosr-output``).

Nothing that is not ours is destroyed: ``overwrite`` replaces only a regular file, a symbolic link (the
link, not its target) or a folder holding the marker; never a folder videosr did not write, a FIFO, a
socket, a block device or the input. A character device (``/dev/null``) as output discards the frames.
A path whose kind is unclear (no known extension) is refused unless ``format="png"`` is given, the path
ends with ``/``, or it is a folder videosr wrote (see :func:`output_kind`).

Codec defaults (``crf``/``preset``/``pix_fmt`` of ``None``):

=============  =====  ==========================  =============================================
codec          crf    preset                      pix_fmt
=============  =====  ==========================  =============================================
libx264        18     medium                      yuv420p; yuv420p10le for >8-bit sources
libx265        20     medium                      yuv420p; yuv420p10le/12le for >8-bit sources
libsvtav1      30     8 (0 slowest .. 13 fastest) yuv420p; yuv420p10le for >8-bit sources
libvpx-vp9     31     4 (= -cpu-used, 0..8)       yuv420p (this FFmpeg build has no 10-bit vp9)
ffv1           -      -  (lossless, level 3)      the source pix_fmt when ffv1 supports it
=============  =====  ==========================  =============================================

``.webm`` only takes vp9/av1: another codec is replaced by libvpx-vp9 (libsvtav1 for >8-bit
sources) with an :class:`IOWarning`. Rotation: the source display matrix is copied to the output
stream (frames are not rotated). y4m output holds no timestamps (frames are written in order at
the source's average rate) and no audio. Timestamps are never merged: Matroska/WebM hold milliseconds, so
frames closer than 1 ms are moved apart with a warning; MP4/MOV over 500 fps get a fine movie timescale
(see :func:`_timing`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

from ..errors import DiskFullError, OutputError, OutputExistsError, UsageError, VideosrError
from . import _pixfmt
from ._streams import Passthrough, warn
from ._types import Frame, VideoInfo
from .convert import tensor_to_image, tensor_to_planes, tensors_to_frame_planes

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".y4m": "yuv4mpegpipe"}
CODEC_ALIASES = {
    "h264": "libx264",
    "x264": "libx264",
    "avc": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "x265": "libx265",
    "av1": "libsvtav1",
    "svtav1": "libsvtav1",
    "svt-av1": "libsvtav1",
    "vp9": "libvpx-vp9",
    "libvpx": "libvpx-vp9",
}
CODEC_DEFAULTS = {
    "libx264": {"crf": 18, "preset": "medium"},
    "libx265": {"crf": 20, "preset": "medium"},
    "libsvtav1": {"crf": 30, "preset": "8"},
    "libvpx-vp9": {"crf": 31, "preset": "4"},
    "ffv1": {"crf": None, "preset": None},
}
CODECS = tuple(CODEC_DEFAULTS)
MIN_SIZE = {"libx265": 16, "libsvtav1": 4}
OUTPUT_FORMATS = ("png",)  # --format: what a path without a video extension is written as
MARKER = ".videosr-output"  # in a PNG output folder: "videosr wrote this folder" (overwrite may replace it)
_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISBLK, "block device"))


def write_error(e: BaseException, path: str) -> VideosrError:
    """An exception raised while writing ``path`` as the error videosr reports (its exit code): disk full or
    quota, permission, out of memory, other OS errors; a VideosrError is returned as it is."""
    if isinstance(e, VideosrError):
        return e
    if getattr(e, "errno", None) == errno.ENOSPC:
        return DiskFullError(f"{path}: no space left on device while writing; the partial output was removed")
    if getattr(e, "errno", None) == errno.EDQUOT:
        return DiskFullError(f"{path}: disk quota exceeded while writing; the partial output was removed")
    if isinstance(e, PermissionError):
        return OutputError(f"{path}: permission denied while writing")
    if isinstance(e, MemoryError) or getattr(e, "errno", None) == errno.ENOMEM:
        from ..errors import OutOfMemoryError

        return OutOfMemoryError(
            f"{path}: out of memory while encoding; use --tile auto or a smaller --tile, "
            f"--chunk 1, a smaller --scale, or free some memory"
        )
    if getattr(e, "errno", None) == errno.ENAMETOOLONG:
        return OutputError(f"{path}: file name too long for this file system")
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return OutputError(f"{path}: cannot write output ({msg})")


CRF_RANGES = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (1, 63), "libvpx-vp9": (0, 63)}
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
PRESETS = {
    "libx264": X26X_PRESETS,
    "libx265": X26X_PRESETS,
    "libsvtav1": tuple(str(i) for i in range(14)),
    "libvpx-vp9": tuple(str(i) for i in range(9)),
}


def check_encoder_options(codec: str, crf, preset) -> str:
    """The codec's canonical name, after one clear UsageError (exit 2) for an unknown codec, a CRF out of
    the codec's range or a preset it does not have, naming the valid values (checked before any work, so
    the encoder never prints its own error lines). ffv1 (lossless) ignores both, with a warning."""
    name = CODEC_ALIASES.get(codec, codec) if isinstance(codec, str) else codec
    if name not in CODEC_DEFAULTS:
        raise UsageError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if name == "ffv1":
        return name
    if crf is not None:
        lo, hi = CRF_RANGES[name]
        if isinstance(crf, bool) or not isinstance(crf, int) or not lo <= crf <= hi:
            raise UsageError(
                f"--crf {crf} is out of range for {name} ({lo}..{hi}; lower is better quality, "
                f"default {CODEC_DEFAULTS[name]['crf']})"
            )
    if preset is not None:
        ok = PRESETS[name]
        if str(preset) not in ok:
            what = ", ".join(ok) if name in ("libx264", "libx265") else f"{ok[0]}..{ok[-1]}, lower is slower"
            raise UsageError(
                f"unknown {name} --preset {preset!r} (use {what}; default {CODEC_DEFAULTS[name]['preset']})"
            )
    return name


def check_encoder_size(codec: str, width: int, height: int) -> None:
    """A clear UsageError (exit 2) when ``codec`` cannot encode frames of this size (x264 and SVT-AV1 stop at
    16384 a side), found by opening the encoder in memory before any work (no model loaded, nothing
    written)."""
    import io as _stdio

    import av

    name = CODEC_ALIASES.get(codec, codec) if isinstance(codec, str) else codec
    if name not in CODEC_DEFAULTS or width <= 0 or height <= 0:
        return
    try:
        with av.open(_stdio.BytesIO(), "w", format="matroska") as c:
            st = c.add_stream(name, rate=25)
            st.width, st.height = width + width % 2, height + height % 2
            st.pix_fmt = "yuv420p" if name != "ffv1" else "yuv444p"
            st.codec_context.open()
    except (av.error.FFmpegError, ValueError) as e:
        raise UsageError(
            f"{name} cannot encode {width}x{height} frames ({e.__class__.__name__}); use a smaller "
            f"--scale or --codec libx265 / libvpx-vp9 / ffv1"
        ) from None


TEMP_RESERVE = 24  # bytes after the temp prefix: PID (up to 7 digits), "-", 8 hex digits, ".webm"/".old"
_TEMP_TAIL = re.compile(r"(\d+)-[0-9a-f]{8}(\.[A-Za-z0-9]{1,5})?")


def _temp_prefix(final: str) -> tuple[str, str]:
    """(folder, name prefix) of ``final``'s temp files; a long name is shortened (never over NAME_MAX)."""
    from ..lock import hidden_name

    d, base = os.path.split(os.path.abspath(final))
    return d, hidden_name(d, base.rstrip("/") or "output", ".videosr-tmp-", TEMP_RESERVE)


def _temp_path(final: str, suffix: str) -> str:
    d, prefix = _temp_prefix(final)
    return os.path.join(d, f"{prefix}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists
        return True
    try:  # a killed process its parent has not reaped yet (a zombie) is gone too
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _remove_entry(path: str) -> None:
    """Remove a file, link or folder (a folder's links are removed, never followed)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def sweep_temps(final: str) -> None:
    """Remove the temp files and folders of ``final`` that a killed run left behind: only names videosr
    makes (``.NAME.videosr-tmp-PID-XXXXXXXX[.ext]``), and only those of a process that is no longer
    running or is a zombie (a live process's temp files are left alone). `videosr upscale` calls this
    when it starts, holding ``final``'s lock (:mod:`videosr.lock`), and again after publishing."""
    d, prefix = _temp_prefix(final)
    try:
        names = os.listdir(d)
    except OSError:
        return
    for name in names:
        m = _TEMP_TAIL.fullmatch(name[len(prefix) :]) if name.startswith(prefix) else None
        if m is None:
            continue
        pid = int(m.group(1))
        if not _alive(pid):
            _remove_entry(os.path.join(d, name))


def is_ours(path: str) -> bool:
    """A folder videosr wrote (it holds the marker file); a symbolic link is never ours."""
    return os.path.isdir(path) and not os.path.islink(path) and os.path.isfile(os.path.join(path, MARKER))


def _bare(path: str) -> str:
    return path.rstrip("/" + os.sep) or path


def output_kind(path, format: str | None = None) -> str:
    """What OUTPUT is: ``"-"`` (y4m on stdout), ``"null"`` (a character device such as /dev/null: the
    output is discarded), ``"png"`` (a folder of PNGs) or a container from CONTAINERS. A folder needs
    ``format="png"``, a trailing ``/``, or an existing folder videosr wrote; a name without a known
    extension is otherwise a UsageError. A FIFO, socket or block device is an OutputError."""
    if format is not None and format not in OUTPUT_FORMATS:
        raise UsageError(f"unknown --format {format!r} (use {', '.join(OUTPUT_FORMATS)})")
    path = os.fspath(path)
    if path == "-":
        return "-"
    bare = _bare(path)
    try:
        mode = os.stat(bare).st_mode
    except OSError:
        mode = 0
    if stat.S_ISCHR(mode):
        return "null"
    for test, what in _SPECIAL:
        if test(mode):
            raise OutputError(
                f"{bare}: is a {what}; videosr writes only regular files and folders (use - for y4m on stdout)"
            )
    if format == "png" or path.endswith(("/", os.sep)) or is_ours(bare):
        return "png"
    ext = os.path.splitext(path)[1].lower()
    if ext in CONTAINERS:
        return CONTAINERS[ext]
    raise UsageError(
        f"{path}: unknown output type {ext or '(no extension)'}; name a video file "
        f"({' '.join(CONTAINERS)}), - for y4m on stdout, or add --format png for a folder of PNGs"
    )


def _check_replaceable(final: str, overwrite: bool) -> None:
    """An existing ``final`` may be replaced (with ``overwrite``) only when it is a regular file, a symbolic
    link (the link goes, not its target) or a folder videosr wrote; an empty folder is simply filled."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not os.listdir(final):
            return
        if not is_ours(final):
            raise OutputError(
                f"{final}: is a folder videosr did not write (no {MARKER} file in it); not "
                f"replacing it, even with --overwrite: choose another OUTPUT"
            )
    elif not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise OutputError(f"{final}: is not a regular file; not replacing it, even with --overwrite")
    if not overwrite:
        raise OutputExistsError(f"{final}: output already exists (use --overwrite)")


def _is_same_file(a: str, b: str | None) -> bool:
    if not b:
        return False
    try:
        if os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _check_folder(final: str) -> str:
    d = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(d):
        raise OutputError(f"{final}: output folder {d} does not exist")
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputError(f"{final}: output folder {d} is not writable")
    return d


def move_into_place(tmp: str, final: str, overwrite: bool) -> None:
    """Move ``tmp`` to ``final``; without ``overwrite`` never clobber a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise OutputExistsError(f"{final}: output appeared while writing; not overwriting it") from None
    except OSError:  # no hard links on this filesystem
        if os.path.lexists(final):
            raise OutputExistsError(f"{final}: output appeared while writing; not overwriting it") from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


class AtomicWriter:
    """Context-manager protocol of the writers: close() on success, abort() on an exception, and abort()
    when dropped unclosed, so an incomplete output never appears at its final path."""

    _closed: bool

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self):
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass


MS = Fraction(1, 1000)  # Matroska/WebM store timestamps in milliseconds (FFmpeg's fixed TimecodeScale)
MOV_FINE_FPS = 500  # above this rate mp4/mov get a movie timescale as fine as the video's (see _timing)


def _timing(fmt: str, info: VideoInfo, fps: Fraction) -> tuple[Fraction, Fraction, dict, str | None]:
    """(encoder time base, stream rate, container options, warning) for writing ``info``'s timestamps into
    ``fmt`` without losing or merging any.

    * Matroska/WebM hold milliseconds: a source time base that is not a whole number of ms is replaced by
      1/1000, so the encoder, not the muxer, rounds and :meth:`VideoWriter._pts` can keep every pts distinct.
      Frames closer than 1 ms (over 1000 fps) cannot all be kept: they are written 1 ms apart (the video
      plays slower, at 1000 fps) and the warning says so.
    * MP4/MOV: the edit list is in the movie timescale (1000 by default): at over ~1000 fps its rounding cut
      the last frames off (2400 fps: one frame lost; 10000 fps: all). Above :data:`MOV_FINE_FPS` the movie
      timescale is the video's own time base.
    """
    tb = Fraction(info.time_base)
    rate, opts, note = fps, {}, None
    if fmt == "yuv4mpegpipe":
        return 1 / fps, fps, opts, None
    if fmt in ("matroska", "webm") and (tb / MS).denominator != 1:
        tb = MS
        if info.fps and info.fps > 1000:
            rate = Fraction(1000)
            kind = "WebM" if fmt == "webm" else "Matroska"
            f = Fraction(info.fps)
            shown = f.numerator if f.denominator == 1 else round(float(f), 3)
            note = (
                f"{kind} stores timestamps in milliseconds, and this {shown} fps video's frames are "
                f"less than 1 ms apart: they are written 1 ms apart (it plays slower, at 1000 fps"
                f"{'; the audio will not line up' if info.audio_streams else ''}); use .mp4 or .mov to keep "
                f"its timing"
            )
    elif fmt in ("mp4", "mov") and (not info.fps or info.fps > MOV_FINE_FPS) and tb.denominator > 1000:
        opts["movie_timescale"] = str(min(tb.denominator, 2**31 - 1))
    return tb, rate, opts, note


class VideoWriter(AtomicWriter):
    """Encodes frames into a container (file or y4m stream) as ``plan`` says (:func:`plan_output`); see module
    docstring.

    ``packets``: where the encoded video packets go instead of the container, which then only configures the
    encoder exactly as for that container (its flags, hence its extradata): a segment file
    (:mod:`videosr.io.segments`). ``last_pts``: the timestamp of a frame written before, elsewhere (timestamp
    repair continues after it)."""

    def __init__(
        self,
        target,
        info: VideoInfo,
        plan: OutputPlan,
        *,
        threads: int,
        final: str | None,
        tmp: str | None,
        overwrite: bool,
        copy_streams: bool,
        packets: Callable[[av.Packet], None] | None = None,
        last_pts: int | None = None,
    ):
        self.path = final or "<stdout>"
        self.final, self.tmp, self.overwrite = final, tmp, overwrite
        self.width, self.height = plan.width, plan.height
        self.info = info
        self.frames_written = 0
        self._closed = False
        self._pt = None
        self._oc = None
        self._packets = packets
        self._last_pts = last_pts
        self._warned_pts = False
        self._video_time = -1.0
        try:
            self._open(target, plan, threads, copy_streams)
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise write_error(e, self.path) from None
            raise

    def _open(self, target, plan: OutputPlan, threads, copy_streams):
        info = self.info
        fmt, codec, pf = plan.container, plan.codec, plan.pix_fmt
        y4m = fmt == "yuv4mpegpipe"
        fps = info.fps if info.fps and info.fps > 0 else Fraction(25)
        fps = Fraction(fps).limit_denominator(1001000)
        tb, rate, container_opts, note = _timing(fmt, info, fps)
        self._oc = oc = av.open(target, "w", format=fmt, options=container_opts)
        if note:
            warn(f"{self.path}: {note}")
            self._warned_pts = True  # said: timestamps closer than the container's tick are spread out
        if y4m:
            vs = oc.add_stream("wrapped_avframe", rate=fps)
            self._tb = 1 / fps
            self._y4m = True
        else:
            self._y4m = False
            opts = {}
            d = CODEC_DEFAULTS[codec]
            crf = d["crf"] if plan.crf is None else plan.crf
            preset = d["preset"] if plan.preset is None else plan.preset
            if codec == "libx264":
                opts.update(crf=str(crf), preset=str(preset))
            elif codec == "libx265":
                opts.update(crf=str(crf), preset=str(preset), **{"x265-params": "log-level=error"})
            elif codec == "libsvtav1":
                opts.update(crf=str(crf), preset=str(preset))
            elif codec == "libvpx-vp9":
                opts.update(crf=str(crf), b="0", deadline="good", **{"cpu-used": str(preset), "row-mt": "1"})
            elif codec == "ffv1":
                opts.update(level="3", slicecrc="1")
                if min(self.width, self.height) >= 128:
                    opts.update(slices="4")
                if threads != 1:
                    opts.update(threads="auto" if threads == 0 else str(threads))
            vs = oc.add_stream(codec, rate=rate, options=opts)
            self._tb = tb
            vs.codec_context.time_base = tb
            vs.time_base = tb
            cc = vs.codec_context
            cc.thread_count = threads
            if codec in ("libx264", "libx265"):
                cc.thread_type = "FRAME"
        vs.width, vs.height = self.width, self.height
        try:
            vs.pix_fmt = pf
        except Exception:
            raise UsageError(f"pixel format {pf!r} is not usable with this codec") from None
        self.pix_fmt = pf
        self._vs = vs
        cc = vs.codec_context
        # Colour description: same values as the source; conversions below use the same matrix/range.
        self._cs = _pixfmt.sws_colorspace(info.colorspace)
        self._rng = info.color_range
        for attr in ("color_primaries", "color_trc", "colorspace", "color_range"):
            v = getattr(info, attr)
            if v is not None:
                try:
                    setattr(cc, attr, v)
                except Exception:
                    pass
        for k, v in info.metadata.items():
            vs.metadata[k] = v
        for k, v in info.container_metadata.items():
            oc.metadata[k] = v
        if not y4m:
            if info.display_matrix is not None:
                vs.set_display_matrix(list(info.display_matrix))
            elif info.rotation:
                vs.set_display_rotation(info.rotation)
        if info.source and copy_streams:
            if y4m:
                if info.audio_streams or info.subtitle_streams:
                    warn("y4m output cannot hold audio or subtitles; they are dropped")
            else:  # audio, subtitles, attachments, chapters; what cannot be carried is named in a warning
                try:
                    self._pt = Passthrough(info.source, oc, fmt)
                except (av.error.FFmpegError, OSError) as e:
                    from ..errors import InputError

                    msg = getattr(e, "strerror", None) or str(e)
                    raise InputError(
                        f"{info.source}: cannot read the input again for its audio and subtitles "
                        f"({msg}); was it moved or deleted during the run?"
                    ) from None
        self._deep_out = _pixfmt.bit_depth(pf) > 8
        if codec == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1's own ~20 info lines per encoder: errors only
        try:  # open the encoder now so bad settings fail here, not at the first frame
            cc.open()
        except av.error.FFmpegError as e:
            if isinstance(e, MemoryError) or getattr(e, "errno", None) == errno.ENOMEM:
                raise write_error(e, self.path) from None
            msg = getattr(e, "strerror", None) or str(e)
            # not the output's fault: these settings (codec, size, pix_fmt) cannot be encoded (exit 2)
            raise UsageError(
                f"{self.path}: {cc.name} cannot encode {self.width}x{self.height} {pf} ({msg}); "
                f"try another --codec or --pix-fmt"
            ) from None

    @property
    def time_base(self) -> Fraction:
        """The encoder's time base (the packets' and :attr:`last_pts`')."""
        return self._tb

    @property
    def encoder(self) -> str:
        """The encoder's name (``libx264``, ...)."""
        return self._vs.codec_context.name

    @property
    def extradata(self) -> bytes:
        """The opened encoder's extradata (its global headers for this container)."""
        return bytes(self._vs.codec_context.extradata or b"")

    # -- writing ------------------------------------------------------------------------------
    def _mux(self, packet) -> None:
        self._oc.mux(packet)

    def _mux_video(self, packets) -> None:
        for p in packets:
            if self._packets is not None:
                self._packets(p)
            else:
                self._mux(p)
            ts = p.dts if p.dts is not None else p.pts
            if ts is not None and p.time_base is not None:
                self._video_time = float(ts * p.time_base)
        if self._pt is not None:
            self._pt.pump(self._video_time, self._mux)

    def _pts(self, frame: Frame) -> int:
        if self._y4m:
            pts = self.frames_written
        else:
            pts = frame.pts
            if pts is None:
                fps = self.info.fps or Fraction(25)
                pts = int(round(Fraction(frame.index) / fps / self._tb))
            elif frame.time_base is not None and Fraction(frame.time_base) != self._tb:
                pts = int(round(pts * Fraction(frame.time_base) / self._tb))
        if self._last_pts is not None and pts <= self._last_pts:
            if not self._warned_pts:
                tick = " (closer than the container's 1 ms)" if self._tb == MS and frame.pts is not None else ""
                warn(f"{self.path}: non-increasing timestamp at frame {frame.index}{tick}; shifted")
                self._warned_pts = True
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def to_video_frame(self, image: np.ndarray) -> av.VideoFrame:
        """(H, W, 3) uint8/uint16 RGB -> VideoFrame in the encoder pix_fmt (one copy + one swscale)."""
        if image.dtype == np.uint8:
            fmt = "rgb24"
        elif image.dtype == np.uint16:
            fmt = "rgb48le"
        else:
            raise ValueError(f"frame image must be uint8 or uint16, got {image.dtype}")
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)
        vf = av.VideoFrame.from_ndarray(image, format=fmt)
        kw = {"interpolation": _pixfmt.SWS_FROM_RGB}  # 4:2:0 chroma: 2x2 averages, as the planes path
        if self._cs is not None:
            kw["dst_colorspace"] = self._cs
        if self._rng:
            kw["dst_color_range"] = self._rng
        return vf.reformat(format=self.pix_fmt, **kw)

    def tensor_to_video_frame(self, t) -> av.VideoFrame:
        """(3, H, W) float tensor in [0, 1] -> VideoFrame in the encoder pix_fmt. The fast path:
        quantized in torch straight into planar gbrp/gbrp16le frame buffers, then one swscale."""
        vf = av.VideoFrame(self.width, self.height, "gbrp16le" if self._deep_out else "gbrp")
        tensor_to_planes(t, vf.planes, self.width, self.height, self._deep_out)
        kw = {"interpolation": _pixfmt.SWS_FROM_RGB}
        if self._cs is not None:
            kw["dst_colorspace"] = self._cs
        if self._rng:
            kw["dst_color_range"] = self._rng
        return vf.reformat(format=self.pix_fmt, **kw)

    def planes_to_video_frame(self, planes) -> av.VideoFrame:
        """The planes of a frame in the encoder's own 8-bit planar YUV pix_fmt, as (h, w) float tensors in
        [0, 1] -> VideoFrame, quantized straight into its buffers: no colour conversion at all."""
        if _pixfmt.plane_sizes(self.pix_fmt, self.width, self.height) is None:
            raise ValueError(f"{self.path}: the encoder's {self.pix_fmt} frames cannot be written as planes")
        vf = av.VideoFrame(self.width, self.height, self.pix_fmt)
        tensors_to_frame_planes(planes, vf.planes)
        return vf

    @property
    def last_pts(self) -> int | None:
        """The timestamp of the last frame written, in the output stream's time base (None before the first)."""
        return self._last_pts

    def advance_pts(self, frame: Frame) -> int:
        """The timestamp ``frame`` gets, taken as written: timestamp repair continues after it as if this writer
        had written it (a segment made elsewhere continues the previous one's timestamps)."""
        return self._pts(frame)

    def write_packets(self, packets) -> None:
        """Mux packets encoded before (as this writer's encoder makes them, in their own time base) as the video
        stream, with the copied audio/subtitle packets interleaved: joining segment files."""
        try:
            for p in packets:
                p.stream = self._vs
                self._mux_video([p])
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise write_error(e, self.path) from None
            raise

    def write(self, frame: Frame) -> None:
        """Encode one frame. ``frame.image`` is an (H, W, 3) uint8/uint16 RGB array, or (fast path)
        a (3, H, W) float torch tensor in [0, 1] (the model output, any device), or (planes path) a
        tuple of (h, w) float tensors in [0, 1]: the Y, U, V planes in the encoder's pix_fmt (``pix_fmt``)."""
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        img = frame.image
        is_tensor = isinstance(img, torch.Tensor)
        is_planes = isinstance(img, tuple)
        if not (is_tensor or is_planes) and (
            img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != self.height or img.shape[1] != self.width
        ):
            raise ValueError(
                f"frame {frame.index}: expected a ({self.height}, {self.width}, 3) image, got {tuple(img.shape)}"
            )
        try:
            vf = (
                self.planes_to_video_frame(img)
                if is_planes
                else self.tensor_to_video_frame(img)
                if is_tensor
                else self.to_video_frame(img)
            )
            vf.pts = self._pts(frame)
            vf.time_base = self._tb
            self._mux_video(self._vs.encode(vf))
            self.frames_written += 1
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise write_error(e, self.path) from None
            raise

    def close(self) -> None:
        """Flush the encoder, copy the remaining audio/subtitle packets, finalise and move into place."""
        if self._closed:
            return
        try:
            self._mux_video(self._vs.encode(None))
            if self._pt is not None:
                self._pt.finish(self._mux)
                self._pt.close()
            self._oc.close()
            self._closed = True
            if self.tmp:
                move_into_place(self.tmp, self.final, self.overwrite)
                self.tmp = None
                sweep_temps(self.final)
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise write_error(e, self.path) from None
            raise

    def abort(self) -> None:
        """Stop and remove the temp file; the output path is left as it was."""
        self._closed = True
        if self._pt is not None:
            self._pt.close()
        if self._oc is not None:
            oc, self._oc = self._oc, None
            try:
                oc.close()
            except Exception:
                pass
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            except OSError:
                pass
            self.tmp = None


class ImageFolderWriter(AtomicWriter):
    """Writes frame_000001.png, frame_000002.png, ... into a hidden temp folder, renamed at close.
    uint8 frames -> 8-bit RGB PNG, uint16 frames -> 16-bit RGB PNG."""

    def __init__(self, final: str, width: int, height: int, *, overwrite: bool, deep: bool = False):
        self._deep_tensor = deep  # tensor frames -> 16-bit PNGs when the source is >8-bit
        self.path = self.final = final.rstrip("/" + os.sep) or final
        self.width, self.height = width, height
        self.overwrite = overwrite
        self.frames_written = 0
        self._closed = False
        self.tmp = _temp_path(self.final, "")
        try:
            os.mkdir(self.tmp)
        except OSError as e:
            self.tmp = None
            raise write_error(e, self.path) from None
        self._enc = {}

    def _encoder(self, deep: bool):
        cc = self._enc.get(deep)
        if cc is None:
            cc = av.CodecContext.create("png", "w")
            cc.width, cc.height = self.width, self.height
            cc.pix_fmt = "rgb48be" if deep else "rgb24"
            cc.time_base = Fraction(1, 25)
            self._enc[deep] = cc
        return cc

    def write(self, frame: Frame) -> None:
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        img = frame.image
        if isinstance(img, torch.Tensor):
            img = tensor_to_image(img, np.uint16 if self._deep_tensor else np.uint8)
        if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != self.height or img.shape[1] != self.width:
            raise ValueError(
                f"frame {frame.index}: expected a ({self.height}, {self.width}, 3) image, got {tuple(img.shape)}"
            )
        try:
            deep = img.dtype == np.uint16
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb48le" if deep else "rgb24")
            if deep:
                vf = vf.reformat(format="rgb48be")
            cc = self._encoder(deep)
            data = b"".join(bytes(p) for p in cc.encode(vf))
            name = os.path.join(self.tmp, f"frame_{self.frames_written + 1:06d}.png")
            self._write_file(name, data)
            self.frames_written += 1
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise write_error(e, self.path) from None
            raise

    @staticmethod
    def _write_file(name: str, data: bytes) -> None:
        with open(name, "wb") as fh:
            fh.write(data)

    def close(self) -> None:
        """Mark the complete folder as ours, then move it into place (replacing only what
        :func:`_check_replaceable` allows, checked again now) and sweep a killed run's leftovers."""
        if self._closed:
            return
        self._closed = True
        try:
            final = self.final
            self._write_file(
                os.path.join(self.tmp, MARKER), b"written by videosr: --overwrite may replace this folder\n"
            )
            old = None
            if os.path.lexists(final):
                try:
                    _check_replaceable(final, self.overwrite)
                except OutputExistsError:
                    raise OutputExistsError(f"{final}: output appeared while writing; not overwriting it") from None
                if os.path.islink(final) or not os.path.isdir(final) or os.listdir(final):
                    old = _temp_path(final, ".old")
                    os.rename(final, old)
            os.replace(self.tmp, final)
            self.tmp = None
            if old:
                _remove_entry(old)
            sweep_temps(final)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise write_error(e, self.path) from None
            raise

    def abort(self) -> None:
        self._closed = True
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class NullWriter(AtomicWriter):
    """OUTPUT is a character device (``/dev/null``): frames are counted and discarded; nothing is opened,
    written or replaced, as other Unix tools do with /dev/null."""

    pix_fmt = None
    tmp = None

    def __init__(self, path: str):
        self.path = self.final = path
        self.frames_written = 0
        self._closed = False

    def write(self, frame: Frame) -> None:
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        self.frames_written += 1

    def close(self) -> None:
        self._closed = True

    def abort(self) -> None:
        self._closed = True


RESUMABLE = frozenset(v for v in CONTAINERS.values() if v != "yuv4mpegpipe")  # segments join into these


@dataclass(frozen=True)
class OutputPlan:
    """How an output is encoded, decided once (:func:`plan_output`; a live stream's by
    :func:`videosr.io.live.plan_live_output`) and taken by every writer of that output: the file writer, the
    resumable segments and their join, a live sink.

    ``kind``: what OUTPUT is (:func:`output_kind`: ``"-"`` for y4m on stdout or a file object, ``"null"``,
    ``"png"``, a container format; a live stream: ``"mpegts"``); ``codec``: the encoder (``"wrapped_avframe"``
    for y4m; None for a PNG folder, 8-bit or 16-bit RGB by the source's depth, or a discarded output);
    ``crf``/``preset``: as asked, None for the codec's default (also where .webm replaced the codec);
    ``pix_fmt``: the encoder's pixel format (None where ``codec`` is); ``notes``: the warnings the decision
    makes, shown when the output is opened (:func:`open_planned`)."""

    kind: str
    width: int
    height: int
    codec: str | None
    crf: int | None
    preset: str | None
    pix_fmt: str | None
    notes: tuple[str, ...] = ()

    @property
    def container(self) -> str | None:
        """The FFmpeg muxer (``yuv4mpegpipe`` for stdout); None for a PNG folder or a discarded output."""
        return "yuv4mpegpipe" if self.kind == "-" else None if self.kind in ("null", "png") else self.kind

    @property
    def resumable(self) -> bool:
        """A video file: written as segments joined at the end when the input can be read again
        (:mod:`videosr.io.segments`)."""
        return self.kind in RESUMABLE


def _y4m_pix_fmt(info: VideoInfo) -> str:
    """y4m holds the source's chroma layout and bit depth (4:2:0 for a layout it has no name for)."""
    depth = info.bit_depth if info.bit_depth in (8, 9, 10, 12, 14, 16) else (16 if info.bit_depth > 8 else 8)
    lay = info.chroma if info.chroma in ("420", "422", "444", "gray") else "420"
    if lay == "gray" and depth > 8:
        return f"gray{depth}le"
    return _pixfmt.yuv_name(lay, depth)


def _encoder_pix_fmt(codec: str, info: VideoInfo, width: int, height: int, notes: list[str]) -> str:
    """The default pix_fmt of ``codec`` for ``info``'s frames at ``width`` x ``height`` (the table in the module
    docstring; 4:4:4 where x264/x265/ffv1 cannot subsample an odd size), saying in ``notes`` what it gives up."""
    pf = _pixfmt.choose_pix_fmt(codec, info.pix_fmt, info.bit_depth, info.chroma)
    if (width % 2 or height % 2) and codec in ("libx264", "libx265", "ffv1"):
        if _pixfmt.chroma(pf) in ("420", "422", "411", "410", "440"):
            new = "yuv444p" if _pixfmt.bit_depth(pf) <= 8 else f"yuv444p{_pixfmt.bit_depth(pf)}le"
            if new in _pixfmt.encoder_formats(codec):
                notes.append(f"{codec} cannot subsample odd size {width}x{height}; writing {new}")
                pf = new
    if info.bit_depth > 8 and _pixfmt.bit_depth(pf) <= 8:
        notes.append(f"{codec} in this FFmpeg build cannot encode >8-bit video; writing 8-bit {pf}")
    return pf


def plan_output(
    path,
    info: VideoInfo,
    width: int,
    height: int,
    *,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    format: str | None = None,
) -> OutputPlan:
    """How frames of ``width`` x ``height`` from ``info``'s source are written to ``path`` (see
    :func:`open_output`): the one place that decides the container, the encoder (``.webm`` takes vp9 or av1
    only), its options and its pixel format (``pix_fmt``, else the codec's default for the source: module
    docstring). Opens nothing; a UsageError for settings no writer could use."""
    if width <= 0 or height <= 0:
        raise UsageError(f"invalid output size {width}x{height}")
    codec = check_encoder_options(codec, crf, preset)
    notes = []
    if crf is not None and codec == "ffv1":
        notes.append("ffv1 is lossless; crf ignored")
    if preset is not None and codec == "ffv1":
        notes.append("ffv1 has no presets; preset ignored")
    kind = "-" if path == "-" or hasattr(path, "write") else output_kind(path, format)
    if kind in ("null", "png"):
        return OutputPlan(kind, width, height, None, None, None, None, tuple(notes))
    if kind in ("-", "yuv4mpegpipe"):
        pf = pix_fmt or _y4m_pix_fmt(info)
        return OutputPlan(kind, width, height, "wrapped_avframe", None, None, pf, tuple(notes))
    if kind == "webm" and codec not in ("libvpx-vp9", "libsvtav1"):
        new = "libsvtav1" if info.bit_depth > 8 else "libvpx-vp9"
        notes.append(f".webm cannot hold {codec}; using {new}")
        codec, crf, preset = new, None, None
    probe = av.open(os.devnull, "w", format=kind)
    try:
        ok = codec in probe.supported_codecs
    finally:
        probe.close()
    if not ok:
        raise UsageError(f"{codec} cannot be stored in {os.path.splitext(os.fspath(path))[1].lower()}; use .mkv")
    lo = MIN_SIZE.get(codec, 1)
    if width < lo or height < lo:
        raise UsageError(
            f"{codec} cannot encode frames smaller than {lo}x{lo} (got {width}x{height}); use ffv1 or libx264"
        )
    pf = pix_fmt or _encoder_pix_fmt(codec, info, width, height, notes)
    return OutputPlan(kind, width, height, codec, crf, preset, pf, tuple(notes))


def open_output(
    path,
    info: VideoInfo,
    width: int,
    height: int,
    *,
    codec: str = "libx264",
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    overwrite: bool = False,
    threads: int = 0,
    copy_streams: bool = True,
    format: str | None = None,
):
    """Open an atomic, streaming writer for frames of ``width`` x ``height``: :func:`open_planned` with the plan
    :func:`plan_output` makes.

    ``path``: a file whose extension picks the container (.mp4 .m4v .mkv .mov .webm .y4m); a folder of
    PNGs (``format="png"``, a trailing ``/``, or a folder videosr wrote); a character device such as
    /dev/null (frames discarded); ``"-"`` for y4m on stdout; or a writable binary file object (y4m).
    See :func:`output_kind` and the module docstring for what ``overwrite`` may replace.
    ``threads``: encoder threads, 0 = automatic.
    Audio/subtitle streams of ``info.source`` are stream-copied unless ``copy_streams=False``."""
    plan = plan_output(path, info, width, height, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, format=format)
    return open_planned(path, info, plan, overwrite=overwrite, threads=threads, copy_streams=copy_streams)


def open_planned(
    path, info: VideoInfo, plan: OutputPlan, *, overwrite: bool = False, threads: int = 0, copy_streams: bool = True
):
    """Open an atomic, streaming writer of ``path`` as ``plan`` (:func:`plan_output` for this path) says,
    showing the plan's warnings; see :func:`open_output`."""
    for note in plan.notes:
        warn(note)
    if plan.kind == "-":  # y4m on stdout, or into a file object
        target = sys.stdout.buffer if path == "-" else path
        return VideoWriter(
            target, info, plan, threads=threads, final=None, tmp=None, overwrite=True, copy_streams=False
        )
    path = os.fspath(path)
    if plan.kind == "null":
        return NullWriter(path)
    if _is_same_file(_bare(path), info.source):
        raise OutputError(f"{path}: output is the input file")
    if plan.kind == "png":
        final = _bare(path)
        _check_folder(final)
        _check_replaceable(final, overwrite)
        return ImageFolderWriter(final, plan.width, plan.height, overwrite=overwrite, deep=info.bit_depth > 8)
    _check_folder(path)
    if os.path.isdir(path):
        raise OutputError(f"{path}: is a folder")
    _check_replaceable(path, overwrite)
    tmp = _temp_path(path, os.path.splitext(path)[1].lower())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
    except OSError as e:
        raise write_error(e, path) from None
    return VideoWriter(
        tmp, info, plan, threads=threads, final=path, tmp=tmp, overwrite=overwrite, copy_streams=copy_streams
    )


def check_output_path(output, format: str | None, overwrite: bool) -> None:
    """Before any work: OUTPUT (a path; not "-") is something this run may create or, with ``overwrite``,
    replace: not a folder for a file output, not a device or a foreign folder (:func:`output_kind` decides
    what OUTPUT is). Raises OutputError / OutputExistsError."""
    kind = output_kind(output, format)
    if kind != "null":
        final = _bare(os.fspath(output)) if kind == "png" else os.fspath(output)
        _check_folder(final)
        if kind != "png" and os.path.isdir(final):
            raise OutputError(f"{output}: is a folder")
        _check_replaceable(final, overwrite)


def check_not_input(input, output, kind: str) -> None:
    """OUTPUT must not be INPUT (the same file or folder, also through links), nor a folder holding it."""
    src, dst = os.fspath(input), os.fspath(output)
    dst = dst.rstrip("/" + os.sep) or dst
    if not os.path.exists(src):
        return  # open_input says so
    if _is_same_file(dst, src):
        raise OutputError(f"{output}: output is the input")
    if kind == "png" and os.path.isdir(dst):
        top = os.path.realpath(dst)
        if os.path.commonpath([os.path.realpath(src), top]) == top:
            raise OutputError(f"{output}: the output folder holds the input {input}")
