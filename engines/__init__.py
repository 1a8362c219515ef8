"""calibnet.engines: ONNX -> TensorRT FP16 engines and the engine cache.

Importing this package needs neither TensorRT nor a GPU; :func:`build_engine` / :func:`get_or_build` and the
``tensorrt`` runtime backend raise :class:`TensorRTUnavailable` (with install instructions) without them.
What the runtime needs to read an engine (sidecar format, profiles, ONNX Runtime provider options, the
dependency probes) lives in :mod:`calibnet.runtime` and is re-exported here.
"""

from __future__ import annotations

from ..runtime.backends.onnxruntime import cuda_provider_options, gpu_providers, tensorrt_provider_options
from ..runtime.backends.tensorrt_deps import (
    INSTALL_HINT,
    TensorRTUnavailable,
    require_tensorrt,
    tensorrt_available,
    tensorrt_version,
)
from ..runtime.core.profiles import (
    ShapeRange,
    parse_profile_spec,
    profiles_from_json,
    profiles_from_metadata,
    profiles_to_json,
)
from ..runtime.core.sidecar import (
    EngineSidecar,
    GpuInfo,
    IOTensor,
    default_cache_dir,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from .builder import EngineBuildError, build_engine, choose_fp16_path, read_onnx_metadata
from .cache import CacheKey, cache_mismatches, find_cached, get_or_build
from .fp16 import DEFAULT_FP32_PATTERNS, FP16Report, convert_to_fp16, load_fp32_patterns, matching_nodes

__all__ = [
    "INSTALL_HINT", "TensorRTUnavailable", "require_tensorrt", "tensorrt_available", "tensorrt_version",
    "EngineBuildError", "build_engine", "choose_fp16_path", "read_onnx_metadata",
    "CacheKey", "cache_mismatches", "default_cache_dir", "find_cached", "get_or_build",
    "DEFAULT_FP32_PATTERNS", "FP16Report", "convert_to_fp16", "load_fp32_patterns", "matching_nodes",
    "cuda_provider_options", "gpu_providers", "tensorrt_provider_options",
    "ShapeRange", "parse_profile_spec", "profiles_from_json", "profiles_from_metadata", "profiles_to_json",
    "EngineSidecar", "GpuInfo", "IOTensor", "read_sidecar", "sidecar_path", "write_sidecar",
]
