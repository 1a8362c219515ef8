"""PVTv2 backbone (``build_pyramid_vision_transformer`` of the official code), official parameter names.

Four stages ``patch_embed<i>`` (overlapping conv + LayerNorm), ``block<i>.<j>`` (spatial-reduction
attention + a depth-wise-conv MLP) and ``norm<i>``; outputs ``res2`` .. ``res5`` (strides 4..32).
The official CalibNet configuration is PVTv2-B2-Li: ``LINEAR: True`` (the official builder then uses
the b2 depths whatever ``NAME`` says), embed dims 64/128/320/512, heads 1/2/5/8, MLP ratios 8/8/4/4,
depths 3/4/6/3, block and stage norms with eps 1e-6 (the patch-embedding and attention norms keep
PyTorch's 1e-5).

"Li" (linear) attention pools keys/values of every stage to 7x7 (``AdaptiveAvgPool2d(7)``), then a
1x1 conv, LayerNorm and GELU; the MLP gets a ReLU after ``fc1``. The pooling goes through
:func:`calibnet.modeling.vit_layers.adaptive_avg_pool2d`, exact and exportable for any input size
(at 320 the stage sizes 80/40/20/10 are not multiples of 7, which the ONNX exporter refuses).
"""

from __future__ import annotations

import torch
from torch import nn

from .vit_layers import DropPath, Size, adaptive_avg_pool2d, drop_path_rates, init_transformer_weights, tokens_to_map

__all__ = ["PyramidVisionTransformerV2", "PVT_V2_VARIANTS", "pvt_v2_arch"]

#: depths of the official variants (b0 and b1 have smaller widths).
PVT_V2_VARIANTS: dict[str, tuple[int, ...]] = {
    "b0": (2, 2, 2, 2), "b1": (2, 2, 2, 2), "b2": (3, 4, 6, 3), "b3": (3, 4, 18, 3), "b4": (3, 8, 27, 3),
    "b5": (3, 6, 40, 3),
}


def pvt_v2_arch(name: str, linear: bool) -> dict[str, object]:
    """Constructor arguments the official builder derives from ``MODEL.PVTV2.{NAME,LINEAR}``."""
    if linear:
        name = "b2"  # the official builder's rule: LINEAR means b2-Li
    if name not in PVT_V2_VARIANTS:
        raise ValueError(f"unknown PVTv2 variant {name!r} (one of {sorted(PVT_V2_VARIANTS)})")
    return {
        "embed_dims": (32, 64, 160, 256) if name == "b0" else (64, 128, 320, 512),
        "depths": PVT_V2_VARIANTS[name],
        "mlp_ratios": (4, 4, 4, 4) if name == "b5" else (8, 8, 4, 4),
        "num_heads": (1, 2, 5, 8),
        "sr_ratios": (8, 4, 2, 1),
        "linear": linear,
    }


class DWConv(nn.Module):
    """3x3 depth-wise conv applied to a token sequence laid out as an H x W map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        return self.dwconv(tokens_to_map(x, H, W)).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """fc1 (-> ReLU if linear) -> depth-wise 3x3 conv -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, linear: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)
        self.relu = nn.ReLU() if linear else None

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        x = self.fc1(x)
        if self.relu is not None:
            x = self.relu(x)
        x = self.drop(self.act(self.dwconv(x, H, W)))
        return self.drop(self.fc2(x))


