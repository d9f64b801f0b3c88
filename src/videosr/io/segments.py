"""Resumable output: encoded video in segment files, concatenated into the final container at the end.

A *segment file* holds the packets one fresh encoder produced for a run of consecutive frames, exactly
as the encoder emitted them (bytes, pts, dts, duration, keyframe flag, in the encoder time base, which is
the source time base), plus the encoder's extradata. It is not a playable container on purpose: every
container rewrites something (NUT shifts the first timestamps to make dts non-negative, Matroska rounds
to milliseconds, MP4 rescales and adds edit lists), and the final output must carry the same timestamps
an uninterrupted run would. Layout (little endian)::

    b"VSRSEG1\\n"  u32 n  n bytes of JSON header {codec, width, height, pix_fmt, time_base, extradata, job, start}
    per packet:   u8 flags (1 key, 2 has pts, 4 has dts)  i64 pts  i64 dts  i64 duration  u32 size  data
    b"VSREND1\\n"  u64 packet count

:class:`SegmentWriter` is a :class:`~videosr.io.writer.VideoWriter` whose encoder is configured for the
final container (same flags, options and therefore the same extradata) but whose packets go to a
segment file (its header also holds a ``tag``: the resume job's id and the segment's first frame, which
the join checks); ``close()`` flushes the encoder, writes the trailer, fsyncs and renames ``X.part`` to
``X``. :func:`concat_segments` opens the final output like ``open_output`` would, checks that every
segment carries the same extradata as its encoder, muxes the packets (no re-encoding) interleaved with
the source's audio/subtitle packets (stream copy) and moves the file into place atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from fractions import Fraction

import av

from ..errors import OutputError, ResumeError, VideosrError
from . import writer as _w
from ._types import VideoInfo

MAGIC = b"VSRSEG1\n"
END = b"VSREND1\n"
_REC = struct.Struct("<BqqqI")
_KEY, _HAS_PTS, _HAS_DTS = 1, 2, 4


@contextlib.contextmanager
def quiet():
    """Silence io warnings (already shown once when the output was checked at the start)."""
    from ._streams import IOWarning

    log = logging.getLogger("videosr.io")
    was = log.disabled
    log.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IOWarning)
            yield
    finally:
        log.disabled = was


def fsync_dir(path: str) -> None:
    """Make a rename/creation inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def output_format(path: str, format: str | None = None) -> str | None:
    """The container format a video file output uses, or None (folder, stdout, device, y4m, unknown)."""
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) == "-":
        return None
    try:
        kind = _w.output_kind(path, format)
    except VideosrError:
        return None
    return None if kind in ("-", "null", "png", "yuv4mpegpipe") else kind


def resolve_codec(path: str, codec: str, info: VideoInfo) -> tuple[str, bool]:
    """(codec actually used for ``path``, whether crf/preset defaults were forced) like open_output."""
    codec = _w.CODEC_ALIASES.get(codec, codec)
    if output_format(path) == "webm" and codec not in ("libvpx-vp9", "libsvtav1"):
        return ("libsvtav1" if info.bit_depth > 8 else "libvpx-vp9"), True
    return codec, False


