"""The one RGB reader and the one depth reader (calibnet.runtime.core.readers) and the data-set spec rules
(calibnet.data: depth-folder rule, JSON -> DatasetSpec, the shared CLI options). No torch."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from calibnet.data import (
    DatasetError,
    dataset_spec_from_json,
    default_depth_root,
    resolve_dataset,
    write_synthetic_dataset,
)
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.readers import read_depth, read_rgb


def test_rgb_is_upright_by_its_exif_orientation(tmp_path):
    """Orientation 6 (rotate 90 degrees clockwise to view), as a phone camera writes it: the reader
    returns the upright image, as detectron2's read_image does."""
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :, 0] = 255  # a red band along the stored top edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "a.png", exif=exif)
    rgb = read_rgb(tmp_path / "a.png")
    assert rgb.shape == (60, 40, 3) and rgb.dtype == np.uint8
    assert rgb[:, -10:, 0].min() == 255 and rgb[:, :-10, 0].max() == 0  # the top edge is now the right edge


def test_depth_is_read_as_stored(tmp_path):
    u8 = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "u8.png"), u8)
    cv2.imwrite(str(tmp_path / "gray_rgb.png"), np.repeat(u8[:, :, None], 3, axis=2))
    mm = (300 + np.arange(48 * 64).reshape(48, 64) * 3).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "mm.png"), mm)
    metres = np.linspace(0.5, 4.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    Image.fromarray(metres, mode="F").save(tmp_path / "m.tiff")
    np.save(tmp_path / "d.npy", metres)
    for name, want in (("u8.png", u8), ("gray_rgb.png", u8), ("mm.png", mm), ("m.tiff", metres), ("d.npy", metres)):
        got = read_depth(tmp_path / name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name


@pytest.mark.parametrize("reader", [read_rgb, read_depth])
def test_unreadable_files_are_input_errors_naming_the_file(reader, tmp_path):
    with pytest.raises(InputError, match=r"not found: .*none\.png"):
        reader(tmp_path / "none.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"broken\.png"):
        reader(tmp_path / "broken.png")
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    with pytest.raises(InputError, match=r"broken\.npy"):
        reader(tmp_path / "broken.npy")


def test_depth_folder_rule():
    assert default_depth_root("/d/COME15K/COME-E/RGB").as_posix() == "/d/COME15K/COME-E/depth"
    assert default_depth_root("/d/COME15K/train/imgs_right").as_posix() == "/d/COME15K/train/depths"
    with pytest.raises(DatasetError, match="--depth-root"):
        default_depth_root("/d/photos")


def test_json_to_spec_coco_file_and_spec_file(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "S", 1, seed=0, height=48, width=64)
    coco = dataset_spec_from_json(spec.json_file)  # RGB/ beside the json, depth by the rule
    assert (coco.name, coco.image_root, coco.depth_root) == ("S", spec.image_root, spec.depth_root)
    (tmp_path / "S" / "spec.json").write_text(json.dumps(
        {"name": "mine", "json_file": "annotations.json", "image_root": "RGB", "depth_root": "depth"}))
    from_spec = dataset_spec_from_json(tmp_path / "S" / "spec.json")
    assert (from_spec.name, from_spec.json_file, from_spec.depth_root) == ("mine", spec.json_file, spec.depth_root)
    assert resolve_dataset(tmp_path / "S" / "spec.json") == from_spec
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="neither a COCO annotation file nor a data-set spec"):
        dataset_spec_from_json(tmp_path / "other.json")
    with pytest.raises(DatasetError, match="no such file or registered data set"):
        resolve_dataset(tmp_path / "none.json")


def test_eval_reads_the_depth_maps_infer_reads(tmp_path):
    """calibnet-eval hands a 16-bit depth map to the runtime as calibnet-infer does (it used to refuse it)."""
    from calibnet.evaluation.runner import predict_dataset

    spec = write_synthetic_dataset(tmp_path / "S", 1, seed=0, height=48, width=64)
    depth_file = spec.depth_root / "000001.png"
    mm = 300 + cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 10
    cv2.imwrite(str(depth_file), mm)
    seen = []

    class _Runtime:
        def predict(self, rgb, depth):
            seen.append(depth)
            return type("P", (), {"coco_results": lambda self, image_id, category_id: []})()

    results, ids, _ = predict_dataset(_Runtime(), spec, progress=False)
    assert ids == [1] and results == [] and seen[0].dtype == np.uint16 and np.array_equal(seen[0], mm)


@pytest.mark.parametrize("content", [b"junk", b"%PDF-1.4 not an image" * 4])
def test_an_unreadable_file_is_named_once_with_a_plain_reason(tmp_path, content):
    from calibnet.runtime.core.readers import read_depth, read_rgb

    path = tmp_path / "b.png"
    path.write_bytes(content)
    for read, what in ((read_depth, "depth map"), (read_rgb, "image")):
        with pytest.raises(InputError) as info:
            read(path)
        msg = str(info.value)
        assert msg.startswith(f"cannot read {what} {path}: not a PNG, JPEG") and msg.count("b.png") == 1, msg
        assert "Error" not in msg, msg  # no exception class names from inside Pillow
