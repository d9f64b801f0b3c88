"""videosr.eval (protocol, degrade, report) / `videosr eval`: protocol, outputs, errors, and the published bicubic baselines."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from videosr.cli import main
from videosr.errors import InputError, UsageError
from videosr.eval.protocol import evaluate, find_clips, to_json
from videosr.eval.report import format_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _smooth(h, w, seed, shift=(0, 0)):
    rng = np.random.default_rng(seed)
    base = rng.random((h // 8 + 3, w // 8 + 3, 3))
    t = torch.from_numpy(base).permute(2, 0, 1)[None].float()
    big = torch.nn.functional.interpolate(t, size=(h + 16, w + 16), mode="bicubic", align_corners=False)[0]
    dy, dx = shift
    crop = big[:, 8 + dy : 8 + dy + h, 8 + dx : 8 + dx + w]
    return (crop.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture
def video_set(tmp_path):
    """Two clips of 3 frames (50x42, not multiples of 4), frames named to test natural sort."""
    root = tmp_path / "vids"
    for ci, name in enumerate(["clipB", "clipA"]):
        for t in range(3):
            _save(root / name / f"f{t + 9}.png", _smooth(42, 50, ci, shift=(t, 2 * t)))
    return root


@pytest.fixture
def image_set(tmp_path):
    root = tmp_path / "imgs"
    _save(root / "one.png", _smooth(40, 36, 5))
    _save(root / "two.png", _smooth(33, 45, 6))
    return root


def test_find_clips(video_set, image_set):
    clips, is_img = find_clips(video_set)
    assert [c.name for c in clips] == ["clipA", "clipB"] and not is_img
    assert [p.name for p in clips[0].frames] == ["f9.png", "f10.png", "f11.png"]
    clips, is_img = find_clips(image_set)
    assert [c.name for c in clips] == ["one", "two"] and is_img
    with pytest.raises(InputError):
        find_clips(video_set / "nope")


def test_evaluate_video_set(video_set):
    res = evaluate(["bicubic", "lanczos"], str(video_set), scale=2, progress=False)
    assert [r["model"] for r in res] == ["bicubic", "lanczos"]
    r = res[0]
    assert set(r) >= {"model", "scale", "degradation", "clips", "mean", "seconds"}
    assert r["scale"] == 2 and r["degradation"] == "BI"
    assert set(r["clips"]) == {"clipA", "clipB"}
    c = r["clips"]["clipA"]
    assert c["frames"] == 3 and 20 < c["psnr_y"] < 60 and 0 < c["ssim_y"] <= 1 and c["tof"] is not None
    assert r["mean"]["psnr_y"] == pytest.approx(np.mean([v["psnr_y"] for v in r["clips"].values()]))
    table = format_table(res)
    assert "clipA" in table and "PSNR-Y" in table and "lanczos" in table
    doc = to_json(res)
    assert isinstance(doc, list) and "clip_seconds" not in doc[0]
    json.dumps(doc, allow_nan=False)


def test_evaluate_matches_manual_protocol(image_set):
    """Image set: crop = scale by default; LR = MATLAB bicubic rounded to 8 bits; output rounded."""
    from videosr.eval.degrade import bi_degrade, quantize
    from videosr.eval.metrics import psnr, ssim
    from videosr.eval.protocol import _read_image
    from videosr.resample import upsample

    res = evaluate(["bicubic"], str(image_set), scale=3, progress=False)[0]
    gt = _read_image(image_set / "two.png")[:, :33, :45]
    lr = bi_degrade(gt.double(), 3, quantize_lr=True, matlab_uint8=True).float()
    out = quantize(upsample(lr, 3).clamp(0, 1))
    assert res["clips"]["two"]["psnr_y"] == pytest.approx(float(psnr(out, gt, crop_border=3)), abs=1e-6)
    assert res["clips"]["two"]["ssim_y"] == pytest.approx(float(ssim(out, gt, crop_border=3)), abs=1e-6)
    assert res["clips"]["two"]["tof"] is None and res["mean"]["tof"] is None
    res0 = evaluate(["bicubic"], str(image_set), scale=3, crop_border=0, progress=False)[0]
    assert res0["clips"]["two"]["psnr_y"] != res["clips"]["two"]["psnr_y"]


def test_evaluate_lr_folder_and_bd(image_set, tmp_path):
    lr_dir = tmp_path / "lr"
    for name, arr in (("one", _smooth(40, 36, 5)), ("two", _smooth(33, 45, 6))):
        small = np.asarray(Image.fromarray(arr).resize((arr.shape[1] // 4, arr.shape[0] // 4), Image.BICUBIC))
        _save(lr_dir / f"{name}x4.png", small)
    res = evaluate(["bicubic"], str(image_set), lr=str(lr_dir), scale=4, progress=False)[0]
    assert res["degradation"] == "LR files" and set(res["clips"]) == {"one", "two"}
    bd = evaluate(["bicubic"], str(image_set), scale=4, degradation="BD", progress=False)[0]
    assert bd["degradation"] == "BD"
    with pytest.raises(InputError):
        evaluate(["bicubic"], str(image_set), lr=str(tmp_path / "missing"), progress=False)
    (lr_dir / "twox4.png").unlink()
    with pytest.raises(InputError):
        evaluate(["bicubic"], str(image_set), lr=str(lr_dir), progress=False)


def test_evaluate_errors(image_set):
    with pytest.raises(UsageError):
        evaluate(["bicubic"], str(image_set), degradation="XX", progress=False)
    with pytest.raises(UsageError):
        evaluate(["bicubic"], str(image_set), weights=["a", "b"], progress=False)
    with pytest.raises(UsageError):
        evaluate(["bicubic"], str(image_set), clips=["nope"], progress=False)
    from videosr.errors import ModelError

    with pytest.raises(ModelError):
        evaluate(["no-such-model"], str(image_set), progress=False)


def test_cli_json_and_images(video_set, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    pics = tmp_path / "pics"
    rc = main(
        [
            "eval",
            "--model",
            "bicubic",
            "--data",
            str(video_set),
            "--scale",
            "2",
            "--json",
            str(out_json),
            "--save-images",
            str(pics),
            "--clip",
            "clipA",
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "clipA" in out and "clipB" not in out
    doc = json.loads(out_json.read_text())
    assert doc["model"] == "bicubic" and doc["scale"] == 2 and doc["degradation"] == "BI"
    assert set(doc["clips"]["clipA"]) == {"frames", "psnr_y", "ssim_y", "tof"}
    assert set(doc["mean"]) == {"psnr_y", "ssim_y", "tof"} and isinstance(doc["seconds"], float)
    cmp_png = Image.open(pics / "clipA_compare.png")
    plot = Image.open(pics / "clipA_psnr.png")
    assert cmp_png.width > 3 * 40 and plot.size == (760, 420)
    # the plot is not blank: the line colour appears
    assert (np.asarray(plot)[..., 2] > 150).sum() > 50
    # usage errors print one line and exit non-zero
    assert (
        main(
            [
                "eval",
                "--model",
                "bicubic",
                "--data",
                str(video_set),
                "--degradation",
                "BD",
                "--crop-border",
                "-1",
                "--quiet",
            ]
        )
        == UsageError.exit_code
    )


def test_cli_checkpoint_path_gives_model_error(image_set, tmp_path):
    fake = tmp_path / "model.pth"
    fake.write_bytes(b"not a checkpoint")
    rc = main(["eval", "--model", str(fake), "--data", str(image_set), "--quiet"])
    assert rc != 0


# ---- published bicubic baselines (need ../shared/data) --------------------------------------------


@needs_data
@pytest.mark.shared
@pytest.mark.parametrize("name,expected_psnr", [("Set5", 28.42), ("Set14", 26.00)])
def test_image_sets_bicubic_x4_with_shipped_lr(name, expected_psnr):
    r = evaluate(
        ["bicubic"], str(DATA / name / "HR"), lr=str(DATA / name / "LR_bicubic" / "X4"), scale=4, progress=False
    )[0]
    assert abs(r["mean"]["psnr_y"] - expected_psnr) <= 0.10, r["mean"]


@needs_data
@pytest.mark.shared
def test_set5_bicubic_x4_from_hr_equals_shipped_lr():
    made = evaluate(["bicubic"], str(DATA / "Set5" / "HR"), scale=4, progress=False)[0]
    shipped = evaluate(
        ["bicubic"], str(DATA / "Set5" / "HR"), lr=str(DATA / "Set5" / "LR_bicubic" / "X4"), scale=4, progress=False
    )[0]
    assert abs(made["mean"]["psnr_y"] - shipped["mean"]["psnr_y"]) < 0.01


@needs_data
@pytest.mark.shared
@pytest.mark.slow
def test_vid4_bicubic_bi_x4():
    """Vid4 BI x4 bicubic, all 171 frames: PSNR-Y 23.78, SSIM-Y 0.6347 (tOF skipped here for time)."""
    r = evaluate(["bicubic"], str(DATA / "Vid4" / "GT"), scale=4, degradation="BI", temporal=False, progress=False)[0]
    assert abs(r["mean"]["psnr_y"] - 23.78) <= 0.10 and abs(r["mean"]["ssim_y"] - 0.6347) <= 0.005, r["mean"]


@needs_data
@pytest.mark.shared
def test_vid4_bicubic_bi_x4_few_frames():
    """Fast stand-in for the Vid4 test: first 3 frames of each clip, with tOF."""
    r = evaluate(["bicubic"], str(DATA / "Vid4" / "GT"), scale=4, max_frames=3, progress=False)[0]
    assert set(r["clips"]) == {"calendar", "city", "foliage", "walk"}
    assert abs(r["mean"]["psnr_y"] - 23.8) < 0.3 and all(c["tof"] is not None for c in r["clips"].values())


@needs_data
@pytest.mark.shared
def test_vid4_calendar_bd_made_equals_shipped():
    kw = dict(scale=4, clips=["calendar"], max_frames=4, temporal=False, progress=False)
    made = evaluate(["bicubic"], str(DATA / "Vid4" / "GT"), degradation="BD", **kw)[0]
    shipped = evaluate(["bicubic"], str(DATA / "Vid4" / "GT"), lr=str(DATA / "Vid4" / "LR_BDx4"), **kw)[0]
    assert abs(made["mean"]["psnr_y"] - shipped["mean"]["psnr_y"]) < 0.005
    assert math.isfinite(made["mean"]["psnr_y"])


def test_video_files_as_clips_match_frame_folders(tmp_path, video_set):
    """A folder of (lossless) video files evaluates like the same frames stored as PNG folders."""
    import av

    vids = tmp_path / "as_video"
    vids.mkdir()
    for clip in sorted(p for p in video_set.iterdir() if p.is_dir()):
        frames = [np.asarray(Image.open(f)) for f in sorted(clip.iterdir(), key=lambda p: int(p.stem[1:]))]
        with av.open(str(vids / f"{clip.name}.mkv"), "w") as c:
            s = c.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
            for i, fr in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(fr, format="rgb24").reformat(format="bgr0")
                vf.pts = i
                for p in s.encode(vf):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    a = evaluate(["bicubic"], str(video_set), scale=2, progress=False)[0]
    b = evaluate(["bicubic"], str(vids), scale=2, progress=False)[0]
    assert set(b["clips"]) == {"clipA", "clipB"}
    for name in a["clips"]:
        assert b["clips"][name]["frames"] == 3
        assert b["clips"][name]["psnr_y"] == pytest.approx(a["clips"][name]["psnr_y"], abs=1e-9)


# ---- compressed LR (--lr-codec / --lr-crf / --lr-preset / --lr-noise) ---------------------------------


def test_compressed_lr_is_deterministic_and_lossier_as_crf_rises(video_set):
    from videosr.eval.degrade import LRRecipe, make_lr
    from videosr.eval.protocol import load_clip

    gt = load_clip(find_clips(video_set)[0][0])  # clipA, (3, 3, 42, 50)
    rec = LRRecipe.make("BI", "libx264", 30)
    a, b = make_lr(gt, 2, rec, "clipA"), make_lr(gt, 2, rec, "clipA")
    assert a.shape == (3, 3, 21, 25) and a.dtype == torch.float32
    assert torch.equal(a, b)  # same LR, bit for bit
    assert torch.equal(a, (a * 255).round() / 255)  # on the 8-bit grid
    clean = make_lr(gt, 2, LRRecipe.make("BI"), "clipA")
    assert not torch.equal(a, clean) and (a - clean).abs().max() > 2 / 255

    kw = dict(scale=2, temporal=False, progress=False)
    runs = {crf: evaluate(["bicubic"], str(video_set), lr_codec="libx264", lr_crf=crf, **kw)[0] for crf in (10, 30, 45)}
    again = evaluate(["bicubic"], str(video_set), lr_codec="libx264", lr_crf=30, **kw)[0]
    assert again["clips"] == runs[30]["clips"]  # identical to the last digit
    base = evaluate(["bicubic"], str(video_set), **kw)[0]["mean"]["psnr_y"]
    p = [runs[c]["mean"]["psnr_y"] for c in (10, 30, 45)]
    assert base > p[0] > p[1] > p[2], (base, p)
    assert runs[30]["lr"] == {
        "degradation": "BI",
        "codec": "libx264",
        "crf": 30,
        "preset": "medium",
        "noise": 0,
        "fps": 25,
        "pix_fmt": "yuv420p",
    }


def test_compressed_lr_other_codecs_and_bd(video_set):
    kw = dict(scale=2, temporal=False, progress=False, clips=["clipA"])
    base = evaluate(["bicubic"], str(video_set), degradation="BD", **kw)[0]
    for codec, preset in (("libx265", "fast"), ("libvpx-vp9", "4")):
        r = evaluate(["bicubic"], str(video_set), degradation="BD", lr_codec=codec, lr_crf=40, **kw)[0]
        assert r["lr"]["codec"] == codec and r["lr"]["preset"] == preset and r["lr"]["degradation"] == "BD"
        assert math.isfinite(r["mean"]["psnr_y"]) and r["mean"]["psnr_y"] != base["mean"]["psnr_y"]


def test_lr_noise_is_seeded_per_clip(video_set):
    from videosr.eval.degrade import LRRecipe, make_lr, noise_seed
    from videosr.eval.protocol import load_clip

    assert noise_seed("clipA") == noise_seed("clipA") != noise_seed("clipB")
    gt = load_clip(find_clips(video_set)[0][0])
    clean = make_lr(gt, 2, LRRecipe.make("BI"), "clipA")
    noisy = make_lr(gt, 2, LRRecipe.make("BI", noise=5), "clipA")
    assert torch.equal(noisy, make_lr(gt, 2, LRRecipe.make("BI", noise=5), "clipA"))
    assert not torch.equal(noisy, make_lr(gt, 2, LRRecipe.make("BI", noise=5), "other"))
    assert torch.equal(noisy, (noisy * 255).round() / 255)
    assert 3 < float((noisy - clean).std()) * 255 < 7
    both = make_lr(gt, 2, LRRecipe.make("BI", "libx264", 20, noise=5), "clipA")
    assert torch.equal(both, make_lr(gt, 2, LRRecipe.make("BI", "libx264", 20, noise=5), "clipA"))
    r = evaluate(["bicubic"], str(video_set), scale=2, lr_noise=2.5, temporal=False, progress=False)[0]
    assert r["lr"] == {"degradation": "BI", "noise": 2.5}
    assert "BI + noise 2.5" in format_table([r])


def test_image_set_with_lr_codec(image_set):
    """Each image is a one-frame clip; odd LR sizes (10x9, 11x8) go through x264's padding."""
    clean = evaluate(["bicubic"], str(image_set), scale=4, progress=False)[0]
    r = evaluate(["bicubic"], str(image_set), scale=4, lr_codec="libx264", lr_crf=35, progress=False)[0]
    assert set(r["clips"]) == {"one", "two"} and all(c["frames"] == 1 for c in r["clips"].values())
    for name in ("one", "two"):
        assert 10 < r["clips"][name]["psnr_y"] < clean["clips"][name]["psnr_y"]


