"""calibnet.engines: ONNX -> TensorRT FP16 engines and the engine cache.

Importing this package needs neither TensorRT nor a GPU; :func:`build_engine` / :func:`get_or_build` and the
``tensorrt`` runtime backend raise :class:`TensorRTUnavailable` (with install instructions) without them.
What the runtime needs to read an engine (sidecar format, profiles, ONNX Runtime provider options, the
dependency probes) lives in :mod:`calibnet.runtime` (``core.sidecar``, ``core.profiles``, ``backends``).
"""

from __future__ import annotations

from .builder import EngineBuildError, build_engine, choose_fp16_path, read_onnx_metadata
from .cache import CacheKey, cache_mismatches, find_cached, get_or_build
from .fp16 import DEFAULT_FP32_PATTERNS, FP16Report, convert_to_fp16, load_fp32_patterns, matching_nodes

__all__ = [
    "EngineBuildError", "build_engine", "choose_fp16_path", "read_onnx_metadata",
    "CacheKey", "cache_mismatches", "find_cached", "get_or_build",
    "DEFAULT_FP32_PATTERNS", "FP16Report", "convert_to_fp16", "load_fp32_patterns", "matching_nodes",
]
