"""One upscale job's options as one value (videosr.job.JobOptions), and the output-size check that reads the
output plan's codec instead of guessing one."""

from __future__ import annotations

import dataclasses
import inspect

import av
import clips
import pytest

from videosr import distributed, pipeline
from videosr.cli import main
from videosr.job import JobOptions


def test_job_options_are_upscales_keywords_with_its_defaults() -> None:
    params = inspect.signature(pipeline.upscale).parameters
    keywords = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"on_frame"}
    fields = {f.name: f.default for f in dataclasses.fields(JobOptions)}
    assert set(fields) == keywords
    assert all(params[n].default == d for n, d in fields.items())


@pytest.mark.parametrize("bad", ["untrained", "bogus", "on_frame"])
def test_distributed_upscale_refuses_what_it_does_not_take(bad) -> None:
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{bad}'"):
        distributed.upscale("a.mp4", "b.mkv", **{bad: True})


def test_frame_size_check_uses_the_planned_codec(tmp_path, capsys) -> None:
    """16800 pixels wide: over libx264's limit, within VP9's, which a .webm output is written with."""
    src = clips.make_video(tmp_path / "wide.mkv", frames=2, width=4200, height=16)
    mkv, webm = tmp_path / "o.mkv", tmp_path / "o.webm"
    assert main(["upscale", src, str(mkv), "--model", "bicubic", "--scale", "4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "16800" in err[0] and "libx264" in err[0]
    assert not mkv.exists()
    assert main(["upscale", src, str(webm), "--model", "bicubic", "--scale", "4", "--quiet"]) == 0
    with av.open(str(webm)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_context.width) == ("vp9", 16800)
