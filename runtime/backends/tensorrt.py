"""Native TensorRT backend: a serialized engine + its JSON sidecar -> the Backend interface. No torch.

Pinned host buffers and device buffers are allocated once per input-shape signature (grown, never shrunk),
one CUDA stream, async H2D/D2H copies, ``execute_async_v3`` with ``set_tensor_address``, dynamic shapes via
``set_input_shape``, and optional CUDA-graph capture when the shapes do not change. The shape and buffer
bookkeeping is in pure functions (:func:`engine_io_specs` aside) so it is tested on CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.closing import Closing
from ..core.contract import ModelMetadata
from ..core.sidecar import read_sidecar
from .base import BackendUnavailable
from .cuda_buffers import CudaApi, DeviceBuffer, HostBuffer, get_cuda_api
from .tensorrt_deps import require_tensorrt

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["TensorRTBackend", "TensorSpec", "resolve_input_shapes", "buffer_nbytes", "buffers_to_grow",
           "check_engine_compat", "load_plugins"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorSpec:
    """An engine IO tensor: ``shape`` has -1 for dynamic axes; ``lo``/``hi`` are the profile bounds (inputs)."""

    name: str
    is_input: bool
    dtype: str
    shape: tuple[int, ...]
    lo: tuple[int, ...] | None = None
    hi: tuple[int, ...] | None = None


def resolve_input_shapes(specs: Sequence[TensorSpec], feeds: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Validate feed shapes against the engine's inputs; returns ``{input: shape}``.

    Raises ``ValueError`` naming the problem: missing/unknown input, wrong rank, a static dimension that
    differs, or a dynamic dimension outside the optimization profile."""
    inputs = {s.name: s for s in specs if s.is_input}
    missing = sorted(set(inputs) - set(feeds))
    unknown = sorted(set(feeds) - set(inputs))
    if missing or unknown:
        raise ValueError(f"engine inputs are {sorted(inputs)}; missing {missing}, unexpected {unknown}")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, spec in inputs.items():
        shape = tuple(int(d) for d in np.shape(feeds[name]))
        if len(shape) != len(spec.shape):
            raise ValueError(f"{name}: expected rank {len(spec.shape)} {spec.shape}, got {shape}")
        for axis, (d, e) in enumerate(zip(shape, spec.shape)):
            if e >= 0 and d != e:
                raise ValueError(f"{name}: dimension {axis} must be {e} (static in this engine), got {d}")
        if spec.lo is not None and spec.hi is not None and not all(
                lo <= d <= hi for lo, d, hi in zip(spec.lo, shape, spec.hi)):
            raise ValueError(f"{name}: shape {shape} is outside the engine's optimization profile "
                             f"[{spec.lo} .. {spec.hi}]; rebuild the engine with a wider profile")
        shapes[name] = shape
    batches = {s[0] for s in shapes.values() if s}
    if len(batches) > 1:
        raise ValueError(f"inputs disagree on the batch size: { {n: s[0] for n, s in shapes.items()} }")
    return shapes


def buffer_nbytes(shapes: Mapping[str, Sequence[int]], dtypes: Mapping[str, str]) -> dict[str, int]:
    """Bytes each tensor needs for the given shapes (negative dims are an error: unresolved shape)."""
    out = {}
    for name, shape in shapes.items():
        if any(int(d) < 0 for d in shape):
            raise ValueError(f"{name}: shape {tuple(shape)} is not fully resolved")
        out[name] = int(np.prod([int(d) for d in shape], dtype=np.int64)) * np.dtype(dtypes[name]).itemsize
    return out


def buffers_to_grow(capacity: Mapping[str, int], needed: Mapping[str, int]) -> set[str]:
    """Tensors whose current allocation (``capacity`` bytes; absent = none) is smaller than ``needed``."""
    return {n for n, b in needed.items() if capacity.get(n, -1) < b}


