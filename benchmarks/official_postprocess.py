"""The official CalibNet post-processing (``CalibNet.inference`` of github PJLallen/CalibNet), re-written in
PyTorch as the baseline of the post-processing benchmark. Benchmark code only: the runtime never imports it
(nor torch).

Steps, as the official code takes them: sigmoid of the class logits, the objectness logits and *all* mask
logits; score = sqrt(class probability x objectness); keep kernels with score > ``cls_threshold`` (in kernel
order); rescoring by the mean mask probability inside the mask binarized at ``mask_threshold``; the kept
masks are upsampled to the padded network input (``F.interpolate``, bilinear, ``align_corners=False``),
cropped to the resized image, upsampled to the original image size the same way and binarized at
``mask_threshold``. The official code never applies ``max_detections`` (its kernel count, 50, equals it);
here a larger selection is cut to the ``max_detections`` highest scores, kept in kernel order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["official_inference"]


def official_inference(pred_logits: Any, pred_scores: Any, pred_masks: Any, image_sizes: Sequence[Sequence[int]],
                       original_sizes: Sequence[Sequence[int]], padded_hw: Sequence[int],
                       cls_threshold: float = 0.005, mask_threshold: float = 0.45,
                       max_detections: int = 50) -> list[dict[str, Any]]:
    """Official post-processing of a batch of raw outputs.

    ``pred_logits``, ``pred_scores`` (objectness logits): float tensors [B,N,1]; ``pred_masks``: mask logits
    [B,N,h,w]; ``image_sizes``: the resized (valid) (h, w) of each image; ``original_sizes``: (H0, W0) of each
    image; ``padded_hw``: the network input (H, W). Returns one dict per image with ``"scores"`` (float [K])
    and ``"masks"`` (bool [K,H0,W0]), in kernel-index order.
    """
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        cls_prob = pred_logits.sigmoid()
        mask_prob = pred_masks.sigmoid()
        objectness = pred_scores.sigmoid()
        scores_all = torch.sqrt(cls_prob * objectness)
        max_shape = (int(padded_hw[0]), int(padded_hw[1]))
        results: list[dict[str, Any]] = []
        for scores_img, masks_img, (h, w), ori in zip(scores_all, mask_prob, image_sizes, original_sizes):
            ori_shape = (int(ori[0]), int(ori[1]))
            scores, _labels = scores_img.max(dim=-1)
            keep = scores > cls_threshold
            if int(keep.sum()) > max_detections:  # never taken for the official 50 kernels
                top = torch.topk(torch.where(keep, scores, torch.full_like(scores, -1.0)), max_detections).indices
                keep = torch.zeros_like(keep)
                keep[top] = True
            scores = scores[keep]
            masks = masks_img[keep]
            if scores.numel() == 0:
                results.append({"scores": scores, "masks": torch.zeros((0, *ori_shape), dtype=torch.bool)})
                continue
            binary = (masks > mask_threshold).float()
            scores = scores * ((masks * binary).sum([1, 2]) / (binary.sum([1, 2]) + 1e-6))
            masks = F.interpolate(masks.unsqueeze(1), size=max_shape, mode="bilinear",
                                  align_corners=False)[:, :, : int(h), : int(w)]
            masks = F.interpolate(masks, size=ori_shape, mode="bilinear", align_corners=False).squeeze(1)
            results.append({"scores": scores, "masks": masks > mask_threshold})
        return results
