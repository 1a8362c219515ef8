"""The README's main job (calibnet-demo) end to end on a small config."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from calibnet.cli.demo import main  # noqa: E402


@pytest.mark.slow
def test_demo_exports_verifies_and_writes_overlay(tmp_path, capsys):
    assert main(["--config", "r18", "--out", str(tmp_path), "--height", "320", "--width", "448"]) == 0
    captured = capsys.readouterr()
    assert "-> PASS" in captured.out and "timing (r18" in captured.out
    assert "MEANINGLESS" in captured.err
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["verify_mask_agreement"] >= 0.999
    assert set(report["timings_ms"]) == {"pre", "infer", "post"}
    import cv2

    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    assert overlay is not None and overlay.shape == (375, 500, 3)


def test_demo_missing_weights_is_a_clear_error(tmp_path, capsys):
    assert main(["--config", "r18", "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path)]) == 2
    assert "nope.pth" in capsys.readouterr().err
