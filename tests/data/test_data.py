"""Data sets: registry, COCO records, official augmentation (RGB/depth/masks aligned), collate, loaders,
synthetic writer."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import calibnet
from calibnet.data import (
    DatasetError,
    DatasetSpec,
    GeometricTransform,
    get_dataset_spec,
    load_records,
    rasterize_polygons,
    sample_train_transform,
    write_synthetic_dataset,
)
from calibnet.data.transforms import Crop, Flip, Resize, nearest_indices, sample_crop_box

torch = pytest.importorskip("torch")

from calibnet.data import InfiniteSampler, RGBDInstanceDataset, build_train_loader, collate_rgbd  # noqa: E402

CFG_INPUT = calibnet.get_config("r18").input


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def _write_set(root: Path, images: list[tuple[np.ndarray, np.ndarray, list[dict]]], ids: list[int] | None = None,
               rgb_dir: str = "RGB", depth_dir: str = "depth") -> DatasetSpec:
    """Write (rgb, depth, annotations) triples as a COCO data set in the official DSIS layout."""
    (root / rgb_dir).mkdir(parents=True)
    (root / depth_dir).mkdir(parents=True)
    coco: dict = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "foreground"}]}
    for n, (rgb, depth, anns) in enumerate(images):
        image_id = ids[n] if ids else n + 1
        name = f"im{image_id}.png"  # lossless, so pixel tests are exact
        Image.fromarray(rgb).save(root / rgb_dir / name)
        Image.fromarray(depth).save(root / depth_dir / name)
        coco["images"].append({"id": image_id, "file_name": name, "height": rgb.shape[0], "width": rgb.shape[1]})
        for a in anns:
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": 1,
                                        "bbox": [0, 0, 1, 1], "area": 1.0, **a})
    (root / "gt.json").write_text(json.dumps(coco))
    return DatasetSpec("test", root / "gt.json", root / rgb_dir, root / depth_dir)


def _blob_scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB, depth and masks where every instance is exactly `depth > 127` and red in RGB (asymmetric layout)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, h, w), bool)
    masks[0, int(0.1 * h):int(0.45 * h), int(0.05 * w):int(0.3 * w)] = True
    cv2.ellipse(m1 := np.zeros((h, w), np.uint8), (int(0.7 * w), int(0.6 * h)), (int(0.15 * w), int(0.2 * h)), 30,
                0, 360, 1, -1)
    masks[1] = m1.astype(bool)
    masks[2, int(0.75 * h):int(0.95 * h), int(0.4 * w):int(0.5 * w)] = True
    depth = np.where(masks.any(0), 230, 25).astype(np.uint8)
    rgb = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    rgb[masks.any(0)] = (250, 10, 10)
    return rgb, depth, masks


# ------------------------------------------------------------------ registry


def test_registry_official_layout_and_errors(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    (root / "DSIS" / "RGB").mkdir(parents=True)
    (root / "DSIS" / "depth").mkdir()
    (root / "DSIS" / "DSIS.json").write_text("{}")
    spec = get_dataset_spec("dsis_test", root)
    assert (spec.json_file, spec.image_root, spec.depth_root) == (root / "DSIS/DSIS.json", root / "DSIS/RGB",
                                                                  root / "DSIS/depth")
    assert spec.depth_path("a/b.jpg") == root / "DSIS/depth/a/b.png"
    train = get_dataset_spec("come15k_train", root, check=False)
    assert train.image_root == root / "COME15K/train/imgs_right" and train.depth_root == root / "COME15K/train/depths"
    assert train.json_file == root / "COME15K/annotations/COME15K-Train.json"
    assert get_dataset_spec("come15k_test_h", root, check=False).depth_root == root / "COME15K/COME-H/depth"
    for name in calibnet.get_config("r50").datasets_test + calibnet.get_config("r50").datasets_train:
        get_dataset_spec(name, root, check=False)  # every name the config uses is registered
    with pytest.raises(DatasetError, match="COME-E/RGB|COME15K-Test-E.json"):
        get_dataset_spec("come15k_test_e", root)
    with pytest.raises(DatasetError, match="known: come15k_train"):
        get_dataset_spec("coco_2017", root)
    (root / "DSIS" / "depth").rmdir()
    with pytest.raises(DatasetError, match=r"depth folder not found: .*DSIS/depth"):
        get_dataset_spec("dsis_test", root)
    monkeypatch.delenv("CALIBNET_DATASETS", raising=False)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
    assert get_dataset_spec("sip_test", check=False).image_root == root / "SIP/RGB"


# ------------------------------------------------------------------ records and masks


def test_records_polygon_rle_crowd_and_empty_images(tmp_path):
    h, w = 40, 60
    box = np.zeros((h, w), bool)
    box[5:15, 10:30] = True
    other = np.zeros((h, w), bool)
    other[20:35, 40:55] = True
    # uncompressed RLE (column-major run lengths) of `other`
    flat = other.flatten(order="F").astype(np.uint8)
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    rgb = np.zeros((h, w, 3), np.uint8)
    depth = np.zeros((h, w), np.uint8)
    spec = _write_set(tmp_path, [
        (rgb, depth, [{"segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]], "iscrowd": 0},
                      {"segmentation": _rle(other), "iscrowd": 1},  # crowd: skipped
                      {"segmentation": {"size": [h, w], "counts": runs}, "iscrowd": 0},
                      {"segmentation": [[1, 1, 2, 2]], "iscrowd": 0}]),  # degenerate polygon: skipped
        (rgb, depth, []),  # no annotations: kept
    ], ids=[7, 3])
    recs = load_records(spec)
    assert [r.image_id for r in recs] == [3, 7]  # sorted by id, empty image kept
    assert recs[0].segmentations == []
    assert len(recs[1].segmentations) == 2
    ds = RGBDInstanceDataset(spec, CFG_INPUT.__class__(min_size_test=h, max_size_test=w), train=False)
    empty, full = ds[0], ds[1]
    assert empty["masks"].shape == (0, h, w) and empty["image_id"] == 3
    m = full["masks"].numpy()
    assert m.shape == (2, h, w)
    np.testing.assert_array_equal(m[0], box)  # polygon in pixel-edge coordinates rasterizes to the box
    np.testing.assert_array_equal(m[1], other)


def test_test_mode_resizes_like_the_runtime(tmp_path):
    """Test items: ResizeShortestEdge(320, 480) with Pillow bilinear for RGB and depth, masks nearest."""
    rgb, depth, masks = _blob_scene(150, 200, 0)
    spec = _write_set(tmp_path, [(rgb, depth, [{"segmentation": _rle(m), "iscrowd": 0} for m in masks])])
    item = RGBDInstanceDataset(spec, CFG_INPUT, train=False)[0]
    assert item["orig_hw"] == (150, 200) and item["resized_hw"] == (320, 427)
    assert item["rgb"].dtype == torch.uint8 and item["rgb"].shape == (3, 320, 427)
    assert item["depth"].shape == (1, 320, 427) and item["masks"].dtype == torch.bool
    from calibnet.runtime.core.preprocess import prepare_frame

    frame = prepare_frame(rgb, depth, 320, 480)
    np.testing.assert_array_equal(item["rgb"].numpy(), frame.rgb[:, :320, :427].astype(np.uint8))
    np.testing.assert_array_equal(item["depth"].numpy(), frame.depth[:, :320, :427].astype(np.uint8))
    pil = np.stack([np.asarray(Image.fromarray(m.astype(np.uint8)).resize((427, 320), Image.NEAREST)) for m in masks])
    np.testing.assert_array_equal(item["masks"].numpy(), pil.astype(bool))


def test_nearest_rule_equals_pillow():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 2, (37, 53)).astype(np.uint8)
    for oh, ow in ((80, 29), (11, 120), (37, 53), (100, 100)):
        ours = img[nearest_indices(37, oh)][:, nearest_indices(53, ow)]
        np.testing.assert_array_equal(ours, np.asarray(Image.fromarray(img).resize((ow, oh), Image.NEAREST)))


# ------------------------------------------------------------------ augmentation


def test_flip_and_crop_are_exact_on_every_map():
    rgb, depth, masks = _blob_scene(90, 120, 2)
    t = GeometricTransform((90, 120), [Flip(120), Crop(x0=17, y0=9, w=70, h=60)])
    assert t.output_hw == (60, 70)
    m = t.apply_masks(masks)
    d = t.apply_image(depth)
    r = t.apply_image(rgb)
    np.testing.assert_array_equal(m.any(0), d > 127)
    np.testing.assert_array_equal(m.any(0), r[..., 0] == 250)
    np.testing.assert_array_equal(d, depth[:, ::-1][9:69, 17:87])


def test_train_augmentation_keeps_rgb_depth_masks_aligned(tmp_path):
    """Masks that equal `depth > 127` (and red RGB) still equal them after flip/resize/crop/resize, up to the
    bilinear-vs-nearest boundary pixels; a missed flip or crop of any map would break the overlap."""
    scenes = [_blob_scene(300, 420, s) for s in range(2)]
    spec = _write_set(tmp_path, [(r, d, [{"segmentation": _rle(m), "iscrowd": 0} for m in ms])
                                 for r, d, ms in scenes])
    ds = RGBDInstanceDataset(spec, CFG_INPUT, train=True)
    seen_flip = seen_crop = 0
    for key in range(12):
        item = ds[(key % 2, 0, key)]
        t = sample_train_transform(np.random.default_rng([key % 2, 0, key]), 300, 420, CFG_INPUT)
        seen_flip += any(isinstance(s, Flip) for s in t.steps)
        seen_crop += any(isinstance(s, Crop) for s in t.steps)
        h, w = item["resized_hw"]
        assert (h, w) == t.output_hw
        assert min(h, w) == 320 or max(h, w) == 480
        union = item["masks"].numpy().any(0)
        from_depth = item["depth"].numpy()[0] > 127
        from_rgb = item["rgb"].numpy()[0] > 127
        for other in (from_depth, from_rgb):
            if union.any() or other.any():
                iou = (union & other).sum() / (union | other).sum()
                assert iou > 0.97, (key, iou)
        boundary = cv2.morphologyEx(from_depth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        assert not (union ^ from_depth)[~boundary].any(), key  # differences only on the boundary
    assert seen_flip and seen_crop and seen_flip < 12 and seen_crop < 12


def test_polygon_masks_follow_the_geometry():
    poly = [np.array([10.0, 5, 50, 5, 50, 30, 30, 45, 10, 30])]
    base = rasterize_polygons(poly, 60, 80)
    t = GeometricTransform((60, 80), [Flip(80), Resize(60, 80, 120, 160), Crop(20, 10, 100, 90)])
    expect = np.ascontiguousarray(base[:, ::-1]).repeat(2, 0).repeat(2, 1)[10:100, 20:120]
    got = rasterize_polygons(t.apply_polygons(poly), 90, 100)
    assert (got & expect).sum() / (got | expect).sum() > 0.97


def test_crop_and_resize_sampling_follow_detectron2():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = sample_crop_box(rng, 500, 700, "absolute_range", (384, 600))
        assert 384 <= c.h <= 500 and 384 <= c.w <= 600
        assert 0 <= c.y0 <= 500 - c.h and 0 <= c.x0 <= 700 - c.w
    assert sample_crop_box(rng, 200, 300, "absolute_range", (384, 600)) == Crop(0, 0, 300, 200)  # min(h, 384)
    shorts, pre = set(), set()
    for _ in range(100):
        t = sample_train_transform(rng, 480, 640, CFG_INPUT)
        resizes = [s for s in t.steps if isinstance(s, Resize)]
        oh, ow = t.output_hw
        assert min(oh, ow) == 320 or max(oh, ow) == 480
        if len(resizes) == 2:  # resize to 400/500/600 precedes the crop
            pre.add(min(resizes[0].new_h, resizes[0].new_w))
            assert isinstance(t.steps[t.steps.index(resizes[0]) + 1], Crop)
        shorts.add(len(resizes))
    assert pre == {400, 500, 600} and shorts == {1, 2}


# ------------------------------------------------------------------ collate and loaders


def test_collate_pads_to_32(tmp_path):
    a = {"rgb": torch.full((3, 40, 70), 7, dtype=torch.uint8), "depth": torch.full((1, 40, 70), 9, dtype=torch.uint8),
         "masks": torch.ones((2, 40, 70), dtype=torch.bool), "image_id": 1, "file_name": "a", "orig_hw": (4, 7),
         "resized_hw": (40, 70)}
    b = {"rgb": torch.full((3, 65, 33), 5, dtype=torch.uint8), "depth": torch.full((1, 65, 33), 3, dtype=torch.uint8),
         "masks": torch.zeros((0, 65, 33), dtype=torch.bool), "image_id": 2, "file_name": "b", "orig_hw": (6, 3),
         "resized_hw": (65, 33)}
    batch = collate_rgbd([a, b])
    assert batch["rgb"].shape == (2, 3, 96, 96) and batch["rgb"].dtype == torch.float32
    assert batch["depth"].shape == (2, 1, 96, 96)
    assert batch["image_sizes"].tolist() == [[40, 70], [65, 33]] and batch["image_sizes"].dtype == torch.int64
    assert batch["rgb"][0, :, :40, :70].eq(7).all() and batch["rgb"][0, :, 40:].eq(0).all()
    assert batch["rgb"][0, :, :, 70:].eq(0).all() and batch["depth"][1, 0, :65, :33].eq(3).all()
    assert [m.shape for m in batch["masks"]] == [(2, 96, 96), (0, 96, 96)]
    assert batch["masks"][0].sum() == 2 * 40 * 70
    assert batch["image_ids"] == [1, 2] and batch["file_names"] == ["a", "b"] and batch["orig_hw"] == [(4, 7), (6, 3)]


def test_infinite_sampler_shards_and_resumes():
    s0 = list(_take(InfiniteSampler(10, seed=3, rank=0, world_size=2), 15))
    s1 = list(_take(InfiniteSampler(10, seed=3, rank=1, world_size=2), 15))
    first_epoch = {k[0] for k in s0[:5]} | {k[0] for k in s1[:5]}
    assert first_epoch == set(range(10))  # the ranks split each epoch
    keys = s0 + s1
    assert len(set(keys)) == len(keys)  # (index, seed, epoch): no key twice across ranks
    resumed = list(_take(InfiniteSampler(10, seed=3, rank=0, world_size=2, start=4), 11))
    assert resumed == s0[4:]


def _take(it, n):
    for _, k in zip(range(n), it):
        yield k


def test_train_loader_is_infinite_deterministic_and_resumable(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "syn", 3, seed=1, height=64, width=96)
    ds = RGBDInstanceDataset(spec, CFG_INPUT.__class__(min_size_train=(64,), max_size_train=96,
                                                       crop_size=(40, 60)), train=True)
    run = [b for _, b in zip(range(5), build_train_loader(ds, 2, seed=4))]  # 10 samples > 3 images
    assert all(b["rgb"].shape[0] == 2 and b["rgb"].shape[2] % 32 == 0 for b in run)
    again = next(iter(build_train_loader(ds, 2, seed=4, start_iter=3)))
    assert again["image_ids"] == run[3]["image_ids"] and torch.equal(again["rgb"], run[3]["rgb"])
    workers = [b for _, b in zip(range(2), build_train_loader(ds, 2, num_workers=1, seed=4))]
    for a, b in zip(workers, run):
        assert torch.equal(a["rgb"], b["rgb"]) and all(torch.equal(x, y) for x, y in zip(a["masks"], b["masks"]))
    with pytest.raises(RuntimeError, match="init_process_group"):
        build_train_loader(ds, 2, distributed=True)


def test_train_loader_shards_by_the_process_group(tmp_path):
    """distributed=True reads rank and world size from torch.distributed (a 1-process gloo group here; the
    2-rank split itself is test_infinite_sampler_shards_and_resumes)."""
    import torch.distributed as dist

    spec = write_synthetic_dataset(tmp_path / "syn", 2, seed=1, height=64, width=96)
    ds = RGBDInstanceDataset(spec, CFG_INPUT.__class__(min_size_train=(64,), max_size_train=96), train=True)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        loader = build_train_loader(ds, 1, distributed=True, seed=5)
        assert (loader.sampler.rank, loader.sampler.world_size) == (0, 1)
        assert next(iter(loader))["image_ids"] == next(iter(build_train_loader(ds, 1, seed=5)))["image_ids"]
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------ synthetic writer


def test_synthetic_writer_deterministic_and_readable(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", 3, seed=2, height=64, width=96)
    b = write_synthetic_dataset(tmp_path / "b", 3, seed=2, height=64, width=96)
    c = write_synthetic_dataset(tmp_path / "c", 3, seed=3, height=64, width=96)
    assert a.image_root.name == "RGB" and a.depth_root.name == "depth" and a.json_file.name == "annotations.json"
    ja, jb = json.loads(a.json_file.read_text()), json.loads(b.json_file.read_text())
    assert ja["annotations"] == jb["annotations"] and ja["annotations"] != json.loads(c.json_file.read_text())[
        "annotations"]
    assert (a.depth_root / "000001.png").read_bytes() == (b.depth_root / "000001.png").read_bytes()
    assert len(ja["images"]) == 3 and ja["annotations"] and ja["categories"][0]["id"] == 1
    ds = RGBDInstanceDataset(a, CFG_INPUT, train=False)
    item = ds[0]
    anns = [x for x in ja["annotations"] if x["image_id"] == 1]
    assert item["masks"].shape[0] == len(anns) and item["resized_hw"] == (320, 480)
    # salient instances are the nearest objects: dark in depth (the data sets' near = dark convention)
    for m in item["masks"]:
        assert item["depth"][0][m].float().mean() < 105
    p = write_synthetic_dataset(tmp_path / "p", 2, seed=2, height=64, width=96, segmentation="polygon",
                                image_format="png")
    jp = json.loads(p.json_file.read_text())
    assert isinstance(jp["annotations"][0]["segmentation"], list) and (p.image_root / "000001.png").is_file()
    poly_masks = RGBDInstanceDataset(p, CFG_INPUT, train=False)[0]["masks"]
    assert poly_masks.shape[0] == len([x for x in jp["annotations"] if x["image_id"] == 1])


def test_missing_depth_map_is_named(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "s", 2, seed=0, height=64, width=96)
    (spec.depth_root / "000002.png").unlink()
    ds = RGBDInstanceDataset(spec, CFG_INPUT, train=False)
    with pytest.raises(DatasetError, match=r"depth map not found: .*depth/000002.png"):
        ds[1]
    with pytest.raises(DatasetError, match="annotation file not found"):
        RGBDInstanceDataset(DatasetSpec("x", tmp_path / "none.json", spec.image_root, spec.depth_root), CFG_INPUT,
                            train=False)


def test_names_from_a_json_stay_inside_their_folders(tmp_path):
    """A ``../`` or foreign absolute file name neither reads outside the data set nor writes outside an output
    folder; an absolute name under an absolute root the user gave is fine; a spec's name is a plain name."""
    from calibnet.analysis import write_saliency_maps
    from calibnet.data import dataset_spec_from_json

    spec = write_synthetic_dataset(tmp_path / "set", 2, height=32, width=48)
    root = spec.image_root.resolve()
    assert spec.image_path("a/b.jpg") == spec.image_root / "a/b.jpg"
    absolute = DatasetSpec("s", spec.json_file, root, spec.depth_root.resolve())
    assert absolute.depth_path(str(root / "x" / "1.jpg")) == spec.depth_root.resolve() / "x" / "1.png"
    for bad in ("../../x.jpg", "a/../../x.jpg", "/etc/passwd", str(root.parent / "x.jpg")):
        with pytest.raises(DatasetError, match="outside|leaves"):
            absolute.image_path(bad)
        with pytest.raises(DatasetError, match="outside|leaves"):
            absolute.depth_path(bad)
    with pytest.raises(DatasetError, match="outside"):
        DatasetSpec("s", "a.json", "RGB", "depth").image_path(str(root / "1.jpg"))  # a relative root: none

    data = json.loads(spec.json_file.read_text())
    data["images"][1]["file_name"] = "../../../escaped.jpg"
    spec.json_file.write_text(json.dumps(data))
    out = tmp_path / "deep" / "er" / "maps"
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(DatasetError, match="escaped.jpg"):
        write_saliency_maps(spec, out)
    assert {p for p in tmp_path.rglob("*")} == before  # nothing written, inside or outside

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"name": "../../evil", "json_file": str(spec.json_file),
                                     "image_root": str(spec.image_root), "depth_root": str(spec.depth_root)}))
    with pytest.raises(DatasetError, match="not a plain name"):
        dataset_spec_from_json(spec_file)


