"""ONNX faces of multi-scale deformable attention (MSDA): the TensorRT plugin node and its GridSample body.

TensorRT plugin facts (checked against NVIDIA/TensorRT ``plugin/multiscaleDeformableAttnPlugin`` sources and
the 10.11 / 11.0 release notes):

* op_type / plugin name ``MultiscaleDeformableAttnPlugin_TRT``; the ONNX parser (onnx-tensorrt) falls back to
  the plugin registry for a node whose op_type is a registered plugin name, taking the version from a string
  attribute ``plugin_version`` (default ``"1"``) and the namespace from ``plugin_namespace`` (default ``""``).
  The node domain is not used by the parser; we use ``TRT`` like NVIDIA's TAO exporters.
* ``plugin_version="1"``: IPluginV2DynamicExt, in the OSS plugin library since the TensorRT 8.x series
  (plugin README of Feb 2022), deprecated since 10.11 but still shipped in 11.x (the V2 interfaces are
  deprecated, not removed; MSDA is not in 11.0's removed-plugin list). ``plugin_version="2"``: IPluginV3,
  TensorRT >= 10.11. Same inputs, output and (no) attributes in both. Our default is ``"1"``, the widest range.
* Inputs, in order: ``value`` [N,S,M,D], ``spatial_shapes`` [L,2] INT32 (H, W), ``level_start_index`` [L]
  INT32, ``sampling_locations`` [N,Lq,M,L,P,2] (x, y in [0,1]), ``attention_weights`` [N,Lq,M,L,P].
  ``value``, ``sampling_locations``, ``attention_weights`` and the output share one dtype, FP32 or FP16
  (``supportsFormatCombination``: positions 1 and 2 must be kINT32, the others equal to input 0's type,
  linear format). Output [N,Lq,M,D]; the graph reshapes it to [N,Lq,M*D].
* Call ``trt.init_libnvinfer_plugins(logger, "")`` before parsing. Since TensorRT 10.7 a registered plugin
  takes precedence over an ONNX local function of the same name, so the CPU reference body attached by
  :func:`attach_reference_function` does not change what TensorRT builds; the exporter embeds it by default
  (so ONNX Runtime runs the TensorRT-flavoured file as is) and leaves it out with ``reference_body=False``
  for TensorRT < 10.7, whose parser would inline it instead of using the plugin.

The CPU reference (:func:`msda_function_proto`) is an ONNX local function with the plugin's name, domain
and signature whose body computes MSDA with GridSample (bilinear, zero padding, align_corners=0) reading the
level sizes from the ``spatial_shapes`` / ``level_start_index`` tensors, so it works for dynamic H/W. ONNX
Runtime inlines it; the portable flavour inlines it too (:func:`inline_msda`), so both flavours share one
definition of the op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import onnx
import torch
from onnx import TensorProto, helper

from calibnet.modeling.msda import ms_deform_attn_core
from calibnet.runtime.backends.msda_inline import inline_plugin_nodes
from calibnet.runtime.core.contract import PLUGIN_DOMAIN, PLUGIN_NAME

__all__ = ["PLUGIN_NAME", "PLUGIN_DOMAIN", "PluginMSDA", "msda_function_proto", "attach_reference_function",
           "inline_msda", "load_runnable", "plugin_nodes"]

PLUGIN_VERSIONS = ("1", "2")


class PluginMSDA(torch.autograd.Function):
    """MSDA as one node: eager = the reference computation, ONNX = the TensorRT plugin node."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                plugin_version: str = "1") -> torch.Tensor:
        """[N,S,M,D] ... -> [N,Lq,M,D] (the plugin's output layout)."""
        del ctx, level_start_index, plugin_version
        shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        N, _, M, D = value.shape
        Lq = sampling_locations.shape[1]
        return ms_deform_attn_core(value, shapes, sampling_locations, attention_weights).view(N, Lq, M, D)

    @staticmethod
    def symbolic(g, value, spatial_shapes, level_start_index, sampling_locations, attention_weights,  # type: ignore[no-untyped-def]
                 plugin_version="1"):
        """The plugin node (``plugin_version`` attribute "1" or "2"), with the INT32 casts the plugin needs."""
        shapes32 = g.op("Cast", spatial_shapes, to_i=TensorProto.INT32)
        start32 = g.op("Cast", level_start_index, to_i=TensorProto.INT32)
        out = g.op(f"{PLUGIN_DOMAIN}::{PLUGIN_NAME}", value, shapes32, start32, sampling_locations,
                   attention_weights, plugin_version_s=plugin_version)
        from torch.onnx import symbolic_helper

        vs = symbolic_helper._get_tensor_sizes(value)
        ls = symbolic_helper._get_tensor_sizes(sampling_locations)
        if vs is not None and ls is not None and len(vs) == 4 and len(ls) == 6:
            out.setType(value.type().with_sizes([vs[0], ls[1], vs[2], vs[3]]))  # [N,Lq,M,D] for shape inference
        return out


