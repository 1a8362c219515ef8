"""Kernel branch (``decoder``): DSA re-weights depth, DIK turns attention maps into instance kernels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DecoderConfig
from .common import conv3x3_relu_stack, coordinate_features, depth_similarity

__all__ = ["CalibNetDecoder", "DynamicInteractiveKernel"]


class DynamicInteractiveKernel(nn.Module):
    """DIK (``decoder.inst_branch``): grouped instance-aware maps of both modalities -> N kernels.

    Follows the official code rather than the paper: the kernel convs are grouped (4 groups) and
    give 4N maps per modality; maps are normalized per map, RGB and depth maps are concatenated
    (8N), multiplied with the RGB features, regrouped to 2N x 4C, squeezed 2N -> N, then a 4C-wide fc.
    """

    def __init__(self, in_channels: int, dim: int, num_kernels: int, kernel_dim: int, num_classes: int = 1,
                 num_groups: int = 4) -> None:
        super().__init__()
        self.num_groups = num_groups
        expand_dim = dim * num_groups
        self.inst_convs = conv3x3_relu_stack(1, in_channels, dim)
        self.inst_convs_depth = conv3x3_relu_stack(1, in_channels, dim)
        self.kernel_conv = nn.Conv2d(dim, num_kernels * num_groups, 3, padding=1, groups=num_groups)
        self.kernel_conv_depth = nn.Conv2d(dim, num_kernels * num_groups, 3, padding=1, groups=num_groups)
        self.fc = nn.Linear(expand_dim, expand_dim)
        self.squeeze = nn.Linear(2 * num_kernels, num_kernels)
        self.score_linear = nn.Linear(expand_dim, num_classes)
        self.mask_linear = nn.Linear(expand_dim, kernel_dim)
        self.objectness = nn.Linear(expand_dim, 1)
        self.reset_parameters()

    def reset_parameters(self, prior_prob: float = 0.01) -> None:
        """The official initialization (focal-loss prior on scores and kernel maps)."""
        for m in [*self.inst_convs.modules(), *self.inst_convs_depth.modules()]:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        for m in (self.kernel_conv, self.kernel_conv_depth, self.score_linear):
            nn.init.constant_(m.bias, bias_value)
            nn.init.normal_(m.weight, std=0.01)
        nn.init.normal_(self.mask_linear.weight, std=0.01)
        nn.init.constant_(self.mask_linear.bias, 0.0)
        for m in (self.fc, self.squeeze):
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.constant_(m.bias, 0)

    @staticmethod
    def _normalized_maps(conv: nn.Module, feat: torch.Tensor) -> torch.Tensor:
        maps = conv(feat).sigmoid().flatten(2)
        return maps / maps.sum(-1).clamp(min=1e-6)[:, :, None]

    def forward(self, feat_rgb: torch.Tensor, feat_depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Returns (class logits [B,N,C], kernels [B,N,D], objectness logits [B,N,1])."""
        feat_rgb = self.inst_convs(feat_rgb)
        feat_depth = self.inst_convs_depth(feat_depth)
        maps = torch.cat(
            [
                self._normalized_maps(self.kernel_conv, feat_rgb),
                self._normalized_maps(self.kernel_conv_depth, feat_depth),
            ],
            dim=1,
        )  # [B, 8N, HW]
        B, M2, _ = maps.shape  # M2 = 2 * groups * N
        C = feat_rgb.shape[1]
        inst = torch.bmm(maps, feat_rgb.flatten(2).transpose(1, 2))  # [B, 8N, C]
        per_group = M2 // self.num_groups
        inst = inst.reshape(B, self.num_groups, per_group, C).transpose(1, 2).reshape(B, per_group, self.num_groups * C)
        inst = F.relu(self.squeeze(inst.transpose(1, 2))).transpose(1, 2)  # [B, N, 4C]
        inst = F.relu(self.fc(inst))
        return self.score_linear(inst), self.mask_linear(inst), self.objectness(inst)


class CalibNetDecoder(nn.Module):
    """``decoder``: DSA on the T3 features, DIK kernels, masks = kernels x mask features (x2 upsampled)."""

    def __init__(self, cfg: DecoderConfig, mask_dim: int, num_classes: int = 1) -> None:
        super().__init__()
        self.scale_factor = cfg.scale_factor
        self.inst_branch = DynamicInteractiveKernel(cfg.input_channels + 2, cfg.conv_dim, cfg.num_kernels, mask_dim,
                                                    num_classes, cfg.num_groups)
        self.rgb_input = nn.Sequential(nn.Conv2d(cfg.input_channels, 1, 1))
        self.depth_input = nn.Sequential(nn.Conv2d(cfg.input_channels, 1, 1))
        for seq in (self.rgb_input, self.depth_input):
            nn.init.kaiming_normal_(seq[0].weight)
            nn.init.constant_(seq[0].bias, 0)

    def kernels(self, feat_rgb: torch.Tensor, feat_depth: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """DSA re-weights the depth T3 features, DIK makes the kernels: (class logits [B,N,C], kernels [B,N,D],
        objectness logits [B,N,1], DSA score [B])."""
        coords = coordinate_features(feat_rgb)
        dsa = depth_similarity(self.rgb_input, self.depth_input, feat_rgb, feat_depth)
        B = feat_rgb.shape[0]
        feat_depth = dsa.view(B, 1, 1, 1) * feat_depth
        logits, kernels, objectness = self.inst_branch(
            torch.cat([feat_rgb, coords], dim=1), torch.cat([feat_depth, coords], dim=1)
        )
        return logits, kernels, objectness, dsa

    def masks(self, kernels: torch.Tensor, mask_features: torch.Tensor) -> torch.Tensor:
        """Mask logits of any K kernels [B,K,D] x mask features [B,D,H,W] -> [B,K,H,W] (x ``scale_factor``)."""
        B, K = kernels.shape[:2]
        _, C, H, W = mask_features.shape
        masks = torch.bmm(kernels, mask_features.reshape(B, C, H * W)).reshape(B, K, H, W)
        if self.scale_factor != 1:
            masks = F.interpolate(masks, scale_factor=float(self.scale_factor), mode="bilinear", align_corners=False)
        return masks

    def forward(self, feat_rgb: torch.Tensor, feat_depth: torch.Tensor,
                mask_features: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, kernels, objectness, dsa = self.kernels(feat_rgb, feat_depth)
        return {
            "pred_logits": logits,
            "pred_masks": self.masks(kernels, mask_features),
            "pred_scores": objectness,
            "pred_kernels": kernels,
            "dsa_kernel": dsa,
        }
