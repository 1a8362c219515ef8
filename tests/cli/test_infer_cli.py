"""calibnet-infer on files, folders and videos (overlay video, one image id per frame), depth forms, saliency
maps, and its errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from calibnet.cli.infer import main  # noqa: E402
from calibnet.data.synthetic import make_scene  # noqa: E402
from calibnet.export import export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def onnx_and_data(r18, tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    path = export_onnx(r18, d / "r18.onnx", height=320, width=448)
    (d / "RGB").mkdir()
    (d / "depth").mkdir()
    for i in range(2):
        s = make_scene(i, 240, 320)
        cv2.imwrite(str(d / "RGB" / f"img{i}.jpg"), s.rgb[:, :, ::-1])
        cv2.imwrite(str(d / "depth" / f"img{i}.png"), s.depth)
    return path, d


@pytest.mark.slow
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


@pytest.mark.slow
def test_errors_name_the_file(onnx_and_data, tmp_path, capsys):
    path, d = onnx_and_data
    out = ["--out", str(tmp_path / "o")]  # an input that fails: exit 1, one line naming it, errors.json
    assert main([str(path), "--rgb", str(tmp_path / "none.jpg"), "--depth", str(d / "depth/img0.png"), *out]) == 1
    assert "none.jpg" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(tmp_path / "broken.png"), *out]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert "broken.png" in json.loads((tmp_path / "o" / "errors.json").read_text())[0]["reason"]
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((100, 100), np.uint8))
    assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(small), "--strict", *out]) == 1
    assert "sizes differ" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="resized"):
        assert main([str(path), "--rgb", str(d / "RGB/img0.jpg"), "--depth", str(small),
                     "--out", str(tmp_path / "r")]) == 0
    assert main([str(tmp_path / "missing.onnx"), "--rgb", "a", "--depth", "b"]) == 2
    assert "missing.onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_sixteen_bit_depth_and_saliency(onnx_and_data, tmp_path):
    path, d = onnx_and_data
    s = make_scene(5, 240, 320)
    mm = (300 + s.depth.astype(np.uint16) * 14).astype(np.uint16)  # millimetres: near (dark) = small
    mm[:8] = 0  # no reading
    cv2.imwrite(str(tmp_path / "a_mm.png"), mm)
    cv2.imwrite(str(tmp_path / "a.jpg"), s.rgb[:, :, ::-1])
    assert cv2.imread(str(tmp_path / "a_mm.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert main([str(path), "--rgb", str(tmp_path / "a.jpg"), "--depth", str(tmp_path / "a_mm.png"),
                 "--depth-near", "300", "--depth-far", "4000", "--saliency", "--out", str(tmp_path / "o")]) == 0
    sal = cv2.imread(str(tmp_path / "o" / "a_saliency.png"), cv2.IMREAD_UNCHANGED)
    assert sal.shape == (240, 320) and sal.dtype == np.uint8
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results  # the deterministic R18 keeps instances on this scene
    assert abs(sal.max() / 255 - max(r["score"] for r in results)) <= 1 / 255  # the brightest pixel: the best score
    assert main([str(path), "--rgb", str(tmp_path / "a.jpg"), "--depth", str(tmp_path / "a_mm.png"),
                 "--depth-format", "u8", "--out", str(tmp_path / "u8")]) == 1


def _write_video(path, frames, color=True):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (w, h), color)
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("video")
    scenes = [make_scene(10 + i, 96, 128) for i in range(3)]
    _write_video(d / "rgb.avi", [sc.rgb[:, :, ::-1].copy() for sc in scenes])
    _write_video(d / "depth.avi", [cv2.cvtColor(sc.depth, cv2.COLOR_GRAY2BGR) for sc in scenes])
    (d / "depth_frames").mkdir()
    for i, sc in enumerate(scenes):  # 16-bit frames; natural order: 2 < 10
        cv2.imwrite(str(d / "depth_frames" / f"f{[2, 10, 33][i]}.png"), (5000 - sc.depth.astype(np.uint16) * 16))
    return d


@pytest.mark.slow
@pytest.mark.parametrize("depth_arg", ["--depth-video", "--depth-dir"])
def test_video_mode_writes_an_overlay_video_and_one_image_per_frame(onnx_and_data, videos, tmp_path, depth_arg):
    path, _ = onnx_and_data
    depth = videos / ("depth.avi" if depth_arg == "--depth-video" else "depth_frames")
    out = tmp_path / "v"
    assert main([str(path), "--video", str(videos / "rgb.avi"), depth_arg, str(depth), "--out", str(out),
                 "--saliency"]) == 0
    cap = cv2.VideoCapture(str(out / "overlay.avi"))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    assert n == 3 and shape == (96, 128, 3)
    images = json.loads((out / "images.json").read_text())
    assert [im["id"] for im in images] == [1, 2, 3] and [im["frame_index"] for im in images] == [0, 1, 2]
    assert images[0]["file_name"] == "rgb.avi#0" and (images[0]["height"], images[0]["width"]) == (96, 128)
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {1, 2, 3}
    assert all(r["segmentation"]["size"] == [96, 128] for r in results)
    assert len(list((out / "saliency").glob("*.png"))) == 3


def test_depth_frames_are_matched_in_natural_order(videos):
    from calibnet.runtime.apps.sources import image_files as _image_files

    assert [p.name for p in _image_files(videos / "depth_frames")] == ["f2.png", "f10.png", "f33.png"]


@pytest.mark.slow
def test_video_mode_errors(onnx_and_data, videos, tmp_path, capsys):
    path, _ = onnx_and_data
    assert main([str(path), "--video", str(videos / "rgb.avi")]) == 2
    assert "--depth-video or --depth-dir" in capsys.readouterr().err
    assert main([str(path), "--video", str(tmp_path / "none.avi"), "--depth-video", str(videos / "depth.avi")]) == 2
    assert "none.avi" in capsys.readouterr().err
    (tmp_path / "bad.avi").write_bytes(b"not a video")
    assert main([str(path), "--video", str(tmp_path / "bad.avi"), "--depth-video", str(videos / "depth.avi")]) == 2
    assert "bad.avi" in capsys.readouterr().err
    assert main([str(path), "--video", str(videos / "rgb.avi"), "--depth-dir", str(tmp_path)]) == 2
    assert "no depth frames" in capsys.readouterr().err
    assert main([str(path), "--rgb", "a.jpg", "--depth", "b.png", "--depth-near", "-3"]) == 2
    assert "near" in capsys.readouterr().err
