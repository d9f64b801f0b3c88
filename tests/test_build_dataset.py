"""scripts/build_dataset.py on synthetic inputs: licence lookup in Debian copyright files, the containers it
reads (Qt .rcc, Eet), the still / video quality checks, and the stills / clips / manifest it writes.
Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from clips import make_video
from PIL import Image

_SPEC = importlib.util.spec_from_file_location(
    "_build_dataset", Path(__file__).resolve().parents[1] / "scripts" / "build_dataset.py"
)
bd = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bd  # dataclasses look their module up there
_SPEC.loader.exec_module(bd)

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Demo Authors
License: GPL-2+

Files: 16.04/Bridge_by_Someone.jpg
Copyright: 2018, Someone
License: CC-BY-SA-4.0

Files: src/activities/erase/resource/*
       src/activities/clickgame/resource/sea1.jpg
Copyright: 2015 Photographer
License: CC0
 Long licence text
 that goes on.

Files: debian/*
Copyright: 2021 Packager
License: GPL-2+

License: GPL-2+
 text of the licence
"""


def test_copyright_last_matching_paragraph_wins():
    paras = bd.parse_copyright(COPYRIGHT)
    assert [p["license"] for p in paras] == ["GPL-2+", "CC-BY-SA-4.0", "CC0", "GPL-2+"]
    assert paras[2]["files"] == ["src/activities/erase/resource/*", "src/activities/clickgame/resource/sea1.jpg"]
    # a tail of the installed path matches a source-relative glob
    hit = bd.license_for(paras, "/gcompris/src/activities/erase/resource/gorilla.webp")
    assert hit["license"] == "CC0" and hit["license_files"] == "src/activities/erase/resource/*"
    # image extensions are interchangeable (the package re-encoded the source .jpg as .webp)
    assert bd.license_for(paras, "/gcompris/src/activities/clickgame/resource/sea1.webp")["license"] == "CC0"
    assert bd.license_for(paras, "/gcompris/src/activities/clickgame/resource/sea2.webp")["license"] == "GPL-2+"
    # an exact source path is found by file name when installed elsewhere
    hit = bd.license_for(paras, "usr/share/backgrounds/Bridge_by_Someone.jpg")
    assert hit["license"] == "CC-BY-SA-4.0" and hit["copyright"] == "2018, Someone"
    assert bd.license_for(paras, "usr/share/backgrounds/other.jpg")["license"] == "GPL-2+"
    # free-text copyright files have no paragraphs: nothing matches
    assert bd.parse_copyright("This package was debianized by someone.\n\nGPL-2.\n") == []
    assert bd.license_for([], "a.jpg") is None


