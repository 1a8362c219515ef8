"""Swin Transformer backbone (``D2SwinTransformer`` of the official code), official parameter names.

``backbone.patch_embed.{proj,norm}``, ``backbone.layers.<i>.blocks.<j>.{norm1,attn,norm2,mlp}``,
``backbone.layers.<i>.downsample.{reduction,norm}`` and one output LayerNorm per stage
(``backbone.norm0`` .. ``norm3``); outputs ``res2`` .. ``res5`` (strides 4..32, channels C, 2C, 4C, 8C).

Behaviour of the official code kept on purpose (trained checkpoints depend on it):

- each block pads its (LayerNorm-ed) tokens with zeros to a multiple of the window size; the padded
  tokens take part in the window attention as keys; only the shifted blocks get the region mask;
- the shifted-window mask labels the (padded) map in 3 x 3 regions (rows/columns before
  ``Hp - window``, before ``Hp - shift``, the rest) and puts -100 between tokens of different regions;
- ``relative_position_index`` is a buffer of the state dict, so the bias lookup uses the checkpoint's.

Export: the official code fills its mask with Python loops over slices of a zero tensor (a constant
when traced) and computes the batch of ``window_reverse`` with Python arithmetic. Here the mask is built
with tensor ops from the (traced) padded size, every reshape takes the batch as ``-1`` and every pad,
crop and window count comes from the input's traced shape, so one exported graph serves any H, W
(multiples of 32) and any batch, with the same padding as eager.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vit_layers import DropPath, Size, drop_path_rates

__all__ = ["SwinTransformer", "relative_position_index", "shifted_window_mask", "window_partition",
           "window_reverse"]


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] int64: index into the (2w-1)^2 bias table of the offset between two window tokens,
    ``(dy + w - 1) * (2w - 1) + (dx + w - 1)`` (dy, dx = row/column of the first minus the second)."""
    r = torch.arange(window)
    rows = r.repeat_interleave(window)  # token t = (t // w, t % w)
    cols = r.repeat(window)
    dy = rows[:, None] - rows[None, :]
    dx = cols[:, None] - cols[None, :]
    return (dy + window - 1) * (2 * window - 1) + (dx + window - 1)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] (H, W multiples of ``window``) -> [B * nW, window, window, C], windows row-major."""
    _, H, W, C = x.shape
    x = x.reshape(-1, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, C)


def window_reverse(windows: torch.Tensor, window: int, H: Size, W: Size) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B * nW, window, window, C] -> [B, H, W, C]; the batch is
    whatever is left (``-1``), never a number computed in Python."""
    C = windows.shape[-1]
    x = windows.reshape(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def _region(n: Size, window: int, shift: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(n, device=device)
    return (i >= n - window).to(torch.int64) + (i >= n - shift).to(torch.int64)


def shifted_window_mask(Hp: Size, Wp: Size, window: int, shift: int, device: torch.device,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[nW, w*w, w*w] additive mask of the shifted windows of a padded Hp x Wp map: 0 between tokens of
    the same region, -100 otherwise (regions: see the module docstring). Built from tensor ops only."""
    label = _region(Hp, window, shift, device)[:, None] * 3 + _region(Wp, window, shift, device)[None, :]
    win = window_partition(label[None, :, :, None].to(dtype), window).reshape(-1, window * window)
    differs = (win[:, None, :] - win[:, :, None]) != 0
    return differs.to(dtype) * -100.0


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (dropout after each, inactive at 0)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a learned relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.dim, self.window, self.num_heads = dim, window, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.softmax = nn.Softmax(dim=-1)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02, a=-2.0, b=2.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [B*nW, N, C] window tokens; ``mask`` [nW, N, N] (0 / -100) or None."""
        n = self.window * self.window
        heads = self.num_heads
        qkv = self.qkv(x).reshape(-1, n, 3, heads, self.dim // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, heads).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            attn = attn.reshape(-1, mask.shape[0], heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.reshape(-1, heads, n, n)
        attn = self.attn_drop(self.softmax(attn))
        out = (attn @ v).transpose(1, 2).reshape(-1, n, self.dim)
        return self.proj_drop(self.proj(out))


class SwinTransformerBlock(nn.Module):
    """LayerNorm, (shifted) window attention, residual; LayerNorm, MLP, residual."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: torch.Tensor, H: Size, W: Size, mask: torch.Tensor) -> torch.Tensor:
        """``x`` [B, H*W, C]; ``mask`` the shifted-window mask of the padded map (used if shifted)."""
        C = x.shape[-1]
        ws, s = self.window, self.shift
        shortcut = x
        x = self.norm1(x).reshape(-1, H, W, C)
        pad_r, pad_b = (ws - W % ws) % ws, (ws - H % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = H + pad_b, W + pad_r
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        windows = window_partition(x, ws).reshape(-1, ws * ws, C)
        windows = self.attn(windows, mask if s else None)
        x = window_reverse(windows.reshape(-1, ws, ws, C), ws, Hp, Wp)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = x[:, :H, :W, :].reshape(-1, H * W, C)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (zero-padded to even size) -> LayerNorm(4C) -> Linear(4C, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
        C = x.shape[-1]
        x = F.pad(x.reshape(-1, H, W, C), (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.reshape(x.shape[0], -1, 4 * C)))


class BasicLayer(nn.Module):
    """One stage: ``depth`` blocks alternating plain and shifted windows, then an optional merge."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, qkv_bias: bool,
                 qk_scale: float | None, drop: float, attn_drop: float, drop_path: list[float],
                 downsample: bool) -> None:
        super().__init__()
        self.window, self.shift = window, window // 2
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, qkv_bias,
                                 qk_scale, drop, attn_drop, drop_path[i])
            for i in range(depth)
        ])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, H: Size, W: Size) -> tuple[torch.Tensor, torch.Tensor, Size, Size]:
        """Returns (stage output [B, H*W, C], next-stage input, its H, its W)."""
        ws = self.window
        Hp, Wp = (H + ws - 1) // ws * ws, (W + ws - 1) // ws * ws
        mask = shifted_window_mask(Hp, Wp, ws, self.shift, x.device, x.dtype)
        for blk in self.blocks:
            x = blk(x, H, W, mask)
        if self.downsample is None:
            return x, x, H, W
        return x, self.downsample(x, H, W), (H + 1) // 2, (W + 1) // 2