class SegmentWriter(_w.VideoWriter):
    """Encodes frames into a segment file (see module docstring). ``last_pts``: the last pts of the
    previous segment, so timestamp repair continues across segments exactly as in a single pass."""

    def __init__(
        self,
        path: str,
        fmt: str,
        info: VideoInfo,
        width: int,
        height: int,
        *,
        codec: str,
        crf=None,
        preset=None,
        pix_fmt=None,
        threads: int = 0,
        last_pts: int | None = None,
        tag: dict | None = None,
    ):
        self.seg_path = path
        self._part = path + ".part"
        self._fh = None
        self.packets = 0
        self.size = 0
        self._sha = hashlib.sha256()
        try:
            self._fh = open(self._part, "wb")
        except OSError as e:
            raise _w.write_error(e, path) from None
        super().__init__(
            os.devnull,
            fmt,
            info,
            width,
            height,
            codec=codec,
            crf=crf,
            preset=preset,
            pix_fmt=pix_fmt,
            threads=threads,
            final=path,
            tmp=None,
            overwrite=True,
            copy_streams=False,
        )
        self._last_pts = last_pts
        cc = self._vs.codec_context
        tb = Fraction(self._tb)
        header = {
            "codec": cc.name,
            "width": width,
            "height": height,
            "pix_fmt": self.pix_fmt,
            "time_base": [tb.numerator, tb.denominator],
            "extradata": bytes(cc.extradata or b"").hex(),
            **(tag or {}),
        }
        self._put(MAGIC)
        raw = json.dumps(header, sort_keys=True).encode()
        self._put(struct.pack("<I", len(raw)) + raw)

    def _put(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise _w.write_error(e, self.seg_path) from None
            raise
        self._sha.update(data)
        self.size += len(data)

    def _mux(self, packet) -> None:
        data = bytes(packet)
        if not data:
            return
        flags = (
            (_KEY if packet.is_keyframe else 0)
            | (_HAS_PTS if packet.pts is not None else 0)
            | (_HAS_DTS if packet.dts is not None else 0)
        )
        tb = packet.time_base
        pts, dts = packet.pts or 0, packet.dts or 0
        if tb is not None and Fraction(tb) != Fraction(self._tb):  # never seen; keep it exact anyway
            pts = int(round(Fraction(pts) * Fraction(tb) / Fraction(self._tb)))
            dts = int(round(Fraction(dts) * Fraction(tb) / Fraction(self._tb)))
        self._put(_REC.pack(flags, pts, dts, packet.duration or 0, len(data)) + data)
        self.packets += 1

    def close(self) -> None:
        """Flush the encoder, write the trailer, fsync, and rename ``X.part`` to ``X`` (the commit point
        is the caller's manifest update; a file not in the manifest is discarded on resume)."""
        if self._closed:
            return
        try:
            self._mux_video(self._vs.encode(None))
            self._put(END + struct.pack("<Q", self.packets))
            oc, self._oc = self._oc, None
            oc.close()
            self._closed = True
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(self._part, self.seg_path)
            fsync_dir(os.path.dirname(os.path.abspath(self.seg_path)))
        except BaseException as e:
            self.abort()
            if isinstance(e, (av.error.FFmpegError, OSError)):
                raise _w.write_error(e, self.seg_path) from None
            raise

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def abort(self) -> None:
        super().abort()
        fh, self._fh = getattr(self, "_fh", None), None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        try:
            os.unlink(self._part)
        except OSError:
            pass


def read_segment(path: str) -> tuple[dict, Iterator[tuple[int, int | None, int | None, int, bytes]]]:
    """(header, iterator of (flags, pts, dts, duration, data)). Raises OutputError on a damaged file."""
    fh = open(path, "rb")
    try:
        if fh.read(len(MAGIC)) != MAGIC:
            raise OutputError(f"{path}: not a videosr segment file")
        (n,) = struct.unpack("<I", fh.read(4))
        header = json.loads(fh.read(n))
        tb = header.get("time_base") if isinstance(header, dict) else None
        if not (isinstance(tb, list) and len(tb) == 2 and all(type(x) is int and x > 0 for x in tb)):
            raise ValueError("no valid time base")
    except (struct.error, ValueError) as e:
        fh.close()
        raise OutputError(f"{path}: damaged segment header ({e})") from None
    except BaseException:
        fh.close()
        raise

    def packets():
        count = 0
        try:
            while True:
                head = fh.read(_REC.size)
                if head[: len(END)] == END and len(head) < _REC.size + 1:
                    rest = head[len(END) :] + fh.read(8 - (len(head) - len(END)))
                    if len(rest) != 8 or struct.unpack("<Q", rest)[0] != count:
                        raise OutputError(f"{path}: segment trailer does not match its packets")
                    return
                if len(head) != _REC.size:
                    raise OutputError(f"{path}: segment file is truncated")
                flags, pts, dts, dur, size = _REC.unpack(head)
                data = fh.read(size)
                if len(data) != size:
                    raise OutputError(f"{path}: segment file is truncated")
                count += 1
                yield flags, (pts if flags & _HAS_PTS else None), (dts if flags & _HAS_DTS else None), dur, data
        finally:
            fh.close()

    return header, packets()


def _check_segment(path: str, header: dict, expect: dict | None, packets: int | None = None) -> None:
    """``expect``: ``{"tag": {...}, "frames": n}``: the header must carry the tag, the file n packets
    (one per frame). Else the resume state is damaged or mixed up (ResumeError)."""
    if expect is None:
        return
    for k, v in expect["tag"].items():
        if header.get(k) != v:
            raise ResumeError(
                f"{path}: segment of another job or another place ({k} {header.get(k)!r}, not "
                f"{v!r}); the resume state is damaged: delete it and start again"
            )
    if packets is not None and packets != expect["frames"]:
        raise ResumeError(
            f"{path}: segment holds {packets} frames, not {expect['frames']}; the resume state is "
            f"damaged: delete it and start again"
        )


def concat_segments(
    paths: list[str],
    output: str,
    info: VideoInfo,
    width: int,
    height: int,
    *,
    codec: str,
    crf=None,
    preset=None,
    pix_fmt=None,
    tmp: str,
    threads: int = 0,
    expect: list[dict] | None = None,
) -> int:
    """Mux the packets of ``paths`` (in order) into the file ``tmp``, in the container ``output`` names,
    with the source's audio/subtitle streams copied; fsync it. Returns the number of video packets.
    ``expect``: per path, what :func:`_check_segment` verifies (tag and frame count).
    ``tmp`` is removed if anything fails; the caller moves it into place with :func:`publish`."""
    fmt = output_format(output)
    if fmt is None:
        raise OutputError(f"{output}: segments can only be joined into a video file")
    codec, forced = resolve_codec(output, codec, info)
    if forced:
        crf = preset = None
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _w.write_error(e, output) from None
    w = None
    n = 0
    try:
        w = _w.VideoWriter(
            tmp,
            fmt,
            info,
            width,
            height,
            codec=codec,
            crf=crf,
            preset=preset,
            pix_fmt=pix_fmt,
            threads=threads,
            final=output,
            tmp=None,
            overwrite=True,
            copy_streams=True,
        )
        vs = w._vs
        want = bytes(vs.codec_context.extradata or b"").hex()
        last_dts = None
        for k, path in enumerate(paths):
            header, pkts = read_segment(path)
            seg_expect = expect[k] if expect is not None else None
            _check_segment(path, header, seg_expect)
            seg_packets = 0
            if header.get("extradata", "") != want:
                raise OutputError(
                    f"{path}: encoded with different codec settings than {output} "
                    f"(extradata differs); delete the resume state and start again"
                )
            tb = Fraction(*header["time_base"])
            for flags, pts, dts, dur, data in pkts:
                if dts is not None and last_dts is not None and dts <= last_dts:
                    dts = last_dts + 1  # a fresh encoder's first dts can touch the previous segment's last
                    if pts is not None and dts > pts:
                        pts = dts
                last_dts = dts if dts is not None else last_dts
                p = av.Packet(data)
                p.pts, p.dts, p.duration = pts, dts, dur
                p.time_base = tb
                p.is_keyframe = bool(flags & _KEY)
                p.stream = vs
                w._mux_video([p])
                n += 1
                seg_packets += 1
            _check_segment(path, header, seg_expect, seg_packets)
        w.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    except BaseException as e:
        if w is not None:
            w.abort()
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, (av.error.FFmpegError, OSError)) and not isinstance(e, VideosrError):
            raise _w.write_error(e, output) from None
        raise
    return n


def publish(tmp: str, output: str, overwrite: bool) -> None:
    """Move a finished ``tmp`` to ``output`` (never clobbering a file that appeared unless ``overwrite``)."""
    try:
        _w._publish(tmp, output, overwrite)
    except OSError as e:
        raise _w.write_error(e, output) from None
    fsync_dir(os.path.dirname(os.path.abspath(output)))
    _w.sweep_temps(output)
