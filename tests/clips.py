"""Helpers that make small test clips with PyAV (importable by any test: ``from clips import ...``;
``tests/conftest.py`` puts this folder on sys.path and exposes fixtures)."""

from __future__ import annotations

import os
import time
from fractions import Fraction

import av
import numpy as np


def pattern(i: int, width: int, height: int, *, deep: bool = False) -> np.ndarray:
    """Deterministic moving RGB pattern, (H, W, 3) uint8 (or uint16 when ``deep``)."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1) + i * 7) % 256
    g = (y * 255 // max(height - 1, 1) + i * 3) % 256
    b = ((x + y + i * 5) * 4) % 256
    img = np.stack([r, g, b], axis=-1).astype(np.uint16 if deep else np.uint8)
    if deep:
        img = img * 257 + (x[..., None] % 4).astype(np.uint16) * 16
    return img


def make_video(
    path,
    *,
    frames: int = 10,
    width: int = 64,
    height: int = 48,
    fps=25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts=None,
    time_base=None,
    audio: bool = False,
    audio_codec: str = "aac",
    subtitles: bool = False,
    rotation: int | None = None,
    color: dict | None = None,
    options=None,
    fmt: str | None = None,
    language: str | None = None,
) -> str:
    """Write a small clip. ``pts``: explicit per-frame pts (VFR) in ``time_base``.
    ``color``: dict of codec-context colour attributes (color_primaries, color_trc, colorspace, color_range).
    ``subtitles``: adds a text subtitle stream (subrip in mkv, mov_text in mp4/mov) with 2 cues.
    ``audio``: adds a mono 48 kHz audio stream covering the clip."""
    path = os.fspath(path)
    fps = Fraction(fps)
    oc = av.open(path, "w", format=fmt)
    vs = oc.add_stream(codec, rate=fps, options=dict(options or {}))
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    tb = Fraction(time_base) if time_base else 1 / fps
    vs.codec_context.time_base = tb
    if codec == "libx264":
        vs.codec_context.options = {**(options or {}), "preset": "ultrafast"}
    if color:
        for k, v in color.items():
            setattr(vs.codec_context, k, v)
    if rotation is not None:
        vs.set_display_rotation(rotation)
    if language:
        vs.metadata["language"] = language
    ast = sst = None
    if audio:
        ast = oc.add_stream(audio_codec, rate=48000)
        ast.layout = "mono"
        ast.metadata["language"] = "eng"
        ast.metadata["title"] = "Commentary"
    if subtitles:
        scodec = "subrip" if oc.format.name in ("matroska", "webm") else "mov_text"
        sst = oc.add_mux_stream(scodec)
        sst.time_base = Fraction(1, 1000)
        sst.metadata["language"] = "fre"
        if scodec == "mov_text":
            cc = av.CodecContext.create("mov_text", "w")
            cc.time_base = Fraction(1, 1000)
            cc.open()
            try:
                sst.codec_context.extradata = cc.extradata
            except Exception:
                pass
    if frames == 0:
        oc.start_encoding()  # header only: a video stream without frames
    deep = "10" in pix_fmt or "12" in pix_fmt or "16" in pix_fmt
    last = 0
    for i in range(frames):
        img = pattern(i, width, height, deep=deep)
        f = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep else "rgb24")
        kw = {}
        if color and color.get("colorspace"):
            kw["dst_colorspace"] = color["colorspace"]
        if color and color.get("color_range"):
            kw["dst_color_range"] = color["color_range"]
        f = f.reformat(format=pix_fmt, **kw)
        f.pts = pts[i] if pts is not None else i * int(1 / fps / tb)
        last = f.pts
        f.time_base = tb
        for p in vs.encode(f):
            oc.mux(p)
    for p in vs.encode(None):
        oc.mux(p)
    dur = float((last + 1) * tb) if pts is not None else frames / float(fps)
    if ast is not None:
        n = int(dur * 48000)
        t = np.arange(n, dtype=np.float32) / 48000
        sig = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, n, 1024):
            chunk = sig[k : k + 1024]
            af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            af.sample_rate = 48000
            af.pts = k
            af.time_base = Fraction(1, 48000)
            for p in ast.encode(af):
                oc.mux(p)
        for p in ast.encode(None):
            oc.mux(p)
    if sst is not None:
        cues = [(0, int(dur * 400), "Hello <i>world</i>"), (int(dur * 500), int(dur * 400), "Second line")]
        for start, length, text in cues:
            raw = text.encode()
            if (
                sst.codec_context is not None
                and sst.codec_context.name == "mov_text"
                or oc.format.name in ("mp4", "mov")
            ):
                plain = text.replace("<i>", "").replace("</i>", "").encode()
                raw = len(plain).to_bytes(2, "big") + plain
            pkt = av.Packet(raw)
            pkt.pts = pkt.dts = start
            pkt.duration = length
            pkt.time_base = Fraction(1, 1000)
            pkt.stream = sst
            oc.mux(pkt)
    oc.close()
    return path


def make_images(folder, names, *, width: int = 32, height: int = 24, alpha: bool = False, deep: bool = False):
    """Write PNGs named ``names`` (frame i gets pattern(i)); returns the folder path."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for i, name in enumerate(names):
        img = pattern(i, width, height, deep=deep)
        if deep:
            f = av.VideoFrame.from_ndarray(img, format="rgb48le").reformat(format="rgb48be")
            cc = av.CodecContext.create("png", "w")
            cc.width, cc.height, cc.pix_fmt = width, height, "rgb48be"
            data = b"".join(bytes(p) for p in cc.encode(f))
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(data)
        else:
            from PIL import Image

            im = Image.fromarray(img)
            if alpha:
                im = im.convert("RGBA")
                im.putalpha(128)
            im.save(os.path.join(folder, name))
    return folder


def make_y4m(path, *, frames: int = 5, width: int = 64, height: int = 48, header: bytes | None = None) -> str:
    """Raw y4m file (yuv420p, 25 fps); ``header`` replaces the stream header line (for hostile tests)."""
    path = os.fspath(path)
    with open(path, "wb") as fh:
        fh.write(header or f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24").reformat(format="yuv420p")
            fh.write(b"FRAME\n")
            for p in (f.to_ndarray().ravel(),):
                fh.write(p.tobytes())
    return path


def make_audio_only(path) -> str:
    oc = av.open(os.fspath(path), "w")
    ast = oc.add_stream("aac", rate=48000)
    ast.layout = "mono"
    for k in range(0, 48000 // 2, 1024):
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 48000
        af.pts = k
        for p in ast.encode(af):
            oc.mux(p)
    for p in ast.encode(None):
        oc.mux(p)
    oc.close()
    return os.fspath(path)


def packets(path, kind: str):
    """[(bytes, pts, time_base)] of every packet of the first stream of ``kind`` ('audio'/'subtitle')."""
    out = []
    with av.open(os.fspath(path)) as c:
        ss = [s for s in c.streams if s.type == kind]
        if not ss:
            return out
        for p in c.demux(ss[0]):
            if p.size:
                out.append((bytes(p), p.pts, p.time_base))
    return out


def video_pts(path):
    """Presentation timestamps (seconds, as Fraction) of every decoded video frame."""
    with av.open(os.fspath(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * Fraction(f.time_base) for f in c.decode(s)]


def wait_for(cond, proc, timeout: float = 60.0) -> bool:
    """Poll ``cond()`` until it holds (True) or the subprocess ``proc`` ends or ``timeout`` s pass (False)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False
