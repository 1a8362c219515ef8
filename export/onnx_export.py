"""PyTorch -> ONNX export of CalibNet, two flavours of the deformable-attention op.

* ``flavor="tensorrt"``: each MSDA call is ONE custom node ``TRT::MultiscaleDeformableAttnPlugin_TRT``
  (6 in R50: 3 layers x 2 encoders) that TensorRT's ONNX parser maps to its built-in plugin; no GridSample.
  Facts about the plugin (name, version, input order, INT32 inputs, release range) are in
  :mod:`calibnet.export.msda_onnx`. The plugin's CPU reference body is embedded as an ONNX local function of
  the same name (``reference_body=True``, the default), so ONNX Runtime, and with it the torch-free runtime,
  runs the file as is on any machine; TensorRT >= 10.7 builds the registered plugin instead of the function.
  ``reference_body=False`` (``--no-reference-body``) writes the bare plugin graph for older TensorRT parsers,
  which would inline the function; ONNX Runtime then needs the body attached
  (:func:`~calibnet.export.msda_onnx.attach_reference_function`).
* ``flavor="portable"``: the same node replaced by its plain-ONNX GridSample body (no custom op), runs on
  any ONNX Runtime.

Exporter: the TorchScript tracer (``torch.onnx.export(..., dynamo=False)``) at opset 17. Why: with torch
2.13 it gives a flat graph whose node names follow the module path (``/model/encoder/.../self_attn/...``),
which the FP16 tooling of calibnet.engines matches against; a custom node is one ``symbolic`` of an
autograd.Function (the dynamo exporter needs a torch.library op plus an onnxscript translation for the same
node and produces function-wrapped graphs); dynamic H/W works with two export-time patches
(:mod:`calibnet.export.dynamic_shapes`). Opset 17..19 keep GridSample's mode spelled "bilinear" (opset 20
renamed it "linear", which TensorRT's parser silently treats as nearest); opset 20+ is refused.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from calibnet import __version__
from calibnet.modeling.msda import msda_implementation
from calibnet.runtime.core.contract import (
    INPUT_NAMES,
    MASK_OUTPUTS,
    OUTPUT_NAMES,
    PLUGIN_DOMAIN,
    PLUGIN_NAME,
    TOPK_OUTPUT_NAMES,
    ModelMetadata,
    metadata_from_config,
)

from . import msda_onnx
from .dynamic_shapes import dynamic_reference_points
from .topk import BELOW_THRESHOLD_SCORE, TopKDeploy

__all__ = ["export_onnx", "DeployWrapper", "FLAVORS"]

FLAVORS = ("portable", "tensorrt")


class DeployWrapper(nn.Module):
    """The deployment signature: (rgb, depth, valid_hw) -> the raw outputs, as a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, valid_hw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(rgb, depth, image_sizes=valid_hw)
        return tuple(out[k] for k in OUTPUT_NAMES)


