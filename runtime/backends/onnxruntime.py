"""ONNX Runtime backend (CPU here; CUDA / TensorRT execution providers when onnxruntime-gpu is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..metadata import ModelMetadata
from .base import BackendUnavailable

__all__ = ["OnnxRuntimeBackend", "default_providers"]

_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def default_providers() -> list[str]:
    """Available providers in the order TensorRT > CUDA > CPU."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in _PREFERENCE if p in available]


class OnnxRuntimeBackend:
    """Runs an exported CalibNet ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: list | None = None, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - base dependency
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        self.session: Any = ort.InferenceSession(
            str(path), sess_options=opts, providers=providers or default_providers()
        )
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ModelMetadata.from_props(props)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {k: feeds[k] for k in self.input_names})
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self.session = None
