"""Device buffers behind one small interface, with a cuda-python and a pycuda implementation.

NVIDIA's TensorRT samples moved from pycuda to cuda-python (``cuda.bindings``) in 10.14; pycuda is
source-only on PyPI and has context-stack pitfalls, but the user's stack names it. :func:`get_cuda_api`
prefers cuda-python when both are installed. Nothing here imports a CUDA package at module import, and
nothing here imports torch.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import importlib
import importlib.util
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import BackendUnavailable

__all__ = ["CudaApi", "DeviceBuffer", "HostBuffer", "CudaPythonApi", "PyCudaApi", "get_cuda_api",
           "available_cuda_apis", "query_gpu", "CUDA_INSTALL_HINT"]

CUDA_INSTALL_HINT = ("install `cuda-python` (preferred: `pip install cuda-python`) or `pycuda` "
                     "(`pip install pycuda`, builds from source against the CUDA toolkit), on a machine with an "
                     "NVIDIA GPU and driver")


@dataclass
class DeviceBuffer:
    """A device allocation: ``ptr`` is the raw device address; ``handle`` keeps the owner alive."""

    ptr: int
    nbytes: int
    handle: Any = None


@dataclass
class HostBuffer:
    """A page-locked host allocation viewed as a flat uint8 numpy array (``array``)."""

    array: np.ndarray
    nbytes: int
    handle: Any = None

    def view(self, shape: tuple[int, ...], dtype: np.dtype[Any] | str) -> np.ndarray:
        """A typed view of the first ``prod(shape)`` elements (no copy)."""
        dt = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if n > self.nbytes:
            raise ValueError(f"host buffer of {self.nbytes} bytes cannot hold {shape} {dt}")
        return self.array[:n].view(dt).reshape(shape)


class CudaApi(abc.ABC):
    """Minimal CUDA runtime surface the TensorRT backend needs (allocation, stream, async copies, graphs)."""

    name: str = "abstract"
    supports_graphs: bool = False

    @abc.abstractmethod
    def malloc(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def free(self, buf: DeviceBuffer) -> None: ...

    @abc.abstractmethod
    def malloc_host(self, nbytes: int) -> HostBuffer: ...

    @abc.abstractmethod
    def free_host(self, buf: HostBuffer) -> None: ...

    @abc.abstractmethod
    def create_stream(self) -> Any: ...

    @abc.abstractmethod
    def stream_handle(self, stream: Any) -> int: ...

    @abc.abstractmethod
    def destroy_stream(self, stream: Any) -> None: ...

    @abc.abstractmethod
    def htod_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None: ...

    @abc.abstractmethod
    def dtoh_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None: ...

    @abc.abstractmethod
    def synchronize(self, stream: Any) -> None: ...

    @abc.abstractmethod
    def device_info(self) -> tuple[str, str]:
        """(GPU name, compute capability "major.minor") of the current device."""

    def begin_capture(self, stream: Any) -> None:
        """Start CUDA-graph stream capture (only where ``supports_graphs``)."""
        raise NotImplementedError(f"CUDA graphs are not supported with {self.name}; use cuda-python")

    def end_capture(self, stream: Any) -> Any:
        """Finish capture and return an instantiated graph."""
        raise NotImplementedError(f"CUDA graphs are not supported with {self.name}; use cuda-python")

    def launch_graph(self, graph: Any, stream: Any) -> None:
        """Launch an instantiated graph on ``stream``."""
        raise NotImplementedError(f"CUDA graphs are not supported with {self.name}; use cuda-python")

    def destroy_graph(self, graph: Any) -> None:  # noqa: B027 (optional hook)
        """Release an instantiated graph."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the context (pycuda); no-op by default."""


