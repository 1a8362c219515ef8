"""ONNX Runtime CPU vs PyTorch eager latency of the CalibNet network (no pre/post-processing), one run.
(``calibnet-bench`` measures the whole pipeline per stage; this script times the network call alone.)

Usage:
  python -m calibnet.benchmarks.onnx_vs_torch --config r50 --height 320 --width 480 --iters 5 --threads 2
  python -m calibnet.benchmarks.onnx_vs_torch --config r18 --height 64 --width 96 --iters 3 --json out.json

Both backends get the same random frame and thread count; their iterations are interleaved (torch, ORT,
torch, ...) so that load from other processes on a shared machine hits both alike. Reports median and p90
per backend and the ratio (PyTorch median / ONNX Runtime median). ONNX Runtime settings used, all
graph-level (the model is unchanged): the exported graph simplified by onnxslim (constant folding of the
shape arithmetic), ORT_ENABLE_ALL (conv+activation fusions, NCHWc layout transformation on x86),
sequential execution, ``--threads`` intra-op threads, one inter-op thread, no busy-wait spinning (spinning
threads only steal cores on a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _interleaved(fns: dict[str, Callable[[], object]], warmup: int, iters: int) -> dict[str, list[float]]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t)
    return out


def session_options(threads: int):  # type: ignore[no-untyped-def]
    """The ONNX Runtime CPU session options this benchmark (and a latency-minded user) uses."""
    from .backends import ort_session_options

    return ort_session_options(threads)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m calibnet.benchmarks.onnx_vs_torch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="r50", help="preset or official YAML (r50)")
    parser.add_argument("--weights", default=None, help="checkpoint (default: deterministic weights; latency "
                                                        "does not depend on them)")
    parser.add_argument("--height", type=int, default=320, help="input height, multiple of 32 (320)")
    parser.add_argument("--width", type=int, default=480, help="input width, multiple of 32 (480)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per backend (2)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per backend (5)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both backends (2)")
    parser.add_argument("--dynamic", action="store_true", help="time a dynamic-H/W export instead of a static one")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.height % 32 or args.width % 32 or args.iters < 1:
        parser.error("height and width must be multiples of 32 and --iters >= 1")

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
        kw = {"dynamic": True, "min_hw": (32, 32), "max_hw": (2048, 2048)} if args.dynamic else {}
        path = export_onnx(model, Path(tmp) / "m.onnx", height=args.height, width=args.width, **kw)
        sess = ort.InferenceSession(str(path), session_options(args.threads), providers=["CPUExecutionProvider"])
    feeds = {"rgb": rgb, "depth": depth, "valid_hw": valid}
    t_rgb, t_depth, t_valid = (torch.from_numpy(x) for x in (rgb, depth, valid))

    def run_torch() -> None:
        with torch.no_grad():
            model(t_rgb, t_depth, image_sizes=t_valid)

    times = _interleaved({"pytorch_eager": run_torch, "onnxruntime_cpu": lambda: sess.run(None, feeds)},
                         args.warmup, args.iters)
    res: dict[str, object] = {}
    for name, ts in times.items():
        res[name] = {"median_ms": float(np.median(ts) * 1e3), "p90_ms": float(np.percentile(ts, 90) * 1e3)}
    ratio = res["pytorch_eager"]["median_ms"] / res["onnxruntime_cpu"]["median_ms"]  # type: ignore[index]
    res["ratio_torch_over_ort"] = ratio
    res["setup"] = {"config": args.config, "hw": [args.height, args.width], "threads": args.threads,
                    "iters": args.iters, "dynamic": args.dynamic, "torch": torch.__version__,
                    "onnxruntime": ort.__version__}
    print(f"{'backend':<18}{'median ms':>11}{'p90 ms':>10}")
    for name in times:
        r = res[name]
        print(f"{name:<18}{r['median_ms']:>11.1f}{r['p90_ms']:>10.1f}")  # type: ignore[index]
    print(f"ONNX Runtime speed-up over PyTorch eager: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
