"""What calibnet-bench records about the machine: the CPU's matrix ISA extensions (``/proc/cpuinfo``) and
OpenVINO's CPU capabilities and version, beside the NNCF version (the JSON's ``setup``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from calibnet.runtime.backends.openvino import cpu_capabilities

__all__ = ["cpu_isa", "openvino_facts"]

_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
              "avx512_fp16")


def cpu_isa(cpuinfo: str | None = None) -> dict[str, Any]:
    """The matrix-math ISA extensions the CPU reports (``/proc/cpuinfo`` flags) and its model name."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"model_name": None, "flags": {}, "source": "unavailable (/proc/cpuinfo not readable)"}
    flags: set[str] = set()
    name = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and name is None:
            name = value.strip()
    present = {f: f in flags for f in _ISA_FLAGS}
    return {"model_name": name, "flags": present, "amx": present["amx_bf16"] or present["amx_int8"],
            "vnni": present["avx512_vnni"] or present["avx_vnni"], "bf16": present["avx512_bf16"] or
            present["amx_bf16"], "source": "/proc/cpuinfo"}


def openvino_facts() -> dict[str, Any]:
    """Library versions and OpenVINO's CPU capabilities, for the benchmark's JSON ``setup``."""
    version: dict[str, str | None] = {}
    for name in ("openvino", "nncf"):
        try:
            version[name] = importlib.import_module(name).__version__
        except ImportError:
            version[name] = None
    caps = {"openvino_cpu_capabilities": cpu_capabilities()} if version["openvino"] is not None else {}
    return {"cpu_isa": cpu_isa(), "openvino": version["openvino"], **caps, "nncf": version["nncf"]}