class PatchEmbed(nn.Module):
    """Non-overlapping patch conv (input zero-padded to a multiple of the patch) + optional LayerNorm."""

    def __init__(self, patch: int, in_chans: int, embed_dim: int, norm: bool) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(embed_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        x = F.pad(x, (0, (p - x.shape[3] % p) % p, 0, (p - x.shape[2] % p) % p))
        x = self.proj(x)
        if self.norm is None:
            return x
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(x.shape)


class SwinTransformer(nn.Module):
    """Swin Transformer returning ``res2`` .. ``res5`` (each stage output after its ``norm<i>``)."""

    def __init__(self, embed_dim: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (3, 6, 12, 24), window_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.3, ape: bool = False,
                 patch_norm: bool = True, patch_size: int = 4, pretrain_img_size: int = 224,
                 out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5"), in_chans: int = 3) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"DEPTHS {depths} and NUM_HEADS {num_heads} differ in length")
        self.num_layers = len(depths)
        self.out_features = tuple(out_features)
        self.num_features = [int(embed_dim * 2**i) for i in range(self.num_layers)]
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.ape = ape
        if ape:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, grid, grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02, a=-2.0, b=2.0)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = drop_path_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(BasicLayer(self.num_features[i], depth, num_heads[i], window_size, mlp_ratio,
                                          qkv_bias, qk_scale, drop_rate, attn_drop_rate, dpr[start:start + depth],
                                          downsample=i < self.num_layers - 1))
        for i in range(self.num_layers):
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))

    def output_channels(self) -> dict[str, int]:
        """Channels of each stage output."""
        return {f"res{i + 2}": c for i, c in enumerate(self.num_features)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.patch_embed(x)
        H, W = x.shape[2], x.shape[3]
        if self.ape:
            x = x + F.interpolate(self.absolute_pos_embed, size=(H, W), mode="bicubic")
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        outs: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            out, x, Hn, Wn = layer(x, H, W)
            name = f"res{i + 2}"
            if name in self.out_features:
                out = getattr(self, f"norm{i}")(out)
                outs[name] = out.reshape(-1, H, W, self.num_features[i]).permute(0, 3, 1, 2).contiguous()
            H, W = Hn, Wn
        return outs
