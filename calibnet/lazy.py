"""Module attributes loaded on first use (PEP 562), so that importing a package does not import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(module_name: str, table: Mapping[str, tuple[str, str]], namespace: dict[str, Any],
                    names: Sequence[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a module: ``table`` maps a public name to ``(module, attribute)``,
    imported on first access and cached in the module's ``namespace``; ``names`` is the module's ``__all__``."""

    def get_attribute(name: str) -> Any:
        if name in table:
            module, attr = table[name]
            value = getattr(importlib.import_module(module), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def list_attributes() -> list[str]:
        return sorted(names)

    return get_attribute, list_attributes
