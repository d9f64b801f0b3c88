"""Audio/subtitle pass-through: stream copy (byte-identical packets), demuxed from the source on the
fly and muxed interleaved with the video as it is written. Re-encodes only when the output
container cannot hold the codec (warns)."""

from __future__ import annotations

import logging
import math
import re
import warnings
from fractions import Fraction

import av

log = logging.getLogger("videosr.io")

TEXT_SUBS = ("mov_text", "subrip", "srt", "webvtt", "text")
# What a container wants for text subtitles / audio when the source codec does not fit.
SUB_TARGET = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}
AUDIO_TARGET = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
_TAG_RE = re.compile(r"</?[A-Za-z][^>]*>|\{\\[^}]*\}")


class IOWarning(UserWarning):
    """Something was changed to fit the output (codec forced, stream re-encoded or dropped)."""


def warn(msg: str) -> None:
    log.warning(msg)
    warnings.warn(msg, IOWarning, stacklevel=3)


def _sub_text(codec: str, data: bytes) -> str:
    if codec == "mov_text":
        if len(data) < 2:
            return ""
        n = int.from_bytes(data[:2], "big")
        return data[2 : 2 + n].decode("utf-8", "replace")
    return data.decode("utf-8", "replace").rstrip("\x00")


def _sub_payload(codec: str, text: str) -> bytes:
    if codec == "mov_text":
        raw = _TAG_RE.sub("", text).encode("utf-8")[:65535]
        return len(raw).to_bytes(2, "big") + raw
    return text.encode("utf-8")


def _mov_text_extradata() -> bytes | None:
    try:
        cc = av.CodecContext.create("mov_text", "w")
        cc.time_base = Fraction(1, 1000)
        cc.open()
        return bytes(cc.extradata) if cc.extradata else None
    except Exception:
        return None


def _copy_meta(src, dst) -> None:
    for k, v in src.metadata.items():
        if k.upper() in (
            "DURATION",
            "ENCODER",
            "NUMBER_OF_FRAMES",
            "NUMBER_OF_BYTES",
            "_STATISTICS_TAGS",
            "_STATISTICS_WRITING_APP",
            "_STATISTICS_WRITING_DATE_UTC",
            "BPS",
        ):
            continue
        try:
            dst.metadata[k] = v
        except Exception:
            pass
    try:
        dst.disposition = src.disposition
    except Exception:
        pass


class _Copy:
    def __init__(self, out):
        self.out = out

    def packets(self, pkt):
        if pkt.size == 0:
            return []
        pkt.stream = self.out
        return [pkt]

    def flush(self):
        return []


class _SubConvert:
    def __init__(self, src_codec, dst_codec, out):
        self.src, self.dst_codec, self.out = src_codec, dst_codec, out

    def packets(self, pkt):
        if pkt.size == 0:
            return []
        text = _sub_text(self.src, bytes(pkt))
        new = av.Packet(_sub_payload(self.dst_codec, text))
        new.pts, new.dts, new.duration = pkt.pts, pkt.dts, pkt.duration
        new.time_base = pkt.time_base
        new.stream = self.out
        return [new]

    def flush(self):
        return []


class _AudioTranscode:
    def __init__(self, src, out):
        self.src, self.out = src, out

    def packets(self, pkt):
        frames = pkt.decode()  # also flushes the decoder on the final empty packet
        res = []
        for f in frames:
            f.pts = None
            res.extend(self.out.encode(f))
        return res

    def flush(self):
        return list(self.out.encode(None))


ATTACHMENT_FORMATS = ("matroska",)  # containers that hold attachments (fonts, cover art files)


