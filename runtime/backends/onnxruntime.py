"""ONNX Runtime backend (CPU here; CUDA / TensorRT execution providers when onnxruntime-gpu is installed),
and the GPU execution-provider options derived from the model metadata.

Without an explicit ``providers`` list, the session gets the best providers this onnxruntime build offers,
TensorRT > CUDA > CPU, with the options of :func:`gpu_providers`: FP16 with LayerNorm kept in FP32, engine
and timing caches (under ``cache_dir``, default ``$CALIBNET_ENGINE_CACHE/onnxruntime`` or
``~/.cache/calibnet/engines/onnxruntime``) and, for dynamic graphs, min/opt/max profile shapes from the
model's metadata (read from the file before the session is made). onnxruntime is imported only when a
session or the provider list is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cachedir import HashLedger, default_cache_dir
from ..core.contract import PLUGIN_NAME, ModelMetadata, read_onnx_metadata
from ..core.profiles import Profile, profiles_from_metadata
from .base import BackendUnavailable

__all__ = ["OnnxRuntimeBackend", "default_providers", "GPU_PROVIDERS", "ProviderSpec", "shape_option",
           "tensorrt_provider_options", "cuda_provider_options", "gpu_providers", "default_ort_cache_dir"]

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

ProviderList = list[Any]  # provider names or (name, options) pairs, as onnxruntime takes them
ProviderSpec = tuple[str, dict[str, str]]


def shape_option(profile: Mapping[str, Any], which: str) -> str:
    """``"rgb:1x3x320x320,depth:1x1x320x320,valid_hw:1x2"`` for ``trt_profile_<which>_shapes``."""
    return ",".join(f"{name}:" + "x".join(str(int(d)) for d in getattr(r, which)) for name, r in profile.items())


def tensorrt_provider_options(metadata: ModelMetadata | None = None, fp16: bool = True,
                              cache_dir: str | os.PathLike[str] | None = None, device_id: int = 0,
                              workspace: int | None = None, builder_optimization_level: int | None = None,
                              profile: Profile | None = None) -> dict[str, str]:
    """Options for ``TensorrtExecutionProvider``: FP16 with LayerNorm kept in FP32, engine and timing
    caches under ``cache_dir`` and, for dynamic graphs, explicit min/opt/max profile shapes (from the
    metadata unless ``profile`` is given)."""
    opts: dict[str, str] = {"device_id": str(device_id), "trt_fp16_enable": str(bool(fp16)),
                            "trt_layer_norm_fp32_fallback": str(bool(fp16))}
    if cache_dir is not None:
        d = str(Path(cache_dir))
        opts.update(trt_engine_cache_enable="True", trt_engine_cache_path=d,
                    trt_timing_cache_enable="True", trt_timing_cache_path=d)
    if workspace:
        opts["trt_max_workspace_size"] = str(int(workspace))
    if builder_optimization_level is not None:
        opts["trt_builder_optimization_level"] = str(int(builder_optimization_level))
    if profile is None and metadata is not None and (metadata.dynamic_batch or metadata.dynamic_hw):
        profile = profiles_from_metadata(metadata)[0]
    if profile is not None:
        for which in ("min", "opt", "max"):
            opts[f"trt_profile_{which}_shapes"] = shape_option(profile, which)
    return opts


def cuda_provider_options(device_id: int = 0, exhaustive_conv_search: bool = True) -> dict[str, str]:
    """Options for ``CUDAExecutionProvider``."""
    return {"device_id": str(device_id), "cudnn_conv_algo_search": "EXHAUSTIVE" if exhaustive_conv_search
            else "HEURISTIC", "do_copy_in_default_stream": "True"}


def gpu_providers(kind: str = "tensorrt", metadata: ModelMetadata | None = None, fp16: bool = True,
                  cache_dir: str | os.PathLike[str] | None = None, device_id: int = 0,
                  **trt_kwargs: Any) -> list[ProviderSpec]:
    """Provider list with fallbacks, for ``InferenceSession(path, providers=...)``.

    ``kind`` = "tensorrt" -> [TensorRT EP, CUDA EP, CPU]; "cuda" -> [CUDA EP, CPU]; "cpu" -> [CPU].
    """
    cpu: ProviderSpec = ("CPUExecutionProvider", {})
    cuda: ProviderSpec = ("CUDAExecutionProvider", cuda_provider_options(device_id))
    if kind == "cpu":
        return [cpu]
    if kind == "cuda":
        return [cuda, cpu]
    if kind == "tensorrt":
        trt = tensorrt_provider_options(metadata, fp16=fp16, cache_dir=cache_dir, device_id=device_id, **trt_kwargs)
        return [("TensorrtExecutionProvider", trt), cuda, cpu]
    raise ValueError(f"unknown provider kind {kind!r}: use 'tensorrt', 'cuda' or 'cpu'")


def default_ort_cache_dir() -> Path:
    """Where the TensorRT execution provider keeps its engines and timing cache: ``onnxruntime/`` in the
    engine cache (``$CALIBNET_ENGINE_CACHE`` or ``~/.cache/calibnet/engines``)."""
    return default_cache_dir() / "onnxruntime"


def default_providers(path: str | Path | None = None, fp16: bool = True,
                      cache_dir: str | os.PathLike[str] | None = None) -> ProviderList:
    """Available providers in the order TensorRT > CUDA > CPU; GPU providers come with their options
    (:func:`gpu_providers`, profile shapes from ``path``'s metadata)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if not available & set(GPU_PROVIDERS):
        return ["CPUExecutionProvider"]
    kind = "tensorrt" if "TensorrtExecutionProvider" in available else "cuda"
    try:
        meta: ModelMetadata | None = read_onnx_metadata(path) if path is not None else None
    except (OSError, ValueError):
        meta = None  # no profile shapes
    specs = gpu_providers(kind, meta, fp16=fp16,
                          cache_dir=cache_dir if cache_dir is not None else default_ort_cache_dir())
    return [s for s in specs if s[0] in available or s[0] == "CPUExecutionProvider"]


def _trt_cache_path(providers: ProviderList) -> str | None:
    """The engine cache folder of a TensorRT provider in ``providers`` (None: no provider, or no cache)."""
    for p in providers:
        if isinstance(p, tuple) and p[0] == "TensorrtExecutionProvider":
            opts = p[1]
            if str(opts.get("trt_engine_cache_enable", "")).lower() in ("true", "1") and \
                    opts.get("trt_engine_cache_path"):
                return str(opts["trt_engine_cache_path"])
    return None


class OnnxRuntimeBackend:
    """Runs an exported CalibNet ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: ProviderList | None = None, threads: int = 0,
                 fp16: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                 session_options: Any = None, device: str | None = None) -> None:
        """``session_options``: an ``ort.SessionOptions`` to use instead of the defaults (all graph
        optimizations, ``threads`` intra-op threads); ``device="cpu"``: the CPU provider only (default: the best
        available, :func:`default_providers`)."""
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - base dependency
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from exc
        opts = session_options
        if opts is None:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3  # errors only: ONNX Runtime's own warnings are not the user's business
            if threads:
                opts.intra_op_num_threads = threads
        if providers is None and device == "cpu":
            providers = ["CPUExecutionProvider"]
        self.providers: ProviderList = providers or default_providers(path, fp16=fp16, cache_dir=cache_dir)
        cache = _trt_cache_path(self.providers)  # the TensorRT provider's engine cache: the user's own folder
        self._ledger = HashLedger(cache) if cache else None
        if self._ledger is not None:
            self._ledger.prune()  # an engine the provider did not write here (or changed since) is built again
        try:
            self.session: Any = ort.InferenceSession(str(path), sess_options=opts, providers=self.providers)
        except Exception as exc:
            if PLUGIN_NAME not in str(exc):
                raise
            raise BackendUnavailable(
                f"{path}: a TensorRT-flavoured graph without the plugin's CPU reference body; ONNX Runtime needs "
                "it: re-export with calibnet-export --flavor tensorrt (embeds it unless --no-reference-body), or "
                "run the file with TensorRT") from None
        self.metadata = read_onnx_metadata(path)

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
        if self._ledger is not None:  # the provider builds its engines by the first run: record their hashes
            self._ledger.record()
            self._ledger = None
        return dict(zip(self.output_names, outs))

    def close(self) -> None:
        self.session = None
