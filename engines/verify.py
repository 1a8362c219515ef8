"""Engine vs ONNX Runtime comparison (Polygraphy-style per-output tolerances) and engine timing.

:func:`compare_outputs` is pure numpy (CPU-tested); :func:`verify_engine` and :func:`time_engine` need
TensorRT and a GPU. Timings are host-side wall times of ``TensorRTBackend.run`` (H2D + compute + D2H +
sync), not GPU compute alone; use ``trtexec --useCudaGraph --noDataTransfers`` for the latter.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.metadata import ModelMetadata

__all__ = ["DEFAULT_TOLERANCES", "compare_outputs", "random_feeds", "time_engine", "verify_engine"]

# (rtol, atol) per output; masks are judged by binary agreement, not by these
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "pred_logits": (0.05, 0.05), "pred_scores": (0.05, 0.05), "depth_trust": (0.02, 0.02),
    "scores": (0.02, 0.02), "pred_masks": (0.05, 0.25), "masks": (0.02, 0.05),
}
_MASK_THRESHOLDS = {"pred_masks": 0.0, "masks": 0.5}  # logits > 0 / probabilities > 0.5


def compare_outputs(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                    tolerances: Mapping[str, tuple[float, float]] | None = None,
                    min_mask_agreement: float = 0.99) -> dict[str, Any]:
    """Compare two output dicts. Per output: max/mean abs error, within-tolerance, non-finite count; for
    mask outputs the fraction of pixels whose binary mask agrees. ``passed``: every output present and
    finite, masks agree >= ``min_mask_agreement``, other outputs within tolerance."""
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    report: dict[str, Any] = {"outputs": {}, "passed": True, "min_mask_agreement": min_mask_agreement}
    for name, r in ref.items():
        if name not in got:
            report["outputs"][name] = {"error": "missing"}
            report["passed"] = False
            continue
        a, b = np.asarray(r, np.float64), np.asarray(got[name], np.float64)
        if a.shape != b.shape:
            report["outputs"][name] = {"error": f"shape {b.shape} != {a.shape}"}
            report["passed"] = False
            continue
        rtol, atol = tol.get(name, (0.05, 0.05))
        nonfinite = int(np.count_nonzero(~np.isfinite(b)))
        diff = np.abs(a - b)
        fin = diff[np.isfinite(diff)]
        entry: dict[str, Any] = {"shape": list(a.shape), "max_abs": float(fin.max()) if fin.size else None,
                                 "mean_abs": float(fin.mean()) if fin.size else None,
                                 "nonfinite": nonfinite, "rtol": rtol, "atol": atol,
                                 "within_tolerance": bool(np.allclose(b, a, rtol=rtol, atol=atol))}
        ok = nonfinite == 0
        if name in _MASK_THRESHOLDS:
            th = _MASK_THRESHOLDS[name]
            agree = float(np.mean((a > th) == (b > th))) if a.size else 1.0
            entry["mask_agreement"] = agree
            ok = ok and agree >= min_mask_agreement
        else:
            ok = ok and entry["within_tolerance"]
        entry["passed"] = ok
        report["outputs"][name] = entry
        report["passed"] = report["passed"] and ok
    return report


def random_feeds(meta: ModelMetadata, batch: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random inputs at the metadata's (optimal) shape: smooth-ish RGB and depth in 0..255."""
    rng = np.random.default_rng(seed)
    b, h, w = batch or meta.batch, meta.height, meta.width
    base = rng.uniform(0, 255, (b, 4, h // 8, w // 8)).astype(np.float32)
    up = base.repeat(8, axis=2).repeat(8, axis=3)
    up += rng.normal(0, 8, up.shape).astype(np.float32)
    up = np.clip(up, 0, 255).astype(np.float32)
    return {"rgb": up[:, :3].copy(), "depth": up[:, 3:4].copy(),
            "valid_hw": np.tile(np.array([[h, w]], np.int64), (b, 1))}


def time_engine(backend: Any, feeds: Mapping[str, np.ndarray], iters: int = 100, warmup: int = 10) -> dict[str, float]:
    """Host wall time per ``backend.run`` (ms): mean, median, p90, min, and FPS (images/s) from the median."""
    for _ in range(warmup):
        backend.run(dict(feeds))
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.run(dict(feeds))
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    med = statistics.median(times)
    batch = int(np.shape(feeds["rgb"])[0])
    return {"mean_ms": statistics.fmean(times), "median_ms": med, "p90_ms": times[int(0.9 * (len(times) - 1))],
            "min_ms": times[0], "fps": 1e3 * batch / med, "iters": float(iters), "batch": float(batch)}


def verify_engine(engine_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str] | bytes, samples: int = 3,
                  seed: int = 0, min_mask_agreement: float = 0.99, timing_iters: int = 50,
                  report_path: str | os.PathLike[str] | None = None, use_cuda_graph: bool = False,
                  ort_providers: list[Any] | None = None) -> dict[str, Any]:
    """Run the engine and ONNX Runtime (``onnx_path``: a portable or plugin graph ORT can run, as a path or
    serialized bytes) on the same random inputs, compare (:func:`compare_outputs`), time the engine, and write
    the JSON report."""
    import onnxruntime as ort

    from ..runtime.backends.tensorrt import TensorRTBackend

    backend = TensorRTBackend(engine_path, use_cuda_graph=use_cuda_graph)
    try:
        meta = backend.metadata
        source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
        sess = ort.InferenceSession(source, providers=ort_providers or ["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        runs = []
        for i in range(samples):
            feeds = random_feeds(meta, seed=seed + i)
            ref = dict(zip(names, sess.run(None, feeds)))
            got = backend.run(feeds)
            runs.append(compare_outputs(ref, got, min_mask_agreement=min_mask_agreement))
        timing = time_engine(backend, random_feeds(meta, seed=seed), iters=timing_iters) if timing_iters else {}
    finally:
        backend.close()
    onnx_name = "<in-memory graph>" if isinstance(onnx_path, bytes) else str(onnx_path)
    report = {"engine": str(engine_path), "onnx": onnx_name, "sidecar": backend.sidecar.to_dict(),
              "samples": runs, "passed": all(r["passed"] for r in runs), "timing_host_ms": timing,
              "timing_note": "host wall time of TensorRTBackend.run incl. H2D, execute, D2H and sync"}
    if report_path is not None:
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    return report
