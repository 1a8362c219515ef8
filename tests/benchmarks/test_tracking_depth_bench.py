"""The depth-aware tracking benchmark runs end to end and depth helps on its crossing sequences."""

from __future__ import annotations

import json

from calibnet.cli.tracking_depth import main


def test_tracking_benchmark_with_and_without_depth(tmp_path, capsys):
    out = tmp_path / "track.json"
    assert main(["--sequences", "3", "--frames", "30", "--height", "120", "--width", "160", "--pairs", "1",
                 "--speed", "2", "--json-out", str(out)]) == 0
    res = json.loads(out.read_text())
    before, after = res["masks_only"], res["with_depth"]
    assert before["gt"] == after["gt"] > 100 and before["pred"] == after["pred"]  # the same detections
    assert after["ID_switches"] < before["ID_switches"] and after["IDF1"] > before["IDF1"]
    assert "masks_only" in capsys.readouterr().out
