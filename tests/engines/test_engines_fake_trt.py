"""The builder and the TensorRT backend driven end to end against the in-process fake of the TensorRT
Python API and of the CUDA buffer API (tests/fake_trt.py): checks the call sequence (profiles, FP16 flags /
strongly typed ONNX pass, FP32 layer pinning, timing cache, sidecar; set_input_shape, buffer allocation per shape,
set_tensor_address, execute_async_v3, CUDA-graph capture, version checks) without TensorRT or a GPU.
The real API names are checked separately by mypy against tensorrt-stubs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
TP = onnx.TensorProto
from fake_trt import Builder, FakeCuda, make_fake_trt  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from calibnet.engines import DEFAULT_FP32_PATTERNS, build_engine, get_or_build  # noqa: E402
from calibnet.engines import builder as builder_mod  # noqa: E402
from calibnet.runtime.backends.base import Backend, BackendUnavailable  # noqa: E402
from calibnet.runtime.backends.tensorrt import TensorRTBackend  # noqa: E402
from calibnet.runtime.core.contract import ModelMetadata  # noqa: E402
from calibnet.runtime.core.feeds import random_feeds  # noqa: E402
from calibnet.runtime.core.sidecar import GpuInfo, read_sidecar  # noqa: E402

# ------------------------------------------------------------------ fixtures


@pytest.fixture
def fake_trt(monkeypatch):
    def install(version="10.13.0.35"):
        mod = make_fake_trt(version)
        monkeypatch.setitem(sys.modules, "tensorrt", mod)
        return mod
    monkeypatch.setattr(builder_mod, "current_gpu", lambda: GpuInfo("Fake GPU", "9.0"))
    return install


def _tiny_onnx(path, meta: ModelMetadata | None, bogus=False):
    nodes = [helper.make_node("ReduceMean", ["rgb"], ["c"], name="/stem/ReduceMean", axes=[1], keepdims=1),
             helper.make_node("Add", ["c", "depth"], ["a"], name="/fuse/Add"),
             helper.make_node("LayerNormalization", ["a", "g", "b"], ["n"], name="/enc/norm/LayerNormalization",
                              axis=-1),
             helper.make_node("Softmax", ["n"], ["s"], name="/enc/attention_weights/Softmax", axis=-1),
             helper.make_node("Bogus" if bogus else "Identity", ["s"], ["pred_masks"], name="/out")]
    inputs = [helper.make_tensor_value_info("rgb", TP.FLOAT, ["B", 3, "H", "W"]),
              helper.make_tensor_value_info("depth", TP.FLOAT, ["B", 1, "H", "W"]),
              helper.make_tensor_value_info("valid_hw", TP.INT64, ["B", 2])]
    g = helper.make_graph(nodes, "tiny", inputs, [helper.make_tensor_value_info("pred_masks", TP.FLOAT,
                                                                               ["B", 1, "H", "W"])],
                          [numpy_helper.from_array(np.ones(96, np.float32), "g"),
                           numpy_helper.from_array(np.zeros(96, np.float32), "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    if meta is not None:
        helper.set_model_props(m, meta.to_props())
    onnx.save(m, str(path))
    return path


META = ModelMetadata(flavor="tensorrt", height=64, width=96, dynamic_batch=True, max_batch=2, dynamic_hw=True,
                     min_hw=(64, 64), max_hw=(128, 128))


# ------------------------------------------------------------------ builder


def test_build_trt10_flags_path(fake_trt, tmp_path):
    trt = fake_trt("10.13.0.35")
    onnx_path = _tiny_onnx(tmp_path / "m.onnx", META)
    cache = tmp_path / "timing.cache"
    engine = build_engine(onnx_path, tmp_path / "out" / "m.engine", workspace=1 << 30, timing_cache=cache,
                          builder_optimization_level=5, plugin_libraries=[onnx_path])
    b = Builder.last
    assert "FP16" in b.config.flags and "OBEY" in b.config.flags
    assert b.network.flags == 0  # weakly typed
    pinned = {la.name for la in b.network.layers if la.precision == trt.float32}
    assert pinned == {"/enc/norm/LayerNormalization", "/enc/attention_weights/Softmax"}
    assert b.config.pool == {"WORKSPACE": 1 << 30} and b.config.builder_optimization_level == 5
    (prof,) = b.config.profiles
    assert prof.shapes["rgb"] == ((1, 3, 64, 64), (1, 3, 64, 96), (2, 3, 128, 128))
    assert prof.shapes["valid_hw"] == ((1, 2), (1, 2), (2, 2))
    assert cache.read_bytes() == b"fresh+" and trt.registry.libs == [str(onnx_path)]
    sc = read_sidecar(engine)
    assert sc.fp16_path == "builder-flag-fp16" and sc.precision == "fp16" and sc.tensorrt_version == "10.13.0.35"
    assert sc.gpu == GpuInfo("Fake GPU", "9.0") and sorted(sc.fp32_layers) == sorted(pinned)
    assert sc.metadata.precision == "fp16" and sc.metadata.height == META.height
    assert sc.profiles[0]["rgb"]["max"] == [2, 3, 128, 128]
    assert [(t.name, t.mode, t.dtype) for t in sc.io] == [("rgb", "input", "float32"), ("depth", "input", "float32"),
                                                          ("valid_hw", "input", "int64"),
                                                          ("pred_masks", "output", "float32")]
    assert sc.io[0].shape == (-1, 3, -1, -1)
    build_engine(onnx_path, tmp_path / "m2.engine", timing_cache=cache)  # the cache is read back and extended
    assert cache.read_bytes() == b"fresh++"


def test_a_readiness_json_adds_to_the_default_islands_for_library_callers(fake_trt, tmp_path):
    """build_engine / get_or_build with an FP16-readiness JSON keep LayerNorm and Softmax in FP32 (the JSON's
    layers are added to the default islands, as both CLIs do)."""
    trt = fake_trt("10.13.0.35")
    onnx_path = _tiny_onnx(tmp_path / "m.onnx", META)
    report = tmp_path / "m.onnx.fp16.json"
    report.write_text(json.dumps({"fp32_layers": [{"module": "fuse", "pattern": "^/fuse/"}]}))
    want = {"/enc/norm/LayerNormalization", "/enc/attention_weights/Softmax", "/fuse/Add"}
    for build in (lambda: build_engine(onnx_path, tmp_path / "a.engine", fp32_layers=report),
                  lambda: get_or_build(onnx_path, cache_dir=tmp_path / "cache", fp32_layers=str(report))):
        engine = build()
        assert {la.name for la in Builder.last.network.layers if la.precision == trt.float32} == want
        patterns = read_sidecar(engine).builder["fp32_patterns"]
        assert patterns[:len(DEFAULT_FP32_PATTERNS)] == list(DEFAULT_FP32_PATTERNS) and "^/fuse/" in patterns


def test_build_trt11_strongly_typed_onnx_pass(fake_trt, tmp_path):
    fake_trt("11.4.0")
    engine = build_engine(_tiny_onnx(tmp_path / "m.onnx", META), tmp_path / "m.engine")
    b = Builder.last
    assert b.network.flags == 1 << 1 and "FP16" not in b.config.flags
    parsed = b.network.model  # what TensorRT parsed: the FP16 graph with Casts around FP32 islands
    ops = [n.op_type for n in parsed.graph.node]
    assert "Cast" in ops
    ln = next(n for n in parsed.graph.node if n.op_type == "LayerNormalization")
    producer = {o: n for n in parsed.graph.node for o in n.output}
    assert producer[ln.input[0]].op_type == "Cast"  # fed through a Cast back to FP32
    sc = read_sidecar(engine)
    assert sc.fp16_path == "onnx-fp16-pass" and "/enc/norm/LayerNormalization" in sc.fp32_layers
    assert sc.builder["strongly_typed"] is True
    assert not list(tmp_path.glob("*.fp16.onnx"))  # temporary file removed


def test_build_errors(fake_trt, tmp_path):
    fake_trt()
    with pytest.raises(builder_mod.EngineBuildError, match="node 'bad' \\(Bogus\\): no importer"):
        build_engine(_tiny_onnx(tmp_path / "b.onnx", META, bogus=True), tmp_path / "b.engine")
    with pytest.raises(builder_mod.EngineBuildError, match="no calibnet metadata"):
        build_engine(_tiny_onnx(tmp_path / "n.onnx", None), tmp_path / "n.engine")
    with pytest.raises(builder_mod.EngineBuildError, match="lacks network inputs \\['valid_hw'\\]"):
        build_engine(tmp_path / "n.onnx", tmp_path / "n.engine",
                     profiles=[{"rgb": [[1, 3, 64, 64]] * 3, "depth": [[1, 1, 64, 64]] * 3}])
    with pytest.raises(FileNotFoundError):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.engine")


# ------------------------------------------------------------------ backend


def _expected(feeds):
    rgb, v = feeds["rgb"], feeds["valid_hw"]
    return np.stack([rgb[:, 0, ::2, ::2] + k + v[:, :1, None] for k in range(2)], axis=1).astype(np.float32)


def test_backend_runs_and_reuses_buffers(fake_trt, tmp_path):
    fake_trt()
    engine = build_engine(_tiny_onnx(tmp_path / "m.onnx", META), tmp_path / "m.engine")
    api = FakeCuda()
    be = TensorRTBackend(engine, cuda_api=api, use_cuda_graph=True)
    assert isinstance(be, Backend) and be.name == "tensorrt"
    assert be.input_names == ["rgb", "depth", "valid_hw"] and be.output_names == ["pred_masks"]
    assert be.metadata.max_hw == META.max_hw and be.metadata.flavor == "tensorrt"
    f1 = random_feeds(1, 64, 96)
    for _ in range(4):
        out = be.run(f1)
        np.testing.assert_array_equal(out["pred_masks"], _expected(f1))
    assert api.allocs == 4 and api.launches == 2  # one allocation per tensor; graph captured after 2 runs
    f2 = random_feeds(2, 128, 128, seed=1)
    np.testing.assert_array_equal(be.run(f2)["pred_masks"], _expected(f2))
    assert api.allocs == 8 and api.frees == 4  # grown
    f3 = random_feeds(1, 64, 64, seed=2)
    np.testing.assert_array_equal(be.run(f3)["pred_masks"], _expected(f3))
    assert api.allocs == 8  # smaller shape reuses the buffers
    with pytest.raises(ValueError, match="optimization profile"):
        be.run(random_feeds(1, 160, 96))
    be.close()
    assert api.closed and api.memory == {}


def test_backend_refuses_other_tensorrt_or_gpu(fake_trt, tmp_path):
    fake_trt("10.13.0.35")
    engine = build_engine(_tiny_onnx(tmp_path / "m.onnx", META), tmp_path / "m.engine")
    fake_trt("10.14.1")
    with pytest.raises(BackendUnavailable, match="built with TensorRT 10.13.0.35 but TensorRT 10.14.1"):
        TensorRTBackend(engine, cuda_api=FakeCuda())
    fake_trt("10.13.0.35")
    with pytest.raises(BackendUnavailable, match="compute capability 9.0.*compute capability 8.9"):
        TensorRTBackend(engine, cuda_api=FakeCuda(cc="8.9"))
    engine.write_bytes(b"garbage")
    with pytest.raises(BackendUnavailable, match="could not deserialize"):
        TensorRTBackend(engine, cuda_api=FakeCuda())
