"""Hungarian matching of predicted instance kernels to ground-truth masks (official CalibNetMatcher).

The score of pairing prediction ``i`` with ground truth ``j`` is ``dice(i, j) ** alpha * p_i ** beta``
(alpha 0.8, beta 0.2), where ``p_i`` is the sigmoid of the class logit and the dice score is computed
on sigmoid mask probabilities against the ground truth resampled (bilinear) to the prediction's
resolution, 1/2 of the padded input. The assignment maximizes the total score per image
(``scipy.optimize.linear_sum_assignment``). Everything here runs without gradients, in float32 even
under autocast, as the official matcher does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = ["HungarianMatcher", "assign", "dice_score_matrix", "resize_targets"]

#: The official dice score and dice loss add this to the denominator.
DICE_EPS = 1e-4


def dice_score_matrix(pred_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice scores [P, T] of ``sigmoid(pred_logits)`` [P, S] and (soft) targets [T, S].

    ``2 <p, t> / (|p|^2 + |t|^2 + 1e-4)`` with squared norms, as the official ``dice_score``.
    """
    probs = pred_logits.sigmoid()
    numerator = 2.0 * probs @ targets.t()
    denominator = (probs * probs).sum(-1)[:, None] + (targets * targets).sum(-1)[None, :]
    return numerator / (denominator + DICE_EPS)


def resize_targets(masks: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Float masks [K, H, W] (padded to the network input) resampled bilinearly to ``size`` (h, w)."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size), dtype=torch.float32)
    return F.interpolate(masks[:, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def assign(scores: Sequence[np.ndarray | torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Maximum-score one-to-one assignment for each image's score matrix [N predictions, K targets].

    Returns ``(pred_index, target_index)`` int64 tensors per image; with K <= N every target is
    assigned exactly once.
    """
    out = []
    for s in scores:
        s_np = s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)
        rows, cols = linear_sum_assignment(s_np, maximize=True)  # empty index arrays for an empty matrix
        out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return out


class HungarianMatcher:
    """Assigns each ground-truth instance to one prediction: ``dice ** alpha * class_prob ** beta``."""

    def __init__(self, alpha: float = 0.8, beta: float = 0.2) -> None:
        self.alpha = alpha
        self.beta = beta

    @torch.no_grad()
    def score_matrices(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor,
                       targets: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per image the score matrix [N, K_i].

        ``pred_logits`` [B, N, 1] class logits, ``pred_masks`` [B, N, h, w] mask logits, ``targets``
        per image float masks [K_i, h, w] already at the prediction resolution.
        """
        B, N = pred_masks.shape[:2]
        with torch.autocast(device_type=pred_masks.device.type, enabled=False):
            probs = pred_logits.float().sigmoid()
            masks = pred_masks.float().flatten(2)
            out = []
            for b in range(B):
                tgt = targets[b].float().flatten(1)
                if tgt.shape[0] == 0:
                    out.append(masks.new_zeros((N, 0)))
                    continue
                dice = dice_score_matrix(masks[b], tgt)
                # class-agnostic: every target has class 0, so the class term is one column repeated
                prob = probs[b, :, 0:1].expand(-1, tgt.shape[0])
                out.append(dice.clamp(min=0) ** self.alpha * prob ** self.beta)
        return out

    @torch.no_grad()
    def __call__(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor,
                 targets: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(pred_index, target_index)`` per image; see :meth:`score_matrices` for the inputs."""
        return assign(self.score_matrices(pred_logits, pred_masks, targets))
