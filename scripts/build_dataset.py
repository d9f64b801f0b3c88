#!/usr/bin/env python3
"""Build videosr's training set from registry packages: ``python scripts/build_dataset.py OUT_DIR``.

Everything comes from Debian packages (``apt-get download`` + ``dpkg -x``, no root needed once the apt lists
exist) and from one PyPI wheel (``pip download scikit-image``, read as a zip, never installed). The output is

    OUT_DIR/stills/<source>-<name>.png          photographs, RGB, long side <= 2560
    OUT_DIR/clips/<video>-<k>/<frame>.png       runs of consecutive real video frames
    OUT_DIR/licenses/<package>.copyright        the upstream copyright / licence text of every package used
    OUT_DIR/manifest.json                       source package, version, file, licence, size, texture stats

Idempotent: files already there are kept; a complete build with the same BUILD_VERSION exits at once.
Non-photographic images (vector art, flat gradients) are rejected by two texture statistics (mean gradient
energy and the fraction of flat 8x8 blocks) and listed under "rejected" in the manifest with the reason.
Vid4, Set5, Set14, CBSD68 and REDS are test sets and are never used here; OpenCV's copies of Set14 images
(baboon) and Lena are excluded by name.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

BUILD_VERSION = 2
MAX_SIDE = 2560  # long side of stored stills (larger wallpapers are downscaled with Lanczos)
MIN_GRAD = 2.4  # mean |dx|+|dy| (0..255 scale) of the grey image at long side 640
MAX_FLAT = 0.40  # fraction of 8x8 blocks (grey, long side 1600) with std < 0.75
CLIP_LEN = 30  # frames per stored video run

OPENCV_DOC = "usr/share/doc/opencv-doc"
# OpenCV sample photographs (Apache-2.0 / BSD-3-Clause, see licenses/opencv-doc.copyright). Left out on
# purpose: baboon (a Set14 test image), lena (licence), butterfly (name clash with Set5), Middlebury and Oxford
# benchmark images (aloe, rubberwhale, basketball, graf, leuven: their own terms), logos, synthetic images.
OPENCV_STILLS = [
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
]
# Real videos: (file inside the package, gzipped?, number of runs). Megamind (a film trailer) is left out;
# tree.avi is Cinepak at 320x240 (too blocky for ground truth).
OPENCV_VIDEOS = [
    ("opencv4/html/box.mp4.gz", True, 6),
    ("opencv4/html/cup.mp4.gz", True, 3),
    ("examples/data/vtest.avi", False, 6),
]
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

# KDE wallpapers that are illustrations (vector or painted art) yet textured enough to pass the statistics.
PLASMA_ARTWORK = {"Autumn", "Canopee", "Honeywave", "Patak", "SafeLanding", "Shell"}

PACKAGES = {  # Debian package -> licence of the files we take (checked against its copyright file)
    "opencv-doc": "Apache-2.0 / BSD-3-Clause (OpenCV samples and docs)",
    "plasma-workspace-wallpapers": "GPL-2+ (KDE Visual Design Group)",
    "mate-backgrounds": "GPL-2+ (see copyright for per-image authors)",
}


def log(msg: str) -> None:
    print(f"[build_dataset] {msg}", flush=True)


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)


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
    """dpkg -x into dest (once); returns the package version."""
    version = run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    if not (dest / ".done").exists():
        dest.mkdir(parents=True, exist_ok=True)
        r = run(["dpkg", "-x", str(deb), str(dest)])
        if r.returncode != 0:
            sys.exit(f"dpkg -x {deb.name} failed: {r.stderr.strip()[-300:]}")
        (dest / ".done").touch()
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


def save_png(im: Image.Image, path: Path) -> None:
    tmp = path.with_suffix(".tmp.png")
    im.save(tmp, compress_level=6)
    os.replace(tmp, path)


def add_still(out: Path, manifest: dict, im: Image.Image, name: str, meta: dict, check: bool = True) -> None:
    im = im.convert("RGB")
    orig = im.size
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    grad, flat = texture_stats(im)
    rec = {**meta, "orig_size": list(orig), "grad": round(grad, 3), "flat": round(flat, 3)}
    if check and (grad < MIN_GRAD or flat > MAX_FLAT):
        rec["reason"] = (
            f"non-photographic: grad {grad:.2f} < {MIN_GRAD}"
            if grad < MIN_GRAD
            else f"non-photographic: flat {flat:.2f} > {MAX_FLAT}"
        )
        manifest["rejected"].append(rec)
        return
    if min(im.size) < 256:
        rec["reason"] = "too small"
        manifest["rejected"].append(rec)
        return
    rel = f"stills/{name}.png"
    if not (out / rel).exists():
        save_png(im, out / rel)
    manifest["stills"].append({"path": rel, "width": im.size[0], "height": im.size[1], **rec})


def wallpapers(root: Path) -> list[tuple[str, Path]]:
    """Plasma: the largest image of each wallpaper's contents/images (the light variant); MATE: nature/."""
    items = []
    plasma = root / "plasma-workspace-wallpapers/usr/share/wallpapers"
    for wp in sorted(p for p in plasma.iterdir() if (p / "contents/images").is_dir()):
        imgs = [p for p in (wp / "contents/images").iterdir() if p.suffix.lower() in (".jpg", ".png", ".jpeg")]
        if imgs:
            best = max(imgs, key=lambda p: np.prod([int(v) for v in p.stem.split("x")]) if "x" in p.stem else 0)
            items.append(("plasma-workspace-wallpapers", best))
    mate = root / "mate-backgrounds/usr/share/backgrounds/mate"
    # MATE's abstract/ and desktop/ folders are artwork by their own description; nature/ holds photographs.
    for p in sorted((mate / "nature").iterdir()):
        if p.suffix.lower() in (".jpg", ".png", ".jpeg"):
            items.append(("mate-backgrounds", p))
    return items


