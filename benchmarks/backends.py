"""Set up each benchmarked row as a :class:`calibnet.runtime.Runtime`, with an Ultralytics-style status.

The rows come from the table of targets (:func:`calibnet.runtime.core.targets.bench_rows`): one per backend, or
one per precision where a backend has several (``openvino-f32``, ``openvino-bf16``, ``openvino-int8``). A row
runs its backend on the artifact the table names for it, made by :func:`calibnet.export.api.make_artifact` from
the run's ONNX export in the flavour the table names for the row's backend (``Target.flavor``; an engine needs the
TensorRT flavour): the eager model itself for ``torch`` (the reference), the portable ONNX file for
``onnxruntime``, the TensorRT-flavoured one for the OpenVINO float rows (the deformable attention runs fused where
calibnet's kernel is built; the row's detail says so), an INT8 IR, a TensorRT FP16 engine. Every row but the
reference is validated against the eager FP32 model by the one comparator at the row's precision.
:func:`profile_row` adds where the time goes for a backend that counts it (one that takes ``profile=True``).

Status values: ``passed``, ``exported but validation failed``, ``export failed: <error>``,
``unavailable: <reason>``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from calibnet.export import ExportOptions, GraphOptions, Int8Options
from calibnet.export.api import GRAPH_FLAVOR, make_artifact
from calibnet.export.onnx_export import export_onnx
from calibnet.runtime import BackendUnavailable, Runtime
from calibnet.runtime.core.compare import ALIASES, compare_outputs
from calibnet.runtime.core.feeds import stack_frames
from calibnet.runtime.core.targets import IR_SUFFIX, ONNX_SUFFIX, Target, bench_rows

from .openvino_profile import profile_backend

if TYPE_CHECKING:
    from .suite import BenchOptions

__all__ = ["PreparedBackend", "ort_session_options", "portable_onnx", "prepare_backend", "profile_row", "PASSED",
           "VALIDATION_FAILED"]

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
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


#: the ONNX files exported in this process, per model object
_EXPORTED: weakref.WeakKeyDictionary[Any, set[Path]] = weakref.WeakKeyDictionary()


def portable_onnx(model: Any, workdir: Path, height: int, width: int, batch: int, flavor: str = "portable") -> Path:
    """The run's ONNX export of ``model`` at this size and flavour, which the rows share: exported once per model
    object, so a file another run (other weights) left in ``workdir`` is never reused."""
    tag = "" if flavor == "portable" else f"_{flavor}"
    path = workdir / f"calibnet_{height}x{width}_b{batch}{tag}{ONNX_SUFFIX}"
    done = _EXPORTED.setdefault(model, set())
    if path not in done:
        export_onnx(model, path, flavor=flavor, height=height, width=width, batch=batch)
        done.add(path)
    return path


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg.split(". Install")[0][:200]


def _size_mb(path: Path) -> float:
    weights = path.with_suffix(".bin") if path.suffix == IR_SUFFIX else None  # an IR's weights file
    return (path.stat().st_size + (weights.stat().st_size if weights is not None and weights.is_file() else 0)) / 1e6


def _reference(name: str, model: Any, weights: str | None) -> PreparedBackend:
    size = (Path(weights).stat().st_size if weights else
            sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])) / 1e6
    return PreparedBackend(name, PASSED, Runtime.from_model(model), Path(weights) if weights else None, size,
                           validation={"ok": True, "reference": True},
                           detail="eager PyTorch (reference), runtime pre/post-processing")


def _artifact(target: Target, precision: str, model: Any, opts: BenchOptions) -> tuple[Path, str]:
    """The file the row runs and how it was made (``BackendUnavailable`` or any export error propagate)."""
    kind = target.artifact(precision)
    if kind == "openvino-int8" and opts.int8_model:
        return Path(opts.int8_model), "the given INT8 IR"
    flavor = GRAPH_FLAVOR.get(kind, target.flavor)
    onnx = portable_onnx(model, Path(opts.workdir), opts.height, opts.width, opts.batch, flavor)
    if kind == "onnx":
        return onnx, f"the run's {flavor} ONNX export"
    options = ExportOptions(GraphOptions(height=opts.height, width=opts.width, batch=opts.batch), fp16=True,
                            int8=Int8Options(calib_synthetic=opts.int8_calib, force=True))
    step = make_artifact(onnx, kind, None, options, say=lambda _: None)
    if step.status == "unavailable":
        raise BackendUnavailable(step.message)
    if step.status != "done" or step.path is None:
        raise RuntimeError(step.message)
    return step.path, f"{kind} made by calibnet.export: {step.message}" if step.message else kind


def _open_options(target: Target, precision: str, opts: BenchOptions) -> dict[str, Any]:
    """What the row's backend is opened with: the settings it accepts of the bench's latency-minded ones."""
    wanted = {"threads": opts.threads, "precision": precision, "device": "cpu",
              "session_options": ort_session_options(opts.threads),
              "cache_dir": Path(opts.workdir) / f"{target.name}-cache"}
    return {k: v for k, v in wanted.items() if k in target.options and (k != "precision" or len(target.precisions) > 1)}


def prepare_backend(name: str, model: Any, rgb: np.ndarray, depth: np.ndarray,
                    opts: BenchOptions) -> PreparedBackend:
    """Make, open and validate bench row ``name`` (:func:`calibnet.runtime.core.targets.bench_rows`) for ``model``
    as the run's options say (its ``workdir`` set: where files go)."""
    rows = bench_rows()
    if name not in rows:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(rows)})")
    target, precision = rows[name]
    named = ALIASES.get(precision, precision)  # the comparator's name of the row's precision
    if not target.artifact(precision):
        return _reference(name, model, opts.weights)
    try:
        path, how = _artifact(target, precision, model, opts)
    except BackendUnavailable as exc:
        return PreparedBackend(name, f"unavailable: {_short(exc)}", precision=named, detail=str(exc))
    except Exception as exc:  # an export error is a benchmark result, not a crash
        return PreparedBackend(name, f"export failed: {_short(exc)}", precision=named, detail=repr(exc))
    try:
        rt = Runtime.open(path, backend=target.name, **_open_options(target, precision, opts))
    except (BackendUnavailable, ValueError) as exc:
        return PreparedBackend(name, f"unavailable: {_short(exc)}", None, path, _size_mb(path), named,
                               detail=str(exc))
    describe = getattr(rt.backend, "describe", None)
    detail = f"{describe() if describe else target.summary}; {how}; {opts.threads or 'default'} threads"
    # validated against the eager model on the same prepared frame (the one comparator, at the row's precision)
    feeds = stack_frames([rt.prepare(rgb, depth)] * opts.batch)
    report = compare_outputs(Runtime.from_model(model).backend.run(feeds), rt.backend.run(feeds), rt.metadata, named)
    return PreparedBackend(name, PASSED if report.passed else VALIDATION_FAILED, rt, path, _size_mb(path), named,
                           {"ok": report.passed, **report.to_json()}, detail)


def profile_row(prepared: PreparedBackend, rgb: np.ndarray, depth: np.ndarray,
                opts: BenchOptions) -> dict[str, Any] | None:
    """Where a row's time goes, for a backend that counts it (its row in the table of targets takes
    ``profile=True``: OpenVINO's performance counters, summarized by :func:`.openvino_profile.profile_backend`);
    None for the others. The row's file is opened once more with the counters on, as the row opened it (its
    precision, threads and fused-or-decomposed attention), on the row's prepared frame: the counters cost time
    of their own, so the timed rounds run without them."""
    target, precision = bench_rows()[prepared.name]
    if "profile" not in target.options or not prepared.runnable or prepared.artifact is None:
        return None
    with Runtime.open(prepared.artifact, backend=target.name, profile=True,
                      **_open_options(target, precision, opts)) as rt:
        return profile_backend(rt.backend, stack_frames([rt.prepare(rgb, depth)] * opts.batch))
