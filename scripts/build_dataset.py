#!/usr/bin/env python3
"""Build videosr's training set from registry packages: ``python scripts/build_dataset.py OUT_DIR``.

Everything comes from Debian packages (``apt-get download`` + ``dpkg -x``, no root needed once the apt lists
exist) and from one PyPI wheel (``pip download scikit-image``, read as a zip, never installed). The output is

    OUT_DIR/stills/<source>-<name>.png          photographs, RGB, long side <= 2560
    OUT_DIR/clips/<video>-<start>/<frame>.png   runs of 30 consecutive real video frames (start: first frame)
    OUT_DIR/licenses/<package>.copyright        the upstream copyright / licence text of every package used
    OUT_DIR/manifest.json                       per file: source package, version, path inside the package,
                                                licence and copyright holder, size, texture statistics;
                                                every rejected candidate with the reason

Licences are per file: the path of each file is looked up in its package's machine-readable copyright file
(the last matching ``Files:`` paragraph wins, as in Debian's copyright format); packages whose copyright file
is free text get the licence this script states for them (``TEXT_LICENSES``), the wheel's images the status
scikit-image documents for each.

Idempotent: a complete build with the same BUILD_VERSION exits at once; otherwise files already there are
kept when they were made from the same source bytes (each PNG carries the sha256 of its source in a text
chunk), so an interrupted build resumes and a changed package version rewrites only what changed.
Non-photographic images (vector art, flat gradients) are rejected by two texture statistics (mean gradient
energy and the fraction of flat 8x8 blocks); real video is kept only above a quality threshold (colour,
shorter side >= 480, a codec of the MPEG-4 generation or later at >= 0.08 bit per pixel). Everything left
out is listed under "rejected" in the manifest with the reason.
Vid4, Set5, Set14, CBSD68 and REDS are test sets and are never used here; OpenCV's copies of Set14 images
(baboon) and Lena are excluded by name.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

BUILD_VERSION = 3
MAX_SIDE = 2560  # long side of stored stills (larger wallpapers are downscaled with Lanczos)
MIN_SIDE = 256  # shorter side of a still, after the downscale
MIN_GRAD = 2.4  # mean |dx|+|dy| (0..255 scale) of the grey image at long side 640
MAX_FLAT = 0.40  # fraction of 8x8 blocks (grey, long side 1600) with std < 0.75
CLIP_LEN = 30  # frames per stored video run
# Real video is good ground truth only when it is colour camera footage of enough resolution and bitrate:
VIDEO_MIN_SIDE = 480  # shorter side
VIDEO_MIN_BPP = 0.08  # compressed bits per pixel per frame (box.mp4, H.264 640x480: 0.094)
VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "msmpeg4", "msmpeg4v2", "ffv1", "rawvideo", "png"}
VIDEO_MIN_CHROMA = 1.0  # mean |RGB - grey| below this: greyscale footage
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
SRC_KEY = "videosr-source"  # PNG text chunk: sha256 of the source bytes (+ what was taken from it)
ART = "illustration / digital art (curated list)"

OPENCV_DOC = "usr/share/doc/opencv-doc"
# OpenCV sample photographs. Left out on purpose: baboon (a Set14 test image), lena (licence), butterfly
# (name clash with Set5), messi5 (press photo), Middlebury and Oxford benchmark images (aloe, rubberwhale,
# basketball, graf, leuven: their own terms), calibration chessboards (left01..14, grey), right.jpg (the
# stereo twin of left.jpg), logos, renders and synthetic images.
OPENCV_STILLS = (
    "aero1.jpg",
    "aero3.jpg",
    "building.jpg",
    "fruits.jpg",
    "home.jpg",
    "orange.jpg",
    "apple.jpg",
    "stuff.jpg",
    "board.jpg",
    "ela_original.jpg",
    "squirrel_cls.jpg",
    "chicky_512.png",
    "left.jpg",
)
# Photographs in plain files: (package, folder, globs, name prefix, {stem: reason to leave it out}).
DIR_STILLS = (
    ("opencv-doc", f"{OPENCV_DOC}/examples/data", OPENCV_STILLS, "opencv", {}),
    # MATE's abstract/ and desktop/ folders are artwork by their own description; nature/ holds photographs.
    ("mate-backgrounds", "usr/share/backgrounds/mate/nature", ("*.jpg", "*.png"), "mate", {}),
    (
        "lomiri-wallpapers-16.04",
        "usr/share/backgrounds",
        ("*.jpg",),
        "lomiri",
        {"analogpattern_by_Peter_Nerlich": ART},
    ),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds", ("*.jpg",), "lomiri", {"Infinite-Sea_by_Aury88": ART}),
    ("lxqt-themes", "usr/share/lxqt/wallpapers", ("*.jpg", "*.png"), "lxqt", {"plasma_arch": ART}),
    # maldives.jpg next to it is a screenshot of the login screen
    ("sddm-theme-maldives", "usr/share/sddm/themes/maldives", ("background.jpg",), "maldives", {}),
    ("palapeli-data", "usr/share/palapeli/collection", ("*.jpg",), "palapeli", {}),
    ("tuxpaint-data", "usr/share/tuxpaint/templates", ("*.jpg",), "tuxpaint", {}),
    # kcas*: Wikimedia Commons photographs; backgrounds/ and hidden.jpg are space images (mostly black sky)
    ("tuxtype-data", "usr/share/tuxtype/images", ("kcas*.jpg",), "tuxtype", {}),
    (
        "libjxl-testdata",
        "usr/share/libjxl-testdata",
        ("jxl/flower/flower.png", "external/wesaturate/500px/*_srgb8.png"),
        "jxl",
        {},
    ),
    ("python-matplotlib-data", "usr/share/matplotlib/mpl-data/sample_data", ("grace_hopper.jpg",), "mpl", {}),
    ("digikam-data", "usr/share/digikam/about/images", ("body-background.jpg",), "digikam", {}),
)
# KDE wallpapers that are illustrations (vector or painted art) yet textured enough to pass the statistics.
PLASMA_ARTWORK = {"Autumn", "Canopee", "Honeywave", "Patak", "SafeLanding", "Shell"}
# GCompris keeps its images in Qt resource files: rcc file -> members taken (glob on the path inside).
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
GCOMPRIS_STILLS = {
    "erase.rcc": "/gcompris/src/activities/erase/resource/*",
    "explore_monuments.rcc": "/gcompris/src/activities/explore_monuments/resource/*/*",
    "explore_world_animals.rcc": "/gcompris/src/activities/explore_world_animals/resource/animals/*",
    "explore_farm_animals.rcc": "/gcompris/src/activities/explore_farm_animals/resource/animals/*",
    "explore_world_music.rcc": "/gcompris/src/activities/explore_world_music/resource/music/*",
    "clickgame.rcc": "/gcompris/src/activities/clickgame/resource/sea*",
    "details.rcc": "/gcompris/src/activities/details/resource/image/*_background.*",
}
GCOMPRIS_PAINTINGS = ("Gogh", "PereTanguy", "Eglise_dAuvers")  # details/: photographs of paintings
# Enlightenment's backgrounds are Edje (Eet) files holding the photograph as JPEG at several sizes.
E_BACKGROUNDS = "usr/share/enlightenment/data/backgrounds"
# scikit-image's bundled colour photographs with a public-domain / CC0 status stated in skimage.data.
SKIMAGE_STILLS = {
    "astronaut.png": "public domain (NASA)",
    "chelsea.png": "CC0-1.0 (photographer Stefan van der Walt)",
    "coffee.png": "CC0-1.0 (photographer Rachel Michetti)",
    "rocket.jpg": "public domain (SpaceX)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "ihc.png": "no known copyright restrictions (skimage.data.immunohistochemistry)",
    "retina.jpg": "CC0-1.0 (Mikael Haggstrom)",
}
SKIMAGE_VERSION = "0.26.0"
# Real videos: (package, file, gzipped?). Every listed video is measured against the quality threshold.
VIDEOS = (
    ("opencv-doc", f"{OPENCV_DOC}/opencv4/html/box.mp4.gz", True),  # hand-held camera over objects
    ("opencv-doc", f"{OPENCV_DOC}/opencv4/html/cup.mp4.gz", True),
    ("opencv-doc", f"{OPENCV_DOC}/examples/data/vtest.avi", False),  # pedestrians, static camera
    ("opencv-doc", f"{OPENCV_DOC}/examples/data/tree.avi", False),  # Cinepak 320x240: below the threshold
)
VIDEO_EXCLUDED = {  # examined and left out without decoding
    ("opencv-doc", f"{OPENCV_DOC}/examples/data/Megamind.avi"): "animated film trailer, not camera footage",
    ("opencv-doc", f"{OPENCV_DOC}/examples/data/Megamind_bugy.avi"): "animated film trailer with inserted errors",
}

PACKAGES = {  # Debian package -> what is taken from it
    "opencv-doc": "sample photographs and videos",
    "plasma-workspace-wallpapers": "KDE wallpapers (photographs only)",
    "mate-backgrounds": "MATE backgrounds, nature/",
    "lomiri-wallpapers-16.04": "Ubuntu Touch 16.04 wallpapers (community photographs)",
    "lomiri-wallpapers-20.04": "Ubuntu Touch 20.04 wallpapers",
    "lxqt-themes": "LXQt wallpapers (photographs only)",
    "sddm-theme-maldives": "the Maldives login-screen photograph",
    "palapeli-data": "jigsaw puzzle photographs",
    "tuxpaint-data": "Tux Paint template photographs",
    "tuxtype-data": "Tux Typing background photographs",
    "gcompris-qt-data": "GCompris activity photographs (animals, monuments, music, sea)",
    "enlightenment-data": "Enlightenment desktop backgrounds (photographs only)",
    "libjxl-testdata": "JPEG XL test photographs",
    "python-matplotlib-data": "Matplotlib sample photograph",
    "digikam-data": "digiKam about-page photograph",
}
TEXT_LICENSES = {  # packages whose copyright file is free text (no Files: paragraphs): what it says
    "tuxtype-data": "GPL-2 (package); README_IMAGES.TXT: featured pictures from Wikimedia Commons",
    "digikam-data": "GPL-2+ (package copyright: 'almost all software is GPL', no exception for images)",
}


def log(msg: str) -> None:
    print(f"[build_dataset] {msg}", flush=True)


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)


# --------------------------------------------------------------------------------------------------
# Registry access
# --------------------------------------------------------------------------------------------------


def fetch_deb(pkg: str, cache: Path) -> Path:
    """apt-get download PKG into cache (once); runs apt-get update first when the lists are missing."""
    found = sorted(cache.glob(f"{pkg}_*.deb"))
    if found:
        return found[-1]
    r = run(["apt-get", "download", pkg], cwd=cache)
    if r.returncode != 0:
        log(f"apt-get download {pkg} failed ({r.stderr.strip().splitlines()[-1:]}); trying apt-get update")
        u = run(["apt-get", "update"])
        if u.returncode != 0:
            sys.exit(f"apt-get update failed (needs root once, or run it yourself): {u.stderr.strip()[-300:]}")
        r = run(["apt-get", "download", pkg], cwd=cache)
        if r.returncode != 0:
            sys.exit(f"apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
    found = sorted(cache.glob(f"{pkg}_*.deb"))
    if not found:
        sys.exit(f"apt-get download {pkg} produced no .deb")
    return found[-1]


def extract_deb(deb: Path, dest: Path) -> str:
    """dpkg -x into dest (once per .deb); returns the package version."""
    version = run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    done = dest / ".done"
    if not done.exists() or done.read_text() != deb.name:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        r = run(["dpkg", "-x", str(deb), str(dest)])
        if r.returncode != 0:
            sys.exit(f"dpkg -x {deb.name} failed: {r.stderr.strip()[-300:]}")
        done.write_text(deb.name)
    return version


def fetch_skimage_wheel(cache: Path) -> Path:
    found = sorted(cache.glob(f"scikit_image-{SKIMAGE_VERSION}-*.whl"))
    if not found:
        r = run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"scikit-image=={SKIMAGE_VERSION}",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                str(cache),
            ]
        )
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip()[-300:])
        found = sorted(cache.glob(f"scikit_image-{SKIMAGE_VERSION}-*.whl"))
    return found[-1]


# --------------------------------------------------------------------------------------------------
# Licences: Debian's machine-readable copyright format
# --------------------------------------------------------------------------------------------------


def parse_copyright(text: str) -> list[dict]:
    """The ``Files:`` paragraphs of a machine-readable debian/copyright, in file order:
    [{"files": [patterns], "license": first line of License, "copyright": Copyright text}]; [] for free text."""
    out = []
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields:
            text = fields.get("license", "")
            lic = text.split("\n")[0].strip() or " ".join(text.split())[:80]  # a name, else the text's start
            out.append(
                {
                    "files": fields["files"].split(),
                    "license": lic,
                    "copyright": " ".join(fields.get("copyright", "").split()),
                }
            )
    return out


def _pattern_matches(pattern: str, path: str) -> bool:
    """Does a Files: pattern (relative to the upstream source tree) name this installed file? The source
    path is unknown, so any tail of the installed path may be it; a pattern without wildcards in its last
    part also matches by file name alone (Lomiri's '16.04/x.jpg' is installed as 'usr/share/backgrounds/x.jpg').
    Image extensions are interchangeable: GCompris ships 'x.jpg' of its source re-encoded as 'x.webp'."""
    parts = path.strip("/").split("/")
    tails = ["/".join(parts[i:]) for i in range(len(parts))]

    def same(p: str, f: str) -> bool:
        if fnmatch.fnmatchcase(f, p):
            return True
        (pb, pe), (fb, fe) = os.path.splitext(p), os.path.splitext(f)
        return pe.lower() in IMAGE_EXTS and fe.lower() in IMAGE_EXTS and fnmatch.fnmatchcase(fb, pb)

    if any(same(pattern, t) for t in tails):
        return True
    last = pattern.rsplit("/", 1)[-1]
    return "/" in pattern and not any(c in last for c in "*?[") and same(last, parts[-1])


def license_for(paragraphs: list[dict], path: str) -> dict | None:
    """The licence of an installed file: the last Files: paragraph that matches it (None: none matches)."""
    hit = None
    for para in paragraphs:
        for pat in para["files"]:
            if _pattern_matches(pat, path):
                hit = {"license": para["license"], "license_files": pat, "copyright": para["copyright"][:300]}
                break
    return hit


# --------------------------------------------------------------------------------------------------
# Containers: Qt resource files (GCompris), Eet/Edje files (Enlightenment)
# --------------------------------------------------------------------------------------------------


def read_rcc(buf: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, data) of every file in a Qt .rcc resource (format versions 1-3; zlib or uncompressed)."""
    if buf[:4] != b"qres":
        raise ValueError("not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", buf[4:20])
    esz = 14 if version == 1 else 22

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", buf[names + off : names + off + 2])
        return buf[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        idx, prefix = stack.pop()
        o = tree + idx * esz
        noff, flags = struct.unpack(">IH", buf[o : o + 6])
        path = f"{prefix}/{name(noff)}" if idx else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">II", buf[o + 6 : o + 14])
            stack.extend((first + i, path) for i in reversed(range(count)))
            continue
        (doff,) = struct.unpack(">I", buf[o + 10 : o + 14])
        (size,) = struct.unpack(">I", buf[data + doff : data + doff + 4])
        blob = buf[data + doff + 4 : data + doff + 4 + size]
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            continue  # zstd: not used by the packages read here
        yield path, blob


def eet_largest_jpeg(buf: bytes) -> tuple[str, bytes] | None:
    """The largest uncompressed JPEG entry of an Eet file (Edje backgrounds keep the photograph at several
    sizes as ``edje/images/N``); None when it holds no JPEG (vector or lossless art)."""
    magic, count, _ = struct.unpack(">III", buf[:12])
    if magic != 0x1EE70F42:
        raise ValueError("not an Eet file")
    best = None
    for i in range(count):
        off, size, _, noff, nsize, flags = struct.unpack(">6I", buf[12 + 24 * i : 36 + 24 * i])
        name = buf[noff : noff + nsize].rstrip(b"\0").decode()
        if name.startswith("edje/images/") and flags == 0 and buf[off : off + 2] == b"\xff\xd8":
            if best is None or size > best[2]:
                best = (name, off, size)
    return None if best is None else (best[0], buf[best[1] : best[1] + best[2]])


# --------------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------------


def texture_stats(im: Image.Image) -> tuple[float, float]:
    """(mean gradient energy at long side 640, flat-block fraction at long side 1600) of the grey image."""
    g = im.convert("L")
    s = g.copy()
    s.thumbnail((640, 640), Image.BILINEAR)
    a = np.asarray(s, dtype=np.float32)
    grad = float(np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean())
    f = g.copy()
    f.thumbnail((1600, 1600), Image.LANCZOS)
    b = np.asarray(f, dtype=np.float32)
    h, w = b.shape[0] // 8 * 8, b.shape[1] // 8 * 8
    std = b[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
    return grad, float((std < 0.75).mean())


def still_verdict(grad: float, flat: float, size: tuple[int, int], check: bool = True) -> str | None:
    """Why a still is rejected (None: kept); size is the stored (downscaled) size."""
    if check and grad < MIN_GRAD:
        return f"non-photographic: grad {grad:.2f} < {MIN_GRAD}"
    if check and flat > MAX_FLAT:
        return f"non-photographic: flat {flat:.2f} > {MAX_FLAT}"
    if min(size) < MIN_SIDE:
        return f"too small: {size[0]}x{size[1]}"
    return None


def video_verdict(info: dict) -> str | None:
    """Why a video is not good ground truth (None: kept); info from probe_video."""
    if info["codec"] not in VIDEO_CODECS:
        return f"codec {info['codec']} (legacy / low quality)"
    if min(info["width"], info["height"]) < VIDEO_MIN_SIDE:
        return f"low resolution {info['width']}x{info['height']} (shorter side < {VIDEO_MIN_SIDE})"
    if info["bpp"] < VIDEO_MIN_BPP:
        return f"bitrate {info['bpp']:.3f} bit/pixel < {VIDEO_MIN_BPP}"
    if info["chroma"] < VIDEO_MIN_CHROMA:
        return "greyscale"
    if info["total_frames"] < CLIP_LEN:
        return f"{info['total_frames']} frames < {CLIP_LEN}"
    return None


def probe_video(path: Path) -> dict:
    """codec, size, fps, frame count, compressed bits per pixel per frame, colourfulness (mean |RGB - grey|
    over every 25th frame)."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        nbytes, n, chroma = 0, 0, []
        for pkt in c.demux(s):
            nbytes += pkt.size
            for fr in pkt.decode():
                if n % 25 == 0:
                    a = fr.to_ndarray(format="rgb24").astype(np.float32)
                    chroma.append(float(np.abs(a - a.mean(axis=-1, keepdims=True)).mean()))
                n += 1
        w, h = s.codec_context.width, s.codec_context.height
        return {
            "codec": s.codec_context.name,
            "width": w,
            "height": h,
            "fps": round(float(s.average_rate or 0), 3),
            "total_frames": n,
            "bpp": round(8 * nbytes / max(n * w * h, 1), 4),
            "chroma": round(float(np.mean(chroma)) if chroma else 0.0, 2),
        }


def video_frames(path: Path) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        for fr in c.decode(video=0):
            yield fr.to_ndarray(format="rgb24")


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def save_png(im: Image.Image, path: Path, key: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(SRC_KEY, key)
    tmp = path.with_suffix(".tmp.png")
    im.save(tmp, compress_level=6, pnginfo=info)
    os.replace(tmp, path)


def up_to_date(path: Path, key: str) -> bool:
    """Is path a PNG written from the same source (same key in its text chunk)?"""
    try:
        with Image.open(path) as im:
            return im.text.get(SRC_KEY) == key
    except (OSError, ValueError):
        return False


def safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


@dataclass
class Candidate:
    """One image offered to the set."""

    pkg: str
    file: str  # where it is inside the package; a container member as 'container:member'
    name: str  # stored as stills/<name>.png
    data: bytes
    license_path: str = ""  # the path looked up in the package's copyright file (default: file)
    license: str | None = None  # a stated licence instead of the copyright file's (wheel images)
    exclude: str | None = None  # curated reason to leave it out
    check: bool = True  # apply the texture statistics


def dir_candidates(xroot: Path) -> Iterator[Candidate]:
    for pkg, folder, globs, prefix, excluded in DIR_STILLS:
        base = xroot / pkg / folder
        files = sorted({p for g in globs for p in base.glob(g) if p.is_file() and not p.is_symlink()})
        for p in files:
            if p.suffix.lower() not in IMAGE_EXTS:
                continue
            rel = str(p.relative_to(xroot / pkg))
            yield Candidate(pkg, rel, f"{prefix}-{p.stem}", p.read_bytes(), exclude=excluded.get(p.stem))


def plasma_candidates(xroot: Path) -> Iterator[Candidate]:
    """The largest image of each wallpaper's contents/images (the light variant)."""
    pkg = "plasma-workspace-wallpapers"
    root = xroot / pkg / "usr/share/wallpapers"
    for wp in sorted(p for p in root.iterdir() if (p / "contents/images").is_dir()):
        imgs = [p for p in (wp / "contents/images").iterdir() if p.suffix.lower() in IMAGE_EXTS]
        if not imgs:
            continue
        best = max(imgs, key=lambda p: np.prod([int(v) for v in p.stem.split("x")]) if "x" in p.stem else 0)
        excl = "illustration (curated list)" if wp.name in PLASMA_ARTWORK else None
        yield Candidate(pkg, str(best.relative_to(xroot / pkg)), f"plasma-{wp.name}", best.read_bytes(), exclude=excl)


def gcompris_candidates(xroot: Path) -> Iterator[Candidate]:
    pkg = "gcompris-qt-data"
    for rcc, pattern in GCOMPRIS_STILLS.items():
        rel = f"{GCOMPRIS_RCC}/{rcc}"
        for member, data in sorted(read_rcc((xroot / pkg / rel).read_bytes())):
            if not fnmatch.fnmatchcase(member, pattern) or not member.lower().endswith(IMAGE_EXTS):
                continue
            parts = [p for p in member.split("/activities/", 1)[1].split("/") if p != "resource"]
            name = "gcompris-" + "-".join(parts[:-1] + [os.path.splitext(parts[-1])[0]])
            excl = "painting (curated list)" if any(k in member for k in GCOMPRIS_PAINTINGS) else None
            yield Candidate(pkg, f"{rel}:{member}", name, data, license_path=member, exclude=excl)


def enlightenment_candidates(xroot: Path) -> Iterator[Candidate]:
    pkg = "enlightenment-data"
    for p in sorted((xroot / pkg / E_BACKGROUNDS).glob("*.edj")):
        rel = str(p.relative_to(xroot / pkg))
        found = eet_largest_jpeg(p.read_bytes())
        if found is None:
            yield Candidate(pkg, rel, f"e-{p.stem}", b"", exclude="no JPEG inside (vector / lossless art)")
            continue
        member, data = found
        yield Candidate(pkg, f"{rel}:{member}", f"e-{p.stem}", data, license_path=rel)


def skimage_candidates(cache: Path, manifest: dict) -> Iterator[Candidate]:
    try:
        whl = fetch_skimage_wheel(cache)
    except Exception as e:  # noqa: BLE001 - the wheel is optional; the rest of the set still builds
        log(f"skipping scikit-image photos: {type(e).__name__}: {e}")
        return
    manifest["packages"]["scikit-image"] = {
        "version": SKIMAGE_VERSION,
        "wheel": whl.name,
        "registry": "PyPI",
        "license": "BSD-3-Clause (code); images: per file",
    }
    with zipfile.ZipFile(whl) as z:
        for f, lic in SKIMAGE_STILLS.items():
            member = f"skimage/data/{f}"
            yield Candidate("scikit-image", member, f"skimage-{Path(f).stem}", z.read(member), license=lic, check=False)


# --------------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------------


class Builder:
    def __init__(self, out: Path, xroot: Path) -> None:
        self.out, self.xroot = out, xroot
        self.manifest: dict = {
            "build_version": BUILD_VERSION,
            "thresholds": {
                "still_min_grad": MIN_GRAD,
                "still_max_flat": MAX_FLAT,
                "still_max_side": MAX_SIDE,
                "still_min_side": MIN_SIDE,
                "video_min_side": VIDEO_MIN_SIDE,
                "video_min_bpp": VIDEO_MIN_BPP,
                "video_codecs": sorted(VIDEO_CODECS),
                "video_min_chroma": VIDEO_MIN_CHROMA,
                "clip_len": CLIP_LEN,
            },
            "stills": [],
            "clips": [],
            "rejected": [],
            "packages": {},
        }
        self.copyrights: dict[str, list[dict]] = {}
        self.names: set[str] = set()

    def add_package(self, pkg: str, cache: Path) -> None:
        deb = fetch_deb(pkg, cache)
        ver = extract_deb(deb, self.xroot / pkg)
        cp = self.xroot / pkg / "usr/share/doc" / pkg / "copyright"
        text = cp.read_text(errors="replace") if cp.exists() else ""
        if cp.exists():
            shutil.copyfile(cp, self.out / "licenses" / f"{pkg}.copyright")
        self.copyrights[pkg] = parse_copyright(text)
        rec = {"version": ver, "deb": deb.name, "registry": "Debian", "taken": PACKAGES.get(pkg, "")}
        rec["license"] = TEXT_LICENSES.get(pkg, "per file, from its copyright file")
        self.manifest["packages"][pkg] = rec
        log(f"{pkg} {ver} extracted")

    def meta(self, pkg: str, file: str, license_path: str = "", license: str | None = None) -> dict:
        m = self.manifest["packages"][pkg]
        rec = {"source": pkg, "version": m["version"], "file": file}
        if license is not None:
            rec["license"] = license
        else:
            hit = license_for(self.copyrights.get(pkg, []), license_path or file)
            rec.update(hit or {"license": TEXT_LICENSES.get(pkg, "")})
        return rec

    def add_still(self, c: Candidate) -> None:
        meta = self.meta(c.pkg, c.file, c.license_path, c.license)
        reason = c.exclude or (None if meta["license"] else "no licence stated for this file")
        if reason:
            self.manifest["rejected"].append({**meta, "reason": reason})
            return
        with Image.open(io.BytesIO(c.data)) as src:
            src.load()
            im = src.convert("RGB")
        orig = im.size
        if max(im.size) > MAX_SIDE:
            im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
        grad, flat = texture_stats(im)
        rec = {**meta, "orig_size": list(orig), "grad": round(grad, 3), "flat": round(flat, 3)}
        reason = still_verdict(grad, flat, im.size, c.check)
        if reason:
            self.manifest["rejected"].append({**rec, "reason": reason})
            return
        name, k = safe_name(c.name), 2
        while name in self.names:
            name, k = f"{safe_name(c.name)}-{k}", k + 1
        self.names.add(name)
        sha = hashlib.sha256(c.data).hexdigest()
        rel = f"stills/{name}.png"
        key = f"{sha}:max{MAX_SIDE}"
        if not up_to_date(self.out / rel, key):
            save_png(im, self.out / rel, key)
        self.manifest["stills"].append(
            {"path": rel, "width": im.size[0], "height": im.size[1], **rec, "src_sha256": sha}
        )

    def add_video(self, pkg: str, file: str, gz: bool, tmpdir: Path) -> None:
        meta = self.meta(pkg, file)
        src = self.xroot / pkg / file
        vid = src
        if gz:
            vid = tmpdir / src.name[:-3]
            with gzip.open(src, "rb") as fi, open(vid, "wb") as fo:
                shutil.copyfileobj(fi, fo)
        info = probe_video(vid)
        reason = video_verdict(info)
        if reason:
            self.manifest["rejected"].append({**meta, **info, "reason": f"video: {reason}"})
            return
        sha = hashlib.sha256(vid.read_bytes()).hexdigest()
        stem = src.name.split(".")[0]
        runs = info["total_frames"] // CLIP_LEN  # consecutive, non-overlapping runs from the first frame
        for i, fr in enumerate(video_frames(vid)):
            k, j = divmod(i, CLIP_LEN)
            if k >= runs:
                break
            rel = f"clips/{stem}-{k * CLIP_LEN:04d}"
            (self.out / rel).mkdir(exist_ok=True)
            fp = self.out / rel / f"{j:03d}.png"
            key = f"{sha}:frame{i}"
            if not up_to_date(fp, key):
                save_png(Image.fromarray(fr), fp, key)
            if j == CLIP_LEN - 1:
                self.manifest["clips"].append(
                    {
                        "path": rel,
                        "frames": CLIP_LEN,
                        "width": fr.shape[1],
                        "height": fr.shape[0],
                        "start_frame": k * CLIP_LEN,
                        **info,
                        **meta,
                        "src_sha256": sha,
                    }
                )
        log(f"{stem}: {runs} runs of {CLIP_LEN} frames ({info['codec']} {info['width']}x{info['height']})")

    def finish(self, t0: float) -> None:
        out, m = self.out, self.manifest
        keep = {out / s["path"] for s in m["stills"]}
        for p in (out / "stills").glob("*.png"):
            if p not in keep:  # left over from an older build version
                p.unlink()
        keep = {out / c["path"] for c in m["clips"]}
        for d in (out / "clips").iterdir():
            if d.is_dir() and d not in keep:
                shutil.rmtree(d)
        size = sum(
            p.stat().st_size for d in ("stills", "clips", "licenses") for p in (out / d).rglob("*") if p.is_file()
        )
        px = sum(s["width"] * s["height"] for s in m["stills"])
        per_video: Counter = Counter()
        for c in m["clips"]:
            per_video[Path(c["file"]).name] += c["frames"]
        m["summary"] = {
            "stills": len(m["stills"]),
            "still_gpixels": round(px / 1e9, 3),
            "stills_per_source": dict(Counter(s["source"] for s in m["stills"])),
            "clips": len(m["clips"]),
            "clip_frames": sum(c["frames"] for c in m["clips"]),
            "clip_frames_per_video": dict(per_video),
            "rejected": len(m["rejected"]),
            "bytes": size,
            "ram_bytes": 3 * (px + sum(c["frames"] * c["width"] * c["height"] for c in m["clips"])),
            "build_seconds": round(time.time() - t0, 1),
        }
        mpath = out / "manifest.json"
        tmp = mpath.with_suffix(".tmp")
        tmp.write_text(json.dumps(m, indent=1))
        os.replace(tmp, mpath)
        log(f"done: {json.dumps(m['summary'])}")


def is_complete(out: Path) -> bool:
    """A manifest of this BUILD_VERSION whose files all exist."""
    try:
        m = json.loads((out / "manifest.json").read_text())
        files = [s["path"] for s in m["stills"]] + [
            f"{c['path']}/{i:03d}.png" for c in m["clips"] for i in range(c["frames"])
        ]
        return m.get("build_version") == BUILD_VERSION and all((out / f).exists() for f in files)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build(out: Path, cache: Path) -> None:
    t0 = time.time()
    if is_complete(out):
        log(f"{out} is up to date")
        return
    for sub in ("stills", "clips", "licenses"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    b = Builder(out, cache / "x")
    for pkg in PACKAGES:
        b.add_package(pkg, cache)
    sources: list[tuple[str, Callable[[], Iterator[Candidate]]]] = [
        ("wallpapers", lambda: plasma_candidates(b.xroot)),
        ("photographs in files", lambda: dir_candidates(b.xroot)),
        ("GCompris", lambda: gcompris_candidates(b.xroot)),
        ("Enlightenment", lambda: enlightenment_candidates(b.xroot)),
        ("scikit-image", lambda: skimage_candidates(cache, b.manifest)),
    ]
    for label, candidates in sources:
        n = len(b.manifest["stills"])
        for c in candidates():
            b.add_still(c)
        log(f"{label}: {len(b.manifest['stills']) - n} stills")
    work = cache / "video"
    work.mkdir(exist_ok=True)
    for (pkg, file), reason in VIDEO_EXCLUDED.items():
        b.manifest["rejected"].append({**b.meta(pkg, file), "reason": f"video: {reason}"})
    for pkg, file, gz in VIDEOS:
        b.add_video(pkg, file, gz, work)
    shutil.rmtree(work)
    b.finish(t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where downloaded packages are kept between runs (default: OUT_DIR/.cache)",
    )
    ap.add_argument("--clean-cache", action="store_true", help="delete the package cache after building")
    a = ap.parse_args()
    cache = a.cache or a.out_dir / ".cache"
    build(a.out_dir, cache)
    if a.clean_cache and cache.exists():
        shutil.rmtree(cache)


if __name__ == "__main__":
    main()