def test_cli_compressed_lr_json_and_table(video_set, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "--model",
            "bicubic",
            "--data",
            str(video_set),
            "--scale",
            "2",
            "--no-tof",
            "--quiet",
            "--lr-codec",
            "libx264",
            "--lr-crf",
            "25",
            "--lr-preset",
            "fast",
            "--lr-noise",
            "1.5",
            "--json",
            str(out_json),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "bicubic (x2, BI + noise 1.5 + libx264 CRF 25 fast (yuv420p, 25 fps))"
    doc = json.loads(out_json.read_text())
    assert doc["degradation"] == "BI"
    assert doc["lr"] == {
        "degradation": "BI",
        "codec": "libx264",
        "crf": 25,
        "preset": "fast",
        "noise": 1.5,
        "fps": 25,
        "pix_fmt": "yuv420p",
    }
    assert (
        main(
            [
                "eval",
                "--model",
                "bicubic",
                "--data",
                str(video_set),
                "--scale",
                "2",
                "--no-tof",
                "--quiet",
                "--json",
                str(out_json),
            ]
        )
        == 0
    )
    assert json.loads(out_json.read_text())["lr"] == {"degradation": "BI"}
    assert capsys.readouterr().out.splitlines()[0] == "bicubic (x2, BI)"


@pytest.mark.parametrize(
    "args,words",
    [
        (["--lr-codec", "libx999", "--lr-crf", "25"], "unknown LR codec 'libx999'"),
        (["--lr-codec", "libx264", "--lr-crf", "52"], "CRF 52 is out of range for libx264 (0..51)"),
        (["--lr-codec", "libvpx-vp9", "--lr-crf", "-1"], "out of range for libvpx-vp9 (0..63)"),
        (["--lr-codec", "libx264", "--lr-crf", "twenty"], "--lr-crf must be an integer"),
        (["--lr-codec", "libx264", "--lr-crf", "25", "--lr-preset", "fastest"], "unknown libx264 preset 'fastest'"),
        (["--lr-crf", "25"], "--lr-crf needs --lr-codec"),
        (["--lr-preset", "slow"], "--lr-preset needs --lr-codec"),
        (["--lr-codec", "libx264"], "needs --lr-crf"),
        (["--lr-noise", "-3"], "--lr-noise must be"),
        (["--lr-noise", "lots"], "--lr-noise must be a number"),
        (["--lr", "LRDIR", "--lr-codec", "libx264", "--lr-crf", "25"], "--lr-codec cannot be used with --lr"),
    ],
)
def test_cli_lr_option_errors_are_one_line_exit_2(image_set, capsys, monkeypatch, args, words):
    import videosr.eval.protocol as ev

    def no_models(*a, **k):
        raise AssertionError("models must not be loaded before the options are checked")

    monkeypatch.setattr(ev, "_load_model", no_models)
    args = [str(image_set) if a == "LRDIR" else a for a in args]
    rc = main(["eval", "--model", "bicubic", "--data", str(image_set), "--quiet", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("videosr: error: ") and words in err, err


def test_lr_cache_on_disk(video_set, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(scale=2, temporal=False, progress=False, lr_codec="libx264", lr_crf=28)
    first = evaluate(["bicubic"], str(video_set), lr_cache=str(cache), **kw)[0]
    files = sorted(cache.glob("*.npy"))
    assert [f.name.split("-")[0] for f in files] == ["clipA", "clipB"]
    a = np.load(files[0])
    assert a.dtype == np.uint8 and a.shape == (3, 3, 21, 25)
    # a second run reads the cache: the same figures, no new files; the cached LR is the LR made afresh
    again = evaluate(["bicubic"], str(video_set), lr_cache=str(cache), **kw)[0]
    assert again["clips"] == first["clips"] and sorted(cache.glob("*.npy")) == files
    assert evaluate(["bicubic"], str(video_set), **kw)[0]["clips"] == first["clips"]
    # another recipe, or a changed GT file, is another key
    evaluate(["bicubic"], str(video_set), lr_cache=str(cache), **{**kw, "lr_crf": 29})
    assert len(list(cache.glob("*.npy"))) == 4
    frame = video_set / "clipA" / "f9.png"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    evaluate(["bicubic"], str(video_set), lr_cache=str(cache), clips=["clipA"], **kw)
    assert len(list(cache.glob("*.npy"))) == 5
    # a corrupt cache file is made again, not trusted
    files[1].write_bytes(b"garbage")
    assert (
        evaluate(["bicubic"], str(video_set), lr_cache=str(cache), **kw)[0]["clips"]["clipB"] == first["clips"]["clipB"]
    )
    assert np.load(files[1]).shape == (3, 3, 21, 25)


def test_lr_files_record_their_path(image_set, tmp_path):
    lr_dir = tmp_path / "lr"
    for name in ("one", "two"):
        im = Image.open(image_set / f"{name}.png")
        _save(lr_dir / f"{name}.png", np.asarray(im.resize((im.width // 4, im.height // 4), Image.BICUBIC)))
    r = evaluate(["bicubic"], str(image_set), lr=str(lr_dir), scale=4, progress=False)[0]
    assert r["lr"] == {"files": str(lr_dir)} and r["degradation"] == "LR files"
    assert "(x4, LR files)" in format_table([r])


# ---- --lr pairing by name (issue 19 item 4) -----------------------------------------------------------


def _lr_like(gt_root: Path, lr_root: Path, scale: int) -> None:
    """LR files for every GT image under gt_root: the protocol's BI LR (8 bits) saved as PNG, same names."""
    from videosr.eval.degrade import LRRecipe, make_lr
    from videosr.eval.protocol import _read_image

    for f in sorted(gt_root.rglob("*.png")):
        lr = make_lr(_read_image(f)[None], scale, LRRecipe.make("BI"), f.stem)[0]
        _save(lr_root / f.relative_to(gt_root), (lr * 255).round().byte().permute(1, 2, 0).numpy())


def test_lr_frames_are_paired_by_name_not_position(video_set, tmp_path, capsys):
    lr = tmp_path / "lr"
    _lr_like(video_set, lr, 2)
    kw = dict(scale=2, temporal=False, progress=False)
    made = evaluate(["bicubic"], str(video_set), **kw)[0]
    files = evaluate(["bicubic"], str(video_set), lr=str(lr), **kw)[0]
    for name in ("clipA", "clipB"):  # the same LR, read from files: the same figures
        assert files["clips"][name]["psnr_y"] == pytest.approx(made["clips"][name]["psnr_y"], abs=1e-9)
    # a stray extra LR frame (sorted first) used to shift every pair (exit 0, lower PSNR); now it is an error naming it
    (lr / "clipA" / "f8.png").write_bytes((lr / "clipA" / "f9.png").read_bytes())
    with pytest.raises(InputError, match=r"clipA.*only in LR: f8.*paired by name"):
        evaluate(["bicubic"], str(video_set), lr=str(lr), **kw)
    # a missing one too, listed with the extra one, first differences only
    (lr / "clipA" / "f10.png").unlink()
    with pytest.raises(InputError, match=r"missing in LR: f10; only in LR: f8"):
        evaluate(["bicubic"], str(video_set), lr=str(lr), **kw)
    rc = main(
        ["eval", "--model", "bicubic", "--data", str(video_set), "--lr", str(lr), "--scale", "2", "--no-tof", "--quiet"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 3 and len(err.splitlines()) == 1 and "missing in LR: f10" in err and "Traceback" not in err
    # renamed frames (different numbering) are not silently paired by position
    (lr / "clipA" / "f8.png").rename(lr / "clipA" / "f10.png")
    (lr / "clipB" / "f11.png").rename(lr / "clipB" / "f011.png")
    with pytest.raises(InputError, match=r"clipB.*missing in LR: f11; only in LR: f011"):
        evaluate(["bicubic"], str(video_set), lr=str(lr), **kw)


def test_lr_frames_named_with_scale_suffix_and_other_extension(video_set, tmp_path):
    lr = tmp_path / "lr"
    _lr_like(video_set, lr, 2)
    base = evaluate(["bicubic"], str(video_set), lr=str(lr), scale=2, temporal=False, progress=False)[0]
    for f in sorted(lr.rglob("*.png")):  # f9.png -> f9x2.bmp (lossless)
        Image.open(f).save(f.with_name(f"{f.stem}x2.bmp"))
        f.unlink()
    r = evaluate(["bicubic"], str(video_set), lr=str(lr), scale=2, temporal=False, progress=False)[0]
    assert r["clips"] == base["clips"]
    # two LR files for one GT frame: ambiguous, an error
    Image.open(lr / "clipA" / "f9x2.bmp").save(lr / "clipA" / "f9.png")
    with pytest.raises(InputError, match=r"both stand for the frame 'f9'"):
        evaluate(["bicubic"], str(video_set), lr=str(lr), scale=2, temporal=False, progress=False)


def test_lr_must_mirror_data_structure(image_set, tmp_path, capsys):
    lr = tmp_path / "lr"
    _lr_like(image_set, lr, 4)
    for f in lr.glob("*.png"):
        f.rename(f.with_name(f"{f.stem}x4.png"))  # Set5 style: babyx4.png
    ok = evaluate(["bicubic"], str(image_set), lr=str(lr), scale=4, progress=False)[0]
    assert set(ok["clips"]) == {"one", "two"}
    # one LR file for a folder of GT images used to score every image against it
    rc = main(
        [
            "eval",
            "--model",
            "bicubic",
            "--data",
            str(image_set),
            "--lr",
            str(lr / "onex4.png"),
            "--scale",
            "4",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "must be a folder of the same structure" in err and len(err.splitlines()) == 1
    # an extra LR image: the names differ (no --clip): an error listing it
    (lr / "threex4.png").write_bytes((lr / "onex4.png").read_bytes())
    with pytest.raises(InputError, match=r"only in LR: three"):
        evaluate(["bicubic"], str(image_set), lr=str(lr), scale=4, progress=False)
    # with --clip only the chosen clips need LR
    r = evaluate(["bicubic"], str(image_set), lr=str(lr), scale=4, clips=["one"], progress=False)[0]
    assert r["clips"]["one"] == ok["clips"]["one"]
    (lr / "onex4.png").unlink()
    with pytest.raises(InputError, match=r"missing in LR: one"):
        evaluate(["bicubic"], str(image_set), lr=str(lr), scale=4, clips=["one"], progress=False)
    # a single GT file takes a single LR file
    single = evaluate(["bicubic"], str(image_set / "two.png"), lr=str(lr / "twox4.png"), scale=4, progress=False)[0]
    assert single["clips"]["two"] == ok["clips"]["two"]
