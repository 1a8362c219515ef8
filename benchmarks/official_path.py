"""The official-style PyTorch path, the baseline every backend's speed-up is measured against.

What the official CalibNet test path (detectron2) does per frame, re-enacted step by step:

1. pre-processing: ``ResizeShortestEdge`` with Pillow (``Image.resize(..., BILINEAR)`` of the uint8 image)
   for the RGB image and for the depth map, which the official mapper reads as a 3-channel gray image;
   ``torch.as_tensor`` of the HWC arrays as CHW; normalization with the pixel mean/std (RGB statistics
   for depth too) and zero padding bottom/right to a multiple of 32 (``ImageList.from_tensors``), in torch;
2. inference: the eager PyTorch network on the normalized tensors, with the pure-PyTorch (``grid_sample``)
   multi-scale deformable attention, which is :mod:`calibnet.modeling.msda`'s default and the computation
   of the official CPU fallback ``ms_deform_attn_core_pytorch``;
3. post-processing: the official ``CalibNet.inference`` in torch
   (:func:`calibnet.benchmarks.official_postprocess.official_inference`).

In detectron2 the normalization and padding run inside the model's ``forward``; here they are timed as
pre-processing, where the deployment runtime does its own preparation, so that the stages compare like
with like.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from calibnet.runtime.core.resize import shortest_edge_size

from .official_postprocess import official_inference

__all__ = ["OfficialFrame", "official_preprocess", "forward_normalized", "OfficialStylePath"]


@dataclass
class OfficialFrame:
    """A batch prepared the official way: normalized, padded tensors and the sizes post-processing needs."""

    images: torch.Tensor  # float [B,3,H,W], normalized, zero padding
    depths: torch.Tensor  # float [B,3,H,W], normalized, zero padding
    image_sizes: list[tuple[int, int]]  # resized (h, w)
    original_sizes: list[tuple[int, int]]  # (H0, W0)

    @property
    def padded_hw(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])


def _pil_resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == hw:
        return img
    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.Resampling.BILINEAR))


def _pad_batch(tensors: Sequence[torch.Tensor], divisor: int) -> torch.Tensor:
    H = max(int(t.shape[-2]) for t in tensors)
    W = max(int(t.shape[-1]) for t in tensors)
    H, W = -(-H // divisor) * divisor, -(-W // divisor) * divisor
    out = tensors[0].new_zeros((len(tensors), tensors[0].shape[0], H, W))
    for i, t in enumerate(tensors):
        out[i, :, : t.shape[-2], : t.shape[-1]].copy_(t)
    return out


def official_preprocess(rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray], short: int, max_size: int,
                        pixel_mean: Sequence[float], pixel_std: Sequence[float], divisor: int = 32) -> OfficialFrame:
    """Resize (Pillow), convert, normalize and pad RGB uint8 [H,W,3] frames and uint8 [H,W] depth maps."""
    mean = torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(pixel_std, dtype=torch.float32).view(3, 1, 1)
    imgs: list[torch.Tensor] = []
    deps: list[torch.Tensor] = []
    sizes: list[tuple[int, int]] = []
    originals: list[tuple[int, int]] = []
    for rgb, depth in zip(rgbs, depths):
        h0, w0 = rgb.shape[:2]
        hw = shortest_edge_size(h0, w0, short, max_size)
        depth3 = np.repeat(depth[:, :, None], 3, axis=2) if depth.ndim == 2 else depth
        for src, dst in ((rgb, imgs), (depth3, deps)):
            arr = _pil_resize(np.ascontiguousarray(src), hw)
            t = torch.as_tensor(np.ascontiguousarray(arr.transpose(2, 0, 1))).float()
            dst.append((t - mean) / std)
        sizes.append(hw)
        originals.append((h0, w0))
    return OfficialFrame(_pad_batch(imgs, divisor), _pad_batch(deps, divisor), sizes, originals)


def forward_normalized(model: nn.Module, images: torch.Tensor, depths: torch.Tensor) -> dict[str, torch.Tensor]:
    """``CalibNet.forward`` on already normalized, zero-padded inputs (the official network call):
    backbones and encoders, mask branch, kernel branch. Returns the decoder's raw outputs."""
    feats, feats_d = model.features(images, depths)  # type: ignore[operator]
    mask_features, _ = model.fusion_decoder(feats, feats_d)  # type: ignore[operator]
    return model.decoder(feats[2], feats_d[2], mask_features)  # type: ignore[operator]


class OfficialStylePath:
    """Runs the official-style path on fixed frames; :meth:`run_once` returns seconds per stage."""

    name = "official"

    def __init__(self, model: nn.Module, rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray]) -> None:
        self.model = model.eval()
        cfg: Any = model.cfg
        self.rgbs, self.depths = list(rgbs), list(depths)
        self.short, self.max_size = cfg.input.min_size_test, cfg.input.max_size_test
        self.divisor = cfg.input.size_divisibility
        self.mean, self.std = tuple(cfg.pixel_mean), tuple(cfg.pixel_std)
        inf = cfg.inference
        self.thresholds = {"cls_threshold": inf.cls_threshold, "mask_threshold": inf.mask_threshold,
                           "max_detections": inf.max_detections}
        self.last_results: list[dict[str, Any]] = []
        self.network_hw = self.prepare().padded_hw

    def prepare(self) -> OfficialFrame:
        """Pre-processing only."""
        return official_preprocess(self.rgbs, self.depths, self.short, self.max_size, self.mean, self.std,
                                   self.divisor)

    def run_once(self) -> dict[str, float]:
        """One end-to-end pass; seconds for ``pre``, ``infer``, ``post`` and ``e2e``."""
        t0 = time.perf_counter()
        frame = self.prepare()
        t1 = time.perf_counter()
        with torch.no_grad():
            out = forward_normalized(self.model, frame.images, frame.depths)
        t2 = time.perf_counter()
        self.last_results = official_inference(out["pred_logits"], out["pred_scores"], out["pred_masks"],
                                               frame.image_sizes, frame.original_sizes, frame.padded_hw,
                                               **self.thresholds)
        t3 = time.perf_counter()
        return {"pre": t1 - t0, "infer": t2 - t1, "post": t3 - t2, "e2e": t3 - t0}
