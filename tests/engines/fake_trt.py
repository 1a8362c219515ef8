"""A small in-process fake of the TensorRT Python API (builder, parser, network, engine, context) and of the
CUDA buffer API, for CPU tests of calibnet.engines and the TensorRT backend (tests/test_engines_fake_trt.py).
The real API names are checked separately by mypy against tensorrt-stubs."""

from __future__ import annotations

import enum
import types

import numpy as np
import onnx

from calibnet.runtime.backends.cuda_buffers import CudaApi, DeviceBuffer, HostBuffer

TP = onnx.TensorProto

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
