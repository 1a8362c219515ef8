"""RGB-D instance data sets: the official COCO-json layouts, augmentation, loaders, synthetic scenes.

Importing ``calibnet.data`` does not import torch: the specs, the registry, json reading, image reading
(:mod:`calibnet.runtime.core.readers`), the numpy transforms and the synthetic writer
work without it; the PyTorch names below (``RGBDInstanceDataset``, ``collate_rgbd``, ``build_train_loader``,
``build_test_loader``, ``InfiniteSampler``) are loaded on first use.

Typical use::

    from calibnet import get_config
    from calibnet.data import RGBDInstanceDataset, build_train_loader, get_dataset_spec

    spec = get_dataset_spec("come15k_train", "/data/rgbdsis")   # or write_synthetic_dataset("syn", 200)
    ds = RGBDInstanceDataset(spec, get_config("r50").input, train=True)
    batch = next(iter(build_train_loader(ds, batch_size=4, num_workers=4)))
"""

from __future__ import annotations

from ..lazy import lazy_attributes, lazy_names
from ..runtime.core.readers import read_depth, read_rgb
from .coco import ImageRecord, decode_segmentation, load_records, rasterize_polygons
from .registry import (
    OFFICIAL_DATASETS,
    DatasetError,
    DatasetSpec,
    dataset_names,
    dataset_spec_from_json,
    default_depth_root,
    get_dataset_spec,
    register_dataset,
    resolve_data_root,
    resolve_dataset,
)
from .synthetic import Scene, make_scene, synthetic_dataset_spec, write_synthetic_dataset
from .transforms import GeometricTransform, sample_train_transform, test_transform

_LAZY = {"calibnet.data.dataset": ("RGBDInstanceDataset", "collate_rgbd", "build_train_loader", "build_test_loader",
                                   "InfiniteSampler")}

__all__ = [
    "OFFICIAL_DATASETS", "DatasetError", "DatasetSpec", "GeometricTransform", "ImageRecord", "Scene",
    "dataset_names", "dataset_spec_from_json", "decode_segmentation", "default_depth_root",
    "get_dataset_spec", "load_records", "make_scene", "rasterize_polygons", "read_depth", "read_rgb",
    "register_dataset", "resolve_data_root", "resolve_dataset", "sample_train_transform",
    "synthetic_dataset_spec", "test_transform", "write_synthetic_dataset", *lazy_names(_LAZY),
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
