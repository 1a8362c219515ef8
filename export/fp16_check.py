"""FP16 readiness check on CPU: activation ranges per layer and output drift under FP16 rounding.

Two passes of the PyTorch model on the same input:

1. FP32 with forward hooks on every leaf module, recording the max |x| of its inputs and outputs. A layer is
   flagged when an activation leaves the FP16 range (|x| > 65504: overflow to inf) or, for normalization
   layers that compute statistics at run time (LayerNorm, GroupNorm, InstanceNorm), when its input exceeds
   ``norm_input_limit`` (default 256: x^2 in the variance overflows FP16 above ~255.9). Eval-mode BatchNorm
   and FrozenBN are affine and folded into the preceding conv by the exporter (no node of their own).
2. FP16 emulation: weights rounded to FP16 and every leaf module's output cast to FP16 and back (values
   beyond the range become inf, as in an engine); per-output max abs drift vs FP32 and the binarized-mask
   agreement tell how much FP16 storage alone costs.

JSON file format (``calibnet-fp16-readiness/1``), read by ``calibnet.engines`` (``--fp32-layers FILE``, key
``fp32_layers``)::

    {"format": "calibnet-fp16-readiness/1", "fp16_max": 65504.0, "norm_input_limit": 256.0,
     "input_shape": [1, 3, 320, 480],
     "outputs": {"pred_logits": {"max_abs_diff": 0.01, "fp32_max_abs": 5.2}, ...,
                 "pred_masks": {..., "binary_agreement": 0.999}},
     "layers": [{"module": "backbone.res2.0.conv1", "type": "Conv2d", "max_abs_in": 3.1, "max_abs_out": 12.0}],
     "fp32_layers": [{"module": "encoder.trans_encoder.encoder.layers.0.norm1",
                      "pattern": "^/model/encoder/trans_encoder/encoder/layers\\\\.0/norm1/",
                      "reason": "normalization input 812 > 256"}]}

``fp32_islands`` lists the LayerNorm and Softmax modules (module, type, ``onnx_op``, pattern): the layers the
engine builder keeps in FP32 by op type whatever their ranges (the attention blocks of the transformer
backbones and of the encoders).

``layers`` lists every leaf module (in call order), ``fp32_layers`` the flagged ones; each ``pattern`` is a
regular expression matching the ONNX node names of that module (the TorchScript exporter's scope names,
``/model/<scope>/...``), so an engine builder can pin those nodes/layers to FP32.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calibnet.runtime.backends.torch_backend import TorchBackend
from calibnet.runtime.core.compare import binary_masks
from calibnet.runtime.core.contract import OUTPUT_NAMES

__all__ = ["fp16_readiness", "onnx_scope", "FP16_MAX", "FORMAT"]

FP16_MAX = 65504.0
FORMAT = "calibnet-fp16-readiness/1"
_NORM_TYPES = ("LayerNorm", "GroupNorm", "InstanceNorm2d")  # they compute statistics (x^2) at run time
#: leaf-module types whose ONNX op the engine builder keeps in FP32 by default (calibnet.engines.fp16
#: DEFAULT_FP32_PATTERNS): every LayerNorm and attention softmax (Swin/PVTv2/P2T blocks, the encoders)
_ISLAND_OPS = {"LayerNorm": "LayerNormalization", "Softmax": "Softmax"}


def onnx_scope(model: nn.Module, name: str, root: str = "/model") -> str:
    """The ONNX node-name scope of submodule ``name`` as written by the TorchScript exporter under a wrapper
    whose attribute is ``model``: containers that are never called (ModuleList/ModuleDict) get no scope of
    their own, and an index joins the previous component (``layers.0``, ``input_convs.1.2``)."""
    parts: list[str] = []
    mod: nn.Module = model
    comp = ""
    for tok in name.split("."):
        mod = mod._modules[tok]  # type: ignore[assignment]
        comp = f"{comp}.{tok}" if tok.isdigit() and comp else tok
        if not isinstance(mod, (nn.ModuleList, nn.ModuleDict)):
            parts.append(comp)
    return "/".join([root, *parts])


def _max_abs(x: Any) -> float:
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
        return float(x.detach().abs().max())
    if isinstance(x, (tuple, list)):
        return max((_max_abs(v) for v in x), default=0.0)
    return 0.0


def _to_fp16(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(torch.float16).to(x.dtype)
    if isinstance(x, tuple):
        return tuple(_to_fp16(v) for v in x)
    return x


def _run_hooked(model: nn.Module, hook: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs with ``hook(name, module, args, out)`` as forward hook on every leaf module."""
    handles = [m.register_forward_hook(functools.partial(hook, n)) for n, m in model.named_modules()
               if n and not any(True for _ in m.children())]
    try:
        return TorchBackend(model).run(dict(inputs))
    finally:
        for h in handles:
            h.remove()


