"""The bag benchmark runs end to end on tiny bags (a smoke test: the timings themselves are not checked)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("rosbags", reason="the robotics extra (pip install '.[robotics]') is not installed")

from calibnet.cli.bag_bench import main  # noqa: E402


def test_bag_bench_writes_a_row_per_encoding(small_onnx, tmp_path, capsys):
    out = tmp_path / "bag.json"
    code = main(["--frames", "4", "--size", "64x48", "--model", str(small_onnx), "--model-frames", "2",
                 "--repeats", "1", "--workdir", str(tmp_path / "work"), "--json", str(out)])
    rep = json.loads(out.read_text())
    assert code in (0, 1) and rep["size"] == [64, 48] and rep["model_ms_per_frame"] > 0
    assert [(r["name"], r["frames"]) for r in rep["rows"]] == [("raw", 4), ("compressed", 4)]
    assert all(r["ms_per_frame"] > 0 and r["size_mb"] > 0 for r in rep["rows"])
    assert "raw" in capsys.readouterr().out
