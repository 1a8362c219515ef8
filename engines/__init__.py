"""calibnet.engines: ONNX -> TensorRT FP16 engines, the engine cache and ONNX Runtime GPU provider options.

Importing this package needs neither TensorRT nor a GPU; :func:`build_engine` / :func:`get_or_build` and the
``tensorrt`` runtime backend raise :class:`TensorRTUnavailable` (with install instructions) without them.
"""

from __future__ import annotations

from ._deps import INSTALL_HINT, TensorRTUnavailable, require_tensorrt, tensorrt_available, tensorrt_version
from .builder import EngineBuildError, build_engine, choose_fp16_path, read_onnx_metadata
from .cache import CacheKey, cache_mismatches, default_cache_dir, find_cached, get_or_build
from .fp16 import DEFAULT_FP32_PATTERNS, FP16Report, convert_to_fp16, load_fp32_patterns, matching_nodes
from .ort_providers import cuda_provider_options, gpu_providers, tensorrt_provider_options
from .profiles import ShapeRange, parse_profile_spec, profiles_from_json, profiles_from_metadata, profiles_to_json
from .sidecar import EngineSidecar, GpuInfo, IOTensor, read_sidecar, sidecar_path, write_sidecar

__all__ = [
    "INSTALL_HINT", "TensorRTUnavailable", "require_tensorrt", "tensorrt_available", "tensorrt_version",
    "EngineBuildError", "build_engine", "choose_fp16_path", "read_onnx_metadata",
    "CacheKey", "cache_mismatches", "default_cache_dir", "find_cached", "get_or_build",
    "DEFAULT_FP32_PATTERNS", "FP16Report", "convert_to_fp16", "load_fp32_patterns", "matching_nodes",
    "cuda_provider_options", "gpu_providers", "tensorrt_provider_options",
    "ShapeRange", "parse_profile_spec", "profiles_from_json", "profiles_from_metadata", "profiles_to_json",
    "EngineSidecar", "GpuInfo", "IOTensor", "read_sidecar", "sidecar_path", "write_sidecar",
]
