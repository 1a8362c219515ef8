"""Compatibility path (kept for the parity tests' imports): :class:`ModelMetadata` is defined in
:mod:`calibnet.runtime.contract`."""

from .contract import FORMAT_VERSION, PREFIX, ModelMetadata

__all__ = ["ModelMetadata", "PREFIX", "FORMAT_VERSION"]