def decode_runs(path: Path, runs: int) -> tuple[list[list[np.ndarray]], dict]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = {"codec": s.codec_context.name, "fps": float(s.average_rate or 0)}
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    n = len(frames)
    info["total_frames"] = n
    starts = np.linspace(0, max(n - CLIP_LEN, 0), runs).round().astype(int)
    return [frames[s0 : s0 + CLIP_LEN] for s0 in starts], info


def build(out: Path, cache: Path) -> None:
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("stills", "clips", "licenses"):
        (out / sub).mkdir(exist_ok=True)
    mpath = out / "manifest.json"
    if mpath.exists():
        try:
            m = json.loads(mpath.read_text())
            files = [s["path"] for s in m["stills"]] + [
                f"{c['path']}/{i:03d}.png" for c in m["clips"] for i in range(c["frames"])
            ]
            if m.get("build_version") == BUILD_VERSION and all((out / f).exists() for f in files):
                log(f"{out} is up to date ({len(m['stills'])} stills, {len(m['clips'])} clips)")
                return
        except (ValueError, KeyError):
            pass
    cache.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"build_version": BUILD_VERSION, "stills": [], "clips": [], "rejected": [], "packages": {}}
    xroot = cache / "x"
    for pkg, lic in PACKAGES.items():
        deb = fetch_deb(pkg, cache)
        ver = extract_deb(deb, xroot / pkg)
        manifest["packages"][pkg] = {"version": ver, "deb": deb.name, "license": lic, "registry": "Debian"}
        cp = xroot / pkg / "usr/share/doc" / pkg / "copyright"
        if cp.exists():
            shutil.copyfile(cp, out / "licenses" / f"{pkg}.copyright")
        log(f"{pkg} {ver} extracted")

    def meta(pkg: str, file: str, license: str | None = None) -> dict:
        m = manifest["packages"][pkg]
        return {"source": pkg, "version": m["version"], "file": file, "license": license or m["license"]}

    # 1. wallpapers (photographs only, by texture statistics)
    for pkg, p in wallpapers(xroot):
        rel = str(p.relative_to(xroot / pkg))
        name = p.parent.parent.parent.name if p.parent.name == "images" else p.stem
        if pkg == "plasma-workspace-wallpapers" and name in PLASMA_ARTWORK:
            manifest["rejected"].append({**meta(pkg, rel), "reason": "illustration (curated list)"})
            continue
        with Image.open(p) as im:
            add_still(out, manifest, im, f"{pkg.split('-')[0]}-{name}", meta(pkg, rel))
    # 2. OpenCV sample photographs (small, curated by name; the texture check still applies)
    for f in OPENCV_STILLS:
        p = xroot / "opencv-doc" / OPENCV_DOC / "examples/data" / f
        if p.exists():
            with Image.open(p) as im:
                add_still(
                    out,
                    manifest,
                    im,
                    f"opencv-{Path(f).stem}",
                    meta("opencv-doc", str(p.relative_to(xroot / "opencv-doc"))),
                )
    # 3. scikit-image photographs, read from the wheel
    try:
        whl = fetch_skimage_wheel(cache)
        manifest["packages"]["scikit-image"] = {
            "version": SKIMAGE_VERSION,
            "wheel": whl.name,
            "registry": "PyPI",
            "license": "BSD-3-Clause (code); images: per file",
        }
        with zipfile.ZipFile(whl) as z:
            for f, lic in SKIMAGE_STILLS.items():
                with z.open(f"skimage/data/{f}") as fh:
                    im = Image.open(fh)
                    im.load()
                add_still(
                    out,
                    manifest,
                    im,
                    f"skimage-{Path(f).stem}",
                    {"source": "scikit-image", "version": SKIMAGE_VERSION, "file": f"skimage/data/{f}", "license": lic},
                    check=False,
                )
    except Exception as e:  # noqa: BLE001 - the wheel is optional; the rest of the set still builds
        log(f"skipping scikit-image photos: {type(e).__name__}: {e}")
    # 4. real video: runs of consecutive frames
    for f, gz, runs in OPENCV_VIDEOS:
        src = xroot / "opencv-doc" / OPENCV_DOC / f
        stem = Path(f).name.split(".")[0]
        with tempfile.TemporaryDirectory() as td:
            vid = src
            if gz:
                vid = Path(td) / Path(f).name[:-3]
                with gzip.open(src, "rb") as fi, open(vid, "wb") as fo:
                    shutil.copyfileobj(fi, fo)
            clips, info = decode_runs(vid, runs)
        for k, frames in enumerate(clips):
            rel = f"clips/{stem}-{k:02d}"
            (out / rel).mkdir(exist_ok=True)
            for i, fr in enumerate(frames):
                fp = out / rel / f"{i:03d}.png"
                if not fp.exists():
                    save_png(Image.fromarray(fr), fp)
            manifest["clips"].append(
                {
                    "path": rel,
                    "frames": len(frames),
                    "width": frames[0].shape[1],
                    "height": frames[0].shape[0],
                    **info,
                    **meta("opencv-doc", str(src.relative_to(xroot / "opencv-doc"))),
                }
            )
        log(f"{stem}: {len(clips)} runs of {CLIP_LEN} frames")
    keep = {out / s["path"] for s in manifest["stills"]}
    for p in (out / "stills").glob("*.png"):
        if p not in keep:  # left over from an older build version
            p.unlink()
    size = sum(p.stat().st_size for d in ("stills", "clips", "licenses") for p in (out / d).rglob("*") if p.is_file())
    manifest["summary"] = {
        "stills": len(manifest["stills"]),
        "clips": len(manifest["clips"]),
        "clip_frames": sum(c["frames"] for c in manifest["clips"]),
        "rejected": len(manifest["rejected"]),
        "bytes": size,
        "build_seconds": round(time.time() - t0, 1),
    }
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, mpath)
    log(f"done: {manifest['summary']}")


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
