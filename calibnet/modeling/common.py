"""Small building blocks shared by the kernel and mask branches."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["coordinate_features", "depth_similarity", "conv3x3_relu_stack", "conv_gn_relu"]


def coordinate_features(x: torch.Tensor) -> torch.Tensor:
    """[B, 2, H, W] normalized (x, y) coordinates in [-1, 1] for the spatial size of ``x``."""
    B, _, h, w = x.shape
    y_loc = -1.0 + 2.0 * torch.arange(h, device=x.device) / (h - 1)
    x_loc = -1.0 + 2.0 * torch.arange(w, device=x.device) / (w - 1)
    y_grid = y_loc[:, None].expand(h, w)
    x_grid = x_loc[None, :].expand(h, w)
    loc = torch.stack([x_grid, y_grid], 0)[None].expand(B, -1, -1, -1)
    return loc.to(x)


def depth_similarity(rgb_proj: nn.Module, depth_proj: nn.Module, rgb_feat: torch.Tensor,
                     depth_feat: torch.Tensor) -> torch.Tensor:
    """Depth similarity assessment (DSA): 1 - (1 - cos)/2 of the flattened 1x1-conv maps, shape [B].

    A value near 1 means the depth map agrees with the RGB evidence; near 0 means the depth is
    distrusted and its features are scaled down.
    """
    B = rgb_feat.shape[0]
    r = rgb_proj(rgb_feat).reshape(B, -1)
    d = depth_proj(depth_feat).reshape(B, -1)
    cos = torch.nn.functional.cosine_similarity(r, d, dim=1)
    return 1 - (1 - cos) / 2.0


def conv3x3_relu_stack(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` x (3x3 conv with bias + ReLU)."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv without bias + GroupNorm(32) + ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.GroupNorm(32, out_channels), nn.ReLU(inplace=True))