def _check_args(model: nn.Module, flavor: str, height: int, width: int, batch: int, opset: int,
                topk: int, min_hw: tuple[int, int], max_hw: tuple[int, int], dynamic: bool,
                plugin_version: str) -> None:
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}, got {flavor!r}")
    if plugin_version not in msda_onnx.PLUGIN_VERSIONS:
        raise ValueError(f"plugin_version must be '1' (TensorRT 8.x..11.x) or '2' (>= 10.11), got {plugin_version!r}")
    div = model.cfg.input.size_divisibility
    for h, w in ((height, width), *((min_hw, max_hw) if dynamic else ())):
        if h % div or w % div or h <= 0 or w <= 0:
            raise ValueError(f"height and width must be positive multiples of {div}, got {h}x{w}")
    if dynamic and not (min_hw[0] <= height <= max_hw[0] and min_hw[1] <= width <= max_hw[1]):
        raise ValueError(f"export size {height}x{width} is outside min_hw {min_hw} .. max_hw {max_hw}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if not 17 <= opset <= 19:
        raise ValueError(f"opset must be 17..19 (opset 20 renames GridSample 'bilinear' to 'linear'), got {opset}")
    if topk and not 1 <= topk <= model.cfg.decoder.num_kernels:
        raise ValueError(f"topk must be in 1..{model.cfg.decoder.num_kernels}, got {topk}")


def export_onnx(model: nn.Module, path: str | Path, flavor: str = "portable", height: int = 320, width: int = 480,
                dynamic: bool = False, batch: int = 1, topk: int | None = None, opset: int = 17,
                simplify: bool = True, metadata: ModelMetadata | None = None, *,
                dynamic_batch: bool | None = None, min_hw: tuple[int, int] = (320, 320),
                max_hw: tuple[int, int] = (480, 480), max_batch: int | None = None,
                plugin_version: str = "1", reference_body: bool = True) -> Path:
    """Export ``model`` (a :class:`calibnet.CalibNet`) to ``path``; returns the path.

    Inputs ``rgb`` float32 [B,3,H,W] 0..255, ``depth`` float32 [B,1,H,W] 0..255, ``valid_hw`` int64 [B,2].
    Outputs: ``pred_logits`` [B,N,1], ``pred_scores`` [B,N,1], ``pred_masks`` (logits, H/2 x W/2) and
    ``depth_trust`` [B,3]; with ``topk=K``: ``scores`` [B,K], ``masks`` [B,K,H/2,W/2] (probabilities),
    ``depth_trust``, ``keep_index`` [B,K] (see :mod:`calibnet.export.topk`).

    Args:
        flavor: "portable" (GridSample MSDA, plain ONNX) or "tensorrt" (one plugin node per MSDA call).
        height, width: the (optimal) input size, multiples of 32; the static size unless ``dynamic``.
        dynamic: dynamic H and W (any multiple of 32); ``min_hw``/``max_hw`` go into the metadata as the
            profile bounds an engine is built for (default 320x320 .. 480x480: every padded size of the
            official resize, short side 320, long side <= 480).
        batch: the batch of the example input; ``dynamic_batch`` (default: ``dynamic``) makes it dynamic,
            ``max_batch`` (default: ``max(batch, 4)`` if dynamic, else ``batch``) is the profile bound.
        topk: in-graph selection of K instances (None/0: full outputs).
        opset: 17..19.
        simplify: run onnxslim (node names stay; skipped with a warning if it fails).
        metadata: provenance fields to keep (config, checkpoint, sha256...); shape/graph fields are set here.
        plugin_version: the TensorRT plugin version written on the custom nodes ("1" or "2", tensorrt flavour).
        reference_body: tensorrt flavour: embed the plugin's CPU reference body (a local function; TensorRT
            >= 10.7 prefers the registered plugin), so ONNX Runtime runs the file as is.

    The file passes ``onnx.checker`` (full check; for the tensorrt flavour on the graph with the CPU
    reference body attached, so the custom node's wiring and types are checked too), carries inferred shapes
    and :class:`ModelMetadata` in ``metadata_props``.
    """
    topk = int(topk or 0)
    dynamic_batch = dynamic if dynamic_batch is None else dynamic_batch
    max_batch = max_batch or (max(batch, 4) if dynamic_batch else batch)
    min_hw, max_hw = tuple(min_hw), tuple(max_hw)  # type: ignore[assignment]
    _check_args(model, flavor, height, width, batch, opset, topk, min_hw, max_hw, dynamic, plugin_version)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    wrapper = (TopKDeploy(model, topk) if topk else DeployWrapper(model)).eval()
    outputs = TOPK_OUTPUT_NAMES if topk else OUTPUT_NAMES
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(batch, 3, height, width, generator=g) * 255
    depth = torch.rand(batch, 1, height, width, generator=g) * 255
    valid = torch.tensor([[height, width]] * batch, dtype=torch.int64)
    axes: dict[str, dict[int, str]] = {}
    if dynamic or dynamic_batch:
        spatial = {2: "height", 3: "width"} if dynamic else {}
        b = {0: "batch"} if dynamic_batch else {}
        axes = dict(zip(INPUT_NAMES, ({**b, **spatial}, {**b, **spatial}, dict(b))))
        half = {2: "mask_height", 3: "mask_width"} if dynamic else {}
        for name in outputs:
            axes[name] = {**b, **(half if name in MASK_OUTPUTS else {})}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(msda_implementation(functools.partial(msda_onnx.plugin_impl,
                                                                  plugin_version=plugin_version)))
        if dynamic:
            stack.enter_context(dynamic_reference_points(model))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")  # tracer chatter; the graph is checked and verified afterwards
        torch.onnx.export(wrapper, (rgb, depth, valid), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(outputs), opset_version=opset, dynamo=False,
                          do_constant_folding=True, dynamic_axes=axes or None)
    proto = onnx.load(str(path))
    msda_onnx.name_plugin_nodes(proto)
    n_levels = len(model.cfg.encoder.in_features)
    if flavor == "portable":
        proto = msda_onnx.inline_msda(proto, n_levels)
    if simplify:  # onnxslim: constant folding, dead/duplicate node removal; node names are kept
        try:
            import onnxslim

            proto = onnxslim.slim(proto)
        except Exception as exc:  # noqa: BLE001 - optional step, the unsimplified graph is valid
            warnings.warn(f"onnxslim failed ({exc}); keeping the unsimplified graph", stacklevel=2)
    extra = dict(metadata.extra) if metadata is not None else {}
    if flavor == "tensorrt":
        extra["msda_plugin"] = {"name": PLUGIN_NAME, "domain": PLUGIN_DOMAIN, "plugin_version": plugin_version}
    if topk:
        extra["topk_below_threshold_score"] = BELOW_THRESHOLD_SCORE
    meta = metadata_from_config(
        model.cfg, metadata, flavor=flavor, topk=topk, height=height, width=width, batch=batch, max_batch=max_batch,
        min_hw=min_hw if dynamic else (height, width), max_hw=max_hw if dynamic else (height, width),
        dynamic_batch=dynamic_batch, dynamic_hw=dynamic, input_names=INPUT_NAMES, output_names=outputs, opset=opset,
        exporter="torchscript", torch_version=torch.__version__, calibnet_version=__version__, extra=extra)
    onnx.helper.set_model_props(proto, meta.to_props())
    # the checker needs the plugin's body: the saved graph embeds it with reference_body, else only the checked copy
    checked = msda_onnx.attach_reference_function(proto, n_levels) if flavor == "tensorrt" else proto
    if reference_body:
        proto = checked
    checked = onnx.shape_inference.infer_shapes(checked, strict_mode=True)
    onnx.checker.check_model(checked, full_check=True)
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(checked.graph.value_info)
    onnx.save(proto, str(path))
    return path

