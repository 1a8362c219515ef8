"""calibnet-infer on files and folders, and its errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet.data.synthetic import make_scene  # noqa: E402
from calibnet.export import export_onnx  # noqa: E402
from calibnet.runtime.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def onnx_and_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    path = export_onnx(calibnet.build_model("r18", quiet=True), d / "r18.onnx", height=320, width=448)
    (d / "RGB").mkdir()
    (d / "depth").mkdir()
    for i in range(2):
        s = make_scene(i, 240, 320)
        cv2.imwrite(str(d / "RGB" / f"img{i}.jpg"), s.rgb[:, :, ::-1])
        cv2.imwrite(str(d / "depth" / f"img{i}.png"), s.depth)
    return path, d


def test_single_pair_and_folder(onnx_and_data, tmp_path):
    path, d = onnx_and_data
    assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(d / "depth/img0.png"),
                 "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "img0_overlay.png").is_file()
    assert main([str(path), "--rgb-dir", str(d / "RGB"), "--depth-dir", str(d / "depth"),
                 "--out", str(tmp_path / "all"), "--no-overlay"]) == 0
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {1, 2} and all(r["category_id"] == 1 for r in results)
    assert all(r["segmentation"]["size"] == [240, 320] for r in results)


def test_errors_name_the_file(onnx_and_data, tmp_path, capsys):
    path, d = onnx_and_data
    assert main([str(path), "--rgb", str(tmp_path / "none.jpg"), "--depth", str(d / "depth/img0.png")]) == 2
    assert "none.jpg" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(tmp_path / "broken.png")]) == 2
    assert "broken.png" in capsys.readouterr().err
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((100, 100), np.uint8))
    assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(small), "--strict"]) == 2
    assert "sizes differ" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="resized"):
        assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(small),
                     "--out", str(tmp_path / "r")]) == 0
    assert main([str(tmp_path / "missing.onnx"), "--rgb", "a", "--depth", "b"]) == 2
    assert "missing.onnx" in capsys.readouterr().err