def _carry_extras(ic, oc, fmt: str) -> None:
    """Carry what is not audio or subtitles where the output container can hold it: attachments (fonts:
    Matroska), chapters; name in one warning each what is dropped: other video streams than the one
    upscaled (also cover art), data streams (timecode, metadata tracks), attachments and chapters the
    container cannot hold."""
    main = next((s for s in ic.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)), None)
    for s in ic.streams:
        name = s.codec_context.name if s.codec_context else (getattr(s, "codec_tag", None) or "?")
        if s.type == "video" and s is not main:
            cover = bool(s.disposition & av.stream.Disposition.attached_pic)
            what = "cover art" if cover else "only the first video stream is upscaled"
            warn(f"video stream #{s.index} ({name}) is not carried into the output ({what}); dropped")
        elif s.type == "data":
            warn(f"data stream #{s.index} ({name}) cannot be carried into .{fmt}; dropped")
        elif s.type == "attachment":
            label = getattr(s, "name", None) or s.metadata.get("filename") or f"#{s.index}"
            data = getattr(s, "data", None)
            if fmt in ATTACHMENT_FORMATS and data:
                try:
                    oc.add_attachment(label, getattr(s, "mimetype", None) or "application/octet-stream", bytes(data))
                    continue
                except Exception as e:  # noqa: BLE001 - named in the warning below
                    log.debug("attachment %s: %s", label, e)
            warn(f"attachment {label} (stream #{s.index}) cannot be stored in .{fmt}; dropped")
    try:
        chapters = ic.chapters()
    except Exception:  # noqa: BLE001 - a container without chapter support
        chapters = []
    if chapters:
        try:
            oc.set_chapters(chapters)
        except Exception:  # noqa: BLE001
            warn(f"{len(chapters)} chapter(s) cannot be stored in .{fmt}; dropped")


class Passthrough:
    """Copies audio and subtitle streams of ``source`` into ``oc``.

    Create before the first video packet is muxed (streams must exist before the header)."""

    def __init__(self, source: str, oc, fmt: str):
        self.ic = av.open(source, "r", metadata_errors="replace")
        self.handlers = {}
        supported = oc.supported_codecs
        _carry_extras(self.ic, oc, fmt)
        for s in self.ic.streams:
            if s.type not in ("audio", "subtitle"):
                continue
            # no codec context: a codec FFmpeg cannot handle (e.g. a corrupt sample description): dropped below
            name = s.codec_context.name if s.codec_context else "?"
            label = f"{s.type} stream #{s.index} ({name})"
            if name in supported:
                out = oc.add_stream_from_template(s)
                _copy_meta(s, out)
                self.handlers[s.index] = _Copy(out)
            elif s.type == "subtitle" and name in TEXT_SUBS and fmt in SUB_TARGET:
                target = SUB_TARGET[fmt]
                out = oc.add_mux_stream(target)
                out.time_base = s.time_base
                if target == "mov_text":
                    ext = _mov_text_extradata()
                    if ext:
                        try:
                            out.codec_context.extradata = ext
                        except Exception:
                            pass
                _copy_meta(s, out)
                self.handlers[s.index] = _SubConvert(name, target, out)
                warn(f"{label} cannot be stored in .{fmt}; converted to {target} (text kept, styling dropped)")
            elif s.type == "audio" and fmt in AUDIO_TARGET and s.codec_context is not None:
                target = AUDIO_TARGET[fmt]
                cc = s.codec_context
                rate = 48000 if target == "libopus" else (cc.sample_rate or 48000)
                out = oc.add_stream(target, rate=rate)
                try:
                    out.layout = cc.layout
                except Exception:
                    pass
                _copy_meta(s, out)
                self.handlers[s.index] = _AudioTranscode(s, out)
                warn(f"{label} cannot be stored in .{fmt}; re-encoded to {target}")
            else:
                warn(f"{label} cannot be stored in .{fmt}; dropped")
        streams = [self.ic.streams[i] for i in self.handlers]
        self._it = self.ic.demux(streams) if streams else iter(())
        self._pending = None
        self._done = not streams

    def __bool__(self):
        return bool(self.handlers)

    def _next(self):
        if self._pending is None and not self._done:
            try:
                self._pending = next(self._it)
            except StopIteration:
                self._done = True
        return self._pending

    def pump(self, until: float, mux) -> None:
        """Mux source packets whose timestamp is <= ``until`` seconds."""
        while True:
            pkt = self._next()
            if pkt is None:
                return
            ts = pkt.dts if pkt.dts is not None else pkt.pts
            if ts is not None and pkt.time_base is not None and until != math.inf:
                if float(ts * pkt.time_base) > until:
                    return
            self._pending = None
            h = self.handlers.get(pkt.stream.index)
            if h is not None:
                for p in h.packets(pkt):
                    mux(p)

    def finish(self, mux) -> None:
        self.pump(math.inf, mux)
        for h in self.handlers.values():
            for p in h.flush():
                mux(p)

    def close(self) -> None:
        try:
            self.ic.close()
        except Exception:
            pass
