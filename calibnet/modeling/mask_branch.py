"""Mask branch (``fusion_decoder``): weight-sharing fusion (WSF) of RGB and depth, mask features."""

from __future__ import annotations

import torch
from torch import nn

from ..config import FusionDecoderConfig
from .common import conv3x3_relu_stack, conv_gn_relu, coordinate_features, depth_similarity

__all__ = ["SpatialAttention", "WeightSharingFusion", "TwoScaleFusionDecoder", "SingleScaleFusionDecoder",
           "build_mask_branch"]


class SpatialAttention(nn.Module):
    """3x3 conv + BN + ReLU features and a 7x7 conv over their channel mean/max -> sigmoid map."""

    def __init__(self, input_dim: int, conv_dim: int) -> None:
        super().__init__()
        self.feat_conv = nn.Sequential(
            nn.Conv2d(input_dim, conv_dim, 3, padding=1), nn.BatchNorm2d(conv_dim), nn.ReLU()
        )
        self.attn_conv = nn.Conv2d(2, 1, kernel_size=7, padding=3)
        for conv in (self.feat_conv[0], self.attn_conv):
            nn.init.kaiming_normal_(conv.weight)
            nn.init.constant_(conv.bias, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.feat_conv(x)
        pooled = torch.cat([feat.mean(dim=1, keepdim=True), feat.amax(dim=1, keepdim=True)], dim=1)
        return feat, torch.sigmoid(self.attn_conv(pooled))


class WeightSharingFusion(nn.Module):
    """WSF: spatial attention per modality, DSA on depth, cross-modal affinity refinement, fusion.

    The affinity is W_rgb x W_depth^T (an h x h matrix), passed through a 1x1 conv + ReLU and a
    softmax over all h*h entries per modality; the refined maps are W + g * (A x W).
    """

    def __init__(self, input_dim: int, conv_dim: int) -> None:
        super().__init__()
        self.spatial_attn_rgb = SpatialAttention(input_dim, conv_dim)
        self.spatial_attn_depth = SpatialAttention(input_dim, conv_dim)
        self.depth_conv = conv_gn_relu(conv_dim, conv_dim)
        self.smooth_conv = conv_gn_relu(conv_dim, conv_dim)
        self.rgb_weight_mlp = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
        self.depth_weight_mlp = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
        self.g1 = nn.Parameter(torch.ones(1))
        self.g2 = nn.Parameter(torch.ones(1))
        self.rgb_input = nn.Sequential(nn.Conv2d(input_dim, 1, 1))
        self.depth_input = nn.Sequential(nn.Conv2d(input_dim, 1, 1))

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (fused features [B,C,h,w], DSA depth similarity [B])."""
        if rgb.shape[-2:] != depth.shape[-2:]:
            raise ValueError(f"WSF needs equal spatial sizes, got {tuple(rgb.shape)} and {tuple(depth.shape)}")
        rgb_feat, rgb_w = self.spatial_attn_rgb(rgb)
        depth_feat, depth_w = self.spatial_attn_depth(depth)
        B, _, h, w = rgb_feat.shape
        dsa = depth_similarity(self.rgb_input, self.depth_input, rgb_feat, depth_feat)
        depth_feat = dsa.view(B, 1, 1, 1) * depth_feat
        rgb_w = rgb_w.squeeze(1)  # [B, h, w]
        depth_w = depth_w.squeeze(1)
        affinity = torch.bmm(rgb_w, depth_w.transpose(1, 2)).view(B, 1, h, h)
        aff_rgb = torch.softmax(self.rgb_weight_mlp(affinity).view(B, -1), dim=-1).view(B, h, h)
        aff_depth = torch.softmax(self.depth_weight_mlp(affinity).view(B, -1), dim=-1).view(B, h, h)
        rgb_w = (rgb_w + self.g1 * torch.bmm(aff_rgb, rgb_w)).view(B, 1, h, w)
        depth_w = (depth_w + self.g2 * torch.bmm(aff_depth, depth_w)).view(B, 1, h, w)
        rgb_feat = rgb_feat * torch.sigmoid(rgb_w)
        depth_feat = self.depth_conv(depth_feat * torch.sigmoid(depth_w))
        return self.smooth_conv(rgb_feat + depth_feat), dsa


def _msra_fill(m: nn.Module) -> None:
    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if m.bias is not None:
        nn.init.constant_(m.bias, 0)


class TwoScaleFusionDecoder(nn.Module):
    """``TwoScaleCalibNetFusionDecoder``: WSF at T3 and at res2, transposed-conv upsampling -> 1/4 scale.

    ``bn2`` exists in the official checkpoints but is unused by the official forward; it is kept so
    that checkpoints load strictly.
    """

    def __init__(self, input_dim: int, mask_dim: int, dim: int = 256) -> None:
        super().__init__()
        self.fusion_module = WeightSharingFusion(input_dim, dim)
        self.fusion_module_res2 = WeightSharingFusion(input_dim, dim)
        self.bn = nn.BatchNorm2d(dim)
        self.bn2 = nn.BatchNorm2d(dim)
        self.relu = nn.ReLU()
        self.upconv = nn.ConvTranspose2d(dim + 2, dim, kernel_size=3, stride=2, padding=1, output_padding=1)
        self.mask_convs = conv3x3_relu_stack(1, dim, dim)
        self.projection = nn.Conv2d(dim, mask_dim, kernel_size=1)
        for m in (*[c for c in self.mask_convs if isinstance(c, nn.Conv2d)], self.projection, self.upconv):
            _msra_fill(m)

    def forward(self, rgb: list[torch.Tensor], depth: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """rgb/depth = [T5, T4, T3, R2] -> (mask features [B, D, H/4, W/4], [DSA_T3, DSA_R2])."""
        coords = coordinate_features(rgb[2])
        feat, dsa_t3 = self.fusion_module(rgb[2], depth[2])
        feat_r2, dsa_r2 = self.fusion_module_res2(rgb[3], depth[3])
        feat = self.relu(self.bn(feat))
        feat = self.upconv(torch.cat([coords, feat], dim=1))
        feat = self.mask_convs(feat + feat_r2)
        return self.projection(feat), [dsa_t3, dsa_r2]


class SingleScaleFusionDecoder(nn.Module):
    """``CalibNetFusionDecoder``: one WSF at T3 (the paper's single-scale ablation), 1/8 scale."""

    def __init__(self, input_dim: int, mask_dim: int, dim: int = 256) -> None:
        super().__init__()
        self.fusion_module = WeightSharingFusion(input_dim, dim)
        self.mask_convs = conv3x3_relu_stack(1, dim + 2, dim)
        self.projection = nn.Conv2d(dim, mask_dim, kernel_size=1)
        for m in (*[c for c in self.mask_convs if isinstance(c, nn.Conv2d)], self.projection):
            _msra_fill(m)

    def forward(self, rgb: list[torch.Tensor], depth: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        coords = coordinate_features(rgb[2])
        feat, dsa_t3 = self.fusion_module(rgb[2], depth[2])
        feat = self.mask_convs(torch.cat([coords, feat], dim=1))
        return self.projection(feat), [dsa_t3]


def build_mask_branch(cfg: FusionDecoderConfig) -> nn.Module:
    """The two-scale (default) or single-scale mask branch."""
    cls = TwoScaleFusionDecoder if cfg.two_scale else SingleScaleFusionDecoder
    return cls(cfg.input_dim, cfg.mask_dim)