def test_depth_augment_of_a_data_set_acts_on_the_depth_as_read(tmp_path):
    import warnings

    from calibnet.data.transforms import DepthAugment
    from calibnet.runtime.core.errors import InputWarning

    root = tmp_path / "d16"
    spec = calibnet.data.write_synthetic_dataset(root, 2, height=64, width=96, image_format="png")
    for p in spec.depth_root.glob("*.png"):  # 16-bit millimetres, as a RealSense writes them
        d8 = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), (300 + 15 * d8.astype(np.uint16)))
    cfg = calibnet.get_config("r18").input
    plain = RGBDInstanceDataset(spec, cfg, train=True)
    missing = RGBDInstanceDataset(spec, cfg, train=True, depth_augment=DepthAugment(1.0, ("missing",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)  # no "no valid pixel" warning for its own corruption
        item = missing[(0, 5)]
    assert (item["depth"] == 255).all()  # no reading at all: the runtime's uniform far map (near-dark)
    ref = plain[(0, 5)]
    assert torch.equal(item["rgb"], ref["rgb"]) and not torch.equal(item["depth"], ref["depth"])
    test_set = RGBDInstanceDataset(spec, cfg, train=False, depth_augment=DepthAugment(1.0, ("missing",)))
    assert torch.equal(test_set[0]["depth"], RGBDInstanceDataset(spec, cfg, train=False)[0]["depth"])
