"""Multi-scale deformable attention (Deformable DETR), pure PyTorch reference.

``ms_deform_attn_core`` samples every level with ``grid_sample`` (bilinear, zero padding,
``align_corners=False``) and sums the samples with the attention weights, which is the computation of
the official CUDA kernel and of its pure-PyTorch CPU fallback. The export package gives the same
computation other faces (a TensorRT plugin node, plain ONNX GridSample) through :func:`msda_dispatch`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MSDeformAttn", "ms_deform_attn_core", "msda_implementation", "msda_dispatch"]

MSDAFunction = Callable[
    [torch.Tensor, Sequence[tuple[int, int]], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    torch.Tensor,
]


def ms_deform_attn_core(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Deformable attention over several feature levels.

    Args:
        value: [N, S, M, D] projected values of all levels, flattened (S = sum H_l*W_l).
        spatial_shapes: (H_l, W_l) of each level.
        sampling_locations: [N, Lq, M, L, P, 2] normalized (x, y) in [0, 1].
        attention_weights: [N, Lq, M, L, P], softmax-normalized over L*P.

    Returns:
        [N, Lq, M*D]
    """
    N, _, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    value_list = value.split([int(h) * int(w) for h, w in spatial_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    samples = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        # [N, HW, M, D] -> [N*M, D, H, W]
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(N * M, D, int(h), int(w))
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        samples.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # [N*M, D, Lq, L*P] * [N*M, 1, Lq, L*P] -> [N*M, D, Lq]
    attn = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(samples, dim=-2).flatten(-2) * attn).sum(-1).view(N, M * D, Lq)
    return out.transpose(1, 2).contiguous()


def _reference_impl(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                    spatial_shapes_tensor):
    del level_start_index, spatial_shapes_tensor
    return ms_deform_attn_core(value, spatial_shapes, sampling_locations, attention_weights)


_IMPL: MSDAFunction = _reference_impl


def msda_dispatch(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    spatial_shapes_tensor: torch.Tensor,
) -> torch.Tensor:
    """Run the active MSDA implementation (the reference unless :func:`msda_implementation` swapped it)."""
    return _IMPL(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                 spatial_shapes_tensor)


@contextlib.contextmanager
def msda_implementation(impl: MSDAFunction) -> Iterator[None]:
    """Temporarily route every :class:`MSDeformAttn` through ``impl`` (used by ONNX export)."""
    global _IMPL
    old = _IMPL
    _IMPL = impl
    try:
        yield
    finally:
        _IMPL = old


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module with Deformable-DETR parameter names."""

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        head_dim = d_model // n_heads
        if head_dim & (head_dim - 1):
            warnings.warn("MSDA head dimension is not a power of 2: GPU kernels are slower", stacklevel=2)
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable-DETR initialization: offsets on a ring of directions, uniform attention."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def sampling(self, query: torch.Tensor, reference_points: torch.Tensor,
                 offset_normalizer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampling locations [N,Lq,M,L,P,2] and softmaxed attention weights [N,Lq,M,L,P]."""
        N, Lq, _ = query.shape
        M, L, P = self.n_heads, self.n_levels, self.n_points
        # pixel offsets -> normalized ones: one scale per output channel of sampling_offsets (its (head, level,
        # point, xy) order), applied before the 6-D view, so that the exported graph multiplies along its last
        # axis instead of broadcasting a [L,2] divisor into 6-D (OpenVINO ran that as a standalone elementwise op
        # of the size of all sampling locations in dynamic-shape graphs)
        scale = (1.0 / offset_normalizer)[None, :, None, :].expand(M, L, P, 2).reshape(M * L * P * 2)
        offsets = (self.sampling_offsets(query) * scale).view(N, Lq, M, L * P * 2)
        weights = self.attention_weights(query).view(N, Lq, M, L * P)
        weights = F.softmax(weights, -1).view(N, Lq, M, L, P)
        # the reference points expanded over the points first, then added in 4-D: a broadcast over the heads
        # only (OpenVINO's elementwise kernels are slow on the 6-D broadcast over heads and points)
        ref = reference_points[:, :, None, :, None, :].expand(-1, -1, -1, -1, P, -1).reshape(N, Lq, 1, L * P * 2)
        locations = (offsets + ref).view(N, Lq, M, L, P, 2)
        return locations, weights

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
        spatial_shapes_tensor: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """query [N,Lq,C], reference_points [N,Lq,L,2] in [0,1], input_flatten [N,S,C] -> [N,Lq,C]."""
        N, S, _ = input_flatten.shape
        value = self.value_proj(input_flatten).view(N, S, self.n_heads, self.d_model // self.n_heads)
        # (W, H) per level, to turn pixel offsets into normalized ones
        normalizer = spatial_shapes_tensor.flip(-1).to(query.dtype)
        locations, weights = self.sampling(query, reference_points, normalizer)
        out = msda_dispatch(value, spatial_shapes, level_start_index, locations, weights, spatial_shapes_tensor)
        return self.output_proj(out)