def plugin_impl(value: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]], level_start_index: torch.Tensor,
                sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                spatial_shapes_tensor: torch.Tensor, plugin_version: str = "1") -> torch.Tensor:
    """An implementation for :func:`calibnet.modeling.msda.msda_implementation` that exports as the plugin
    (bind ``plugin_version`` with ``functools.partial``)."""
    del spatial_shapes
    out = PluginMSDA.apply(value, spatial_shapes_tensor, level_start_index, sampling_locations, attention_weights,
                           plugin_version)
    N, Lq = sampling_locations.shape[:2]
    return out.reshape(N, Lq, value.shape[2] * value.shape[3])


def msda_function_proto(n_levels: int, opset: int = 17) -> onnx.FunctionProto:
    """The CPU reference of the plugin as an ONNX local function (domain ``TRT``), unrolled over ``n_levels``."""
    nodes: list[onnx.NodeProto] = []

    def op(op_type: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(name: str, values: list[int] | float, dtype: int = TensorProto.INT64) -> str:
        dims, vals = ([len(values)], values) if isinstance(values, list) else ([], [values])
        return op("Constant", [], name, value=helper.make_tensor(name, dtype, dims, vals))

    one, two_f, one_f = const("c_one", [1]), const("c_two_f", 2.0, TensorProto.FLOAT), const("c_one_f", 1.0,
                                                                                                   TensorProto.FLOAT)
    c2 = const("c_2", [2])
    shapes = op("Cast", ["spatial_shapes"], "shapes64", to=TensorProto.INT64)
    starts = op("Cast", ["level_start_index"], "starts64", to=TensorProto.INT64)
    vshape = op("Shape", ["value"], "vshape")
    lshape = op("Shape", ["sampling_locations"], "lshape")

    def dim(shape: str, i: int, name: str) -> str:
        return op("Slice", [shape, const(f"{name}_s", [i]), const(f"{name}_e", [i + 1])], name)

    n, m, d = dim(vshape, 0, "dN"), dim(vshape, 2, "dM"), dim(vshape, 3, "dD")
    lq, p = dim(lshape, 1, "dLq"), dim(lshape, 4, "dP")
    nm = op("Mul", [n, m], "dNM")
    v_t = op("Transpose", ["value"], "v_t", perm=[0, 2, 3, 1])  # [N,M,D,S]
    grids = op("Sub", [op("Mul", ["sampling_locations", two_f], "loc2"), one_f], "grids")
    grid_shape = op("Concat", [nm, lq, p, c2], "grid_shape", axis=0)
    attn_shape = op("Concat", [nm, one, lq, p], "attn_shape", axis=0)
    partial = []
    for lvl in range(n_levels):
        li = const(f"l{lvl}", lvl)  # scalar index
        hw = op("Gather", [shapes, li], f"hw{lvl}", axis=0)  # [2]
        h, w = dim(hw, 0, f"h{lvl}"), dim(hw, 1, f"w{lvl}")
        start = op("Slice", [starts, const(f"st{lvl}_s", [lvl]), const(f"st{lvl}_e", [lvl + 1])], f"start{lvl}")
        end = op("Add", [start, op("Mul", [h, w], f"area{lvl}")], f"end{lvl}")
        v = op("Slice", [v_t, start, end, const(f"ax{lvl}", [3])], f"v{lvl}")
        v = op("Reshape", [v, op("Concat", [nm, d, h, w], f"vshape{lvl}", axis=0)], f"v{lvl}_img")
        g = op("Gather", [grids, li], f"g{lvl}", axis=3)  # [N,Lq,M,P,2]
        g = op("Reshape", [op("Transpose", [g], f"g{lvl}_t", perm=[0, 2, 1, 3, 4]), grid_shape], f"g{lvl}_r")
        s = op("GridSample", [v, g], f"s{lvl}", mode="bilinear", padding_mode="zeros", align_corners=0)
        a = op("Gather", ["attention_weights", li], f"a{lvl}", axis=3)  # [N,Lq,M,P]
        a = op("Reshape", [op("Transpose", [a], f"a{lvl}_t", perm=[0, 2, 1, 3]), attn_shape], f"a{lvl}_r")
        partial.append(op("ReduceSum", [op("Mul", [s, a], f"sa{lvl}"), const(f"red{lvl}", [3])], f"o{lvl}",
                          keepdims=0))  # [NM,D,Lq]
    total = op("Sum", partial, "o_sum") if len(partial) > 1 else partial[0]
    out = op("Reshape", [total, op("Concat", [n, m, d, lq], "out_shape", axis=0)], "o_nmdq")
    op("Transpose", [out], "output", perm=[0, 3, 1, 2])  # [N,Lq,M,D]
    return helper.make_function(PLUGIN_DOMAIN, PLUGIN_NAME,
                                ["value", "spatial_shapes", "level_start_index", "sampling_locations",
                                 "attention_weights"], ["output"], nodes,
                                [helper.make_opsetid("", opset)], attributes=["plugin_version"])


def plugin_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The MSDA plugin nodes of the main graph."""
    return [n for n in model.graph.node if n.op_type == PLUGIN_NAME]


def _n_levels(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    """The level count of a plugin node: dim 3 of its sampling_locations, else dim 0 of its spatial_shapes or
    level_start_index (shapes as inferred, constant shape tensors propagated)."""
    shapes = {vi.name: vi.type.tensor_type.shape.dim for vi in [*model.graph.value_info, *model.graph.input]}
    for index, axis in ((3, 3), (1, 0), (2, 0)):
        dims = shapes.get(node.input[index], [])
        if len(dims) > axis and dims[axis].HasField("dim_value"):
            return int(dims[axis].dim_value)
    raise ValueError(f"cannot tell the number of levels of {node.name}: run shape inference first")


def _copy_with_body(model: onnx.ModelProto, n_levels: int | None) -> tuple[onnx.ModelProto, onnx.FunctionProto | None]:
    """A copy of ``model`` and the reference body for its plugin nodes (None when it has none)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = plugin_nodes(out)
    if not nodes:
        return out, None
    if n_levels is None:
        n_levels = _n_levels(onnx.shape_inference.infer_shapes(out, data_prop=True), nodes[0])
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), 17)
    return out, msda_function_proto(n_levels, opset)


