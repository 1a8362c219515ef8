"""PyTorch -> ONNX export of CalibNet (portable flavour: plain ONNX ops, MSDA as GridSample).

Exporter: the TorchScript tracer (``torch.onnx.export(..., dynamo=False)``) at opset 17. Opset 17 keeps
GridSample's mode spelled "bilinear" (opset 20 renamed it "linear", which TensorRT's parser silently
treats as nearest), and the tracer gives a flat graph whose node names follow the module names, which
the FP16 tooling in calibnet.engines matches against.

Not yet implemented (raise ``NotImplementedError`` with a message): the TensorRT plugin flavour, dynamic
H/W and in-graph top-k selection.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from calibnet import __version__
from calibnet.runtime.metadata import ModelMetadata

__all__ = ["export_onnx", "DeployWrapper", "FULL_OUTPUTS", "INPUTS"]

INPUTS = ("rgb", "depth", "valid_hw")
FULL_OUTPUTS = ("pred_logits", "pred_scores", "pred_masks", "depth_trust")


class DeployWrapper(nn.Module):
    """The deployment signature: (rgb, depth, valid_hw) -> the raw outputs, as a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, valid_hw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(rgb, depth, image_sizes=valid_hw)
        return tuple(out[k] for k in FULL_OUTPUTS)


def _metadata_for(model: nn.Module, flavor: str, height: int, width: int, batch: int, opset: int,
                  base: ModelMetadata | None) -> ModelMetadata:
    cfg = model.cfg
    meta = base or ModelMetadata()
    meta.flavor = flavor
    meta.topk = 0
    meta.height, meta.width, meta.batch, meta.max_batch = height, width, batch, batch
    meta.min_hw = meta.max_hw = (height, width)
    meta.dynamic_batch = meta.dynamic_hw = False
    meta.input_names, meta.output_names = INPUTS, FULL_OUTPUTS
    meta.pixel_mean, meta.pixel_std = tuple(cfg.pixel_mean), tuple(cfg.pixel_std)
    meta.size_divisibility = cfg.input.size_divisibility
    meta.resize_short, meta.resize_max = cfg.input.min_size_test, cfg.input.max_size_test
    meta.num_kernels = cfg.decoder.num_kernels
    meta.cls_threshold = cfg.inference.cls_threshold
    meta.mask_threshold = cfg.inference.mask_threshold
    meta.max_detections = cfg.inference.max_detections
    meta.opset, meta.exporter = opset, "torchscript"
    meta.torch_version, meta.calibnet_version = torch.__version__, __version__
    return meta


def export_onnx(model: nn.Module, path: str | Path, flavor: str = "portable", height: int = 320, width: int = 480,
                dynamic: bool = False, batch: int = 1, topk: int | None = None, opset: int = 17,
                simplify: bool = False, metadata: ModelMetadata | None = None) -> Path:
    """Export ``model`` (a :class:`calibnet.CalibNet`) to ``path``; returns the path.

    Inputs ``rgb`` float32 [B,3,H,W] 0..255, ``depth`` float32 [B,1,H,W] 0..255, ``valid_hw`` int64 [B,2];
    outputs ``pred_logits``, ``pred_scores``, ``pred_masks`` (logits, H/2 x W/2) and ``depth_trust``.
    The file is checked with ``onnx.checker`` (full check) and carries :class:`ModelMetadata` in
    ``metadata_props``.
    """
    if flavor != "portable":
        raise NotImplementedError(f"flavor={flavor!r}: only the portable flavour is implemented so far")
    if dynamic:
        raise NotImplementedError("dynamic H/W export is not implemented yet: export one static size per shape")
    if topk:
        raise NotImplementedError("in-graph top-k selection is not implemented yet: use the full outputs")
    if height % 32 or width % 32 or height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive multiples of 32, got {height}x{width}")
    if not 17 <= opset <= 19:
        raise ValueError(f"opset must be 17..19 (opset 20 renames GridSample 'bilinear'), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = DeployWrapper(model).eval()
    rgb = torch.rand(batch, 3, height, width) * 255
    depth = torch.rand(batch, 1, height, width) * 255
    valid = torch.tensor([[height, width]] * batch, dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/constant-folding chatter; the graph is checked below
        torch.onnx.export(wrapper, (rgb, depth, valid), str(path), input_names=list(INPUTS),
                          output_names=list(FULL_OUTPUTS), opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    proto = onnx.load(str(path))
    meta = _metadata_for(model, flavor, height, width, batch, opset, metadata)
    del proto.metadata_props[:]
    for k, v in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto = onnx.shape_inference.infer_shapes(proto)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path
