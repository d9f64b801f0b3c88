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

:class:`SegmentWriter` encodes with a :class:`~videosr.io.writer.VideoWriter` configured by the final
output's :class:`~videosr.io.writer.OutputPlan` (same container flags, options and therefore the same
extradata) whose packets come to the segment file (its header also holds a ``tag``: the resume job's id and
the segment's first frame, which the join checks); ``close()`` flushes the encoder, writes the trailer, fsyncs
and renames ``X.part`` to ``X``. :class:`SegmentSink` cuts the frames of a run into such segments and commits
each to the resume state. :func:`concat_segments` opens the final output as the same plan says, checks that
every segment carries the same extradata as its encoder, muxes the packets (no re-encoding) interleaved with
the source's audio/subtitle packets (stream copy) and moves the file into place atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction

import av

from ..errors import OutputError, ResumeError, VideosrError
from . import writer as _w
from ._types import Frame, VideoInfo

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


class SegmentWriter(_w.AtomicWriter):
    """Encodes frames into a segment file (see module docstring) for the output ``plan`` describes.
    ``last_pts``: the last pts of the previous segment, so timestamp repair continues across segments exactly
    as in a single pass."""

    def __init__(
        self,
        path: str,
        plan: _w.OutputPlan,
        info: VideoInfo,
        *,
        threads: int = 0,
        last_pts: int | None = None,
        tag: dict | None = None,
    ):
        self.seg_path = path
        self._part = path + ".part"
        self._fh = None
        self._video = None
        self._closed = False
        self.packets = 0
        self.size = 0
        self._sha = hashlib.sha256()
        try:
            self._fh = open(self._part, "wb")
        except OSError as e:
            raise _w.write_error(e, path) from None
        try:
            self._video = _w.VideoWriter(
                os.devnull,
                info,
                plan,
                threads=threads,
                final=path,
                tmp=None,
                overwrite=True,
                copy_streams=False,
                packets=self._packet,
                last_pts=last_pts,
            )
        except BaseException:
            self.abort()
            raise
        v = self._video
        tb = Fraction(v.time_base)
        header = {
            "codec": v.encoder,
            "width": plan.width,
            "height": plan.height,
            "pix_fmt": v.pix_fmt,
            "time_base": [tb.numerator, tb.denominator],
            "extradata": v.extradata.hex(),
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

    def _packet(self, packet) -> None:
        """One packet from the encoder, recorded as it came (module docstring)."""
        data = bytes(packet)
        if not data:
            return
        flags = (
            (_KEY if packet.is_keyframe else 0)
            | (_HAS_PTS if packet.pts is not None else 0)
            | (_HAS_DTS if packet.dts is not None else 0)
        )
        tb, own = packet.time_base, Fraction(self._video.time_base)
        pts, dts = packet.pts or 0, packet.dts or 0
        if tb is not None and Fraction(tb) != own:  # never seen; keep it exact anyway
            pts = int(round(Fraction(pts) * Fraction(tb) / own))
            dts = int(round(Fraction(dts) * Fraction(tb) / own))
        self._put(_REC.pack(flags, pts, dts, packet.duration or 0, len(data)) + data)
        self.packets += 1

    @property
    def pix_fmt(self) -> str:
        return self._video.pix_fmt

    @property
    def last_pts(self) -> int | None:
        """The timestamp of the last frame written (:attr:`videosr.io.writer.VideoWriter.last_pts`)."""
        return self._video.last_pts

    def advance_pts(self, frame: Frame) -> int:
        """See :meth:`videosr.io.writer.VideoWriter.advance_pts`."""
        return self._video.advance_pts(frame)

    def write(self, frame: Frame) -> None:
        """Encode one frame (as :meth:`videosr.io.writer.VideoWriter.write`); its packets go to the file."""
        try:
            self._video.write(frame)
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Flush the encoder, write the trailer, fsync, and rename ``X.part`` to ``X`` (the commit point
        is the caller's manifest update; a file not in the manifest is discarded on resume)."""
        if self._closed:
            return
        try:
            self._video.close()  # its last packets come here
            self._put(END + struct.pack("<Q", self.packets))
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
        self._closed = True
        if self._video is not None:
            self._video.abort()
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        try:
            os.unlink(self._part)
        except OSError:
            pass


class SegmentSink:
    """Runs in the encoder thread: frames -> segment files of ``seg_len`` frames, each committed to the resume
    state ``st`` when complete (a :class:`videosr.resume.State`, or what stands in for it: ``dir``, ``job``,
    ``last_pts``, ``segment_path(number)``, ``commit(record)``). ``open_segment``: makes each segment's writer,
    called as :class:`SegmentWriter` is (the default)."""

    def __init__(self, st, seg_len: int, plan: _w.OutputPlan, info: VideoInfo, open_segment: Callable | None = None):
        self.st, self.seg_len, self.plan, self.info = st, seg_len, plan, info
        self.open_segment = open_segment or SegmentWriter
        self.cur = None
        self.last_pts = st.last_pts
        self.lock = threading.Lock()

    def write(self, src: Frame, hr) -> None:
        """Write ``hr``, the upscaled frame of ``src`` (anything :meth:`SegmentWriter.write` takes)."""
        i = src.index
        if self.cur is None:
            if i % self.seg_len:
                raise ResumeError(
                    f"resume state at {self.st.dir}: its last segment is short (ends at frame {i}) "
                    f"but the input goes on; delete it and start again"
                )
            number = i // self.seg_len
            with quiet():
                w = self.open_segment(
                    self.st.segment_path(number),
                    self.plan,
                    self.info,
                    last_pts=self.last_pts,
                    tag={"job": self.st.job, "start": i},
                )
            with self.lock:
                self.cur = w
            self.start, self.first_pts = i, src.pts
        self.cur.write(Frame(image=hr, pts=src.pts, time_base=src.time_base, index=i))
        self.src_last_pts, self.next = src.pts, i + 1
        if (i + 1) % self.seg_len == 0:
            self._commit()

    def _commit(self) -> None:
        w = self.cur
        w.close()
        self.st.commit(
            {
                "file": os.path.basename(w.seg_path),
                "start": self.start,
                "end": self.next,
                "first_pts": self.first_pts,
                "last_pts": self.src_last_pts,
                "out_last_pts": w.last_pts,
                "size": w.size,
                "sha256": w.sha256,
            }
        )
        self.last_pts = w.last_pts
        with self.lock:
            self.cur = None

    def finish(self) -> None:
        if self.cur is not None:
            self._commit()

    def abort(self) -> None:
        """Drop the segment in progress (called once the encoder thread has stopped, or given up on)."""
        with self.lock:
            w, self.cur = self.cur, None
        if w is not None:
            w.abort()


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
    plan: _w.OutputPlan,
    *,
    tmp: str,
    threads: int = 0,
    expect: list[dict] | None = None,
) -> int:
    """Mux the packets of ``paths`` (in order) into the file ``tmp``, in the container ``plan`` (``output``'s)
    names, with the source's audio/subtitle streams copied; fsync it. Returns the number of video packets.
    ``expect``: per path, what :func:`_check_segment` verifies (tag and frame count).
    ``tmp`` is removed if anything fails; the caller moves it into place with :func:`publish`."""
    if not plan.resumable:
        raise OutputError(f"{output}: segments can only be joined into a video file")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _w.write_error(e, output) from None
    w = None
    n = 0
    try:
        w = _w.VideoWriter(tmp, info, plan, threads=threads, final=output, tmp=None, overwrite=True, copy_streams=True)
        want = w.extradata.hex()
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
                w.write_packets([p])
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
        _w.move_into_place(tmp, output, overwrite)
    except OSError as e:
        raise _w.write_error(e, output) from None
    fsync_dir(os.path.dirname(os.path.abspath(output)))
    _w.sweep_temps(output)
