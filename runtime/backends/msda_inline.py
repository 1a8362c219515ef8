"""The deformable-attention plugin nodes replaced by their ONNX reference body (the portable computation).

One rule for both places that need it: the portable export flavour (:func:`calibnet.export.msda_onnx.inline_msda`)
and the OpenVINO backend running a TensorRT-flavoured file without calibnet's fused kernel
(:mod:`.openvino_msda`). Inlined nodes are named ``<plugin node scope>/msda_<op>_<tensor>`` and their tensors
``<scope>/msda/<tensor>``, so they stay in the attention module's scope (``.../layers.k/self_attn/``), which the
FP16 tooling of calibnet.engines, the INT8 keep-float groups and the profiles rely on.

Needs the ``onnx`` package, imported when a model is inlined (the runtime loads without it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.contract import PLUGIN_DOMAIN, PLUGIN_NAME

if TYPE_CHECKING:
    import onnx

__all__ = ["embedded_body", "inline_plugin_nodes"]


def embedded_body(model: onnx.ModelProto) -> onnx.FunctionProto | None:
    """The plugin's reference body a TensorRT-flavoured file embeds (a local function), or None."""
    return next((f for f in model.functions if f.domain == PLUGIN_DOMAIN and f.name == PLUGIN_NAME), None)


def inline_plugin_nodes(model: onnx.ModelProto, body: onnx.FunctionProto) -> onnx.ModelProto:
    """A copy of ``model`` with every plugin node replaced by ``body``'s nodes (scoped names, see the module),
    without the plugin's local function and opset."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    new_nodes: list[onnx.NodeProto] = []
    for k, node in enumerate(out.graph.node):
        if node.op_type != PLUGIN_NAME:
            new_nodes.append(node)
            continue
        scope = node.name.rsplit("/", 1)[0] if "/" in node.name else f"/msda_{k}"
        names = dict(zip(body.input, node.input))
        names.update(zip(body.output, node.output))
        for inner in body.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            for seq in (copy.input, copy.output):
                for i, t in enumerate(seq):
                    if t:
                        seq[i] = names.setdefault(t, f"{scope}/msda/{t}")
            copy.name = f"{scope}/msda_{inner.op_type}_{inner.output[0]}"
            new_nodes.append(copy)
    functions = [f for f in out.functions if not (f.domain == PLUGIN_DOMAIN and f.name == PLUGIN_NAME)]
    opsets = [o for o in out.opset_import if o.domain != PLUGIN_DOMAIN]
    for field, kept in ((out.graph.node, new_nodes), (out.functions, functions), (out.opset_import, opsets)):
        del field[:]
        field.extend(kept)
    return out
