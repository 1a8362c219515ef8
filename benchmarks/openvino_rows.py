"""calibnet-bench rows for OpenVINO: ``openvino-f32``, ``openvino-bf16``, ``openvino-int8``, plus the facts the JSON
records about the CPU (ISA flags from /proc/cpuinfo, OpenVINO's capabilities) and the speed-up columns vs
ONNX Runtime.

Each row opens the benchmark's portable ONNX export (the same file as the ``onnxruntime`` row; exported here if
that row is not run) on :class:`calibnet.runtime.backends.openvino.OpenVinoBackend` at its precision; the INT8
row uses ``--int8-model`` or builds an INT8 IR itself (:func:`calibnet.export.openvino_int8.quantize_int8`,
synthetic calibration frames, the default keep-float split, written even if the comparison fails so that its
latency is still measured: the row's status then says the validation failed). Every row is validated against
the eager FP32 model by the shared comparator at the row's precision (``validation`` in the JSON: mask
agreement, max |diff| per output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OPENVINO_BACKENDS", "prepare_openvino", "cpu_isa", "openvino_facts", "add_speedups_vs"]

#: benchmark row name -> backend precision
OPENVINO_BACKENDS: dict[str, str] = {"openvino-f32": "f32", "openvino-bf16": "bf16", "openvino-int8": "int8"}
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
    facts: dict[str, Any] = {"cpu_isa": cpu_isa()}
    try:
        import openvino as ov

        from calibnet.runtime.backends.openvino import cpu_capabilities

        facts["openvino"] = ov.__version__
        facts["openvino_cpu_capabilities"] = cpu_capabilities()
    except ImportError:
        facts["openvino"] = None
    try:
        import nncf

        facts["nncf"] = nncf.__version__
    except ImportError:
        facts["nncf"] = None
    return facts


def add_speedups_vs(backends: dict[str, dict[str, Any]], reference: str = "onnxruntime") -> None:
    """Add ``speedup_vs_<reference>`` (end to end p50) and ``infer_speedup_vs_<reference>`` (inference p50) to
    every timed row when the reference row was timed."""
    ref = backends.get(reference) or {}
    if not ref.get("e2e_ms"):
        return
    for entry in backends.values():
        if not entry.get("e2e_ms"):
            continue
        entry[f"speedup_vs_{reference}"] = ref["e2e_ms"]["p50"] / entry["e2e_ms"]["p50"]
        entry[f"infer_speedup_vs_{reference}"] = (ref["stages_ms"]["infer"]["p50"] /
                                                 entry["stages_ms"]["infer"]["p50"])


def _int8_ir(onnx: Path, workdir: Path, threads: int, calib_frames: int) -> tuple[Path, str]:
    from calibnet.export.openvino_int8 import quantize_int8, synthetic_calibration_feeds
    from calibnet.runtime import Runtime

    with Runtime.open(onnx, backend="openvino", precision="f32", threads=threads, cache_dir="") as rt:
        calib = synthetic_calibration_feeds(rt, calib_frames)
        check = synthetic_calibration_feeds(rt, 2, seed=9000)
    out = workdir / (onnx.stem + "_int8.xml")
    res = quantize_int8(onnx, out, calib, check, threads=threads, force=True,
                        calibration_source=f"{calib_frames} synthetic scenes (calibnet-bench)")
    kept = ", ".join(res.keep_float) or "nothing"
    return out, (f"built by the bench: NNCF PTQ on {calib_frames} synthetic scenes, kept in float: {kept}"
                 f"{' (FORCED: failed the comparison)' if res.forced else ''}")


def prepare_openvino(name: str, model: Any, workdir: Path, height: int, width: int, batch: int, threads: int,
                     rgb: np.ndarray, depth: np.ndarray, reference: Any, int8_model: str | None = None,
                     calib_frames: int = 8) -> Any:
    """One OpenVINO row (:class:`~calibnet.benchmarks.backends.PreparedBackend`), validated against
    ``reference`` (the eager FP32 model's backend) at the row's precision."""
    from calibnet.runtime import Runtime
    from calibnet.runtime.backends.base import BackendUnavailable
    from calibnet.runtime.backends.openvino import PrecisionMismatch, comparator_precision

    from .backends import PASSED, PreparedBackend, _short, _validated, portable_onnx

    precision = OPENVINO_BACKENDS[name]
    cmp_precision = comparator_precision(precision)
    try:
        import openvino as ov
    except ImportError:
        return PreparedBackend(name, 'unavailable: OpenVINO is not installed (pip install "calibnet[openvino]")',
                               precision=cmp_precision)
    try:
        onnx = portable_onnx(model, workdir, height, width, batch)
    except Exception as exc:  # an export error is a benchmark result, not a crash
        return PreparedBackend(name, f"export failed: {_short(exc)}", precision=cmp_precision, detail=repr(exc))
    artifact, how = onnx, "portable ONNX read by OpenVINO"
    if precision == "int8":
        try:
            artifact, how = (Path(int8_model), f"--int8-model {int8_model}") if int8_model else \
                _int8_ir(onnx, workdir, threads, calib_frames)
        except Exception as exc:
            return PreparedBackend(name, f"export failed: INT8 quantization: {_short(exc)}", precision=cmp_precision,
                                   detail=repr(exc))
    try:
        rt = Runtime.open(artifact, backend="openvino", precision=precision, threads=threads,
                          cache_dir=workdir / "openvino-cache")
    except (BackendUnavailable, PrecisionMismatch) as exc:
        return PreparedBackend(name, f"unavailable: {_short(exc)}", precision=cmp_precision, detail=str(exc))
    size = artifact.stat().st_size + (artifact.with_suffix(".bin").stat().st_size if artifact.suffix == ".xml" else 0)
    prep = PreparedBackend(name, PASSED, rt, artifact, size / 1e6, cmp_precision,
                           detail=f"OpenVINO {ov.__version__} CPU {precision} ({rt.backend.precision_reason}); "
                                  f"{how}; {threads} threads")
    return _validated(prep, reference, rgb, depth, batch)
