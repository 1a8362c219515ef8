"""Set up each benchmarked backend as a :class:`calibnet.runtime.Runtime`, with an Ultralytics-style status.

- ``torch``: ``Runtime.from_model(model)`` -- the runtime's numpy pre/post-processing around the eager model
  (the reference: its status is ``passed`` once it runs).
- ``onnxruntime``: a portable ONNX export (``calibnet.export.export_onnx``, static network size), run on the
  CPU execution provider with latency-minded session options (:func:`ort_session_options`), validated
  against the eager model on the same prepared frame.
- ``tensorrt``: a TensorRT-flavoured ONNX export, an FP16 engine from ``calibnet.engines.get_or_build`` and
  ``Runtime.open(engine)``; without TensorRT or a GPU the status says ``unavailable: <reason>``.

Status values: ``passed``, ``exported but validation failed``, ``export failed: <error>``,
``unavailable: <reason>``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KNOWN_BACKENDS", "PreparedBackend", "ort_session_options", "portable_onnx", "prepare_backend", "PASSED",
           "VALIDATION_FAILED"]

KNOWN_BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino-f32", "openvino-bf16", "openvino-int8")
PASSED = "passed"
VALIDATION_FAILED = "exported but validation failed"


@dataclass
class PreparedBackend:
    """One row of the benchmark: the runtime (None unless it can run) and what happened on the way."""

    name: str
    status: str
    runtime: Any = None
    artifact: Path | None = None
    artifact_mb: float | None = None
    precision: str = "fp32"
    validation: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    @property
    def runnable(self) -> bool:
        """Whether latency can be measured (passed or validation failed: it runs, but disagrees)."""
        return self.runtime is not None


def ort_session_options(threads: int) -> Any:
    """ONNX Runtime CPU options for latency on a possibly shared machine: all graph optimizations,
    sequential execution, ``threads`` intra-op threads, one inter-op thread, no busy-wait spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _validated(prepared: PreparedBackend, reference_backend: Any, rgb: np.ndarray, depth: np.ndarray,
               batch: int = 1) -> PreparedBackend:
    """``prepared`` with its raw outputs checked against the eager model's on the same prepared frame (the one
    comparator, at the backend's precision)."""
    from calibnet.runtime.core.compare import compare_outputs
    from calibnet.runtime.core.feeds import stack_frames

    feeds = stack_frames([prepared.runtime.prepare(rgb, depth)] * batch)
    report = compare_outputs(reference_backend.run(feeds), prepared.runtime.backend.run(feeds),
                             prepared.runtime.metadata, prepared.precision)
    prepared.validation = {"ok": report.passed, **report.to_json()}
    prepared.status = PASSED if report.passed else VALIDATION_FAILED
    return prepared


#: the portable ONNX files exported in this process, per model object
_EXPORTED: weakref.WeakKeyDictionary[Any, set[Path]] = weakref.WeakKeyDictionary()


def portable_onnx(model: Any, workdir: Path, height: int, width: int, batch: int) -> Path:
    """The run's portable ONNX of ``model`` at this size, which the onnxruntime and OpenVINO rows share: exported
    once per model object, so a file another run (other weights) left in ``workdir`` is never reused."""
    from calibnet.export import export_onnx

    path = workdir / f"calibnet_{height}x{width}_b{batch}.onnx"
    done = _EXPORTED.setdefault(model, set())
    if path not in done:
        export_onnx(model, path, flavor="portable", height=height, width=width, batch=batch)
        done.add(path)
    return path


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg.split(". Install")[0][:200]


