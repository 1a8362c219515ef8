"""Optional dependencies of the applications (robot data: rosbags, pyrealsense2, rerun-sdk), imported when first
used, with a one-line install hint when missing. The base runtime installs none of them."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..core.targets import install_hint

__all__ = ["MissingDependency", "require"]

#: module -> (what a user installs, the calibnet extra that has it)
PACKAGES = {"rosbags": ("rosbags", "robotics"), "pyrealsense2": ("pyrealsense2", "robotics"),
            "rerun": ("rerun-sdk", "robotics")}


class MissingDependency(ImportError):
    """An optional package (or the system library it needs) is not installed; the message says what to install."""


def require(module: str, what: str) -> ModuleType:
    """``import module``, or :class:`MissingDependency` saying that ``what`` needs it and how to install it
    (pyrealsense2 without the system library libusb-1.0 gets the system package's name)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package, extra = PACKAGES.get(module.split(".")[0], (module, ""))
        if "libusb" in str(exc):
            hint = "install the system library libusb-1.0 (Debian/Ubuntu: apt-get install libusb-1.0-0)"
        else:
            hint = f"pip install '{package}'" + (f", or {install_hint(extra)}" if extra else "")
        raise MissingDependency(f"{what} needs {package}: {hint}") from None
