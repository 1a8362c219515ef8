"""The ONNX FP16 pass for strongly typed TensorRT, checked on CPU with ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
TP = onnx.TensorProto
ort = pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402

from calibnet.engines.fp16 import (  # noqa: E402
    DEFAULT_FP32_PATTERNS,
    convert_to_fp16,
    load_fp32_patterns,
    matching_nodes,
)

RNG = np.random.default_rng(0)


def _toy_model(big_bias: float = 0.0):
    """MatMul -> Add -> LayerNorm -> Relu -> (attention_weights) MatMul -> Softmax -> Mul; W2 is shared by an
    FP16 node and an FP32 island."""
    w1 = numpy_helper.from_array((RNG.standard_normal((16, 16)) * 0.3).astype(np.float32), "W1")
    b1 = RNG.standard_normal(16).astype(np.float32)
    b1[0] += big_bias
    w2 = numpy_helper.from_array((RNG.standard_normal((16, 16)) * 0.3).astype(np.float32), "W2")
    inits = [w1, numpy_helper.from_array(b1, "B1"), numpy_helper.from_array(np.ones(16, np.float32), "G"),
             numpy_helper.from_array(np.zeros(16, np.float32), "Bt"), w2]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h1"], name="/enc/proj/MatMul"),
        helper.make_node("Add", ["h1", "B1"], ["h2"], name="/enc/proj/Add"),
        helper.make_node("LayerNormalization", ["h2", "G", "Bt"], ["h3"], name="/enc/norm/LayerNormalization",
                         axis=-1),
        helper.make_node("Relu", ["h3"], ["h4"], name="/enc/act/Relu"),
        helper.make_node("MatMul", ["h4", "W2"], ["h5"], name="/enc/attention_weights/MatMul"),
        helper.make_node("Softmax", ["h5"], ["h6"], name="/enc/Softmax", axis=-1),
        helper.make_node("Mul", ["h6", "h4"], ["h7"], name="/enc/Mul"),
        helper.make_node("MatMul", ["h7", "W2"], ["y"], name="/head/MatMul"),
    ]
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TP.FLOAT, [2, 8, 16])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [2, 8, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    t = {vi.name: vi.type.tensor_type.elem_type for vi in
         [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    t.update({i.name: i.data_type for i in inferred.graph.initializer})
    return t


def test_fp32_islands_stay_fp32_and_outputs_match():
    m = _toy_model()
    m16, rep = convert_to_fp16(m)
    onnx.checker.check_model(m16)
    types = _types(m16)
    nodes = {n.name: n for n in m16.graph.node}
    for island in ("/enc/norm/LayerNormalization", "/enc/attention_weights/MatMul", "/enc/Softmax"):
        assert island in rep.fp32_nodes
        n = nodes[island]
        assert all(types[i] == TP.FLOAT for i in n.input), (island, [types[i] for i in n.input])
        assert all(types[o] == TP.FLOAT for o in n.output)
    for half in ("/enc/proj/MatMul", "/enc/act/Relu", "/enc/Mul", "/head/MatMul"):
        assert all(types[i] == TP.FLOAT16 for i in nodes[half].input), half
    assert rep.fp16_nodes == 5 and rep.casts_inserted >= 4
    # W2 feeds an FP16 node and an FP32 island: both precisions exist, the original stays for the island
    inits = {i.name: i.data_type for i in m16.graph.initializer}
    assert inits["W2"] == TP.FLOAT and any(v == TP.FLOAT16 and k.startswith("W2") for k, v in inits.items())
    assert m16.graph.input[0].type.tensor_type.elem_type == TP.FLOAT
    assert m16.graph.output[0].type.tensor_type.elem_type == TP.FLOAT
    x = RNG.standard_normal((2, 8, 16)).astype(np.float32)
    ref, got = _run(m, x), _run(m16, x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2)
    assert not np.array_equal(got, ref)  # it really computed in half precision


def test_no_islands_and_custom_patterns():
    m = _toy_model()
    all16, rep = convert_to_fp16(m, fp32_patterns=[])
    assert rep.fp32_nodes == [] and rep.fp16_nodes == len(m.graph.node)
    types = _types(all16)
    ln = next(n for n in all16.graph.node if n.op_type == "LayerNormalization")
    assert types[ln.input[0]] == TP.FLOAT16
    only = convert_to_fp16(m, fp32_patterns=[r"^/head/"])[1]
    assert only.fp32_nodes == ["/head/MatMul"]
    x = RNG.standard_normal((2, 8, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(all16, x), _run(m, x), rtol=5e-2, atol=5e-2)


def test_keep_io_types_false_makes_fp16_io():
    m16, _ = convert_to_fp16(_toy_model(), fp32_patterns=["op:Softmax"], keep_io_types=False)
    onnx.checker.check_model(m16)
    assert m16.graph.input[0].type.tensor_type.elem_type == TP.FLOAT16
    assert m16.graph.output[0].type.tensor_type.elem_type == TP.FLOAT16
    out = ort.InferenceSession(m16.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": RNG.standard_normal((2, 8, 16)).astype(np.float16)})[0]
    assert out.dtype == np.float16 and np.isfinite(out).all()


def test_out_of_range_values_are_clipped_and_counted():
    _, rep = convert_to_fp16(_toy_model(big_bias=1e6))
    assert rep.clipped_values == 1


def test_resize_scales_stay_fp32_and_constants_convert():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(0.5, np.float32))),
             helper.make_node("Mul", ["x", "c"], ["m"], name="mul"),
             helper.make_node("Resize", ["m", "", "scales"], ["r"], name="resize", mode="nearest"),
             helper.make_node("Cast", ["r"], ["y"], name="cast", to=TP.FLOAT)]
    g = helper.make_graph(nodes, "rs", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 1, 2, 2])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, [1, 1, 4, 4])], [scales])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m16, _ = convert_to_fp16(m, fp32_patterns=[])
    onnx.checker.check_model(m16)
    types = _types(m16)
    rs = next(n for n in m16.graph.node if n.op_type == "Resize")
    assert types[rs.input[0]] == TP.FLOAT16 and types[rs.input[2]] == TP.FLOAT
    const = next(n for n in m16.graph.node if n.op_type == "Constant")
    assert const.attribute[0].t.data_type == TP.FLOAT16
    cast = next(n for n in m16.graph.node if n.name == "cast")
    assert cast.attribute[0].i == TP.FLOAT16  # the in-graph Cast now targets FP16; the output Cast restores FP32
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(_run(m16, x), _run(m, x))


def test_pattern_sources(tmp_path):
    assert matching_nodes(_toy_model()) == ["/enc/norm/LayerNormalization", "/enc/attention_weights/MatMul",
                                            "/enc/Softmax"]
    assert "op:LayerNormalization" in DEFAULT_FP32_PATTERNS
    p = tmp_path / "fp16_readiness.json"
    p.write_text(json.dumps({"fp32_layers": ["op:Softmax", {"name": "/a.b/Add"}, {"pattern": "^/x"}]}))
    pats = load_fp32_patterns(p)
    assert pats[0] == "op:Softmax" and pats[2] == "^/x"
    assert __import__("re").search(pats[1], "/a.b/Add") and not __import__("re").search(pats[1], "/aXb/Add")
    assert load_fp32_patterns(["op:Softmax"]) == ["op:Softmax"]
    p.write_text(json.dumps({"other": []}))
    with pytest.raises(ValueError, match="fp32_layers"):
        load_fp32_patterns(p)
    with pytest.raises(ValueError, match="bad FP32 layer pattern"):
        convert_to_fp16(_toy_model(), fp32_patterns=["("])


def _deform_model():
    """value -> GridSample(value, grid) where grid = (ref + offsets(q) / norm) * 2 - 1 inside /attn/; q comes from
    an out-of-scope node; a Shape of the (in-scope) value feeds the reshape."""
    w = numpy_helper.from_array((RNG.standard_normal((4, 2)) * 0.1).astype(np.float32), "Woff")
    c = {k: numpy_helper.from_array(np.array(v, np.float32), k) for k, v in
         {"norm": [4.0, 4.0], "two": 2.0, "one": 1.0}.items()}
    nodes = [
        helper.make_node("Relu", ["q_in"], ["q"], name="/enc/layers.0/Relu"),
        helper.make_node("Relu", ["v_in"], ["v"], name="/enc/layers.0/attn/value_proj/Relu"),
        helper.make_node("Shape", ["v"], ["vshape"], name="/enc/layers.0/attn/Shape"),
        helper.make_node("MatMul", ["q", "Woff"], ["off"], name="/enc/layers.0/attn/sampling_offsets/MatMul"),
        helper.make_node("Div", ["off", "norm"], ["offn"], name="/enc/layers.0/attn/Div"),
        helper.make_node("Add", ["ref", "offn"], ["loc"], name="/enc/layers.0/attn/Add"),
        helper.make_node("Mul", ["loc", "two"], ["loc2"], name="/enc/layers.0/attn/Mul"),
        helper.make_node("Sub", ["loc2", "one"], ["grid"], name="/enc/layers.0/attn/Sub"),
        helper.make_node("GridSample", ["v", "grid"], ["s"], name="/enc/layers.0/attn/GridSample",
                         align_corners=0, mode="bilinear", padding_mode="zeros"),
        helper.make_node("Relu", ["s"], ["y"], name="/enc/layers.0/attn/out/Relu"),
    ]
    inputs = [helper.make_tensor_value_info("q_in", TP.FLOAT, [1, 3, 5, 4]),
              helper.make_tensor_value_info("v_in", TP.FLOAT, [1, 2, 6, 6]),
              helper.make_tensor_value_info("ref", TP.FLOAT, [1, 3, 5, 2])]
    g = helper.make_graph(nodes, "deform", inputs, [helper.make_tensor_value_info("y", TP.FLOAT, [1, 2, 3, 5])],
                          [w, *c.values()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def test_sampling_location_cone_is_fp32():
    from calibnet.engines.fp16 import sampling_cone

    m = _deform_model()
    cone = sampling_cone(m)
    assert cone == {f"/enc/layers.0/attn/{n}" for n in ("sampling_offsets/MatMul", "Div", "Add", "Mul", "Sub")}
    m16, rep = convert_to_fp16(m, fp32_patterns=["op:GridSample"])
    assert cone <= set(rep.fp32_nodes) and "/enc/layers.0/Relu" not in rep.fp32_nodes
    assert "/enc/layers.0/attn/value_proj/Relu" not in rep.fp32_nodes
    types = _types(m16)
    gs = next(n for n in m16.graph.node if n.op_type == "GridSample")
    assert [types[i] for i in gs.input] == [TP.FLOAT, TP.FLOAT]
    assert convert_to_fp16(m, fp32_patterns=[], include_sampling_cone=False)[1].fp32_nodes == []
    feeds = {"q_in": RNG.standard_normal((1, 3, 5, 4)).astype(np.float32),
             "v_in": RNG.standard_normal((1, 2, 6, 6)).astype(np.float32),
             "ref": RNG.uniform(0.1, 0.9, (1, 3, 5, 2)).astype(np.float32)}
    run = lambda model: ort.InferenceSession(model.SerializeToString(),  # noqa: E731
                                             providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(run(m16), run(m), rtol=1e-2, atol=1e-2)


def test_plugin_node_is_an_fp32_island_with_int_inputs_untouched():
    nodes = [
        helper.make_node("Relu", ["value_in"], ["value"], name="/attn/value_proj/Relu"),
        helper.make_node("Softmax", ["aw_in"], ["aw"], name="/attn/Softmax", axis=-1),
        helper.make_node("MultiscaleDeformableAttnPlugin_TRT", ["value", "shapes", "starts", "loc", "aw"], ["msda"],
                         name="/attn/MultiscaleDeformableAttnPlugin_TRT", domain="trt", plugin_version="2"),
        helper.make_node("Relu", ["msda"], ["y"], name="/attn/out/Relu"),
    ]
    inputs = [helper.make_tensor_value_info("value_in", TP.FLOAT, [1, 10, 2, 4]),
              helper.make_tensor_value_info("aw_in", TP.FLOAT, [1, 5, 2, 1, 4]),
              helper.make_tensor_value_info("loc", TP.FLOAT, [1, 5, 2, 1, 4, 2])]
    inits = [numpy_helper.from_array(np.array([[2, 5]], np.int64), "shapes"),
             numpy_helper.from_array(np.array([0], np.int64), "starts")]
    g = helper.make_graph(nodes, "plugin", inputs, [helper.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("trt", 1)])
    m16, rep = convert_to_fp16(m)
    plugin = next(n for n in m16.graph.node if n.op_type == "MultiscaleDeformableAttnPlugin_TRT")
    assert plugin.name in rep.fp32_nodes and list(plugin.input[1:3]) == ["shapes", "starts"]
    producer = {o: n for n in m16.graph.node for o in n.output}
    assert producer[plugin.input[0]].op_type == "Cast"  # FP16 value_proj output cast back to FP32
    assert plugin.input[3] == "loc" and plugin.input[4] == "aw"  # FP32 graph input / FP32 island: no cast
    out_relu = next(n for n in m16.graph.node if n.name == "/attn/out/Relu")
    assert producer[out_relu.input[0]].op_type == "Cast"  # plugin output (FP32) cast to FP16 downstream
    assert {i.name: i.data_type for i in m16.graph.initializer}["shapes"] == TP.INT64
