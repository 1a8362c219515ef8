"""Multiply-accumulate (MAC) counts per operator and per module, in fvcore's convention.

fvcore's ``FlopCountAnalysis`` (what detectron2's ``analyze_model`` and the official ``tools/get_flops.py``
use) counts one multiply-add as one "flop" and only counts the operators it has a handle for; everything
else (element-wise ops, softmax, pooling, custom autograd functions) is reported as unsupported and counts 0.
This module re-implements those rules at the ATen dispatch level, so it sees the ops the eager model really
runs (``nn.Linear`` arrives as ``addmm``/``mm``, ``matmul``/``einsum`` as ``mm``/``bmm``), with the same
numbers fvcore's handles give:

================================  ===========================================================
operator                          MACs
================================  ===========================================================
convolution                       batch x prod(weight shape) x prod(output spatial size);
                                  transposed: x prod(input spatial size) (fvcore's rule)
mm / addmm / bmm / baddbmm        one per multiply-add of the matrix product
batch norm (inference)            numel x 2 with affine, x 1 without (training: as layer norm)
group norm / layer norm           numel x 5 with affine, x 4 without
upsample bilinear / nearest       4 / 1 per output element
adaptive average pooling          1 per input element

grid sampler (bilinear)           4 per output element (one per tap)
================================  ===========================================================

Deformable attention: fvcore counts its linear layers and, through its ``grid_sampler`` handle, 4 MACs per
bilinear sample; the attention-weighted sum of the samples (an element-wise ``mul`` and a ``sum``) is not
counted, nor any element-wise op. The official fvcore figure (100.29 G for R50 at 320x480,
``../shared/official/flops.json``) equals this module's total only with the grid-sampler term included
(without it, each encoder is 0.116 G short), so it is part of :attr:`MacCount.total`, and reported on its
own too (:attr:`MacCount.msda_sampling`). The weighted sum fvcore leaves out is
:attr:`MacCount.msda_uncounted` (1 MAC per sample), never added to the fvcore total.

With ``shape_only=True`` (the default) the costly operators are not computed: their output shapes come
from PyTorch's meta kernels and zeros flow on. CalibNet's forward has no data-dependent shapes, so the
counts are exact and a 320x480 R50 count takes a fraction of a real forward pass.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

__all__ = ["MacCount", "count_macs", "count_model_macs", "MSDA_SAMPLING_OP"]

#: operator key of deformable-attention sampling (bilinear grid sampling; part of the fvcore total)
MSDA_SAMPLING_OP = "grid_sampler"


def _numel(t: Any) -> int:
    return int(math.prod(t.shape)) if isinstance(t, torch.Tensor) else 0


def _conv(args: Sequence[Any], out: Any) -> int:
    x, w = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else False
    spatial = (x if transposed else out).shape[2:]
    return int(x.shape[0]) * _numel(w) * int(math.prod(spatial))


def _matmul(first: int) -> Callable[[Sequence[Any], Any], int]:
    """mm/bmm (``first`` 0) or addmm/baddbmm (1: the bias comes first): one MAC per multiply-add of
    a [..., n, k] @ b [..., k, m], i.e. numel(a) x m."""
    return lambda args, out: _numel(args[first]) * int(args[first + 1].shape[-1])


def _norm(affine_index: int) -> Callable[[Sequence[Any], Any], int]:
    def count(args: Sequence[Any], out: Any) -> int:
        affine = len(args) > affine_index and args[affine_index] is not None
        return _numel(args[0]) * (5 if affine else 4)

    return count


def _batch_norm_eval(args: Sequence[Any], out: Any) -> int:
    affine = len(args) > 1 and args[1] is not None
    return _numel(args[0]) * (2 if affine else 1)


def _native_batch_norm(args: Sequence[Any], out: Any) -> int:
    training = bool(args[5]) if len(args) > 5 else False
    return _norm(1)(args, out) if training else _batch_norm_eval(args, out)


def _per_output(scale: int) -> Callable[[Sequence[Any], Any], int]:
    return lambda args, out: scale * _numel(out[0] if isinstance(out, (tuple, list)) else out)


def _per_input(scale: int) -> Callable[[Sequence[Any], Any], int]:
    return lambda args, out: scale * _numel(args[0])


#: ATen overload packet name -> (operator key, MAC rule)
_HANDLES: dict[str, tuple[str, Callable[[Sequence[Any], Any], int]]] = {
    "convolution": ("conv", _conv),
    "_convolution": ("conv", _conv),
    "mm": ("matmul", _matmul(0)),
    "addmm": ("matmul", _matmul(1)),
    "bmm": ("matmul", _matmul(0)),
    "baddbmm": ("matmul", _matmul(1)),
    "native_layer_norm": ("layer_norm", _norm(2)),
    "native_group_norm": ("group_norm", _norm(1)),
    "_native_batch_norm_legit_no_training": ("batch_norm", _batch_norm_eval),
    "_native_batch_norm_legit": ("batch_norm", _native_batch_norm),
    "native_batch_norm": ("batch_norm", _native_batch_norm),
    "upsample_bilinear2d": ("upsample_bilinear2d", _per_output(4)),
    "upsample_nearest2d": ("upsample_nearest2d", _per_output(1)),
    "_adaptive_avg_pool2d": ("adaptive_avg_pool2d", _per_input(1)),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d", _per_input(1)),
    "grid_sampler_2d": (MSDA_SAMPLING_OP, _per_output(4)),  # 4 taps per bilinear sample (fvcore's rule)
}

#: operators whose results are replaced by zeros of the right shape in shape-only mode
_SHAPE_ONLY = {"convolution", "_convolution", "mm", "addmm", "bmm", "baddbmm", "grid_sampler_2d",
               "upsample_bilinear2d", "upsample_nearest2d"}

#: bookkeeping ops that never carry arithmetic; not reported as "uncounted"
_FREE = {"view", "_unsafe_view", "reshape", "expand", "transpose", "t", "permute", "select", "slice", "squeeze",
         "unsqueeze", "split_with_sizes", "split", "clone", "_to_copy", "empty", "zeros", "new_zeros", "arange",
         "scalar_tensor", "detach", "alias", "lift_fresh", "copy_", "stack", "cat", "flatten", "contiguous",
         "_shape_as_tensor", "empty_like", "zeros_like", "ones", "full", "index_select", "as_strided", "unbind",
         "split_with_sizes_copy", "_reshape_alias", "new_empty", "fill_", "zero_", "lift_fresh_copy"}


@dataclass
class MacCount:
    """MACs of one forward pass. ``total``, ``by_module`` and ``by_operator`` follow fvcore (grid-sampler
    term included); ``msda_sampling`` is that grid-sampler term on its own; ``msda_uncounted`` the
    attention-weighted sum of the samples, which fvcore does not count (1 MAC per sample)."""

    total: int = 0
    by_module: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    msda_sampling: int = 0
    msda_uncounted: int = 0
    uncounted: dict[str, int] = field(default_factory=dict)
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def gmacs(self) -> float:
        """fvcore-convention total in G (1e9) multiply-adds."""
        return self.total / 1e9

    @property
    def gflops(self) -> float:
        """FLOPs = 2 x MACs, in G (a multiply and an add counted separately)."""
        return 2 * self.total / 1e9

    def top_level(self) -> dict[str, int]:
        """MACs of the direct children of the counted module (``backbone``, ``encoder``...)."""
        return {k: v for k, v in self.by_module.items() if k and "." not in k}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary in G units."""
        return {
            "gmacs": self.gmacs,
            "gflops_2x_macs": self.gflops,
            "by_module_gmacs": {k: v / 1e9 for k, v in self.top_level().items()},
            "by_operator_gmacs": {k: v / 1e9 for k, v in sorted(self.by_operator.items())},
            "msda_sampling_gmacs": self.msda_sampling / 1e9,
            "msda_weighted_sum_gmacs_not_in_fvcore": self.msda_uncounted / 1e9,
            "uncounted_ops": dict(sorted(self.uncounted.items())),
        }


