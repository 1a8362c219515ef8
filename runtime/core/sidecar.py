"""The JSON sidecar written next to every engine (``model.engine`` -> ``model.engine.json``).

It records what the engine was built from and for: ONNX sha256, TensorRT version, GPU name and compute
capability, precision and which FP16 path ran, optimization profiles, IO names/shapes/dtypes, the FP32
layers, and the :class:`~calibnet.runtime.core.contract.ModelMetadata` dict under ``"model"`` (the runtime
reads nothing else). Pure Python: no TensorRT.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import ModelMetadata

__all__ = ["EngineSidecar", "GpuInfo", "IOTensor", "sidecar_path", "write_sidecar", "read_sidecar",
           "read_engine_metadata", "SIDECAR_FORMAT", "SIDECAR_VERSION"]

SIDECAR_FORMAT = "calibnet-engine"
SIDECAR_VERSION = 1


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``<engine>.json`` beside the engine file."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine was built on (engines are specific to a GPU model / compute capability)."""

    name: str
    compute_capability: str  # "major.minor", e.g. "8.9"

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"name": self.name, "compute_capability": self.compute_capability}


@dataclass(frozen=True)
class IOTensor:
    """One engine IO tensor: shape uses -1 for dynamic axes."""

    name: str
    mode: str  # "input" | "output"
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[int, ...]


@dataclass
class EngineSidecar:
    """Everything known about a built engine; serialized as JSON next to it."""

    onnx_sha256: str
    tensorrt_version: str
    gpu: GpuInfo
    precision: str  # "fp16" | "fp32"
    fp16_path: str  # "builder-flag-fp16" (TensorRT 10 weak typing) | "onnx-fp16-pass" (strongly typed) | "none"
    profiles: list[dict[str, dict[str, list[int]]]]
    io: list[IOTensor] = field(default_factory=list)
    fp32_layers: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    onnx_path: str = ""
    engine_sha256: str = ""
    builder: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0
    created_utc: str = ""
    format: str = SIDECAR_FORMAT
    format_version: int = SIDECAR_VERSION

    @property
    def metadata(self) -> ModelMetadata:
        """The model metadata (raises ``ValueError`` when the sidecar has none)."""
        if not self.model:
            raise ValueError("engine sidecar has no 'model' metadata")
        return ModelMetadata.from_dict(self.model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        d = dataclasses.asdict(self)
        d["io"] = [{**dataclasses.asdict(t), "shape": list(t.shape)} for t in self.io]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineSidecar:
        """Parse :meth:`to_dict` output; raises ``ValueError`` for another format or a missing field."""
        if d.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"not a calibnet engine sidecar (format={d.get('format')!r})")
        if int(d.get("format_version", 0)) > SIDECAR_VERSION:
            raise ValueError(f"sidecar format_version {d['format_version']} is newer than this calibnet "
                             f"understands ({SIDECAR_VERSION}); upgrade calibnet")
        try:
            gpu = GpuInfo(**d["gpu"])
            io = [IOTensor(t["name"], t["mode"], t["dtype"], tuple(t["shape"])) for t in d.get("io", [])]
            names = {f.name for f in dataclasses.fields(cls)}
            rest = {k: v for k, v in d.items() if k in names and k not in ("gpu", "io")}
            return cls(gpu=gpu, io=io, **rest)
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed engine sidecar: {e}") from None


def write_sidecar(engine_path: str | os.PathLike[str], sidecar: EngineSidecar) -> Path:
    """Write ``<engine>.json`` atomically (a new temporary file of its own beside it, then a rename); returns its
    path."""
    path = sidecar_path(engine_path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(sidecar.to_dict(), indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_sidecar(engine_path: str | os.PathLike[str]) -> EngineSidecar:
    """Read the sidecar of ``engine_path``; ``FileNotFoundError``/``ValueError`` with a clear message."""
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise FileNotFoundError(f"no sidecar {path} next to engine {engine_path} (build engines with "
                                "calibnet.engines.build_engine so the runtime knows the model metadata)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    return EngineSidecar.from_dict(d)


def read_engine_metadata(engine_path: str | os.PathLike[str]) -> ModelMetadata:
    """The calibnet metadata of an engine, from its JSON sidecar (``FileNotFoundError`` without one)."""
    return read_sidecar(engine_path).metadata
