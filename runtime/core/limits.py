"""How large an input calibnet decodes: the one pixel limit and the one byte limit of every reader.

Every image, depth map, ``.npy`` file, raw tensor of a request and video or camera frame is sized from its header
(or its array shape) and refused *before* anything is decoded or allocated when it has more pixels than
:attr:`InputLimits.max_pixels`; an encoded file or request input larger than :attr:`InputLimits.max_bytes` is
refused before it is read. calibnet-infer, calibnet-serve, the Ray job and the training / evaluation data all
use :func:`default_limits` unless told otherwise (``--max-pixels``, ``--max-input-mb``,
``$CALIBNET_MAX_PIXELS``, ``$CALIBNET_MAX_INPUT_BYTES``; 0 turns a limit off). A served request also waits at most
:data:`REQUEST_TIMEOUT_S` for the model (calibnet-serve's ``--timeout-s``, the generated Triton repository). See
docs/security.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError

__all__ = ["MAX_PIXELS", "MAX_INPUT_BYTES", "PIXELS_ENV", "BYTES_ENV", "REQUEST_TIMEOUT_S", "InputLimits",
           "LimitExceeded", "default_limits"]

#: default pixel limit (width x height) of one frame: 40 MP (each kept mask is a full-size array)
MAX_PIXELS = 40_000_000
#: default size limit of one encoded file or request input: 256 MiB (a 40 MP float32 map is 160 MB)
MAX_INPUT_BYTES = 256 * 2**20
#: environment variables that change the defaults (an integer; 0: no limit)
PIXELS_ENV = "CALIBNET_MAX_PIXELS"
BYTES_ENV = "CALIBNET_MAX_INPUT_BYTES"
#: default seconds a served request may wait for the model before it is refused (0: no timeout)
REQUEST_TIMEOUT_S = 30.0


class LimitExceeded(InputError):
    """An input refused by :class:`InputLimits` (too many pixels or bytes), before it was decoded."""


@dataclass(frozen=True)
class InputLimits:
    """The pixel and byte limits of one input (0: no limit)."""

    max_pixels: int = MAX_PIXELS
    max_bytes: int = MAX_INPUT_BYTES

    def __post_init__(self) -> None:
        if self.max_pixels < 0 or self.max_bytes < 0:
            raise ValueError(f"input limits must be >= 0 (0: no limit), got max_pixels={self.max_pixels}, "
                             f"max_bytes={self.max_bytes}")

    def summary(self) -> str:
        """``"40 MP and 256 MiB per input"`` (``no ... limit`` for a limit of 0)."""
        pixels = f"{self.max_pixels / 1e6:g} MP" if self.max_pixels else "no pixel limit"
        size = f"{self.max_bytes / 2**20:g} MiB" if self.max_bytes else "no byte limit"
        return f"{pixels} and {size} per input"

    def check_size(self, width: int, height: int, what: str) -> None:
        """:class:`LimitExceeded` naming ``what`` when a ``width`` x ``height`` frame exceeds :attr:`max_pixels`;
        :class:`InputError` when it has no pixels."""
        if width <= 0 or height <= 0:
            raise InputError(f"{what}: no pixels ({width}x{height})")
        if self.max_pixels and width * height > self.max_pixels:
            raise LimitExceeded(f"{what}: {width}x{height} ({width * height / 1e6:.1f} MP) is larger than the limit of "
                             f"{self.max_pixels / 1e6:.1f} MP (--max-pixels or ${PIXELS_ENV} raise it)")

    def check_bytes(self, size: int, what: str) -> None:
        """:class:`LimitExceeded` naming ``what`` when ``size`` bytes exceed :attr:`max_bytes`."""
        if self.max_bytes and size > self.max_bytes:
            raise LimitExceeded(f"{what}: {size / 2**20:.1f} MiB is larger than the limit of "
                             f"{self.max_bytes / 2**20:.1f} MiB (--max-input-mb or ${BYTES_ENV} raise it)")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not an integer (0: no limit)") from None
    if value < 0:
        raise ValueError(f"${name}={raw!r} must be >= 0 (0: no limit)")
    return value


def default_limits() -> InputLimits:
    """:data:`MAX_PIXELS` and :data:`MAX_INPUT_BYTES`, or ``$CALIBNET_MAX_PIXELS`` / ``$CALIBNET_MAX_INPUT_BYTES``
    when set."""
    return InputLimits(_env_int(PIXELS_ENV, MAX_PIXELS), _env_int(BYTES_ENV, MAX_INPUT_BYTES))