def _photo(w=640, h=480, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(128, 40, (h // 4, w // 4, 3)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(a).resize((w, h), Image.BICUBIC)


def _png_bytes(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_still_verdict_rejects_flat_art_and_small_images():
    grad, flat = bd.texture_stats(_photo())
    assert grad > bd.MIN_GRAD and flat < bd.MAX_FLAT
    assert bd.still_verdict(grad, flat, (640, 480)) is None
    x = np.linspace(0, 255, 640, dtype=np.float32)
    gradient = Image.fromarray(np.repeat(np.stack([x, x, x], -1)[None], 480, 0).astype(np.uint8))
    grad, flat = bd.texture_stats(gradient)
    assert bd.still_verdict(grad, flat, (640, 480)).startswith("non-photographic")
    assert bd.still_verdict(grad, flat, (640, 480), check=False) is None
    assert bd.still_verdict(10.0, 0.0, (300, 200)) == "too small: 300x200"


def test_video_verdict_threshold():
    ok = {"codec": "h264", "width": 640, "height": 480, "bpp": 0.094, "chroma": 11.0, "total_frames": 455}
    assert bd.video_verdict(ok) is None
    assert "cinepak" in bd.video_verdict({**ok, "codec": "cinepak"})
    assert "low resolution" in bd.video_verdict({**ok, "width": 320, "height": 240})
    assert "bitrate" in bd.video_verdict({**ok, "bpp": 0.05})
    assert bd.video_verdict({**ok, "chroma": 0.0}) == "greyscale"
    assert "frames" in bd.video_verdict({**ok, "total_frames": 10})


def _rcc(files):
    """A Qt resource (format 2) with one folder 'res' holding files {name: (data, zlib?)}."""
    names = b""
    name_off = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    data = b""
    data_off = {}
    for n, (blob, z) in files.items():
        data_off[n] = len(data)
        payload = struct.pack(">I", len(blob)) + zlib.compress(blob) if z else blob
        data += struct.pack(">I", len(payload)) + payload
    entry = struct.Struct(">IHIIQ")  # 22 bytes: name, flags, then dir (count, first) or file (locale, data)
    tree = entry.pack(0, 2, 1, 1, 0)  # root: one child at index 1
    tree += entry.pack(name_off["res"], 2, len(files), 2, 0)
    for n, (_, z) in files.items():
        tree += struct.pack(">IHHHIQ", name_off[n], 1 if z else 0, 0, 0, data_off[n], 0)
    header = 24
    return (
        b"qres"
        + struct.pack(">IIIII", 2, header, header + len(tree), header + len(tree) + len(data), 0)[:16]
        + b"\0" * (header - 20)
        + tree
        + data
        + names
    )


def test_read_rcc_plain_and_zlib_members():
    files = {"a.webp": (b"plain bytes", False), "b.png": (b"compressed bytes" * 10, True)}
    assert dict(bd.read_rcc(_rcc(files))) == {"/res/a.webp": b"plain bytes", "/res/b.png": b"compressed bytes" * 10}
    with pytest.raises(ValueError):
        list(bd.read_rcc(b"not a resource"))


def _eet(entries):
    """An Eet file with entries [(name, data)], no dictionary."""
    head = struct.pack(">III", 0x1EE70F42, len(entries), 0)
    dir_size = 24 * len(entries)
    names = b"".join(n.encode() + b"\0" for n, _ in entries)
    off_names = len(head) + dir_size
    off_data = off_names + len(names)
    rows, data, noff = b"", b"", off_names
    for n, blob in entries:
        rows += struct.pack(">6I", off_data + len(data), len(blob), len(blob), noff, len(n) + 1, 0)
        noff += len(n) + 1
        data += blob
    return head + rows + names + data


def test_eet_largest_jpeg():
    small, big = b"\xff\xd8small", b"\xff\xd8a bigger jpeg"
    buf = _eet([("edje/images/1", small), ("edje/file", b"x" * 100), ("edje/images/0", big)])
    assert bd.eet_largest_jpeg(buf) == ("edje/images/0", big)
    assert bd.eet_largest_jpeg(_eet([("edje/images/0", b"\xac\x1d\xfe\xed lossless")])) is None


def _builder(tmp_path):
    out = tmp_path / "out"
    for sub in ("stills", "clips", "licenses"):
        (out / sub).mkdir(parents=True)
    b = bd.Builder(out, tmp_path / "x")
    b.manifest["packages"]["demo"] = {"version": "1.0", "deb": "demo_1.0_all.deb", "license": ""}
    b.copyrights["demo"] = bd.parse_copyright(COPYRIGHT)
    return b


def test_stills_selection_licences_and_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "MAX_SIDE", 800)
    b = _builder(tmp_path)
    photo = _png_bytes(_photo())
    b.add_still(bd.Candidate("demo", "usr/share/backgrounds/Bridge_by_Someone.jpg", "demo-bridge", photo))
    b.add_still(bd.Candidate("demo", "usr/share/x/flat.png", "demo-flat", _png_bytes(Image.new("RGB", (640, 480)))))
    b.add_still(bd.Candidate("demo", "usr/share/x/art.png", "demo-art", photo, exclude="illustration"))
    b.add_still(bd.Candidate("demo", "usr/share/x/big.png", "demo bridge", _png_bytes(_photo(1200, 800, 1))))
    b.copyrights["demo"] = []  # a free-text copyright file and no stated licence: left out
    b.add_still(bd.Candidate("demo", "usr/share/x/unknown.png", "demo-unknown", photo))
    m = b.manifest
    assert [s["path"] for s in m["stills"]] == ["stills/demo-bridge.png", "stills/demo_bridge.png"]
    s0, s1 = m["stills"]
    assert s0["license"] == "CC-BY-SA-4.0" and s0["copyright"] == "2018, Someone" and s0["version"] == "1.0"
    assert s1["license"] == "GPL-2+" and (s1["width"], s1["height"]) == (800, 533)
    assert s1["orig_size"] == [1200, 800]
    reasons = {Path(r["file"]).name: r["reason"] for r in m["rejected"]}
    assert reasons["flat.png"].startswith("non-photographic")
    assert reasons["art.png"] == "illustration"
    assert reasons["unknown.png"] == "no licence stated for this file"
    # a PNG made from the same source bytes is kept on a rebuild; a changed source rewrites it
    p = b.out / "stills/demo-bridge.png"
    assert bd.up_to_date(p, f"{s0['src_sha256']}:max800")
    assert not bd.up_to_date(p, "0" * 64 + ":max800")
    (b.out / "stills/stale.png").write_bytes(photo)
    b.finish(0.0)
    assert not (b.out / "stills/stale.png").exists()
    summary = json.loads((b.out / "manifest.json").read_text())["summary"]
    assert summary["stills"] == 2 and summary["stills_per_source"] == {"demo": 2}
    assert summary["still_gpixels"] == round((640 * 480 + 800 * 533) / 1e9, 3)


def test_video_runs_layout_and_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(bd, "CLIP_LEN", 4)
    monkeypatch.setattr(bd, "VIDEO_MIN_SIDE", 32)
    b = _builder(tmp_path)
    (b.xroot / "demo" / "usr/share/v").mkdir(parents=True)
    vid = Path(make_video(b.xroot / "demo" / "usr/share/v/walk.mp4", frames=10, width=64, height=48))
    info = bd.probe_video(vid)
    assert (info["codec"], info["width"], info["height"], info["total_frames"]) == ("h264", 64, 48, 10)
    assert info["chroma"] > bd.VIDEO_MIN_CHROMA and info["bpp"] > 0
    b.add_video("demo", "usr/share/v/walk.mp4", False, tmp_path)
    clips = b.manifest["clips"]
    assert [c["path"] for c in clips] == ["clips/walk-0000", "clips/walk-0004"]  # 10 frames: 2 runs of 4
    assert all(c["frames"] == 4 and c["license"] == "GPL-2+" for c in clips)
    first = b.out / "clips/walk-0004/000.png"
    assert bd.up_to_date(first, f"{clips[1]['src_sha256']}:frame4")
    mtime = first.stat().st_mtime_ns
    b.manifest["clips"] = []
    b.add_video("demo", "usr/share/v/walk.mp4", False, tmp_path)  # same source: files kept
    assert first.stat().st_mtime_ns == mtime
    (b.out / "clips/old-00").mkdir()
    b.finish(0.0)
    assert not (b.out / "clips/old-00").exists()
    assert bd.is_complete(b.out)
    # low resolution: rejected with the measured numbers
    monkeypatch.setattr(bd, "VIDEO_MIN_SIDE", 480)
    b.add_video("demo", "usr/share/v/walk.mp4", False, tmp_path)
    assert b.manifest["rejected"][-1]["reason"].startswith("video: low resolution 64x48")


def test_store_loads_the_layout(tmp_path, monkeypatch):
    """The trainer's ClipStore reads what the builder writes."""
    from videosr.training.data import ClipStore

    monkeypatch.setattr(bd, "CLIP_LEN", 4)
    monkeypatch.setattr(bd, "VIDEO_MIN_SIDE", 32)
    b = _builder(tmp_path)
    b.add_still(bd.Candidate("demo", "usr/share/x/a.png", "demo-a", _png_bytes(_photo())))
    (b.xroot / "demo").mkdir(parents=True)
    make_video(b.xroot / "demo" / "v.mp4", frames=5, width=64, height=48)
    b.add_video("demo", "v.mp4", False, tmp_path)
    b.finish(0.0)
    store = ClipStore.load(b.out)
    assert [s.shape for s in store.stills] == [(480, 640, 3)]
    assert [c.shape for c in store.clips] == [(4, 48, 64, 3)]
