"""Errors and warnings about the frames a user feeds the runtime."""

from __future__ import annotations

__all__ = ["InputError", "InputWarning"]


class InputError(ValueError):
    """A frame the runtime cannot use; the message says what is wrong."""


class InputWarning(UserWarning):
    """A frame the runtime could use only after a repair (e.g. a depth map resized to the RGB size)."""
