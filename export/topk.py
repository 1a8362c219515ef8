"""In-graph NMS-free selection (export option ``topk=K``): only the K kept masks are computed.

:class:`TopKDeploy` reuses the submodules and methods of a :class:`calibnet.CalibNet` (the decoder's
``kernels`` and ``masks``; nothing is copied or retrained) and runs the official inference selection inside
the graph:

1. score = sqrt(sigmoid(class logit) * sigmoid(objectness)) for the N kernels;
2. TopK (sorted, descending) -> ``keep_index`` [B,K]; gather the K kernels;
3. masks = kernels x mask features for those K only (then the x2 upsampling), ``masks`` = sigmoid;
4. rescoring: score x mean probability inside the mask binarized at ``mask_threshold`` (official 0.45);
5. kernels whose step-1 score is <= ``cls_threshold`` (official 0.005) get score ``-1`` (the official code
   drops them; K is static, so they are flagged instead — a runtime keeps ``scores >= 0``).

Outputs: ``scores`` [B,K], ``masks`` [B,K,H/2,W/2] (probabilities), ``depth_trust`` [B,3], ``keep_index``
[B,K] int64. Same kept instances, scores and masks as the selection after a full-output graph
(calibnet.runtime.core.postprocess.select_instances) whenever K >= the number of kernels above the threshold
or max_detections <= K.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TopKDeploy", "BELOW_THRESHOLD_SCORE"]

BELOW_THRESHOLD_SCORE = -1.0


class TopKDeploy(nn.Module):
    """(rgb, depth, valid_hw) -> (scores, masks, depth_trust, keep_index) with in-graph selection."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        n = model.cfg.decoder.num_kernels
        if not 1 <= k <= n:
            raise ValueError(f"topk must be in 1..{n} (the number of kernels), got {k}")
        self.model = model
        self.k = k
        self.cls_threshold = float(model.cfg.inference.cls_threshold)
        self.mask_threshold = float(model.cfg.inference.mask_threshold)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor,
                valid_hw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        rgb_n, depth_n = m.normalize(rgb, depth, valid_hw)
        feats, feats_d = m.features(rgb_n, depth_n)
        mask_features, dsa_mask = m.fusion_decoder(feats, feats_d)
        logits, kernels, objectness, dsa = m.decoder.kernels(feats[2], feats_d[2])
        score = torch.sqrt(torch.sigmoid(logits[..., 0]) * torch.sigmoid(objectness[..., 0]))  # [B,N]
        top, keep = torch.topk(score, self.k, dim=1)
        picked = torch.gather(kernels, 1, keep[..., None].expand(-1, -1, kernels.shape[2]))  # [B,K,D]
        probs = torch.sigmoid(m.decoder.masks(picked, mask_features))
        binary = (probs > self.mask_threshold).to(probs.dtype)
        rescore = (probs * binary).sum((2, 3)) / (binary.sum((2, 3)) + 1e-6)
        scores = torch.where(top > self.cls_threshold, top * rescore, torch.full_like(top, BELOW_THRESHOLD_SCORE))
        depth_trust = torch.stack([dsa, *dsa_mask], dim=1)
        return scores, probs, depth_trust, keep
