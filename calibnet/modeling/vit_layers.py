"""Pieces shared by the transformer backbones (Swin-T, PVTv2-B2-Li, P2T-Large), written for export.

The official backbones take these from timm; calibnet does not depend on timm (it pulls torchvision), so
the few pieces are here:

- :class:`DropPath` (stochastic depth; the identity in eval mode, so it never reaches an exported graph),
- :func:`init_transformer_weights` (truncated-normal linear layers, unit LayerNorms, fan-out conv init:
  the ``_init_weights`` rule of the PVT/P2T code),
- :func:`adaptive_avg_pool2d`: PyTorch's adaptive average pooling, in eager mode the PyTorch op itself
  and, while tracing, the same bins written as two small averaging matrices built from the traced sizes.
  The ONNX exporter refuses ``AdaptiveAvgPool2d`` whenever the input size is not a multiple of the output
  size (PVTv2-Li pools 80x120 to 7x7), and a traced graph must not freeze the sizes of the export input.
- :func:`round_div`: Python's ``round(n / r)`` (half to even) of a size, also for traced sizes (P2T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DropPath",
    "adaptive_avg_pool2d",
    "adaptive_pool_matrix",
    "drop_path_rates",
    "init_transformer_weights",
    "is_tracing",
    "PoolSpec",
    "pool_spec",
    "round_div",
    "tokens_to_map",
]

Size = int | torch.Tensor


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``drop_prob`` and
    scale the kept ones by ``1 / (1 - drop_prob)``; in eval mode the identity."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


def drop_path_rates(rate: float, depths: list[int] | tuple[int, ...]) -> list[float]:
    """The stochastic-depth decay rule: ``rate`` spread linearly from 0 over all blocks."""
    return [float(x) for x in torch.linspace(0, rate, sum(depths), device="cpu")]


def init_transformer_weights(m: nn.Module, conv_fan_out: bool = True) -> None:
    """Linear: truncated normal (std 0.02, cut at +-2), zero bias; LayerNorm: weight 1, bias 0; Conv2d (if
    ``conv_fan_out``): normal with std sqrt(2 / fan_out), zero bias. Use with ``module.apply``."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif conv_fan_out and isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def tokens_to_map(x: torch.Tensor, H: Size, W: Size) -> torch.Tensor:
    """Tokens [B, H*W, C] (row-major) as a map [B, C, H, W]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], H, W)


def is_tracing() -> bool:
    """True while the TorchScript tracer (and so the ONNX exporter) records the forward."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def round_div(n: Size, r: int) -> Size:
    """``round(n / r)`` with Python's rounding (half to even: ``round(2.5) == 2``), for a Python int or a
    traced size. The traced form is integer arithmetic: ``q = n // r``, up by one when the remainder is
    above half, or exactly half and ``q`` odd."""
    if not isinstance(n, torch.Tensor):
        return round(n / r)
    q = torch.div(n, r, rounding_mode="floor")
    twice_rem = 2 * (n - q * r)
    up = (twice_rem > r) | ((twice_rem == r) & (q % 2 == 1))
    return q + up.to(q.dtype)


def adaptive_pool_matrix(size: Size, out: Size, like: torch.Tensor) -> torch.Tensor:
    """[out, size] averaging matrix of PyTorch's adaptive pooling bins: row ``i`` averages the input
    positions ``floor(i * size / out) <= j < ceil((i + 1) * size / out)``."""
    i = torch.arange(out, device=like.device, dtype=torch.int64)
    j = torch.arange(size, device=like.device, dtype=torch.int64)
    start = torch.div(i * size, out, rounding_mode="floor")
    end = torch.div((i + 1) * size + out - 1, out, rounding_mode="floor")
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    count = (end - start).to(like.dtype)
    return inside.to(like.dtype) / count[:, None]


@dataclass
class PoolSpec:
    """Where :func:`adaptive_avg_pool2d` pools a map to: the output size and, while tracing, the two bin
    matrices (built once, shared by every call with the same input size: P2T's blocks of one stage)."""

    out_h: Size
    out_w: Size
    mh: torch.Tensor | None = None  # [out_h, H]
    mw: torch.Tensor | None = None  # [out_w, W]


def pool_spec(H: Size, W: Size, out_h: Size, out_w: Size, like: torch.Tensor) -> PoolSpec:
    """The :class:`PoolSpec` of pooling an H x W map to ``out_h`` x ``out_w`` (matrices only while tracing)."""
    if not is_tracing():
        return PoolSpec(out_h, out_w)
    return PoolSpec(out_h, out_w, adaptive_pool_matrix(H, out_h, like), adaptive_pool_matrix(W, out_w, like))


def adaptive_avg_pool2d(x: torch.Tensor, out_h: Size, out_w: Size, spec: PoolSpec | None = None) -> torch.Tensor:
    """Adaptive average pooling of ``x`` [B, C, H, W] to ``out_h`` x ``out_w``.

    Eager: ``F.adaptive_avg_pool2d`` (bit-identical to the official backbones). Tracing: the same bins as
    ``Mh @ x @ Mw^T`` with matrices from :func:`adaptive_pool_matrix` of the traced H, W (and traced output
    sizes, for P2T; or those of ``spec``), so the exported graph is exact for every input size (to float
    rounding of the sum)."""
    if not is_tracing():
        return F.adaptive_avg_pool2d(x, (int(out_h), int(out_w)))
    if spec is None or spec.mh is None or spec.mw is None:
        spec = pool_spec(x.shape[-2], x.shape[-1], out_h, out_w, x)
    assert spec.mh is not None and spec.mw is not None
    # both products with a 2-D right operand: one GEMM each (a 2-D left operand would broadcast to B*C
    # small matrix products)
    cols = torch.matmul(x, spec.mw.transpose(0, 1))  # [B, C, H, out_w]
    return torch.matmul(cols.transpose(-1, -2), spec.mh.transpose(0, 1)).transpose(-1, -2)  # [B, C, out_h, out_w]
