"""The builder and the TensorRT backend driven end to end against a small in-process fake of the TensorRT
Python API and of the CUDA buffer API: checks the call sequence (profiles, FP16 flags / strongly typed
ONNX pass, FP32 layer pinning, timing cache, sidecar; set_input_shape, buffer allocation per shape,
set_tensor_address, execute_async_v3, CUDA-graph capture, version checks) without TensorRT or a GPU.
The real API names are checked separately by mypy against tensorrt-stubs."""

from __future__ import annotations

import enum
import sys
import types

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
TP = onnx.TensorProto
from onnx import helper, numpy_helper  # noqa: E402

from calibnet.engines import build_engine, read_sidecar  # noqa: E402
from calibnet.engines import builder as builder_mod  # noqa: E402
from calibnet.runtime.backends.base import Backend, BackendUnavailable  # noqa: E402
from calibnet.runtime.backends.cuda_buffers import CudaApi, DeviceBuffer, HostBuffer  # noqa: E402
from calibnet.runtime.backends.tensorrt import TensorRTBackend  # noqa: E402
from calibnet.runtime.metadata import ModelMetadata  # noqa: E402
from calibnet.runtime.sidecar import GpuInfo  # noqa: E402

# ------------------------------------------------------------------ fake tensorrt


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT64 = 2


_NP = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT64: np.int64}
_FROM_ONNX = {TP.FLOAT: DataType.FLOAT, TP.FLOAT16: DataType.HALF, TP.INT64: DataType.INT64}


class LayerType(enum.Enum):
    OTHER = 0
    NORMALIZATION = 1
    SOFTMAX = 2


class Tensor:
    def __init__(self, name, dtype, shape):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)


class Layer:
    def __init__(self, node):
        self.name = node.name
        self.type = {"LayerNormalization": LayerType.NORMALIZATION, "Softmax": LayerType.SOFTMAX}.get(
            node.op_type, LayerType.OTHER)
        self.op_type = node.op_type
        self.precision = None
        self.num_outputs = len(node.output)
        self._out = [DataType.FLOAT] * self.num_outputs

    def get_output_type(self, i):
        return self._out[i]

    def set_output_type(self, i, t):
        self._out[i] = t


class Network:
    def __init__(self, flags):
        self.flags, self.layers, self.inputs, self.outputs, self.model = flags, [], [], [], None

    num_layers = property(lambda s: len(s.layers))
    num_inputs = property(lambda s: len(s.inputs))
    num_outputs = property(lambda s: len(s.outputs))

    def get_layer(self, i):
        return self.layers[i]

    def get_input(self, i):
        return self.inputs[i]

    def get_output(self, i):
        return self.outputs[i]


def _vi_tensor(vi):
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
    return Tensor(vi.name, _FROM_ONNX[vi.type.tensor_type.elem_type], dims)


class OnnxParser:
    def __init__(self, network, logger):
        self.network, self.errors = network, []

    def parse(self, data, path=None):
        m = onnx.load_from_string(bytes(data))
        if any(n.op_type == "Bogus" for n in m.graph.node):
            self.errors = [types.SimpleNamespace(node_name=lambda: "bad", node_operator=lambda: "Bogus",
                                                 desc=lambda: "no importer")]
            return False
        self.network.model = m
        self.network.layers = [Layer(n) for n in m.graph.node]
        self.network.inputs = [_vi_tensor(v) for v in m.graph.input]
        self.network.outputs = [_vi_tensor(v) for v in m.graph.output]
        return True

    num_errors = property(lambda s: len(s.errors))

    def get_error(self, i):
        return self.errors[i]


class Profile:
    def __init__(self):
        self.shapes = {}

    def set_shape(self, name, lo, opt, hi):
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class TimingCache:
    def __init__(self, data):
        self.data = bytes(data) or b"fresh"

    def serialize(self):
        return self.data + b"+"


class Config:
    def __init__(self):
        self.flags, self.profiles, self.pool, self.builder_optimization_level, self.cache = set(), [], {}, 3, None

    def set_flag(self, f):
        self.flags.add(f)

    def set_memory_pool_limit(self, pool, size):
        self.pool[pool] = size

    def create_timing_cache(self, data):
        return TimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch):
        self.cache = cache
        return True

    def get_timing_cache(self):
        return self.cache

    def add_optimization_profile(self, p):
        self.profiles.append(p)
        return len(self.profiles) - 1


class Builder:
    platform_has_fast_fp16 = True
    last = None

    def __init__(self, logger):
        Builder.last = self

    def create_network(self, flags=0):
        self.network = Network(flags)
        return self.network

    def create_builder_config(self):
        self.config = Config()
        return self.config

    def create_optimization_profile(self):
        return Profile()

    def build_serialized_network(self, network, config):
        return memoryview(b"ENGINE:" + network.model.SerializeToString())


class FakeEngine:
    """Inputs rgb/depth/valid_hw (dynamic B,H,W); output pred_masks [B,2,H/2,W/2] = rgb[:,0,::2,::2] + k."""

    def __init__(self, profile):
        self.profile = profile
        self.names = ["rgb", "depth", "valid_hw", "pred_masks"]

    num_io_tensors = property(lambda s: 4)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return TensorIOMode.OUTPUT if name == "pred_masks" else TensorIOMode.INPUT

    def get_tensor_dtype(self, name):
        return DataType.INT64 if name == "valid_hw" else DataType.FLOAT

    def get_tensor_shape(self, name):
        return {"rgb": (-1, 3, -1, -1), "depth": (-1, 1, -1, -1), "valid_hw": (-1, 2),
                "pred_masks": (-1, 2, -1, -1)}[name]

    def get_tensor_profile_shape(self, name, i):
        return list(self.profile[name])

    def create_execution_context(self):
        return FakeContext()


