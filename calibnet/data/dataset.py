"""PyTorch side of the data: the RGB-D instance data set, the padding collate and the loaders.

Randomness is keyed, not global: item ``i`` drawn with key ``(i, *entropy)`` (what the training
sampler yields) uses ``numpy.random.default_rng([i, *entropy])``, and plain ``dataset[i]`` uses
``default_rng(i)``. The same key gives the same augmentation in any worker process, so a run is
reproducible whatever ``num_workers`` is, and a resumed run can replay the data stream exactly.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler

from ..runtime.core.depth import depth_to_u8
from ..runtime.core.errors import InputError, InputWarning
from ..runtime.core.readers import read_depth, read_rgb
from .coco import ImageRecord, decode_segmentation, load_records, rasterize_polygons
from .registry import DatasetError, DatasetSpec
from .transforms import DEPTH_AUGMENT_STREAM, DepthAugment, GeometricTransform, sample_train_transform, test_transform

__all__ = ["InfiniteSampler", "RGBDInstanceDataset", "build_test_loader", "build_train_loader", "collate_rgbd"]


class RGBDInstanceDataset(Dataset):
    """A COCO-json RGB-D instance data set with the official train (or test) transforms.

    Args:
        spec: where the json, the RGB images and the depth maps are (:class:`DatasetSpec`).
        cfg_input: ``CalibNetConfig.input`` (sizes, crop settings, ``size_divisibility``).
        train: the official train augmentation (flip, random resize+crop, shortest-edge resize) when
            True; the test resize only when False.
        depth_augment: depth-sensor failures applied to the depth as read, before the transforms
            (:class:`~calibnet.data.transforms.DepthAugment`; training items only).

    Each item is a dict: ``rgb`` uint8 [3,h,w] (RGB order), ``depth`` uint8 [1,h,w], ``masks`` bool
    [K,h,w] (K may be 0; instances emptied by a crop are dropped), ``image_id`` int, ``file_name`` str
    (the RGB path), ``orig_hw`` (H0, W0) of the file, ``resized_hw`` (h, w) after the transforms.
    """

    def __init__(self, spec: DatasetSpec, cfg_input: Any, train: bool,
                 depth_augment: DepthAugment | None = None) -> None:
        spec.check()
        self.depth_augment = depth_augment
        self.spec = spec
        self.cfg_input = cfg_input
        self.train = bool(train)
        self.size_divisibility = int(getattr(cfg_input, "size_divisibility", 32))
        self.records: list[ImageRecord] = load_records(spec)
        if not self.records:
            raise DatasetError(f"{spec.name}: {spec.json_file} lists no images")

    def __len__(self) -> int:
        return len(self.records)

    def load_raw(self, index: int, depth_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                          ImageRecord]:
        """RGB [H0,W0,3] and depth [H0,W0] uint8 of one image, sizes checked against the json (depth maps of
        more than 8 bits converted as :func:`calibnet.runtime.core.depth.depth_to_u8` does). With ``depth_rng``
        and the data set's ``depth_augment``, the depth as read is corrupted first (draws from ``depth_rng``)."""
        rec = self.records[index]
        rgb_path = self.spec.image_path(rec.file_name)
        depth_path = self.spec.depth_path(rec.file_name)
        try:
            rgb = read_rgb(rgb_path)
            raw = read_depth(depth_path)
            if self.depth_augment is not None and depth_rng is not None:
                raw = self.depth_augment(raw, depth_rng)
            with warnings.catch_warnings():  # a map corrupted to "missing" is meant to have no valid pixel
                warnings.simplefilter("ignore", InputWarning)
                depth = depth_to_u8(raw)  # 16-bit / float maps: the runtime's conversion
        except InputError as exc:
            raise DatasetError(str(exc)) from None
        h0, w0 = rgb.shape[:2]
        if rec.height is not None and rec.width is not None and (int(rec.height), int(rec.width)) != (h0, w0):
            raise DatasetError(f"{rgb_path}: image is {h0}x{w0} but {self.spec.json_file} says "
                               f"{rec.height}x{rec.width}")
        if depth.shape != (h0, w0):
            raise DatasetError(f"{depth_path}: depth map is {depth.shape[0]}x{depth.shape[1]}, its image "
                               f"{rgb_path} is {h0}x{w0}")
        return rgb, depth, rec

    def _masks(self, rec: ImageRecord, t: GeometricTransform) -> np.ndarray:
        h0, w0 = t.input_hw
        h, w = t.output_hw
        out = np.zeros((len(rec.segmentations), h, w), dtype=bool)
        for k, seg in enumerate(rec.segmentations):
            if isinstance(seg, dict):
                out[k] = t.apply_masks(decode_segmentation(seg, h0, w0)[None])[0]
            else:
                out[k] = rasterize_polygons(t.apply_polygons(seg), h, w)
        return out[out.any(axis=(1, 2))]

    def __getitem__(self, key: int | Sequence[int]) -> dict[str, Any]:
        entropy = [int(k) for k in key] if isinstance(key, (tuple, list)) else [int(key)]  # type: ignore[arg-type]
        index, rng = entropy[0], np.random.default_rng(entropy)  # default_rng([i]) draws as default_rng(i)
        depth_rng = np.random.default_rng([*entropy, DEPTH_AUGMENT_STREAM]) if self.train else None
        rgb, depth, rec = self.load_raw(index, depth_rng)
        h0, w0 = rgb.shape[:2]
        t = sample_train_transform(rng, h0, w0, self.cfg_input) if self.train else test_transform(h0, w0,
                                                                                                   self.cfg_input)
        rgb_t = t.apply_image(rgb)
        depth_t = t.apply_image(depth)
        masks = self._masks(rec, t)
        h, w = rgb_t.shape[:2]
        return {
            "rgb": torch.from_numpy(np.require(rgb_t.transpose(2, 0, 1), requirements=["C", "W"])),
            "depth": torch.from_numpy(np.require(depth_t[None], requirements=["C", "W"])),
            "masks": torch.from_numpy(np.require(masks, requirements=["C", "W"])),
            "image_id": rec.image_id,
            "file_name": str(self.spec.image_path(rec.file_name)),
            "orig_hw": (h0, w0),
            "resized_hw": (h, w),
        }


