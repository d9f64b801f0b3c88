"""videosr.io: reader, writer, conversions, hostile inputs, atomic output. Small clips, made here."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from clips import make_audio_only, make_images, make_video, make_y4m, packets, pattern, video_pts

from videosr.errors import (
    DiskFullError,
    EmptyInputError,
    InputError,
    NoVideoStreamError,
    OutputError,
    OutputExistsError,
    UsageError,
)
from videosr.io import (
    Frame,
    ImageFolderWriter,
    IOWarning,
    VideoWriter,
    image_to_tensor,
    open_input,
    open_output,
    tensor_to_image,
)

pytestmark = pytest.mark.filterwarnings("ignore::videosr.io.IOWarning")


def up2(img):
    return np.repeat(np.repeat(img, 2, 0), 2, 1)


def transcode(src, dst, scale=2, **kw):
    """Read src, write dst with frames enlarged by ``scale`` (np.repeat); returns frames written."""
    with open_input(src) as r:
        info = r.info
        with open_output(dst, info, info.width * scale, info.height * scale, **kw) as w:
            n = 0
            for f in r:
                if scale != 1:
                    f.image = np.repeat(np.repeat(f.image, scale, 0), scale, 1)
                w.write(f)
                n += 1
    return n


def count_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def leftovers(folder):
    return [n for n in os.listdir(folder) if "videosr-tmp" in n]


# -- conversions ----------------------------------------------------------------------------


def test_tensor_roundtrip_uint8_uint16():
    img = pattern(3, 40, 30)
    t = image_to_tensor(img)
    assert t.shape == (3, 30, 40) and t.dtype == torch.float32 and t.is_contiguous()
    assert float(t.max()) <= 1.0 and float(t.min()) >= 0.0
    assert np.array_equal(tensor_to_image(t), img)
    img16 = pattern(3, 40, 30, deep=True)
    assert np.array_equal(tensor_to_image(image_to_tensor(img16), np.uint16), img16)
    # clamps and rounds
    t = torch.tensor([-0.5, 0.5 / 255 + 1e-6, 2.0]).view(3, 1, 1)
    assert tensor_to_image(t).ravel().tolist() == [0, 1, 255]


# -- reading / writing basics ---------------------------------------------------------------


def test_frames_in_equal_frames_out_and_info(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=12)
    with open_input(src) as r:
        info = r.info
        assert (info.width, info.height, info.frames, info.fps) == (64, 48, 12, Fraction(25))
        assert info.bit_depth == 8 and info.pix_fmt == "yuv420p" and info.codec == "h264"
        assert info.source == os.path.abspath(src)
        frames = list(r)
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    # close to what was encoded (lossy 4:2:0)
    assert np.abs(frames[0].image.astype(int) - pattern(0, 64, 48)).mean() < 12
    out = tmp_path / "out.mp4"
    assert transcode(src, out) == 12
    assert count_frames(out) == 12
    assert leftovers(tmp_path) == []


def test_audio_stream_copied_byte_identical(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=20, audio=True)
    out = tmp_path / "o.mp4"
    transcode(src, out)
    a_in, a_out = packets(src, "audio"), packets(out, "audio")
    assert len(a_in) > 10
    assert [p[0] for p in a_out] == [p[0] for p in a_in]
    with av.open(str(src)) as ci, av.open(str(out)) as co:
        assert co.streams.audio[0].metadata.get("language") == "eng"
        d_in = float(ci.duration) / 1e6
        d_out = float(co.duration) / 1e6
    assert abs(d_in - d_out) <= 1 / 25 + 1e-3
    # audio is interleaved with video, not appended at the end (mkv keeps packet order)
    out2 = tmp_path / "o.mkv"
    transcode(src, out2)
    with av.open(str(out2)) as c:
        order = "".join(p.stream.type[0] for p in c.demux() if p.size)
    assert "v" in order[order.index("a") :] and order.count("a") == len(a_in)


def test_mkv_subtitles_kept_and_converted_for_mp4(tmp_path):
    src = make_video(tmp_path / "s.mkv", frames=15, subtitles=True)
    out = tmp_path / "o.mkv"
    transcode(src, out)
    s_in, s_out = packets(src, "subtitle"), packets(out, "subtitle")
    assert s_in and [p[:2] for p in s_out] == [p[:2] for p in s_in]
    with av.open(str(out)) as c:
        assert c.streams.subtitles[0].metadata.get("language") == "fre"
    mp4 = tmp_path / "o.mp4"
    with pytest.warns(IOWarning, match="mov_text"):
        transcode(src, mp4)
    texts = [p[0] for p in packets(mp4, "subtitle") if len(p[0]) > 2]
    assert texts == [b"\x00\x0bHello world", b"\x00\x0bSecond line"]


def test_vfr_timestamps_preserved(tmp_path):
    pts = [0, 40, 100, 110, 300, 333, 400, 520]
    src = make_video(tmp_path / "v.mkv", frames=len(pts), time_base="1/1000", pts=pts)
    with open_input(src) as r:
        assert [f.pts for f in r] == pts
    for ext in ("mkv", "mp4"):
        out = tmp_path / f"o.{ext}"
        transcode(src, out)
        assert video_pts(out) == video_pts(src)


def test_odd_size_321x241(tmp_path):
    src = make_video(tmp_path / "odd.mkv", frames=4, width=321, height=241, codec="ffv1", pix_fmt="yuv444p")
    with open_input(src) as r:
        assert (r.info.width, r.info.height) == (321, 241)
        assert next(iter(r)).image.shape == (241, 321, 3)
    assert transcode(src, tmp_path / "o2.mp4") == 4  # even output
    with pytest.warns(IOWarning, match="odd size"):
        transcode(src, tmp_path / "o1.mp4", scale=1)  # odd output: x264 -> yuv444p
    with open_input(tmp_path / "o1.mp4") as r:
        assert (r.info.width, r.info.height, r.info.pix_fmt) == (321, 241, "yuv444p")
    src1 = make_video(tmp_path / "one.mkv", frames=2, width=1, height=1, codec="ffv1", pix_fmt="yuv444p")
    assert transcode(src1, tmp_path / "one.mp4", scale=1) == 2


def test_10bit_in_10bit_out_and_colour_and_rotation(tmp_path):
    colour = dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1)
    src = make_video(tmp_path / "t10.mkv", frames=5, pix_fmt="yuv420p10le", color=colour, rotation=90)
    with open_input(src) as r:
        info = r.info
        f0 = next(iter(r))
    assert info.bit_depth == 10 and f0.image.dtype == np.uint16 and f0.image.max() > 1023
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (9, 16, 9, 1)
    assert info.rotation == 90
    for ext, codec in (("mp4", "libx264"), ("mkv", "ffv1")):
        out = tmp_path / f"o.{ext}"
        transcode(src, out, codec=codec)
        with open_input(out) as r:
            o = r.info
            img = next(iter(r)).image
        assert o.bit_depth == 10 and o.pix_fmt == "yuv420p10le", (codec, o.pix_fmt)
        assert (o.color_primaries, o.color_trc, o.colorspace, o.color_range) == (9, 16, 9, 1)
        assert o.rotation == 90
        # same colours as the source after the 2x repeat (lossless for ffv1, close for x264)
        diff = np.abs(img[::2, ::2].astype(int) - f0.image.astype(int)).mean()
        assert diff < (600 if codec == "ffv1" else 1500), diff


def test_tensor_fast_path_matches_array_path(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2)
    with open_input(src) as r:
        info = r.info
    t = torch.rand(3, 48, 64)
    w = open_output(tmp_path / "x.mp4", info, 64, 48)
    try:
        a = w.to_video_frame(tensor_to_image(t))
        b = w.tensor_to_video_frame(t)
        for pa, pb in zip(a.planes, b.planes):
            assert bytes(pa) == bytes(pb)
    finally:
        w.abort()
    out = tmp_path / "t.mkv"
    with open_input(src) as r, open_output(out, r.info, 128, 96) as w:
        for f in r:
            f.image = torch.nn.functional.interpolate(image_to_tensor(f.image)[None], scale_factor=2)[0]
            w.write(f)
    assert count_frames(out) == 2


# -- image folders, y4m -----------------------------------------------------------------------


def test_image_folder_natural_sort_alpha_16bit(tmp_path):
    names = ["frame10.png", "frame2.png", "frame1.png", "frame100.png"]
    folder = make_images(tmp_path / "imgs", names, alpha=True)
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    with open_input(folder) as r:
        info = r.info
        frames = list(r)
    assert (info.frames, info.fps, info.time_base, info.source) == (4, Fraction(25), Fraction(1, 25), None)
    # natural order frame1, frame2, frame10, frame100 -> written indices 2, 1, 0, 3
    order = [names.index(n) for n in ["frame1.png", "frame2.png", "frame10.png", "frame100.png"]]
    for f, i in zip(frames, order):
        assert f.image.shape == (24, 32, 3)  # alpha dropped
        assert np.array_equal(f.image, pattern(i, 32, 24))
    assert [f.pts for f in frames] == [0, 1, 2, 3]
    deep = make_images(tmp_path / "d16", ["a.png"], deep=True)
    with open_input(deep) as r:
        assert r.info.bit_depth == 16
        img = next(iter(r)).image
    assert img.dtype == np.uint16 and np.array_equal(img, pattern(0, 32, 24, deep=True))


def test_png_folder_output(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=3)
    out = tmp_path / "pngs"
    transcode(src, str(out) + "/")
    assert sorted(os.listdir(out)) == [".videosr-output", "frame_000001.png", "frame_000002.png", "frame_000003.png"]
    with open_input(str(out)) as r:
        assert (r.info.width, r.info.height, r.info.frames) == (128, 96, 3)
    with pytest.raises(OutputExistsError):
        transcode(src, out)
    transcode(src, out, overwrite=True)
    assert leftovers(tmp_path) == []


def test_y4m_file_object_roundtrip(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=6)
    buf = io.BytesIO()
    with open_input(src) as r:
        w = open_output(buf, r.info, 64, 48)
        orig = []
        for f in r:
            orig.append(f.image)
            w.write(f)
        w.close()
    assert buf.getvalue().startswith(b"YUV4MPEG2 W64 H48 F25:1")
    buf.seek(0)
    with open_input(buf) as r:
        back = [f.image for f in r]
    assert len(back) == 6
    assert np.abs(back[0].astype(int) - orig[0]).mean() < 3


def test_y4m_stdin_stdout_subprocess(tmp_path):
    y4m = make_y4m(tmp_path / "in.y4m", frames=4)
    code = (
        "import numpy as np\n"
        "from videosr.io import open_input, open_output\n"
        "with open_input('-') as r, open_output('-', r.info, r.info.width*2, r.info.height*2) as w:\n"
        "    for f in r:\n"
        "        f.image = np.repeat(np.repeat(f.image, 2, 0), 2, 1); w.write(f)\n"
    )
    with open(y4m, "rb") as fin:
        res = subprocess.run([sys.executable, "-c", code], stdin=fin, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    assert res.stdout.startswith(b"YUV4MPEG2 W128 H96 ")
    assert res.stdout.count(b"FRAME\n") == 4


# -- hostile inputs ---------------------------------------------------------------------------


def _expect_input_error(path, exc=InputError, match=None):
    with pytest.raises(exc, match=match):
        with open_input(path) as r:
            for _ in r:
                pass


def test_hostile_inputs(tmp_path):
    good = make_video(tmp_path / "g.mp4", frames=30)
    data = open(good, "rb").read()
    _expect_input_error(tmp_path / "missing.mp4", match="no such file")
    (tmp_path / "zero.mp4").write_bytes(b"")
    _expect_input_error(tmp_path / "zero.mp4", match="0 bytes")
    (tmp_path / "rand.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    _expect_input_error(tmp_path / "rand.mp4")
    moov = data.find(b"moov")
    assert moov > data.find(b"mdat")  # moov at the end: cutting it off = no moov / truncated
    (tmp_path / "nomoov.mp4").write_bytes(data[: moov - 4])
    _expect_input_error(tmp_path / "nomoov.mp4", match="truncated")
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    _expect_input_error(tmp_path / "half.mp4")
    make_audio_only(tmp_path / "aud.m4a")
    _expect_input_error(tmp_path / "aud.m4a", NoVideoStreamError, match="no video stream")
    make_y4m(tmp_path / "none.y4m", frames=0)
    _expect_input_error(tmp_path / "none.y4m", EmptyInputError)
    # absurd declared size: refused from the header, before any frame is allocated
    (tmp_path / "huge.y4m").write_bytes(b"YUV4MPEG2 W17000 H100 F25:1 C420jpeg\nFRAME\n" + bytes(1000))
    _expect_input_error(tmp_path / "huge.y4m", match="too large")
    (tmp_path / "huge2.y4m").write_bytes(b"YUV4MPEG2 W16384 H16400 F25:1 C420jpeg\nFRAME\n" + bytes(1000))
    _expect_input_error(tmp_path / "huge2.y4m")
    os.mkdir(tmp_path / "emptydir")
    _expect_input_error(tmp_path / "emptydir", EmptyInputError)
    # corrupt bytes in the middle of the video data: fails naming a frame, never skips silently
    b = bytearray(data)
    mid = data.find(b"mdat") + (moov - data.find(b"mdat")) // 2
    b[mid : mid + 300] = bytes(x ^ 0xFF for x in b[mid : mid + 300])
    (tmp_path / "corrupt.mp4").write_bytes(bytes(b))
    _expect_input_error(tmp_path / "corrupt.mp4", match="frame")


def test_image_renamed_to_mp4_is_one_frame_video(tmp_path):
    make_images(tmp_path / "i", ["x.png"])
    shutil.copy(tmp_path / "i" / "x.png", tmp_path / "x.mp4")
    with open_input(tmp_path / "x.mp4") as r:
        frames = list(r)
    assert len(frames) == 1 and np.array_equal(frames[0].image, pattern(0, 32, 24))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_input_and_unwritable_folder(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2)
    os.chmod(src, 0)
    try:
        _expect_input_error(src, match="permission")
    finally:
        os.chmod(src, 0o644)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            transcode(src, ro / "o.mp4")
    finally:
        os.chmod(ro, 0o755)


# -- output safety ----------------------------------------------------------------------------


def test_output_refusals(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=2)
    with open_input(src) as r:
        info = r.info
    with pytest.raises(OutputError, match="is the input"):
        open_output(src, info, 64, 48, overwrite=True)
    os.link(src, tmp_path / "hard.mp4")
    with pytest.raises(OutputError, match="is the input"):
        open_output(tmp_path / "hard.mp4", info, 64, 48, overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        open_output(tmp_path / "nodir" / "o.mp4", info, 64, 48)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        open_output(existing, info, 64, 48)
    with pytest.raises(UsageError):
        open_output(tmp_path / "o.xyz", info, 64, 48)
    with pytest.raises(UsageError):
        open_output(tmp_path / "o.mp4", info, 64, 48, codec="nope")
    assert existing.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == []
    transcode(src, existing, overwrite=True)
    assert count_frames(existing) == 2


def test_exception_mid_write_leaves_nothing(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=10)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    for out, ow in ((tmp_path / "new.mp4", False), (existing, True), (str(tmp_path / "pngdir") + os.sep, False)):
        with pytest.raises(RuntimeError):
            with open_input(src) as r, open_output(out, r.info, 128, 96, overwrite=ow) as w:
                for f in r:
                    w.write(Frame(up2(f.image), f.pts, f.time_base, f.index))
                    if f.index == 5:
                        raise RuntimeError("boom")
        assert leftovers(tmp_path) == []
    assert not (tmp_path / "new.mp4").exists() and not (tmp_path / "pngdir").exists()
    assert existing.read_bytes() == b"keep me"


def test_enospc_becomes_disk_full(tmp_path, monkeypatch):
    src = make_video(tmp_path / "a.mp4", frames=10, audio=True)
    calls = {"n": 0}

    def full(self, packet):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._oc.mux(packet)

    monkeypatch.setattr(VideoWriter, "_mux", full)
    with pytest.raises(DiskFullError, match="no space"):
        transcode(src, tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists() and leftovers(tmp_path) == []

    def full_png(name, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ImageFolderWriter, "_write_file", staticmethod(full_png))
    with pytest.raises(DiskFullError):
        transcode(src, tmp_path / "pngs", format="png")
    assert not (tmp_path / "pngs").exists() and leftovers(tmp_path) == []


def test_webm_forces_vp9_and_reencodes_audio(tmp_path):
    src = make_video(tmp_path / "a.mp4", frames=6, audio=True)
    out = tmp_path / "o.webm"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        transcode(src, out)
    msgs = " ".join(str(w.message) for w in rec)
    assert "libvpx-vp9" in msgs and "opus" in msgs
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name in ("vp9", "libvpx-vp9")
        assert c.streams.audio[0].codec_context.name in ("opus", "libopus")
    assert count_frames(out) == 6


@pytest.mark.parametrize("codec,ext", [("libx265", "mkv"), ("libsvtav1", "mkv"), ("ffv1", "mkv")])
def test_other_codecs(tmp_path, codec, ext):
    src = make_video(tmp_path / "a.mp4", frames=3)
    out = tmp_path / f"o.{ext}"
    assert transcode(src, out, codec=codec) == 3
    assert count_frames(out) == 3
