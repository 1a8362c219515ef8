"""``with`` support for the runtime's objects that hold resources (runtimes, backends, streams, logs, writers)."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["Closing"]

_C = TypeVar("_C", bound="Closing")


class Closing:
    """``with obj:`` returns ``obj`` and calls its ``close()`` at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