def prepare_backend(name: str, model: Any, workdir: Path, height: int, width: int, batch: int, threads: int,
                    rgb: np.ndarray, depth: np.ndarray, weights: str | None = None,
                    options: dict[str, Any] | None = None) -> PreparedBackend:
    """Export/build/open backend ``name`` for ``model`` at ``height`` x ``width`` and validate it (``options``:
    backend-specific settings, e.g. ``int8_model``/``calib_frames`` of the OpenVINO rows)."""
    from calibnet.runtime import Runtime

    if name == "torch":
        rt = Runtime.from_model(model)
        size = (Path(weights).stat().st_size if weights else
                sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])) / 1e6
        return PreparedBackend(name, PASSED, rt, Path(weights) if weights else None, size,
                               validation={"ok": True, "reference": True},
                               detail="eager PyTorch (reference), runtime pre/post-processing")
    reference = Runtime.from_model(model).backend
    if name == "onnxruntime":
        return _prepare_onnxruntime(model, workdir, height, width, batch, threads, rgb, depth, reference)
    if name == "tensorrt":
        return _prepare_tensorrt(model, workdir, height, width, batch, rgb, depth, reference)
    if name.startswith("openvino-"):
        from .openvino_rows import prepare_openvino

        return prepare_openvino(name, model, workdir, height, width, batch, threads, rgb, depth, reference,
                                **(options or {}))
    raise ValueError(f"unknown backend {name!r} (choose from {', '.join(KNOWN_BACKENDS)})")


def _prepare_onnxruntime(model: Any, workdir: Path, height: int, width: int, batch: int, threads: int,
                         rgb: np.ndarray, depth: np.ndarray, reference: Any) -> PreparedBackend:
    from calibnet.runtime import Runtime
    from calibnet.runtime.backends.onnxruntime import OnnxRuntimeBackend

    try:
        path = portable_onnx(model, workdir, height, width, batch)
    except Exception as exc:  # an export error is a benchmark result, not a crash
        return PreparedBackend("onnxruntime", f"export failed: {_short(exc)}", detail=repr(exc))
    try:
        import onnxruntime as ort

        rt = Runtime(OnnxRuntimeBackend(path, providers=["CPUExecutionProvider"],
                                        session_options=ort_session_options(threads)))
    except Exception as exc:
        return PreparedBackend("onnxruntime", f"{VALIDATION_FAILED} (session: {_short(exc)})", None, path,
                               path.stat().st_size / 1e6, detail=repr(exc))
    prep = PreparedBackend("onnxruntime", PASSED, rt, path, path.stat().st_size / 1e6,
                           detail=f"ONNX Runtime {ort.__version__} CPU, portable ONNX (GridSample MSDA), "
                                  f"{threads} intra-op threads, no spinning")
    return _validated(prep, reference, rgb, depth, batch)


def _prepare_tensorrt(model: Any, workdir: Path, height: int, width: int, batch: int, rgb: np.ndarray,
                      depth: np.ndarray, reference: Any) -> PreparedBackend:
    from calibnet.engines import TensorRTUnavailable, get_or_build, require_tensorrt
    from calibnet.export import export_onnx
    from calibnet.runtime import Runtime
    from calibnet.runtime.backends.base import BackendUnavailable

    try:
        require_tensorrt("the tensorrt benchmark backend")
    except TensorRTUnavailable as exc:
        return PreparedBackend("tensorrt", f"unavailable: {_short(exc)}", precision="fp16", detail=str(exc))
    path = workdir / f"calibnet_{height}x{width}_b{batch}_trt.onnx"
    try:
        export_onnx(model, path, flavor="tensorrt", height=height, width=width, batch=batch)
    except Exception as exc:
        return PreparedBackend("tensorrt", f"export failed: {_short(exc)}", precision="fp16", detail=repr(exc))
    try:
        engine = get_or_build(path, cache_dir=workdir / "engines", fp16=True)
        rt = Runtime.open(engine)
    except (TensorRTUnavailable, BackendUnavailable) as exc:
        return PreparedBackend("tensorrt", f"unavailable: {_short(exc)}", precision="fp16", detail=str(exc))
    except Exception as exc:
        return PreparedBackend("tensorrt", f"export failed: engine build: {_short(exc)}", precision="fp16",
                               detail=repr(exc))
    prep = PreparedBackend("tensorrt", PASSED, rt, Path(engine), Path(engine).stat().st_size / 1e6, "fp16",
                           detail="TensorRT FP16 engine (calibnet.engines.get_or_build)")
    return _validated(prep, reference, rgb, depth, batch)