class Attention(nn.Module):
    """Attention with keys/values from a reduced map: a strided conv (``sr_ratio`` > 1) or, in the linear
    variant, 7x7 adaptive average pooling + 1x1 conv + LayerNorm + GELU."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_scale: float | None, attn_drop: float,
                 proj_drop: float, sr_ratio: int, linear: bool, pool_size: int = 7) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.linear, self.sr_ratio, self.pool_size = linear, sr_ratio, pool_size
        self.sr: nn.Module | None = None
        self.norm: nn.Module | None = None
        self.act: nn.Module | None = None
        if linear:
            self.sr = nn.Conv2d(dim, dim, kernel_size=1, stride=1)
            self.norm = nn.LayerNorm(dim)
            self.act = nn.GELU()
        elif sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)
        self.softmax = nn.Softmax(dim=-1)

    def _heads(self, x: torch.Tensor, parts: int) -> torch.Tensor:
        """[B, N, parts*C] -> [parts, B, heads, N, C/heads]."""
        return x.reshape(x.shape[0], -1, parts, self.num_heads, self.dim // self.num_heads).permute(2, 0, 3, 1, 4)

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        q = self._heads(self.q(x), 1)[0]
        src = x
        if self.sr is not None:
            m = tokens_to_map(x, H, W)
            if self.linear:
                m = adaptive_avg_pool2d(m, self.pool_size, self.pool_size)
            src = self.norm(self.sr(m).flatten(2).transpose(1, 2))
            if self.act is not None:
                src = self.act(src)
        kv = self._heads(self.kv(src), 2)
        attn = self.attn_drop(self.softmax((q @ kv[0].transpose(-2, -1)) * self.scale))
        out = (attn @ kv[1]).transpose(1, 2).reshape(x.shape[0], -1, self.dim)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm transformer block: attention and MLP residual branches (eps 1e-6 norms)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop: float, attn_drop: float, drop_path: float, sr_ratio: int, linear: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, sr_ratio, linear)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop, linear)

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class OverlapPatchEmbed(nn.Module):
    """Overlapping patch conv (kernel 7 stride 4, or 3 stride 2) + LayerNorm; returns tokens, H, W."""

    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Size, Size]:
        x = self.proj(x)
        H, W = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class PyramidVisionTransformerV2(nn.Module):
    """PVTv2 returning ``res2`` .. ``res5``."""

    def __init__(self, embed_dims: tuple[int, ...] = (64, 128, 320, 512), num_heads: tuple[int, ...] = (1, 2, 5, 8),
                 mlp_ratios: tuple[int, ...] = (8, 8, 4, 4), depths: tuple[int, ...] = (3, 4, 6, 3),
                 sr_ratios: tuple[int, ...] = (8, 4, 2, 1), linear: bool = True, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, in_chans: int = 3,
                 out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")) -> None:
        super().__init__()
        self.num_stages = len(depths)
        self.embed_dims = tuple(embed_dims)
        self.out_features = tuple(out_features)
        dpr = drop_path_rates(drop_path_rate, depths)
        cur = 0
        for i in range(self.num_stages):
            embed = OverlapPatchEmbed(7 if i == 0 else 3, 4 if i == 0 else 2,
                                      in_chans if i == 0 else embed_dims[i - 1], embed_dims[i])
            blocks = nn.ModuleList([
                Block(embed_dims[i], num_heads[i], mlp_ratios[i], qkv_bias, qk_scale, drop_rate, attn_drop_rate,
                      dpr[cur + j], sr_ratios[i], linear)
                for j in range(depths[i])
            ])
            cur += depths[i]
            self.add_module(f"patch_embed{i + 1}", embed)
            self.add_module(f"block{i + 1}", blocks)
            self.add_module(f"norm{i + 1}", nn.LayerNorm(embed_dims[i], eps=1e-6))
        self.apply(init_transformer_weights)

    def output_channels(self) -> dict[str, int]:
        """Channels of each stage output."""
        return {f"res{i + 2}": c for i, c in enumerate(self.embed_dims)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs: dict[str, torch.Tensor] = {}
        for i in range(self.num_stages):
            x, H, W = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"block{i + 1}"):
                x = blk(x, H, W)
            x = tokens_to_map(getattr(self, f"norm{i + 1}")(x), H, W).contiguous()
            if f"res{i + 2}" in self.out_features:
                outs[f"res{i + 2}"] = x
        return outs
