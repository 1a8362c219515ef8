"""ONNX Runtime CPU vs PyTorch eager latency of the CalibNet network (no pre/post-processing), one run.

Usage:
  python -m calibnet.benchmarks.onnx_vs_torch --config r50 --height 320 --width 480 --iters 5 --threads 2

Both use the same random frame and thread count; reports median and p90 per backend and the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _times(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m calibnet.benchmarks.onnx_vs_torch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="r50")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    from calibnet import build_model
    from calibnet.export import export_onnx

    torch.set_num_threads(args.threads)
    model = build_model(args.config, args.weights, quiet=True)
    g = np.random.default_rng(0)
    rgb = (g.random((1, 3, args.height, args.width)) * 255).astype(np.float32)
    depth = (g.random((1, 1, args.height, args.width)) * 255).astype(np.float32)
    valid = np.array([[args.height, args.width]], dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx", height=args.height, width=args.width)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feeds = {"rgb": rgb, "depth": depth, "valid_hw": valid}
        t_rgb, t_depth, t_valid = (torch.from_numpy(x) for x in (rgb, depth, valid))

        def run_torch() -> None:
            with torch.no_grad():
                model(t_rgb, t_depth, image_sizes=t_valid)

        torch_s = _times(run_torch, args.warmup, args.iters)
        ort_s = _times(lambda: sess.run(None, feeds), args.warmup, args.iters)
    res = {}
    for name, ts in (("pytorch_eager", torch_s), ("onnxruntime_cpu", ort_s)):
        res[name] = {"median_ms": float(np.median(ts) * 1e3), "p90_ms": float(np.percentile(ts, 90) * 1e3)}
    res["ratio_torch_over_ort"] = res["pytorch_eager"]["median_ms"] / res["onnxruntime_cpu"]["median_ms"]
    res["setup"] = {"config": args.config, "hw": [args.height, args.width], "threads": args.threads,
                    "iters": args.iters, "torch": torch.__version__, "onnxruntime": ort.__version__}
    print(f"{'backend':<18}{'median ms':>11}{'p90 ms':>10}")
    for name in ("pytorch_eager", "onnxruntime_cpu"):
        print(f"{name:<18}{res[name]['median_ms']:>11.1f}{res[name]['p90_ms']:>10.1f}")
    print(f"ONNX Runtime speed-up over PyTorch eager: {res['ratio_torch_over_ort']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
