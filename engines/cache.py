"""Engine cache: reuse an engine whose sidecar matches the request, rebuild otherwise.

A cached engine matches when its sidecar has the same ONNX sha256, TensorRT version, GPU (name and
compute capability), precision, optimization profiles and (for FP16) FP32-island patterns, and the engine
file's sha256 equals the one recorded (a sidecar without one means rebuild: an engine is deserialized, so a
planted file must never load). The rules live in :func:`cache_mismatches` (pure, CPU-testable). The cache
folder is the user's own (:func:`calibnet.runtime.core.cachedir.private_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runtime.backends import tensorrt_deps
from ..runtime.core.cachedir import default_cache_dir, file_sha256, private_dir
from ..runtime.core.profiles import Profile, profiles_from_json, profiles_from_metadata, profiles_to_json
from ..runtime.core.sidecar import EngineSidecar, GpuInfo, read_sidecar
from ..runtime.core.targets import ENGINE_SUFFIX, read_metadata
from . import builder as engine_builder  # its functions looked up at call time (tests replace current_gpu)
from .fp16 import fp32_patterns, pattern_strings

__all__ = ["CacheKey", "cache_mismatches", "find_cached", "engine_filename", "get_or_build"]


@dataclass(frozen=True)
class CacheKey:
    """What an engine must have been built from and for."""

    onnx_sha256: str
    tensorrt_version: str
    gpu: GpuInfo
    precision: str
    profiles: tuple[str, ...]  # canonical JSON of each profile
    fp32_patterns: tuple[str, ...] = ()

    @classmethod
    def make(cls, onnx_sha256: str, tensorrt_version: str, gpu: GpuInfo, precision: str,
             profiles: Sequence[Profile] | Any, fp32_patterns: Sequence[str] = ()) -> CacheKey:
        """Build a key, canonicalizing the profiles (and ignoring patterns for FP32 engines)."""
        canon = tuple(json.dumps(p, sort_keys=True) for p in profiles_to_json(profiles_from_json(profiles)))
        pats = tuple(fp32_patterns) if precision == "fp16" else ()
        return cls(onnx_sha256, tensorrt_version, gpu, precision, canon, pats)

    def digest(self) -> str:
        """Short stable hash of the key (used in cache file names)."""
        blob = json.dumps([self.onnx_sha256, self.tensorrt_version, self.gpu.to_dict(), self.precision,
                           list(self.profiles), list(self.fp32_patterns)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_mismatches(sidecar: EngineSidecar, key: CacheKey) -> list[str]:
    """Human-readable reasons why ``sidecar`` does not satisfy ``key`` (empty list: it matches)."""
    reasons = []
    if sidecar.onnx_sha256 != key.onnx_sha256:
        reasons.append("ONNX file changed (sha256 differs)")
    if sidecar.tensorrt_version != key.tensorrt_version:
        reasons.append(f"TensorRT version {sidecar.tensorrt_version} != {key.tensorrt_version}")
    if sidecar.gpu != key.gpu:
        reasons.append(f"GPU {sidecar.gpu.name} (sm {sidecar.gpu.compute_capability}) != "
                       f"{key.gpu.name} (sm {key.gpu.compute_capability})")
    if sidecar.precision != key.precision:
        reasons.append(f"precision {sidecar.precision} != {key.precision}")
    have = tuple(json.dumps(p, sort_keys=True) for p in sidecar.profiles)
    if have != key.profiles:
        reasons.append("optimization profiles differ")
    if key.precision == "fp16" and tuple(sidecar.builder.get("fp32_patterns", ())) != key.fp32_patterns:
        reasons.append("FP32 layer patterns differ")
    return reasons


def engine_filename(onnx_path: str | os.PathLike[str], key: CacheKey) -> str:
    """``<onnx stem>.<precision>.<gpu>.trt<version>.<digest>`` + the engine suffix (filesystem-safe)."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", key.gpu.name).strip("-").lower() or "gpu"
    return f"{Path(onnx_path).stem}.{key.precision}.{gpu}.trt{key.tensorrt_version}.{key.digest()}{ENGINE_SUFFIX}"


def find_cached(cache_dir: str | os.PathLike[str], key: CacheKey) -> Path | None:
    """An engine in ``cache_dir`` whose sidecar matches ``key`` and whose bytes have the sha256 its sidecar
    records (none recorded: not used)."""
    d = Path(cache_dir)
    if not d.is_dir():
        return None
    private_dir(d)
    for engine in sorted(d.glob("*" + ENGINE_SUFFIX)):
        try:
            sc = read_sidecar(engine)
        except (OSError, ValueError):
            continue
        if not cache_mismatches(sc, key) and sc.engine_sha256 and file_sha256(engine) == sc.engine_sha256:
            return engine
    return None


def get_or_build(onnx_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None,
                 fp16: bool = True, profiles: Sequence[Profile] | Any | None = None,
                 fp32_layers: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
                 tensorrt_version: str | None = None, gpu: GpuInfo | None = None,
                 builder: Callable[..., Path] | None = None, **build_kwargs: Any) -> Path:
    """Return a cached engine for ``onnx_path`` or build one into ``cache_dir`` (default
    :func:`default_cache_dir`). ``build_kwargs`` go to :func:`~calibnet.engines.builder.build_engine`.

    ``tensorrt_version``/``gpu``/``builder`` default to the installed TensorRT, the current GPU and
    ``build_engine`` (they can be given, e.g. to look up engines for another machine)."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file {onnx_path} does not exist")
    if tensorrt_version is None:
        tensorrt_deps.require_tensorrt("building or looking up a cached engine")
        tensorrt_version = str(tensorrt_deps.tensorrt_version())
    gpu = gpu or engine_builder.current_gpu()
    if profiles is None:
        profiles = profiles_from_metadata(read_metadata(onnx_path))  # ValueError without calibnet metadata
    patterns = pattern_strings(fp32_patterns(fp32_layers))  # a readiness JSON adds to the default islands
    key = CacheKey.make(file_sha256(onnx_path), tensorrt_version, gpu, "fp16" if fp16 else "fp32", profiles,
                        patterns)
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if (hit := find_cached(cdir, key)) is not None:
        return hit
    private_dir(cdir)
    target = cdir / engine_filename(onnx_path, key)
    build = builder or engine_builder.build_engine
    return Path(build(onnx_path, target, fp16=fp16, profiles=profiles, fp32_layers=patterns, **build_kwargs))
