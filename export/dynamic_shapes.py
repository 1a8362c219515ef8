"""Export-time patches that keep the traced graph valid for any H/W (dynamic axes).

The TorchScript tracer records Python ints as constants. The model builds the encoder's reference points
from ``int`` level sizes (eager-friendly, exact), which
would bake the export size into the graph (the memory split back into levels already uses traced slices
in the model itself). During export, :func:`dynamic_reference_points` replaces the ``forward`` of each
encoder stack *instance* (the patch is undone on exit) by the same computation with reference points from
the traced ``spatial_shapes_tensor`` through ONNX ``Range``. Tests compare the result with eager PyTorch at
sizes other than the export size, so a drift of the model code from these copies is caught. The MSDA op
itself reads the level sizes from tensors in both flavours (see :mod:`calibnet.export.msda_onnx`).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from calibnet.modeling.encoder import MSDeformAttnTransformerEncoder

__all__ = ["dynamic_reference_points", "reference_points_from_tensor"]


class _Range(torch.autograd.Function):
    """``arange(n)`` of a 0-d int64 tensor ``n`` that exports as ONNX ``Range`` (no baked length)."""

    @staticmethod
    def forward(ctx, n: torch.Tensor) -> torch.Tensor:
        del ctx
        return torch.arange(int(n), dtype=torch.int64)

    @staticmethod
    def symbolic(g, n):  # type: ignore[no-untyped-def]
        zero = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int64))
        one = g.op("Constant", value_t=torch.tensor(1, dtype=torch.int64))
        return g.op("Range", zero, n, one)


def reference_points_from_tensor(shapes: torch.Tensor, n_levels: int, like: torch.Tensor) -> torch.Tensor:
    """[B, S, n_levels, 2] pixel-centre (x, y) in [0, 1] for the [L, 2] int64 level sizes ``shapes``; the
    same values as ``MSDeformAttnTransformerEncoder.get_reference_points``, traceable for any size."""
    refs = []
    for lvl in range(shapes.shape[0]):
        h, w = shapes[lvl, 0], shapes[lvl, 1]
        hf, wf = h.to(torch.float32), w.to(torch.float32)
        ref_y = (_Range.apply(h).to(torch.float32) + 0.5) / hf
        ref_x = (_Range.apply(w).to(torch.float32) + 0.5) / wf
        grid_x = ref_x[None, :] + torch.zeros_like(ref_y)[:, None]  # broadcast, no baked expand sizes
        grid_y = ref_y[:, None] + torch.zeros_like(ref_x)[None, :]
        refs.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), -1))
    ref_all = torch.cat(refs, 0)
    batch = torch.zeros_like(like[:, :1, :1])  # [B,1,1]
    return ref_all[None, :, None, :] + batch[..., None].expand(-1, -1, n_levels, 2)


def _forward(self: MSDeformAttnTransformerEncoder, src: torch.Tensor, pos: torch.Tensor,
             spatial_shapes: Sequence[tuple[int, int]], spatial_shapes_tensor: torch.Tensor,
             level_start_index: torch.Tensor) -> torch.Tensor:
    reference_points = reference_points_from_tensor(spatial_shapes_tensor, len(spatial_shapes), src)
    out = src
    for layer in self.layers:
        out = layer(out, pos, reference_points, spatial_shapes, spatial_shapes_tensor, level_start_index)
    return out


@contextlib.contextmanager
def dynamic_reference_points(model: nn.Module) -> Iterator[None]:
    """Within the context, every encoder stack of ``model`` computes its reference points from tensors."""
    patched = []
    for m in model.modules():
        if type(m) is MSDeformAttnTransformerEncoder:
            m.forward = types.MethodType(_forward, m)  # type: ignore[method-assign]
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward
