"""Training-only coarse saliency predictors (``predictor_rgb``, ``predictor_depth``, ...)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CoarsePredictor"]


class CoarsePredictor(nn.Module):
    """3x3 conv + GroupNorm + GELU + 1x1 conv -> one saliency logit map."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = nn.Conv2d(in_channels, mid, 3, padding=1)
        self.norm = nn.GroupNorm(32, mid)
        self.activation = nn.GELU()
        self.conv2 = nn.Conv2d(mid, 1, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.constant_(conv.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.activation(self.norm(self.conv1(x))))
