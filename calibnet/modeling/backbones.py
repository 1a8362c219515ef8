"""The backbone of each modality from ``MODEL.BACKBONE.NAME`` (the official registry names).

=================================== =========================== ============================
``MODEL.BACKBONE.NAME``             module                      settings
=================================== =========================== ============================
``build_resnet_backbone``           :class:`.resnet.ResNet`     ``MODEL.RESNETS`` (cfg.backbone)
``D2SwinTransformer``               :class:`.swin.SwinTransformer`  ``MODEL.SWIN`` (cfg.swin)
``build_pyramid_vision_transformer`` :class:`.pvt_v2.PyramidVisionTransformerV2` ``MODEL.PVTV2`` (cfg.pvtv2)
``build_p2t_backbone``              :class:`.p2t.PyramidPoolingTransformer` ``MODEL.P2T`` (cfg.p2t)
=================================== =========================== ============================

Every backbone maps a normalized image [B, 3, H, W] to ``{"res2": ..., "res5": ...}`` (strides 4..32)
and reports its ``output_channels()``, which the encoders' input convs take. As in the official model,
the depth backbone of a transformer variant is a deep copy of the RGB one (same initial weights).
"""

from __future__ import annotations

import copy

from torch import nn

from ..config import CalibNetConfig
from .p2t import P2T_VARIANTS, PyramidPoolingTransformer
from .pvt_v2 import PyramidVisionTransformerV2, pvt_v2_arch
from .resnet import ResNet
from .swin import SwinTransformer

__all__ = ["build_backbone", "build_backbones", "is_transformer_backbone"]


def is_transformer_backbone(cfg: CalibNetConfig) -> bool:
    """True for Swin, PVTv2 and P2T (everything but the detectron2 ResNet)."""
    return cfg.backbone.name != "build_resnet_backbone"


def build_backbone(cfg: CalibNetConfig) -> nn.Module:
    """One backbone as ``cfg`` names it (randomly initialized like the official code)."""
    name = cfg.backbone.name
    if name == "build_resnet_backbone":
        return ResNet(cfg.backbone)
    if name == "D2SwinTransformer":
        s = cfg.swin
        return SwinTransformer(embed_dim=s.embed_dim, depths=tuple(s.depths), num_heads=tuple(s.num_heads),
                               window_size=s.window_size, mlp_ratio=s.mlp_ratio, qkv_bias=s.qkv_bias,
                               qk_scale=s.qk_scale, drop_rate=s.drop_rate, attn_drop_rate=s.attn_drop_rate,
                               drop_path_rate=s.drop_path_rate, ape=s.ape, patch_norm=s.patch_norm,
                               patch_size=s.patch_size, pretrain_img_size=s.pretrain_img_size,
                               out_features=tuple(s.out_features))
    if name == "build_pyramid_vision_transformer":
        p = cfg.pvtv2
        return PyramidVisionTransformerV2(**pvt_v2_arch(p.name, p.linear),  # type: ignore[arg-type]
                                          drop_path_rate=p.drop_path_rate, out_features=tuple(p.out_features))
    if name == "build_p2t_backbone":
        t = cfg.p2t
        arch = P2T_VARIANTS[t.name]
        return PyramidPoolingTransformer(embed_dims=arch["embed_dims"], depths=arch["depths"],
                                         drop_path_rate=t.drop_path_rate, out_features=tuple(t.out_features))
    raise ValueError(f"unsupported backbone {name!r}")


def build_backbones(cfg: CalibNetConfig) -> tuple[nn.Module, nn.Module]:
    """(RGB backbone, depth backbone): the depth one is a deep copy for the transformer backbones (the
    official ``copy.deepcopy``); calibnet's ResNets are built twice, as before."""
    rgb = build_backbone(cfg)
    depth = copy.deepcopy(rgb) if is_transformer_backbone(cfg) else build_backbone(cfg)
    return rgb, depth