class CudaPythonApi(CudaApi):
    """cuda-python (``cuda.bindings.runtime``) implementation."""

    name = "cuda-python"
    supports_graphs = True

    def __init__(self, device: int = 0) -> None:
        try:
            self.rt: Any = importlib.import_module("cuda.bindings.runtime")  # cuda-python >= 12.6
        except ImportError:
            self.rt = importlib.import_module("cuda.cudart")  # older cuda-python layout
        self.device = device
        self._call(self.rt.cudaSetDevice(device))

    def _call(self, result: Any) -> Any:
        """Unpack ``(err, *values)`` and raise on a CUDA error."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, msg = self.rt.cudaGetErrorString(err)
            text = msg.decode() if isinstance(msg, bytes) else str(msg)
            raise RuntimeError(f"CUDA error {int(err)}: {text}")
        return values[0] if len(values) == 1 else values

    def malloc(self, nbytes: int) -> DeviceBuffer:
        ptr = self._call(self.rt.cudaMalloc(max(int(nbytes), 1)))
        return DeviceBuffer(int(ptr), int(nbytes))

    def free(self, buf: DeviceBuffer) -> None:
        self._call(self.rt.cudaFree(buf.ptr))

    def malloc_host(self, nbytes: int) -> HostBuffer:
        n = max(int(nbytes), 1)
        ptr = int(self._call(self.rt.cudaMallocHost(n)))
        raw = (ctypes.c_uint8 * n).from_address(ptr)
        return HostBuffer(np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8), int(nbytes), handle=ptr)

    def free_host(self, buf: HostBuffer) -> None:
        self._call(self.rt.cudaFreeHost(buf.handle))

    def create_stream(self) -> Any:
        return self._call(self.rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def destroy_stream(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamDestroy(stream))

    def htod_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(dst.ptr, src.ctypes.data, src.nbytes, kind, stream))

    def dtoh_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(dst.ctypes.data, src.ptr, dst.nbytes, kind, stream))

    def synchronize(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream))

    def device_info(self) -> tuple[str, str]:
        prop = self._call(self.rt.cudaGetDeviceProperties(self.device))
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        return name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}"

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        self._call(self.rt.cudaStreamBeginCapture(stream, mode))

    def end_capture(self, stream: Any) -> Any:
        graph = self._call(self.rt.cudaStreamEndCapture(stream))
        exec_graph = self._call(self.rt.cudaGraphInstantiate(graph, 0))
        self._call(self.rt.cudaGraphDestroy(graph))
        return exec_graph

    def launch_graph(self, graph: Any, stream: Any) -> None:
        self._call(self.rt.cudaGraphLaunch(graph, stream))

    def destroy_graph(self, graph: Any) -> None:
        self._call(self.rt.cudaGraphExecDestroy(graph))


class PyCudaApi(CudaApi):
    """pycuda implementation. Retains the device's primary context and pushes it (no ``pycuda.autoinit``);
    :meth:`close` pops it. Use it from the thread that created it."""

    name = "pycuda"

    def __init__(self, device: int = 0) -> None:
        self.cuda = importlib.import_module("pycuda.driver")
        self.cuda.init()
        self.dev = self.cuda.Device(device)
        self.ctx = self.dev.retain_primary_context()
        self.ctx.push()

    def malloc(self, nbytes: int) -> DeviceBuffer:
        alloc = self.cuda.mem_alloc(max(int(nbytes), 1))
        return DeviceBuffer(int(alloc), int(nbytes), handle=alloc)

    def free(self, buf: DeviceBuffer) -> None:
        buf.handle.free()

    def malloc_host(self, nbytes: int) -> HostBuffer:
        arr = self.cuda.pagelocked_empty(max(int(nbytes), 1), np.uint8)
        return HostBuffer(arr, int(nbytes), handle=arr)

    def free_host(self, buf: HostBuffer) -> None:
        base = getattr(buf.handle, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def create_stream(self) -> Any:
        return self.cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream: Any) -> None:
        del stream

    def htod_async(self, dst: DeviceBuffer, src: np.ndarray, stream: Any) -> None:
        self.cuda.memcpy_htod_async(dst.ptr, src, stream)

    def dtoh_async(self, dst: np.ndarray, src: DeviceBuffer, stream: Any) -> None:
        self.cuda.memcpy_dtoh_async(dst, src.ptr, stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def device_info(self) -> tuple[str, str]:
        major, minor = self.dev.compute_capability()
        return str(self.dev.name()), f"{major}.{minor}"

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already popped / context destroyed at interpreter exit
            self.ctx.pop()


_APIS: dict[str, Callable[[int], CudaApi]] = {"cuda-python": CudaPythonApi, "pycuda": PyCudaApi}


def available_cuda_apis() -> list[str]:
    """Names of the installed CUDA Python packages, preferred first (``cuda-python``, ``pycuda``)."""
    out = []
    with contextlib.suppress(ImportError, ValueError):
        if importlib.util.find_spec("cuda") is not None and (
                importlib.util.find_spec("cuda.bindings") is not None or importlib.util.find_spec("cuda.cudart")):
            out.append("cuda-python")
    if importlib.util.find_spec("pycuda") is not None:
        out.append("pycuda")
    return out


def get_cuda_api(prefer: str | None = None, device: int = 0) -> CudaApi:
    """A :class:`CudaApi`: ``prefer`` = "cuda-python" | "pycuda" | None (cuda-python when both exist).

    Raises :class:`BackendUnavailable` naming what to install when neither works."""
    names = available_cuda_apis()
    if prefer is not None:
        if prefer not in _APIS:
            raise ValueError(f"unknown CUDA API {prefer!r}: use 'cuda-python' or 'pycuda'")
        names = [prefer] if prefer in names else []
    if not names:
        what = prefer or "cuda-python or pycuda"
        raise BackendUnavailable(f"device buffers need {what}, which is not installed: {CUDA_INSTALL_HINT}")
    errors = []
    for n in names:
        try:
            return _APIS[n](device)
        except Exception as e:  # no driver / no GPU
            errors.append(f"{n}: {type(e).__name__}: {e}")
    raise BackendUnavailable("no usable CUDA device: " + "; ".join(errors))


def query_gpu(device: int = 0) -> tuple[str, str] | None:
    """(GPU name, compute capability) via cuda-python/pycuda, else ``nvidia-smi``; None without a GPU."""
    for n in available_cuda_apis():
        with contextlib.suppress(Exception):  # no driver / no GPU: try the next one
            api = _APIS[n](device)
            try:
                return api.device_info()
            finally:
                api.close()
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if device < len(out) and "," in out[device]:
        name, cc = (s.strip() for s in out[device].rsplit(",", 1))
        return name, cc
    return None
