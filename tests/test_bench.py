"""`videosr bench` runs end to end on a tiny clip and reports every stage and the floor."""

from __future__ import annotations

import json

from videosr.cli import main


def test_bench_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--model", "bicubic", "--size", "48x32", "--frames", "6", "--scale", "2", "--json", str(out)])
    assert code == 0
    r = json.loads(out.read_text())
    assert r["frames"] == 6 and r["floor_fps"] > 0
    (row,) = r["models"]
    for key in ("decode_fps", "model_fps", "encode_fps", "total_fps", "fraction_of_floor"):
        assert row[key] > 0
    assert "floor" in capsys.readouterr().out


def test_bench_repeat_reports_medians_of_interleaved_rounds(tmp_path) -> None:
    import statistics

    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--model",
                "bicubic",
                "--size",
                "48x32",
                "--frames",
                "4",
                "--scale",
                "2",
                "--repeat",
                "3",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    (row,) = r["models"]
    assert r["repeat"] == 3 and len(r["floor_fps_runs"]) == 3 and len(row["total_fps_runs"]) == 3
    assert row["total_fps"] == round(statistics.median(row["total_fps_runs"]), 2)
    ratios = [t / f for t, f in zip(row["total_fps_runs"], r["floor_fps_runs"])]
    assert abs(row["fraction_of_floor"] - statistics.median(ratios)) < 0.01  # per-round ratios, not a ratio of medians
    assert main(["bench", "--repeat", "0"]) == 2


def test_bench_bad_size_is_usage_error(capsys) -> None:
    assert main(["bench", "--size", "big"]) == 2
    assert "size must look like" in capsys.readouterr().err