def _to_meta(x: Any) -> Any:
    return x.to("meta") if isinstance(x, torch.Tensor) else x


class _MacCounterMode(TorchDispatchMode):
    def __init__(self, scopes: list[str], shape_only: bool) -> None:
        super().__init__()
        self.scopes = scopes
        self.shape_only = shape_only
        self.by_module: Counter[str] = Counter()
        self.by_operator: Counter[str] = Counter()
        self.uncounted: Counter[str] = Counter()

    def _run(self, func: Any, name: str, args: tuple, kwargs: dict) -> Any:
        if self.shape_only and name in _SHAPE_ONLY:
            try:
                meta = func(*tree_map(_to_meta, args), **tree_map(_to_meta, kwargs))
            except (NotImplementedError, RuntimeError):
                return func(*args, **kwargs)
            return tree_map(lambda t: torch.zeros(t.shape, dtype=t.dtype) if isinstance(t, torch.Tensor) else t,
                            meta)
        return func(*args, **kwargs)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = self._run(func, name, args, kwargs)
        handle = _HANDLES.get(name)
        if handle is None:
            if name.rstrip("_") not in _FREE and name not in _FREE:
                self.uncounted[name] += 1
            return out
        key, rule = handle
        macs = int(rule(args, out))
        for scope in self.scopes:
            self.by_module[scope] += macs
        self.by_operator[key] += macs
        return out


def count_macs(module: nn.Module, inputs: Sequence[Any], shape_only: bool = True) -> MacCount:
    """Count the MACs of ``module(*inputs)`` (under ``torch.no_grad``), fvcore convention.

    ``by_module`` holds every submodule by its dotted name (``""`` = the whole module) and includes the
    ops of its descendants, as fvcore's ``by_module()`` does; an op belongs to the modules whose
    ``__call__`` is running when it executes.
    """
    scopes: list[str] = []

    def enter(name: str, mod: nn.Module, args: Any) -> None:
        scopes.append(name)

    def leave(name: str, mod: nn.Module, args: Any, out: Any) -> None:
        if scopes and scopes[-1] == name:
            scopes.pop()

    handles = [h for name, sub in module.named_modules() for h in (
        sub.register_forward_pre_hook(functools.partial(enter, name)),
        sub.register_forward_hook(functools.partial(leave, name)))]
    mode = _MacCounterMode(scopes, shape_only)
    try:
        with torch.no_grad(), mode:
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    sampling = int(mode.by_operator.get(MSDA_SAMPLING_OP, 0))
    return MacCount(total=int(mode.by_module.get("", 0)), by_module=dict(mode.by_module),
                    by_operator=dict(mode.by_operator), msda_sampling=sampling,
                    msda_uncounted=sampling // 4,  # one multiply-add per sample for the weighted sum
                    uncounted=dict(mode.uncounted),
                    input_shapes=[tuple(x.shape) for x in inputs if isinstance(x, torch.Tensor)])


def count_model_macs(model: nn.Module, height: int, width: int, batch: int = 1, shape_only: bool = True) -> MacCount:
    """MACs of a CalibNet forward on an RGB-D input of ``batch`` x ``height`` x ``width`` (network size,
    multiples of 32), inference mode (the training-only heads do not run)."""
    was_training = model.training
    model.eval()
    try:
        rgb = torch.zeros(batch, 3, height, width)
        depth = torch.zeros(batch, 1, height, width)
        return count_macs(model, (rgb, depth), shape_only=shape_only)
    finally:
        model.train(was_training)
