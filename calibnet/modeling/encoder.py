"""The deformable-transformer encoder of each modality (``encoder`` / ``encoder_depth``).

3x3 conv + GroupNorm + ReLU projections of res5, res4, res3 (in that order), sine position
encodings plus a learned level embedding, ``num_layers`` multi-scale deformable attention layers,
and a separate 3x3 conv + GN + ReLU projection of res2. The output is the list
``[T5, T4, T3, R2]`` of 256-channel maps at strides 32, 16, 8, 4.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from .common import conv_gn_relu
from .msda import MSDeformAttn

__all__ = ["TransformerEncoder", "sine_position_encoding"]


def sine_position_encoding(x: torch.Tensor, num_pos_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """The official CalibNet position encoding: [B, 2*num_pos_feats, H, W] (y part first).

    The official code builds DETR's normalized sine encoding from a "not padded" mask that it
    creates as all False (``torch.zeros(..., dtype=torch.bool)``), so the cumulative sums are 0 and
    every position gets the same embedding, sin/cos of (0 - 0.5) / 1e-6 * 2*pi over the frequency
    ladder. Trained checkpoints depend on that constant, so it is reproduced here, with the same
    float32 arithmetic, rather than the encoding DETR intended.
    """
    B, _, H, W = x.shape
    eps = 1e-6
    scale = 2 * math.pi
    zero = torch.zeros(1, dtype=torch.float32, device=x.device)  # cumsum of an all-False mask
    embed = (zero - 0.5) / (zero + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos = embed[:, None] / dim_t  # [1, F]
    pos = torch.stack((pos[:, 0::2].sin(), pos[:, 1::2].cos()), dim=2).flatten(1)  # [1, F]
    pos = torch.cat((pos, pos), dim=1)  # y part, x part (identical)
    return pos.view(1, 2 * num_pos_feats, 1, 1).expand(B, -1, H, W)


class MSDeformAttnTransformerEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention, then a feed-forward block."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, activation: str, n_levels: int,
                 n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.activation = activation
        self.dropout2 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: Sequence[tuple[int, int]], spatial_shapes_tensor: torch.Tensor,
                level_start_index: torch.Tensor) -> torch.Tensor:
        attn = self.self_attn(src + pos, reference_points, src, spatial_shapes, spatial_shapes_tensor,
                              level_start_index)
        src = self.norm1(src + self.dropout1(attn))
        act = F.gelu if self.activation == "gelu" else F.relu
        ffn = self.linear2(self.dropout2(act(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class MSDeformAttnTransformerEncoder(nn.Module):
    """A stack of identical encoder layers (``encoder.layers.*``)."""

    def __init__(self, layer: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    @staticmethod
    def get_reference_points(spatial_shapes: Sequence[tuple[int, int]], n_levels: int, batch: int,
                             device: torch.device) -> torch.Tensor:
        """Pixel centres of every level, normalized to [0, 1]: [B, S, n_levels, 2] (x, y)."""
        refs = []
        for h, w in spatial_shapes:
            ref_y = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
            ref_x = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
            ref = torch.stack(
                (ref_x[None, :].expand(h, w).reshape(-1), ref_y[:, None].expand(h, w).reshape(-1)), -1
            )
            refs.append(ref)
        ref_all = torch.cat(refs, 0)
        return ref_all[None, :, None, :].expand(batch, -1, n_levels, -1)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]],
                spatial_shapes_tensor: torch.Tensor, level_start_index: torch.Tensor) -> torch.Tensor:
        reference_points = self.get_reference_points(spatial_shapes, len(spatial_shapes), src.shape[0],
                                                     src.device)
        out = src
        for layer in self.layers:
            out = layer(out, pos, reference_points, spatial_shapes, spatial_shapes_tensor, level_start_index)
        return out


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Level embeddings + the encoder stack (``trans_encoder.*``)."""

    def __init__(self, d_model: int, n_head: int, num_layers: int, dim_feedforward: int, dropout: float,
                 activation: str, num_feature_levels: int, n_points: int = 4) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        layer = MSDeformAttnTransformerEncoderLayer(d_model, dim_feedforward, dropout, activation,
                                                    num_feature_levels, n_head, n_points)
        self.encoder = MSDeformAttnTransformerEncoder(layer, num_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier for matrices, Deformable-DETR init for MSDA, normal level embeddings."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: list[torch.Tensor], pos_embeds: list[torch.Tensor]) -> torch.Tensor:
        spatial_shapes = [(int(s.shape[2]), int(s.shape[3])) for s in srcs]
        src_flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos_flat = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos_embeds)],
            1,
        )
        shapes_t = spatial_shapes_tensor(srcs)
        level_start = torch.cat((shapes_t.new_zeros((1,)), shapes_t.prod(1).cumsum(0)[:-1]))
        return self.encoder(src_flat, pos_flat, spatial_shapes, shapes_t, level_start)


def spatial_shapes_tensor(srcs: list[torch.Tensor]) -> torch.Tensor:
    """[L, 2] int64 (H, W) of each level, built from the tensors' shapes (traceable)."""
    rows = [torch.stack([torch._shape_as_tensor(s)[2], torch._shape_as_tensor(s)[3]]) for s in srcs]
    return torch.stack(rows).to(torch.int64)


class TransformerEncoder(nn.Module):
    """Input projections + deformable encoder + res2 projection for one modality."""

    def __init__(self, cfg: EncoderConfig, in_channels: dict[str, int]) -> None:
        super().__init__()
        self.in_features = tuple(cfg.in_features)
        self.num_channels = cfg.num_channels
        self.input_convs = nn.ModuleList(
            [conv_gn_relu(in_channels[f], cfg.num_channels) for f in self.in_features[::-1]]
        )
        self.res2_conv = conv_gn_relu(in_channels["res2"], cfg.num_channels)
        for seq in [*self.input_convs, self.res2_conv]:
            nn.init.xavier_uniform_(seq[0].weight)  # c2_xavier_fill without bias
        self.trans_encoder = MSDeformAttnTransformerEncoderOnly(
            d_model=cfg.num_channels,
            n_head=cfg.num_heads,
            num_layers=cfg.num_layers,
            dim_feedforward=cfg.dim_feedforward,
            dropout=cfg.dropout,
            activation=cfg.activation,
            num_feature_levels=len(self.in_features),
            n_points=cfg.num_points,
        )

    def forward(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        srcs, pos = [], []
        for idx, name in enumerate(self.in_features[::-1]):
            x = features[name].float()
            srcs.append(self.input_convs[idx](x))
            pos.append(sine_position_encoding(x, self.num_channels // 2))
        memory = self.trans_encoder(srcs, pos)
        B = memory.shape[0]
        # split the memory back into levels with slices of the shapes' own sizes (not Python ints), so a
        # traced export stays valid for any H/W
        out, start = [], 0
        for s in srcs:
            n = s.shape[2] * s.shape[3]
            out.append(memory[:, start:start + n].transpose(1, 2).reshape(B, self.num_channels, s.shape[2], s.shape[3]))
            start = start + n
        out.append(self.res2_conv(features["res2"].float()))
        return out
