"""The MSDA custom node: its CPU reference body vs the PyTorch op, wiring in an exported graph, arguments."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from conftest import msda_plugin_graph  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from calibnet.export import export_onnx  # noqa: E402
from calibnet.export.msda_onnx import (  # noqa: E402
    PLUGIN_DOMAIN,
    attach_reference_function,
    inline_msda,
    plugin_nodes,
)
from calibnet.modeling.msda import ms_deform_attn_core  # noqa: E402

M, D, P = 2, 4, 3


def _plugin_graph(n_levels: int) -> onnx.ModelProto:
    """One plugin node with dynamic-shaped inputs, exactly as TensorRT sees it (INT32 shapes/starts)."""
    return msda_plugin_graph(n_levels, M, D, P)


def _random_case(shapes: list[tuple[int, int]], n: int, lq: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    s = sum(h * w for h, w in shapes)
    value = torch.randn(n, s, M, D, generator=g)
    loc = torch.rand(n, lq, M, len(shapes), P, 2, generator=g) * 1.2 - 0.1  # some samples fall outside
    attn = torch.rand(n, lq, M, len(shapes), P, generator=g)
    starts = np.cumsum([0] + [h * w for h, w in shapes[:-1]])
    feeds = {"value": value.numpy(), "spatial_shapes": np.array(shapes, dtype=np.int32),
             "level_start_index": starts.astype(np.int32), "loc": loc.numpy(), "attn": attn.numpy()}
    want = ms_deform_attn_core(value, shapes, loc, attn).view(n, lq, M, D).numpy()
    return feeds, want


@pytest.mark.parametrize("shapes,n,lq", [([(4, 6), (2, 3), (1, 2)], 1, 5), ([(6, 4), (3, 2), (2, 1)], 2, 7),
                                         ([(5, 5), (3, 3)], 1, 4)])
def test_reference_body_matches_pytorch_for_any_level_sizes(shapes, n, lq):
    model = _plugin_graph(len(shapes))
    feeds, want = _random_case(shapes, n, lq, seed=len(shapes) * 10 + n)
    for variant in (attach_reference_function(model), inline_msda(model)):
        sess = ort.InferenceSession(variant.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, feeds)[0]
        assert got.shape == (n, lq, M, D)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_inlined_graph_is_plain_onnx_named_in_scope():
    model = inline_msda(_plugin_graph(3))
    assert not plugin_nodes(model) and all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    grid = [n for n in model.graph.node if n.op_type == "GridSample"]
    assert len(grid) == 3 and all(n.name.startswith("/enc/self_attn/msda_") for n in grid)
    assert {helper.get_attribute_value(a) for n in grid for a in n.attribute if a.name == "mode"} == {b"bilinear"}


@pytest.mark.slow
def test_tensorrt_graph_wiring(r18, tmp_path):
    path = export_onnx(r18, tmp_path / "t.onnx", flavor="tensorrt", height=64, width=96, simplify=False)
    proto = onnx.load(str(path))
    nodes = plugin_nodes(proto)
    assert len(nodes) == 6  # 3 layers x (RGB, depth) encoders
    assert not any(n.op_type == "GridSample" for n in proto.graph.node)
    inferred = onnx.shape_inference.infer_shapes(attach_reference_function(proto))
    types = {v.name: v.type.tensor_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    for node in nodes:
        assert node.domain == PLUGIN_DOMAIN and "/self_attn/" in node.name
        assert {a.name: a.s for a in node.attribute} == {"plugin_version": b"1"}
        elem = [types[i].elem_type for i in node.input]
        assert elem == [TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT32, TensorProto.FLOAT, TensorProto.FLOAT]
        assert [len(types[i].shape.dim) for i in node.input] == [4, 2, 1, 6, 5]
        assert types[node.output[0]].shape.dim[2].dim_value == types[node.input[0]].shape.dim[2].dim_value  # M


@pytest.mark.slow
def test_plugin_version_two_and_bad_arguments(r18, tmp_path):
    path = export_onnx(r18, tmp_path / "v2.onnx", flavor="tensorrt", height=64, width=96, simplify=False,
                       plugin_version="2")
    assert {n.attribute[0].s for n in plugin_nodes(onnx.load(str(path)))} == {b"2"}
    default = export_onnx(r18, tmp_path / "v1.onnx", flavor="tensorrt", height=64, width=96, simplify=False)
    assert {n.attribute[0].s for n in plugin_nodes(onnx.load(str(default)))} == {b"1"}  # no state left behind
    with pytest.raises(ValueError, match="plugin_version"):
        export_onnx(r18, tmp_path / "x.onnx", flavor="tensorrt", height=64, width=96, plugin_version="3")
    with pytest.raises(ValueError, match="flavor"):
        export_onnx(r18, tmp_path / "x.onnx", flavor="trt", height=64, width=96)
    with pytest.raises(ValueError, match="opset"):
        export_onnx(r18, tmp_path / "x.onnx", height=64, width=96, opset=20)
    with pytest.raises(ValueError, match="outside"):
        export_onnx(r18, tmp_path / "x.onnx", height=64, width=96, dynamic=True)  # default bounds 320..480
    with pytest.raises(ValueError, match="topk"):
        export_onnx(r18, tmp_path / "x.onnx", height=64, width=96, topk=51)
