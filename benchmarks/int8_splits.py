"""Which parts to keep in float for OpenVINO INT8: quantize one ONNX file with several keep-float splits, then
time them interleaved against ONNX Runtime FP32 and OpenVINO FP32/BF16 and compare each with FP32.

  python -m calibnet.benchmarks.int8_splits r50.onnx --splits none,msda+softmax_layernorm+kernel_branch \\
      --calib 8 --iters 5 --threads 2 --reference-npz ../shared/official/ref_A_320x480.npz --json splits.json

A split is ``+``-joined groups of :data:`calibnet.export.openvino_int8.KEEP_FLOAT_GROUPS` (``none``: everything
quantized); ``split:transformer`` adds NNCF ``model_type=TRANSFORMER``. Calibration: synthetic scenes. The
comparison input is ``--reference-npz`` (a network input ``net_rgb_u8``/``net_depth_u8``, e.g. the official
reference frames) or a held-out synthetic scene; agreement = the shared comparator's mask agreement vs ONNX
Runtime FP32. Latency: inference only (``backend.run``), rounds interleaved with a rotating order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from calibnet.export.openvino_int8 import parse_keep_float, quantize_int8, synthetic_calibration_feeds
from calibnet.runtime import Runtime
from calibnet.runtime.backends.onnxruntime import OnnxRuntimeBackend
from calibnet.runtime.backends.openvino import OpenVinoBackend
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.targets import IR_SUFFIX

from .cpu_facts import cpu_isa

__all__ = ["run_splits", "npz_feeds", "parse_split"]


def npz_feeds(path: str | Path, height: int, width: int) -> dict[str, np.ndarray]:
    """Graph feeds of a reference file's network input (``net_rgb_u8`` [h,w,3], ``net_depth_u8`` [h,w]), padded
    bottom/right to ``height`` x ``width`` (the value does not matter: the graph zeroes the padding)."""
    ref = np.load(path)
    h, w = ref["net_depth_u8"].shape
    rgb = np.zeros((1, 3, height, width), np.float32)
    rgb[0, :, :h, :w] = ref["net_rgb_u8"].transpose(2, 0, 1)
    depth = np.zeros((1, 1, height, width), np.float32)
    depth[0, 0, :h, :w] = ref["net_depth_u8"]
    return {"rgb": rgb, "depth": depth, "valid_hw": np.array([[h, w]], np.int64)}


def parse_split(text: str) -> tuple[tuple[str, ...], bool]:
    name, _, flag = text.partition(":")
    return parse_keep_float(name.replace("+", ",")), flag == "transformer"


def run_splits(onnx: str | Path, splits: list[str], calib: int, iters: int, threads: int,
               reference_npz: str | None, workdir: Path, say: Any = print) -> dict[str, Any]:
    """Quantize, compare and time every split; returns the JSON document."""
    from .backends import ort_session_options

    with Runtime.open(onnx, backend="openvino", precision="f32", threads=threads, cache_dir="") as rt:
        meta = rt.metadata
        cal = synthetic_calibration_feeds(rt, calib)
        feeds = npz_feeds(reference_npz, meta.height, meta.width) if reference_npz else \
            synthetic_calibration_feeds(rt, 1, seed=9000)[0]
    backends: dict[str, Any] = {
        "onnxruntime": OnnxRuntimeBackend(onnx, providers=["CPUExecutionProvider"],
                                          session_options=ort_session_options(threads)),
        "openvino-f32": OpenVinoBackend(onnx, "f32", threads=threads, cache_dir="")}
    try:
        backends["openvino-bf16"] = OpenVinoBackend(onnx, "bf16", threads=threads, cache_dir="")
    except Exception as exc:  # noqa: BLE001 - no native BF16: the row is left out, the reason recorded
        say(f"openvino-bf16 left out: {exc}")
    quant: dict[str, Any] = {}
    for text in splits:
        keep, transformer = parse_split(text)
        t0 = time.perf_counter()
        res = quantize_int8(onnx, workdir / f"int8_{len(quant)}{IR_SUFFIX}", cal, [feeds], keep_float=keep,
                            transformer=transformer, force=True, threads=threads)
        quant[text] = {"keep_float": list(keep), "transformer": transformer, "quantize_s": time.perf_counter() - t0}
        backends[f"int8[{text}]"] = OpenVinoBackend(res.path, "int8", threads=threads, cache_dir="")
        say(f"quantized {text} in {quant[text]['quantize_s']:.0f} s")
    reference = backends["onnxruntime"].run(feeds)
    rows: dict[str, Any] = {}
    for name, be in backends.items():
        precision = {"onnxruntime": "fp32", "openvino-f32": "fp32", "openvino-bf16": "bf16"}.get(name, "int8")
        rep = compare_outputs(reference, be.run(feeds), meta, precision=precision)
        rows[name] = {"precision": precision, "passed": rep.passed,
                      "mask_agreement": rep.outputs["pred_masks"].mask_agreement, **quant.get(name[5:-1], {}),
                      "max_abs": {k: v.max_abs for k, v in rep.outputs.items()}, "times_ms": []}
    names = list(backends)
    for it in range(iters + 1):  # round 0 warms up
        for name in names[it % len(names):] + names[:it % len(names)]:
            t = time.perf_counter()
            backends[name].run(feeds)
            if it:
                rows[name]["times_ms"].append(1e3 * (time.perf_counter() - t))
    ort = float(np.median(rows["onnxruntime"]["times_ms"]))
    for r in rows.values():
        r["median_ms"] = float(np.median(r["times_ms"]))
        r["speedup_vs_onnxruntime"] = ort / r["median_ms"]
    for be in backends.values():
        be.close()
    return {"onnx": str(onnx), "calibration": f"{calib} synthetic scenes", "iters": iters, "threads": threads,
            "comparison_input": reference_npz or "synthetic scene seed 9000", "cpu_isa": cpu_isa(), "rows": rows}


if __name__ == "__main__":
    from calibnet.cli.int8_splits import main

    raise SystemExit(main())
