"""The interface every runtime backend implements (ONNX Runtime, TensorRT, torch reference), and
:class:`Closing`, the ``with`` statement of the runtime's closable objects."""

from __future__ import annotations

from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from ..core.contract import ModelMetadata

__all__ = ["Backend", "BackendUnavailable", "Closing"]

_C = TypeVar("_C", bound="Closing")


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


class Closing:
    """``with obj:`` returns ``obj`` and calls its ``close()`` at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
