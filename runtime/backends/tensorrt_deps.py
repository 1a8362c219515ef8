"""Import guards for TensorRT and CUDA: one clear error saying what is missing and how to install it.

Nothing here imports tensorrt at module import. Note that the ``tensorrt-stubs`` wheel (type stubs only)
installs a ``tensorrt/`` folder without code: ``import tensorrt`` then "succeeds" as an empty namespace
package, so availability is judged by the presence of ``tensorrt.Builder``, not by the import alone.
"""

from __future__ import annotations

import importlib

from ..core.targets import install_hint
from .base import BackendUnavailable

__all__ = ["TensorRTUnavailable", "INSTALL_HINT", "require_tensorrt", "tensorrt_available", "tensorrt_version",
           "tensorrt_major"]

INSTALL_HINT = (
    f"Install it on a machine with an NVIDIA GPU and driver: {install_hint('tensorrt')} "
    "(the `tensorrt` wheel on PyPI fetches the real libraries from NVIDIA's index, "
    "https://pypi.nvidia.com, which must be reachable; add `--extra-index-url https://pypi.nvidia.com` "
    "if your pip config blocks it). For device buffers also install `cuda-python` (preferred) or `pycuda`."
)


class TensorRTUnavailable(BackendUnavailable):
    """TensorRT (or a CUDA GPU) is missing; the message says what is missing and how to install it."""


def _trt_module_ok() -> tuple[bool, str]:
    try:
        mod = importlib.import_module("tensorrt")
    except ModuleNotFoundError as e:
        if e.name == "tensorrt":
            return False, "the Python package `tensorrt` is not installed"
        return False, f"`import tensorrt` failed ({e})"
    except Exception as e:  # a broken install: missing libnvinfer, CUDA driver, ...
        return False, f"`import tensorrt` failed ({type(e).__name__}: {e})"
    if not hasattr(mod, "Builder"):
        return False, ("`tensorrt` is only present as type stubs (tensorrt-stubs) or an incomplete install: "
                       "it has no TensorRT library")
    return True, ""


def tensorrt_available() -> bool:
    """True when a usable TensorRT Python package (not only its stubs) can be imported."""
    return _trt_module_ok()[0]


def require_tensorrt(what: str = "this operation") -> None:
    """Raise :class:`TensorRTUnavailable` with install instructions unless TensorRT can be imported."""
    ok, why = _trt_module_ok()
    if not ok:
        raise TensorRTUnavailable(f"TensorRT is needed for {what}, but {why}. {INSTALL_HINT}")


def tensorrt_version() -> str | None:
    """The installed TensorRT version string, or None when TensorRT is unavailable."""
    return str(importlib.import_module("tensorrt").__version__) if tensorrt_available() else None


def tensorrt_major(version: str | None = None) -> int | None:
    """Major version of ``version`` (default: the installed TensorRT), or None."""
    v = version if version is not None else tensorrt_version()
    if not v:
        return None
    try:
        return int(v.split(".")[0])
    except ValueError:
        return None