class FakeContext:
    mem: dict = {}

    def __init__(self):
        self.shapes, self.addr, self.executions = {}, {}, 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        b, _, h, w = self.shapes["rgb"]
        return (b, 2, h // 2, w // 2)

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream):
        self.executions += 1
        api = FakeCuda.current
        if api.capturing:
            api.captured.append(self)
            return True
        self._compute(api)
        return True

    def _compute(self, api):
        rgb_shape = self.shapes["rgb"]
        rgb = api.dev_view(self.addr["rgb"], rgb_shape, np.float32)
        vhw = api.dev_view(self.addr["valid_hw"], self.shapes["valid_hw"], np.int64)
        out = api.dev_view(self.addr["pred_masks"], self.get_tensor_shape("pred_masks"), np.float32)
        for k in range(2):
            out[:, k] = rgb[:, 0, ::2, ::2] + k + vhw[:, :1, None]


class Runtime:
    def __init__(self, logger):
        pass

    def deserialize_cuda_engine(self, data):
        if not bytes(data).startswith(b"ENGINE:"):
            return None
        return FakeEngine(FAKE_PROFILE)


class TensorIOMode(enum.Enum):
    INPUT = 0
    OUTPUT = 1


FAKE_PROFILE = {"rgb": [(1, 3, 64, 64), (1, 3, 64, 96), (2, 3, 128, 128)],
                "depth": [(1, 1, 64, 64), (1, 1, 64, 96), (2, 1, 128, 128)],
                "valid_hw": [(1, 2), (1, 2), (2, 2)]}


def make_fake_trt(version="10.13.0.35"):
    registry = types.SimpleNamespace(libs=[], load_library=lambda p: registry.libs.append(p),
                                     get_creator=lambda name, ver, ns="": object() if ver in ("1", "2") else None)
    m = types.ModuleType("tensorrt")
    m.__version__ = version
    m.Logger = type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda self, level=2: None})
    m.init_libnvinfer_plugins = lambda logger, ns: True
    m.get_plugin_registry = lambda: registry
    m.Builder, m.OnnxParser, m.Runtime = Builder, OnnxParser, Runtime
    m.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    m.BuilderFlag = types.SimpleNamespace(FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY")
    m.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    m.LayerType, m.TensorIOMode = LayerType, TensorIOMode
    m.float32, m.float16 = DataType.FLOAT, DataType.HALF
    m.Dims = tuple
    m.nptype = lambda t: _NP[t]
    m.registry = registry
    return m


class FakeCuda(CudaApi):
    name, supports_graphs, current = "fake", True, None

    def __init__(self, cc="9.0"):
        self.cc, self.memory, self.next_ptr, self.allocs, self.frees = cc, {}, 4096, 0, 0
        self.capturing, self.captured, self.launches, self.closed = False, [], 0, False
        FakeCuda.current = self

    def malloc(self, nbytes):
        ptr, self.next_ptr = self.next_ptr, self.next_ptr + nbytes + 256
        self.memory[ptr] = np.zeros(nbytes, np.uint8)
        self.allocs += 1
        return DeviceBuffer(ptr, nbytes)

    def free(self, buf):
        del self.memory[buf.ptr]
        self.frees += 1

    def malloc_host(self, nbytes):
        return HostBuffer(np.zeros(nbytes, np.uint8), nbytes)

    def free_host(self, buf):
        pass

    def create_stream(self):
        return "stream"

    def stream_handle(self, stream):
        return 1234

    def destroy_stream(self, stream):
        pass

    def dev_view(self, ptr, shape, dtype):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.memory[ptr][:n].view(dtype).reshape(shape)

    def htod_async(self, dst, src, stream):
        self.memory[dst.ptr][:src.nbytes] = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)

    def dtoh_async(self, dst, src, stream):
        dst.reshape(-1).view(np.uint8)[:] = self.memory[src.ptr][:dst.nbytes]

    def synchronize(self, stream):
        pass

    def device_info(self):
        return "Fake GPU", self.cc

    def begin_capture(self, stream):
        self.capturing, self.captured = True, []

    def end_capture(self, stream):
        self.capturing = False
        return list(self.captured)

    def launch_graph(self, graph, stream):
        self.launches += 1
        for ctx in graph:
            ctx._compute(self)

    def close(self):
        self.closed = True


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


def _feeds(b, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return {"rgb": rng.uniform(0, 255, (b, 3, h, w)).astype(np.float32),
            "depth": rng.uniform(0, 255, (b, 1, h, w)).astype(np.float32),
            "valid_hw": np.tile(np.array([[h, w]], np.int64), (b, 1))}


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
    f1 = _feeds(1, 64, 96)
    for _ in range(4):
        out = be.run(f1)
        np.testing.assert_array_equal(out["pred_masks"], _expected(f1))
    assert api.allocs == 4 and api.launches == 2  # one allocation per tensor; graph captured after 2 runs
    f2 = _feeds(2, 128, 128, seed=1)
    np.testing.assert_array_equal(be.run(f2)["pred_masks"], _expected(f2))
    assert api.allocs == 8 and api.frees == 4  # grown
    f3 = _feeds(1, 64, 64, seed=2)
    np.testing.assert_array_equal(be.run(f3)["pred_masks"], _expected(f3))
    assert api.allocs == 8  # smaller shape reuses the buffers
    with pytest.raises(ValueError, match="optimization profile"):
        be.run(_feeds(1, 160, 96))
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