def attach_reference_function(model: onnx.ModelProto, n_levels: int | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with the GridSample reference body of the plugin attached as a local function,
    so ONNX Runtime (any CPU) runs the TensorRT-flavoured graph. ``n_levels`` defaults to the level count
    read from the first plugin node's ``sampling_locations`` shape."""
    out, body = _copy_with_body(model, n_levels)
    if body is None:
        return out
    kept = [f for f in out.functions if not (f.domain == PLUGIN_DOMAIN and f.name == PLUGIN_NAME)]
    del out.functions[:]
    out.functions.extend([*kept, body])
    if not any(o.domain == PLUGIN_DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    return out


def load_runnable(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """The ONNX file as ONNX Runtime runs it: with the plugin's reference body attached when the graph has
    plugin nodes (:func:`attach_reference_function`), else as loaded (no copy of a portable graph)."""
    model = onnx.load(str(path))
    return attach_reference_function(model) if plugin_nodes(model) else model


def inline_msda(model: onnx.ModelProto, n_levels: int | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with every plugin node replaced by its GridSample body (plain ONNX: the portable
    flavour), by the runtime's one inlining rule (:func:`calibnet.runtime.backends.msda_inline.inline_plugin_nodes`:
    nodes named ``<plugin node scope>/msda_<op>_<tensor>``, in the attention module's scope)."""
    out, body = _copy_with_body(model, n_levels)
    return out if body is None else inline_plugin_nodes(out, body)


def name_plugin_nodes(model: onnx.ModelProto) -> None:
    """Name each (unnamed) plugin node and its INT32 casts after the attention module that owns it
    (``.../layers.k/self_attn/MultiscaleDeformableAttnPlugin_TRT``), in place."""
    producer = {o: n for n in model.graph.node for o in n.output}
    for i, node in enumerate(model.graph.node):
        if node.op_type != PLUGIN_NAME:
            continue
        src = producer.get(node.input[3])
        scope = src.name.rsplit("/", 1)[0] if src is not None and "/" in src.name else f"/msda_{i}"
        node.name = node.name or f"{scope}/{PLUGIN_NAME}"
        for k, tag in ((1, "spatial_shapes"), (2, "level_start_index")):
            cast = producer.get(node.input[k])
            if cast is not None and not cast.name:
                cast.name = f"{scope}/Cast_{tag}"
