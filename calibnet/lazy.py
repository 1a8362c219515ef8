"""Module attributes loaded on first use (PEP 562), so that importing a package does not import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_attributes", "lazy_names"]


def lazy_names(table: Mapping[str, Sequence[str]]) -> list[str]:
    """Every public name of a ``{module: (name, ...)}`` table."""
    return [name for names in table.values() for name in names]


def lazy_attributes(module_name: str, table: Mapping[str, Sequence[str]], namespace: dict[str, Any],
                    names: Sequence[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a module: ``table`` maps a module to the names it gives (same name there),
    imported on first access and cached in the module's ``namespace``; ``names`` is the module's ``__all__``."""
    where = {name: module for module, given in table.items() for name in given}

    def get_attribute(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return get_attribute, lambda: sorted(names)
