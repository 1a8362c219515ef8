"""The machine's practical FP32 peak: the rate of a large float32 matrix product (SGEMM).

A well-tuned BLAS reaches close to the cores' FMA throughput on a large square product, so this is the
physical ceiling a CPU backend can approach on a convolution/matmul-bound network. Measured with PyTorch
(``torch.mm``, ``torch.set_num_threads(threads)``), with ONNX Runtime (a one-node ``MatMul`` graph on the
CPU execution provider, MLAS, ``threads`` intra-op threads) and with numpy (``np.matmul``, its BLAS's own
thread count), best of ``repeats`` after one warm-up; FLOPs = 2 n^3 per product. The peak is the best of
the three: the kernels differ (MLAS is often faster than torch's BLAS on small core counts), and a backend
can only be compared fairly with the best rate this machine was seen to reach.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["SgemmResult", "measure_sgemm"]


@dataclass
class SgemmResult:
    """Peak float32 matmul rates in GFLOP/s (2 n^3 FLOPs per product)."""

    n: int
    threads: int
    torch_gflops: float | None
    numpy_gflops: float | None
    onnxruntime_gflops: float | None = None

    @property
    def peak_gflops(self) -> float:
        """The best of the measurements."""
        return max(v for v in (self.torch_gflops, self.numpy_gflops, self.onnxruntime_gflops, 0.0) if v is not None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "peak_gflops": self.peak_gflops,
                "note": "float32 square matmul, 2*n^3 FLOPs, best of the repeats; numpy uses its BLAS's "
                        "default thread count"}


def _best_rate(fn: Any, flops: float, repeats: int) -> float:
    fn()  # warm-up: thread pools, page faults
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def _ort_matmul(n: int, threads: int) -> Any:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from .backends import ort_session_options

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"])], "sgemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("A", "B")],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), ort_session_options(threads),
                                providers=["CPUExecutionProvider"])


def measure_sgemm(n: int = 2048, threads: int = 1, repeats: int = 5) -> SgemmResult:
    """Measure the float32 matmul rate of this machine (``n`` x ``n`` by ``n`` x ``n``)."""
    import torch

    if n < 1 or repeats < 1:
        raise ValueError("n and repeats must be >= 1")
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.empty(n, n)
        torch_rate = _best_rate(lambda: torch.mm(ta, tb, out=out), flops, repeats)
    finally:
        torch.set_num_threads(old)
    sess = _ort_matmul(n, threads)
    ort_rate = _best_rate(lambda: sess.run(None, {"A": a, "B": b}), flops, repeats)
    out_np = np.empty((n, n), np.float32)
    numpy_rate = _best_rate(lambda: np.matmul(a, b, out=out_np), flops, repeats)
    return SgemmResult(n, threads, torch_rate, numpy_rate, ort_rate)