def fp16_readiness(model: nn.Module, inputs: Mapping[str, np.ndarray], norm_input_limit: float = 256.0,
                   out_path: str | Path | None = None) -> dict[str, Any]:
    """Run both passes on ``inputs`` (``rgb``, ``depth``, ``valid_hw`` numpy arrays); returns the report
    (format above) and writes it to ``out_path`` as JSON when given."""
    model = model.eval()

    stats: dict[str, dict[str, Any]] = {}  # leaf modules in the order they first ran

    def record(name: str, mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        s = stats.setdefault(name, {"module": name, "type": type(mod).__name__, "max_abs_in": 0.0, "max_abs_out": 0.0})
        s["max_abs_in"] = max(s["max_abs_in"], _max_abs(args))
        s["max_abs_out"] = max(s["max_abs_out"], _max_abs(out))

    ref = _run_hooked(model, record, inputs)

    half = copy.deepcopy(model)
    with torch.no_grad():
        for p in half.parameters():
            p.copy_(p.to(torch.float16).float())
    emu = _run_hooked(half, lambda _name, _mod, _args, out: _to_fp16(out), inputs)

    outputs: dict[str, dict[str, float]] = {}
    for k in OUTPUT_NAMES:
        diff = np.abs(emu[k].astype(np.float64) - ref[k])
        outputs[k] = {"max_abs_diff": float(np.nan_to_num(diff, nan=np.inf).max()),
                      "fp32_max_abs": float(np.abs(ref[k]).max())}
    t = model.cfg.inference.mask_threshold  # the one mask rule: probability > mask threshold
    same = binary_masks("pred_masks", emu["pred_masks"], t) == binary_masks("pred_masks", ref["pred_masks"], t)
    outputs["pred_masks"]["binary_agreement"] = float(same.mean())

    flagged = []
    for name, s in stats.items():
        reasons = []
        if max(s["max_abs_in"], s["max_abs_out"]) > FP16_MAX:
            reasons.append(f"activation {max(s['max_abs_in'], s['max_abs_out']):.4g} > {FP16_MAX:g}")
        if s["type"] in _NORM_TYPES and s["max_abs_in"] > norm_input_limit:
            reasons.append(f"normalization input {s['max_abs_in']:.4g} > {norm_input_limit:g}")
        if reasons:
            flagged.append({"module": name, "pattern": "^" + re.escape(onnx_scope(model, name) + "/"),
                            "reason": "; ".join(reasons)})
    report = {"format": FORMAT, "fp16_max": FP16_MAX, "norm_input_limit": norm_input_limit,
              "input_shape": list(inputs["rgb"].shape), "outputs": outputs,
              "layers": list(stats.values()), "fp32_layers": flagged,
              "fp32_islands": [{"module": n, "type": stats[n]["type"], "onnx_op": _ISLAND_OPS[stats[n]["type"]],
                                "pattern": "^" + re.escape(onnx_scope(model, n) + "/")}
                               for n in stats if stats[n]["type"] in _ISLAND_OPS]}
    if out_path is not None:
        Path(out_path).write_text(json.dumps(report, indent=2))
    return report
