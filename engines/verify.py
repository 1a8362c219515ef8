"""Engine vs ONNX Runtime comparison and engine timing.

The comparison is :func:`calibnet.runtime.core.compare.compare_outputs` at the engine's precision (its
sidecar's); :func:`verify_engine` needs TensorRT and a GPU. Timings are host-side wall times of
``TensorRTBackend.run`` (H2D + compute + D2H + sync), not GPU compute alone; use ``trtexec --useCudaGraph
--noDataTransfers`` for the latter.
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

from ..runtime.backends.tensorrt import TensorRTBackend
from ..runtime.core.compare import compare_outputs
from ..runtime.core.feeds import random_feeds

__all__ = ["time_engine", "verify_engine", "verification_lines"]


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
                  min_mask_agreement: float = 0.99, timing_iters: int = 50,
                  report_path: str | os.PathLike[str] | None = None, use_cuda_graph: bool = False) -> dict[str, Any]:
    """Run the engine and ONNX Runtime (``onnx_path``: a portable or plugin graph ORT can run, as a path or
    serialized bytes) on the same random inputs, compare them (the one comparator, at the engine's precision;
    ``min_mask_agreement`` for the masks), time the engine, and write the JSON report."""
    import onnxruntime as ort

    backend = TensorRTBackend(engine_path, use_cuda_graph=use_cuda_graph)
    try:
        meta = backend.metadata
        source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
        sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        runs = []
        for i in range(samples):
            feeds = random_feeds(meta.batch, meta.height, meta.width, seed=i)
            ref = dict(zip(names, sess.run(None, feeds)))
            runs.append(compare_outputs(ref, backend.run(feeds), meta, backend.sidecar.precision,
                                        min_mask_agreement=min_mask_agreement).to_json())
        timing = time_engine(backend, random_feeds(meta.batch, meta.height, meta.width),
                             iters=timing_iters) if timing_iters else {}
    finally:
        backend.close()
    onnx_name = "<in-memory graph>" if isinstance(onnx_path, bytes) else str(onnx_path)
    report = {"engine": str(engine_path), "onnx": onnx_name, "sidecar": backend.sidecar.to_dict(),
              "samples": runs, "passed": all(r["passed"] for r in runs), "timing_host_ms": timing,
              "timing_note": "host wall time of TensorRTBackend.run incl. H2D, execute, D2H and sync"}
    if report_path is not None:
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    return report


def verification_lines(report: Mapping[str, Any]) -> list[str]:
    """A :func:`verify_engine` report as printable lines (per sample and output, then the verdict)."""
    lines = []
    for k, r in enumerate(report["samples"]):
        for name, o in r["outputs"].items():
            extra = f" mask agreement {o['mask_agreement']:.4%}" if "mask_agreement" in o else ""
            lines.append(f"engine vs ONNX Runtime, sample {k}, {name}: max|d| {o.get('max_abs')}{extra} "
                         f"{'ok' if o.get('passed') else 'FAILED'}")
    lines.append(f"engine verification: {'PASS' if report['passed'] else 'FAIL'}; engine timing (host, incl. "
                 f"copies): {report['timing_host_ms']}")
    return lines
