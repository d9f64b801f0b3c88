"""videosr upscale (bicubic model) vs FFmpeg's own scaler, same clip, same encoder settings, same run.

480x270 -> 1920x1080 (x4), libx264 preset veryfast crf 18, no audio. The FFmpeg side is FFmpeg's
`scale=iw*4:ih*4:flags=bicubic` filter run in-process through PyAV's libavfilter (the same FFmpeg
libraries and libx264 build videosr uses), decode -> filter -> encode; if an `ffmpeg` binary is on PATH
it is timed too. videosr runs twice: as `videosr upscale` does (bicubic scales the YUV planes directly)
and, for comparison, with `planes=False` (every frame through RGB float and back). Each side runs
`--repeat` times alternately; the best run of each is reported.

    .venv/bin/python benchmarks/upscale_vs_ffmpeg.py --json benchmarks/results/upscale_vs_ffmpeg.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from videosr.bench import machine, make_clip, scale_encode


def ffmpeg_inprocess(src: Path, dst: Path, scale: int, crf: int, preset: str) -> int:
    """FFmpeg's own `scale=iw*s:ih*s:flags=bicubic` filter, decode -> filter -> encode, in-process."""
    return scale_encode(str(src), str(dst), scale, crf, preset, flags="bicubic")[1]


def ffmpeg_cli(src: Path, dst: Path, scale: int, crf: int, preset: str) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-vf",
            f"scale=iw*{scale}:ih*{scale}:flags=bicubic",
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-an",
            str(dst),
        ],
        check=True,
    )


def videosr_run(src: Path, dst: Path, scale: int, crf: int, preset: str, model: str, planes: bool = True) -> int:
    from videosr.pipeline import upscale

    r = upscale(
        str(src),
        str(dst),
        scale=scale,
        model=model,
        codec="libx264",
        crf=crf,
        preset=preset,
        overwrite=True,
        progress=False,
        planes=planes,
    )
    return int(r["frames"])


def timed(fn, *a) -> float:
    t0 = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t0


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.demux(video=0) if _.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=144)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the results here")
    a = ap.parse_args()
    from videosr._alloc import keep_freed_memory

    keep_freed_memory()  # as the videosr command line does (FFmpeg's side is not affected: its own buffer pools)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        clip = d / "clip_480x270.mp4"
        make_clip(clip, a.frames, 480, 270)
        runs: dict[str, list[float]] = {"ffmpeg_inprocess": [], "videosr": [], "videosr_rgb_path": []}
        have_cli = shutil.which("ffmpeg") is not None
        if have_cli:
            runs["ffmpeg_cli"] = []
        for _ in range(a.repeat):
            runs["ffmpeg_inprocess"].append(timed(ffmpeg_inprocess, clip, d / "ff.mp4", a.scale, a.crf, a.preset))
            runs["videosr"].append(timed(videosr_run, clip, d / "vs.mp4", a.scale, a.crf, a.preset, a.model))
            runs["videosr_rgb_path"].append(
                timed(videosr_run, clip, d / "rgb.mp4", a.scale, a.crf, a.preset, a.model, False)
            )
            if have_cli:
                runs["ffmpeg_cli"].append(timed(ffmpeg_cli, clip, d / "cli.mp4", a.scale, a.crf, a.preset))
        outs = (("ffmpeg_inprocess", "ff.mp4"), ("videosr", "vs.mp4"), ("videosr_rgb_path", "rgb.mp4"))
        frames = {k: count_frames(d / f) for k, f in outs}
        sizes = {k: (d / f).stat().st_size for k, f in outs}
    fps = {k: a.frames / min(v) for k, v in runs.items()}
    result = {
        "benchmark": "upscale_vs_ffmpeg",
        "input": f"480x270 x {a.frames} frames (sample clip content)",
        "scale": a.scale,
        "encoder": {"codec": "libx264", "preset": a.preset, "crf": a.crf},
        "videosr_model": a.model,
        "seconds": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "fps_best": {k: round(v, 2) for k, v in fps.items()},
        "ratio_videosr_over_ffmpeg": round(fps["videosr"] / fps["ffmpeg_inprocess"], 3),
        "ratio_videosr_rgb_path_over_ffmpeg": round(fps["videosr_rgb_path"] / fps["ffmpeg_inprocess"], 3),
        "frames_out": frames,
        "bytes_out": sizes,
        "machine": {
            **machine(),
            "python": sys.version.split()[0],
            "ffmpeg": ".".join(map(str, av.ffmpeg_version_info))
            if isinstance(av.ffmpeg_version_info, tuple)
            else str(av.ffmpeg_version_info),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
