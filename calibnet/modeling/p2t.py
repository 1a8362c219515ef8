"""P2T backbone (``build_p2t_backbone`` of the official code: Pyramid Pooling Transformer), official names.

``patch_embed1..4`` (overlapping convs + LayerNorm), ``d_convs1..4`` (one 3x3 depth-wise conv per pooling
ratio, shared by all blocks of a stage), ``block1..4`` (pooling attention + an inverted-residual MLP with
Hardswish) and the unused classification ``head`` (kept: it is in the official state dict). No
per-stage output norm. Outputs ``res2`` .. ``res5`` (strides 4..32). P2T-Large: embed dims
64/128/320/640, heads 1/2/5/8, MLP ratios 8/8/4/4, depths 3/8/27/3; P2T-Base: 64/128/320/512, 3/4/18/3.

Pooling attention: the stage map is average-pooled to ``round(H / r) x round(W / r)`` for each ratio
``r`` of the stage (12/16/20/24, 6/8/10/12, 3/4/5/6, 1/2/3/4), each pooled map gets ``+ d_conv(map)``,
and the concatenated tokens (LayerNorm) give keys and values. ``round`` is Python's (half to even: at
320 input, stage 4 is 10x15 and 10/4 = 2.5 pools to 2, 15/2 = 7.5 to 8). The sizes come from
:func:`calibnet.modeling.vit_layers.round_div` and the bins from
:func:`calibnet.modeling.vit_layers.adaptive_avg_pool2d`, both exact for traced sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from .vit_layers import (
    DropPath,
    PoolSpec,
    Size,
    adaptive_avg_pool2d,
    drop_path_rates,
    init_transformer_weights,
    is_tracing,
    pool_spec,
    round_div,
    tokens_to_map,
)

__all__ = ["PyramidPoolingTransformer", "P2T_POOL_RATIOS", "P2T_VARIANTS"]

P2T_POOL_RATIOS: tuple[tuple[int, ...], ...] = ((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4))

#: constructor arguments of the official ``build_p2t_backbone`` per ``MODEL.P2T.NAME``.
P2T_VARIANTS: dict[str, dict[str, tuple[int, ...]]] = {
    "base": {"embed_dims": (64, 128, 320, 512), "depths": (3, 4, 18, 3)},
    "large": {"embed_dims": (64, 128, 320, 640), "depths": (3, 8, 27, 3)},
}


class PatchEmbed(nn.Module):
    """Overlapping conv (stride ``patch``, padding k//2) + LayerNorm; output size = input // patch."""

    def __init__(self, patch: int, kernel: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=kernel, stride=patch, padding=kernel // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Size, Size]:
        H, W = x.shape[2] // self.patch, x.shape[3] // self.patch
        return self.norm(self.proj(x).flatten(2).transpose(1, 2)), H, W


class IRB(nn.Module):
    """Inverted residual MLP on the token map: 1x1 conv, Hardswish, 3x3 depth-wise conv, Hardswish, 1x1."""

    def __init__(self, dim: int, hidden: int, ksize: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1, 1, 0)
        self.act = nn.Hardswish()
        self.conv = nn.Conv2d(hidden, hidden, kernel_size=ksize, padding=ksize // 2, stride=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1, 1, 0)

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        m = self.fc2(self.act(self.conv(self.act(self.fc1(tokens_to_map(x, H, W))))))
        return m.flatten(2).transpose(1, 2)


class PoolingAttention(nn.Module):
    """Queries from every token, keys/values from the multi-ratio pooled pyramid of the map."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, qk_scale: float | None,
                 pool_ratios: tuple[int, ...]) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.pool_ratios = tuple(pool_ratios)
        self.q = nn.Sequential(nn.Linear(dim, dim, bias=qkv_bias))
        self.kv = nn.Sequential(nn.Linear(dim, dim * 2, bias=qkv_bias))
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.softmax = nn.Softmax(dim=-1)

    def pool_specs(self, H: Size, W: Size, like: torch.Tensor) -> list[PoolSpec]:
        """Where each ratio pools an H x W map: ``round(H / r) x round(W / r)`` (Python rounding)."""
        return [pool_spec(H, W, round_div(H, r), round_div(W, r), like) for r in self.pool_ratios]

    def forward(self, x: torch.Tensor, H: Size, W: Size, d_convs: nn.ModuleList,
                specs: list[PoolSpec] | None = None) -> torch.Tensor:
        """``specs``: :meth:`pool_specs` of this map size, shared by the blocks of a stage (else built here)."""
        B, C = x.shape[0], self.dim
        head_dim = C // self.num_heads
        q = self.q(x).reshape(B, -1, self.num_heads, head_dim).permute(0, 2, 1, 3)
        m = tokens_to_map(x, H, W)
        pools = []
        for spec, d_conv in zip(specs or self.pool_specs(H, W, x), d_convs, strict=True):
            p = adaptive_avg_pool2d(m, spec.out_h, spec.out_w, spec)
            pools.append((p + d_conv(p)).flatten(2))
        tokens = self.norm(torch.cat(pools, dim=2).transpose(1, 2))
        kv = self.kv(tokens).reshape(B, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        attn = self.softmax((q @ kv[0].transpose(-2, -1)) * self.scale)
        out = (attn @ kv[1]).transpose(1, 2).reshape(B, -1, C)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm block (eps 1e-6): pooling attention and IRB residual branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, qk_scale: float | None,
                 drop_path: float, pool_ratios: tuple[int, ...]) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PoolingAttention(dim, num_heads, qkv_bias, qk_scale, pool_ratios)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = IRB(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: Size, W: Size, d_convs: nn.ModuleList,
                specs: list[PoolSpec] | None = None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), H, W, d_convs, specs))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class PyramidPoolingTransformer(nn.Module):
    """P2T returning ``res2`` .. ``res5`` (the token maps of each stage, no output norm)."""

    def __init__(self, embed_dims: tuple[int, ...] = (64, 128, 320, 640), num_heads: tuple[int, ...] = (1, 2, 5, 8),
                 mlp_ratios: tuple[int, ...] = (8, 8, 4, 4), depths: tuple[int, ...] = (3, 8, 27, 3),
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_path_rate: float = 0.3,
                 num_classes: int = 1000, in_chans: int = 3,
                 pool_ratios: tuple[tuple[int, ...], ...] = P2T_POOL_RATIOS,
                 out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")) -> None:
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        self.out_features = tuple(out_features)
        for i in range(4):
            cin = in_chans if i == 0 else embed_dims[i - 1]
            self.add_module(f"patch_embed{i + 1}", PatchEmbed(4 if i == 0 else 2, 7 if i == 0 else 3, cin,
                                                              embed_dims[i]))
        for i in range(4):
            dim = embed_dims[i]
            self.add_module(f"d_convs{i + 1}", nn.ModuleList(
                [nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim) for _ in pool_ratios[i]]))
        dpr = drop_path_rates(drop_path_rate, depths)
        cur = 0
        for i in range(4):
            self.add_module(f"block{i + 1}", nn.ModuleList([
                Block(embed_dims[i], num_heads[i], mlp_ratios[i], qkv_bias, qk_scale, dpr[cur + j], pool_ratios[i])
                for j in range(depths[i])
            ]))
            cur += depths[i]
        # the classification head of the ImageNet model: unused here, kept for the official state dict
        self.head = nn.Linear(embed_dims[3], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(lambda m: init_transformer_weights(m, conv_fan_out=False))

    def output_channels(self) -> dict[str, int]:
        """Channels of each stage output."""
        return {f"res{i + 2}": c for i, c in enumerate(self.embed_dims)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not is_tracing() and min(x.shape[-2:]) < 96:
            # stage 4 (1/32) would pool round(2 / 4) = 0 rows: the official code fails there too
            raise ValueError(f"P2T needs H and W >= 96 (pyramid pooling of the 1/32 stage), got {tuple(x.shape[-2:])}")
        outs: dict[str, torch.Tensor] = {}
        for i in range(4):
            x, H, W = getattr(self, f"patch_embed{i + 1}")(x)
            d_convs = getattr(self, f"d_convs{i + 1}")
            blocks = getattr(self, f"block{i + 1}")
            specs = blocks[0].attn.pool_specs(H, W, x)  # one set of pooling bins per stage (traced graph)
            for blk in blocks:
                x = blk(x, H, W, d_convs, specs)
            x = tokens_to_map(x, H, W)
            if f"res{i + 2}" in self.out_features:
                outs[f"res{i + 2}"] = x
        return outs