def collate_rgbd(items: Sequence[dict[str, Any]], size_divisibility: int = 32) -> dict[str, Any]:
    """Pad a list of :class:`RGBDInstanceDataset` items into one batch.

    Returns ``rgb`` float32 [B,3,H,W] (0..255, zero-padded bottom/right), ``depth`` float32 [B,1,H,W],
    ``image_sizes`` int64 [B,2] (valid h, w), ``masks`` list of bool [K_i,H,W] zero-padded, ``image_ids``,
    ``file_names``, ``orig_hw``; H and W are the largest h and w rounded up to ``size_divisibility``.
    """
    if not items:
        raise ValueError("collate_rgbd needs at least one item")
    d = max(1, int(size_divisibility))
    H = -(-max(int(it["rgb"].shape[1]) for it in items) // d) * d
    W = -(-max(int(it["rgb"].shape[2]) for it in items) // d) * d
    B = len(items)
    # filled in numpy and wrapped once: torch's strided uint8 -> float copies are much slower on CPU
    rgb = np.zeros((B, 3, H, W), dtype=np.float32)
    depth = np.zeros((B, 1, H, W), dtype=np.float32)
    sizes = np.zeros((B, 2), dtype=np.int64)
    masks = []
    for b, it in enumerate(items):
        h, w = int(it["rgb"].shape[1]), int(it["rgb"].shape[2])
        rgb[b, :, :h, :w] = np.asarray(it["rgb"])
        depth[b, :, :h, :w] = np.asarray(it["depth"])
        sizes[b] = (h, w)
        m = np.zeros((int(it["masks"].shape[0]), H, W), dtype=bool)
        m[:, :h, :w] = np.asarray(it["masks"])
        masks.append(torch.from_numpy(m))
    return {"rgb": torch.from_numpy(rgb), "depth": torch.from_numpy(depth), "image_sizes": torch.from_numpy(sizes),
            "masks": masks,
            "image_ids": [int(it["image_id"]) for it in items], "file_names": [str(it["file_name"]) for it in items],
            "orig_hw": [tuple(it["orig_hw"]) for it in items]}


class InfiniteSampler(Sampler):
    """An endless shuffled stream of keys ``(index, seed, epoch)`` for :class:`RGBDInstanceDataset`.

    Epoch ``e`` is the permutation ``default_rng([seed, e]).permutation(size)``; the global stream is
    the concatenation of the epochs, and rank ``r`` of ``world_size`` takes elements ``r, r+world, ...``
    of it (detectron2's ``TrainingSampler`` scheme), so the ranks see disjoint samples in equal numbers.
    ``start`` skips that many of this rank's samples (resume at iteration ``i``: ``start = i * batch``).
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 start: int = 0) -> None:
        if size <= 0:
            raise ValueError("InfiniteSampler needs a non-empty data set")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.shuffle, self.start = shuffle, start

    def _global(self) -> Iterator[tuple[int, int, int]]:
        for epoch in itertools.count():
            order = (np.random.default_rng([self.seed, epoch]).permutation(self.size) if self.shuffle
                     else np.arange(self.size))
            for i in order:
                yield int(i), self.seed, epoch

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return itertools.islice(self._global(), self.rank + self.start * self.world_size, None, self.world_size)


def _collate(dataset: RGBDInstanceDataset) -> functools.partial:
    """Picklable collate with the data set's divisor (worker processes may be spawned)."""
    return functools.partial(collate_rgbd, size_divisibility=int(getattr(dataset, "size_divisibility", 32)))


def build_train_loader(dataset: RGBDInstanceDataset, batch_size: int, num_workers: int = 0,
                       distributed: bool = False, seed: int = 0, *, start_iter: int = 0) -> DataLoader:
    """An INFINITE DataLoader of :func:`collate_rgbd` batches (never raises StopIteration).

    ``batch_size`` is per process. With ``distributed`` the stream is sharded by the rank and world size
    of the initialized ``torch.distributed`` group (see :class:`InfiniteSampler`; this replaces
    ``DistributedSampler``, which is epoch-based). ``seed`` fixes order and augmentation;
    ``start_iter`` skips the first ``start_iter`` batches of this process, so a resumed run continues
    the same stream. Batches are identical for any ``num_workers``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world = 0, 1
    if distributed:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("distributed=True needs torch.distributed.init_process_group() first "
                               "(e.g. under torchrun)")
        rank, world = dist.get_rank(), dist.get_world_size()
    sampler = InfiniteSampler(len(dataset), seed=seed, rank=rank, world_size=world, start=start_iter * batch_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      collate_fn=_collate(dataset),
                      persistent_workers=num_workers > 0)


def build_test_loader(dataset: RGBDInstanceDataset, batch_size: int = 1, num_workers: int = 0) -> DataLoader:
    """A finite, ordered DataLoader over ``dataset`` (one pass, every image once)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=_collate(dataset))
