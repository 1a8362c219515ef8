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

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run_splits", "npz_feeds"]


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


def _split(text: str) -> tuple[tuple[str, ...], bool]:
    from calibnet.export.openvino_int8 import parse_keep_float

    name, _, flag = text.partition(":")
    return parse_keep_float(name.replace("+", ",")), flag == "transformer"


def run_splits(onnx: str | Path, splits: list[str], calib: int, iters: int, threads: int,
               reference_npz: str | None, workdir: Path, say: Any = print) -> dict[str, Any]:
    """Quantize, compare and time every split; returns the JSON document."""
    from calibnet.export.openvino_int8 import quantize_int8, synthetic_calibration_feeds
    from calibnet.runtime import Runtime
    from calibnet.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from calibnet.runtime.backends.openvino import OpenVinoBackend
    from calibnet.runtime.core.compare import compare_outputs

    from .backends import ort_session_options
    from .openvino_rows import cpu_isa

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
        keep, transformer = _split(text)
        t0 = time.perf_counter()
        res = quantize_int8(onnx, workdir / f"int8_{len(quant)}.xml", cal, [feeds], keep_float=keep,
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: prints one line per row (median ms, speed-up vs ONNX Runtime, mask agreement)."""
    p = argparse.ArgumentParser(prog="python -m calibnet.benchmarks.int8_splits", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx", help="a static portable ONNX export")
    p.add_argument("--splits", default="none,msda+softmax_layernorm+kernel_branch",
                   help="comma-separated splits (groups joined by +, none, optional :transformer)")
    p.add_argument("--calib", type=int, default=8, help="synthetic calibration scenes (8)")
    p.add_argument("--iters", type=int, default=5, help="timed rounds (5)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    p.add_argument("--reference-npz", default=None, help="comparison input (net_rgb_u8/net_depth_u8)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--workdir", default=None, help="keep the INT8 IRs here (default: a temporary folder)")
    args = p.parse_args(argv)
    try:
        for s in args.splits.split(","):
            _split(s)
    except ValueError as exc:
        print(f"int8_splits: error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="calibnet-int8-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        doc = run_splits(args.onnx, args.splits.split(","), args.calib, args.iters, args.threads, args.reference_npz,
                         workdir, lambda m: print(m, file=sys.stderr, flush=True))
    for name, r in doc["rows"].items():
        print(f"{name:<48} {r['median_ms']:9.1f} ms  {r['speedup_vs_onnxruntime']:5.2f}x ORT  "
              f"mask agreement {100 * r['mask_agreement']:.2f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
