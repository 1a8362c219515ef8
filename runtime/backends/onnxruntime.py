"""ONNX Runtime backend (CPU here; CUDA / TensorRT execution providers when onnxruntime-gpu is installed).

Without an explicit ``providers`` list, the session gets the best providers this onnxruntime build offers,
TensorRT > CUDA > CPU, with the options of :func:`calibnet.engines.ort_providers.gpu_providers`: FP16 with
LayerNorm kept in FP32, engine and timing caches (under ``cache_dir``, default
``$CALIBNET_ENGINE_CACHE/onnxruntime`` or ``~/.cache/calibnet/engines/onnxruntime``) and, for dynamic
graphs, min/opt/max profile shapes from the model's metadata (read from the file before the session is made).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..metadata import ModelMetadata
from ..onnx_props import read_metadata_props
from .base import BackendUnavailable

__all__ = ["OnnxRuntimeBackend", "default_providers", "GPU_PROVIDERS"]

_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

ProviderList = list[Any]  # provider names or (name, options) pairs, as onnxruntime takes them


def _file_metadata(path: str | Path | None) -> ModelMetadata | None:
    if path is None:
        return None
    try:
        return ModelMetadata.from_props(read_metadata_props(path))
    except (OSError, ValueError):
        return None


def default_ort_cache_dir() -> Path:
    """Where the TensorRT execution provider keeps its engines and timing cache: ``onnxruntime/`` in the
    engine cache (``$CALIBNET_ENGINE_CACHE`` or ``~/.cache/calibnet/engines``)."""
    from ...engines.cache import default_cache_dir

    return default_cache_dir() / "onnxruntime"


def default_providers(path: str | Path | None = None, fp16: bool = True,
                      cache_dir: str | os.PathLike[str] | None = None) -> ProviderList:
    """Available providers in the order TensorRT > CUDA > CPU; GPU providers come with their options
    (:func:`calibnet.engines.ort_providers.gpu_providers`, profile shapes from ``path``'s metadata)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if not available & set(GPU_PROVIDERS):
        return ["CPUExecutionProvider"]
    from ...engines.ort_providers import gpu_providers

    kind = "tensorrt" if "TensorrtExecutionProvider" in available else "cuda"
    specs = gpu_providers(kind, _file_metadata(path), fp16=fp16,
                          cache_dir=cache_dir if cache_dir is not None else default_ort_cache_dir())
    return [s for s in specs if s[0] in available or s[0] == "CPUExecutionProvider"]


class OnnxRuntimeBackend:
    """Runs an exported CalibNet ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: ProviderList | None = None, threads: int = 0,
                 fp16: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                 session_options: Any = None) -> None:
        """``session_options``: an ``ort.SessionOptions`` to use instead of the defaults (all graph
        optimizations, ``threads`` intra-op threads)."""
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - base dependency
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
        opts = session_options
        if opts is None:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                opts.intra_op_num_threads = threads
        self.providers: ProviderList = providers or default_providers(path, fp16=fp16, cache_dir=cache_dir)
        if any((p[0] if isinstance(p, tuple) else p) == "TensorrtExecutionProvider" for p in self.providers):
            Path(default_ort_cache_dir() if cache_dir is None else cache_dir).mkdir(parents=True, exist_ok=True)
        self.session: Any = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ModelMetadata.from_props(props)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @property
    def active_providers(self) -> list[str]:
        """The providers the session actually runs on."""
        return list(self.session.get_providers())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {k: feeds[k] for k in self.input_names})
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self.session = None