def check_engine_compat(sidecar_trt: str, installed_trt: str, sidecar_cc: str, device_cc: str | None,
                        sidecar_gpu: str = "", device_gpu: str = "") -> list[str]:
    """Problems that stop an engine from loading here (TensorRT version, compute capability); a GPU name
    difference with the same compute capability is only logged by the backend."""
    problems = []
    if sidecar_trt != installed_trt:
        problems.append(f"the engine was built with TensorRT {sidecar_trt} but TensorRT {installed_trt} is installed "
                        "(engines are not portable across TensorRT versions)")
    if device_cc is not None and sidecar_cc not in ("", "unknown") and sidecar_cc != device_cc:
        problems.append(f"the engine was built for {sidecar_gpu or 'a GPU'} (compute capability {sidecar_cc}) but "
                        f"this GPU is {device_gpu or '?'} (compute capability {device_cc})")
    return problems


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT ``Dims`` as a tuple of ints."""
    return tuple(int(dims[i]) for i in range(len(dims)))


def dtype_name(dtype: trt.DataType) -> str:
    """A TensorRT data type as a numpy dtype name ("float32", "int64", ...)."""
    import tensorrt as trt

    return str(np.dtype(trt.nptype(dtype)).name)


def load_plugins(trt_logger: trt.ILogger, libraries: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Register TensorRT's built-in plugins, then load the extra plugin ``libraries`` (.so files)."""
    import tensorrt as trt

    trt.init_libnvinfer_plugins(trt_logger, "")
    registry = trt.get_plugin_registry()
    for lib in libraries:
        registry.load_library(str(lib))


def engine_io_specs(engine: trt.ICudaEngine, profile_index: int = 0) -> list[TensorSpec]:
    """IO tensors of a deserialized engine, with profile bounds for inputs."""
    import tensorrt as trt

    specs = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        dtype = dtype_name(engine.get_tensor_dtype(name))
        shape = dims_tuple(engine.get_tensor_shape(name))
        lo = hi = None
        if is_input and any(d < 0 for d in shape):
            mn, _, mx = engine.get_tensor_profile_shape(name, profile_index)
            lo, hi = dims_tuple(mn), dims_tuple(mx)
        specs.append(TensorSpec(name, is_input, dtype, shape, lo, hi))
    return specs


