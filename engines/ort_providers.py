"""ONNX Runtime GPU execution providers (CUDA, TensorRT) with options derived from the model metadata.

Imports neither torch nor tensorrt; onnxruntime is imported only inside :func:`available_providers`.
The runtime passes the result as ``providers=`` to ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..runtime.metadata import ModelMetadata
from .profiles import Profile, profiles_from_metadata

__all__ = ["ProviderSpec", "shape_option", "tensorrt_provider_options", "cuda_provider_options", "gpu_providers",
           "available_providers"]

ProviderSpec = tuple[str, dict[str, str]]


def _b(v: bool) -> str:
    return "True" if v else "False"


def shape_option(profile: Mapping[str, Any], which: str) -> str:
    """``"rgb:1x3x320x320,depth:1x1x320x320,valid_hw:1x2"`` for ``trt_profile_<which>_shapes``."""
    parts = []
    for name, r in profile.items():
        shape = getattr(r, which)
        parts.append(f"{name}:" + "x".join(str(int(d)) for d in shape))
    return ",".join(parts)


def tensorrt_provider_options(metadata: ModelMetadata | None = None, fp16: bool = True,
                              cache_dir: str | os.PathLike[str] | None = None, device_id: int = 0,
                              workspace: int | None = None, builder_optimization_level: int | None = None,
                              profile: Profile | None = None) -> dict[str, str]:
    """Options for ``TensorrtExecutionProvider``: FP16 with LayerNorm kept in FP32, engine and timing
    caches under ``cache_dir`` and, for dynamic graphs, explicit min/opt/max profile shapes (from the
    metadata unless ``profile`` is given)."""
    opts: dict[str, str] = {"device_id": str(device_id), "trt_fp16_enable": _b(fp16),
                            "trt_layer_norm_fp32_fallback": _b(fp16)}
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


def available_providers(specs: list[ProviderSpec]) -> list[ProviderSpec]:
    """``specs`` filtered to the providers this onnxruntime build offers (CPU always kept)."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [s for s in specs if s[0] in have or s[0] == "CPUExecutionProvider"]
