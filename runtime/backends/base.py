"""The interface every runtime backend implements (ONNX Runtime, TensorRT, torch reference)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..core.contract import ModelMetadata

__all__ = ["Backend", "BackendUnavailable"]


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (missing package, GPU or plugin); the message says how to fix it."""


@runtime_checkable
class Backend(Protocol):
    """Runs one exported CalibNet graph. Inputs/outputs are named as in the ONNX file."""

    name: str
    metadata: ModelMetadata

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch: ``rgb`` float32 [B,3,H,W], ``depth`` float32 [B,1,H,W], ``valid_hw`` int64 [B,2]."""
        ...

    def close(self) -> None: ...