class TensorRTBackend(Closing):
    """Runs a CalibNet TensorRT engine; see :class:`calibnet.runtime.backends.base.Backend`.

    Args:
        engine_path: the engine file (its JSON sidecar, the engine's name + ``.json``, must sit beside it).
        device: CUDA device index.
        cuda_api: "cuda-python" | "pycuda" | a :class:`CudaApi` | None (cuda-python preferred).
        use_cuda_graph: capture ``execute_async_v3`` in a CUDA graph once the input shapes stop changing
            (cuda-python only; falls back to plain execution otherwise).
        plugin_libraries: extra plugin libraries to load before deserializing.
        check_compat: refuse engines whose sidecar names another TensorRT version or compute capability.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike[str], device: int = 0, cuda_api: str | CudaApi | None = None,
                 use_cuda_graph: bool = False, plugin_libraries: Iterable[str] = (), check_compat: bool = True,
                 verbose: bool = False) -> None:
        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise FileNotFoundError(f"engine {self.engine_path} does not exist")
        require_tensorrt("the tensorrt backend")
        import tensorrt as trt

        self.sidecar = read_sidecar(self.engine_path)
        self.metadata: ModelMetadata = self.sidecar.metadata
        self.api = cuda_api if isinstance(cuda_api, CudaApi) else get_cuda_api(cuda_api, device)
        gpu_name, gpu_cc = self.api.device_info()
        if check_compat:
            problems = check_engine_compat(self.sidecar.tensorrt_version, str(trt.__version__),
                                           self.sidecar.gpu.compute_capability, gpu_cc, self.sidecar.gpu.name, gpu_name)
            if problems:
                self.api.close()
                raise BackendUnavailable("cannot load " + str(self.engine_path) + ": " + "; ".join(problems) +
                                         ". Rebuild it here: calibnet.engines.get_or_build(onnx_path)")
            if self.sidecar.gpu.name not in (gpu_name, "unknown"):
                log.warning("engine built on %s, running on %s (same compute capability)", self.sidecar.gpu.name,
                            gpu_name)
        self._logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
        load_plugins(self._logger, plugin_libraries)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            self.api.close()
            raise BackendUnavailable(f"TensorRT {trt.__version__} could not deserialize {self.engine_path} "
                                     f"(built with TensorRT {self.sidecar.tensorrt_version} on "
                                     f"{self.sidecar.gpu.name}); rebuild it")
        self._engine: trt.ICudaEngine = engine
        self._context: trt.IExecutionContext = engine.create_execution_context()
        self.specs = engine_io_specs(engine)
        self._dtypes = {s.name: s.dtype for s in self.specs}
        self._stream = self.api.create_stream()
        self._dev: dict[str, DeviceBuffer] = {}
        self._host: dict[str, HostBuffer] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._use_graph = use_cuda_graph and self.api.supports_graphs
        if use_cuda_graph and not self.api.supports_graphs:
            log.warning("CUDA graphs need cuda-python; running without them (%s)", self.api.name)
        self._graph: Any = None
        self._runs_same_shape = 0

    @property
    def input_names(self) -> list[str]:
        """Engine input names (contract: rgb, depth, valid_hw)."""
        return [s.name for s in self.specs if s.is_input]

    @property
    def output_names(self) -> list[str]:
        """Engine output names."""
        return [s.name for s in self.specs if not s.is_input]

    def _prepare(self, in_shapes: dict[str, tuple[int, ...]]) -> None:
        """Set input shapes, resolve output shapes, (re)allocate buffers, bind addresses."""
        for name, shape in in_shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise ValueError(f"TensorRT rejected shape {shape} for input {name}")
        shapes = {**in_shapes, **{n: dims_tuple(self._context.get_tensor_shape(n)) for n in self.output_names}}
        needed = buffer_nbytes(shapes, self._dtypes)
        grow = buffers_to_grow({n: b.nbytes for n, b in self._dev.items()}, needed)
        for name in grow:
            if name in self._dev:
                self.api.free(self._dev.pop(name))
                self.api.free_host(self._host.pop(name))
            self._dev[name] = self.api.malloc(needed[name])
            self._host[name] = self.api.malloc_host(needed[name])
        for name, buf in self._dev.items():
            if not self._context.set_tensor_address(name, buf.ptr):
                raise RuntimeError(f"TensorRT rejected the device address of {name}")
        self._shapes = shapes
        self._drop_graph()

    def _drop_graph(self) -> None:
        if self._graph is not None:
            self.api.destroy_graph(self._graph)
            self._graph = None
        self._runs_same_shape = 0

    def _execute(self) -> None:
        handle = self.api.stream_handle(self._stream)
        if self._graph is not None:
            self.api.launch_graph(self._graph, self._stream)
            return
        if not self._context.execute_async_v3(handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        self._runs_same_shape += 1
        if self._use_graph and self._runs_same_shape >= 2:  # warmed up: capture the same work once
            self.api.synchronize(self._stream)
            self.api.begin_capture(self._stream)
            ok = self._context.execute_async_v3(handle)
            graph = self.api.end_capture(self._stream)
            if ok:
                self._graph = graph
            else:
                self.api.destroy_graph(graph)
                self._use_graph = False

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns new arrays (host buffers are reused across calls)."""
        in_shapes = resolve_input_shapes(self.specs, feeds)
        if any(self._shapes.get(n) != s for n, s in in_shapes.items()):
            self._prepare(in_shapes)
        for name in self.input_names:
            host = self._host[name].view(self._shapes[name], self._dtypes[name])
            np.copyto(host, np.asarray(feeds[name]), casting="same_kind" if self._dtypes[name].startswith("float")
                      else "unsafe")
            self.api.htod_async(self._dev[name], host, self._stream)
        self._execute()
        outs = {n: self._host[n].view(self._shapes[n], self._dtypes[n]) for n in self.output_names}
        for name, host in outs.items():
            self.api.dtoh_async(host, self._dev[name], self._stream)
        self.api.synchronize(self._stream)
        return {n: a.copy() for n, a in outs.items()}

    def close(self) -> None:
        """Free buffers, the graph and the stream; release the CUDA context."""
        self._drop_graph()
        for name in list(self._dev):
            self.api.free(self._dev.pop(name))
            self.api.free_host(self._host.pop(name))
        if getattr(self, "_stream", None) is not None:
            self.api.destroy_stream(self._stream)
            self._stream = None
        self.api.close()
