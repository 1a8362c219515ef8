"""OpenVINO before and after the fused deformable-attention kernel, interleaved in one process: the rows main ran
(the portable ONNX, MSDA decomposed; INT8 float parts in FP32) against this branch's (the TensorRT-flavoured
ONNX, MSDA fused; INT8 float parts in BF16 where the CPU has native BF16), and ONNX Runtime FP32 as the yardstick.

  python -m calibnet.benchmarks.openvino_ab --config r50 --height 320 --width 480 --threads 2 --iters 10 \\
      --json ab.json

"main" rows are reproduced with today's backend options: ``msda="decomposed"`` on the portable file is main's
graph, and an INT8 IR made from the portable file opened with a capability list without ``BF16`` compiles with
main's ``INFERENCE_PRECISION_HINT=f32``. Each INT8 IR is quantized from its own FP32 file (NNCF, ``--calib``
synthetic scenes, the default keep-float split). Rows are timed end to end with the runtime's pre/post
(:func:`calibnet.benchmarks.latency.interleave`: rounds interleaved, the first row rotating), on the bench's
synthetic frame; each row's masks are compared with ONNX Runtime FP32 by the shared comparator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import calibnet
from calibnet.data.synthetic import make_scene
from calibnet.export.onnx_export import export_onnx
from calibnet.export.openvino_int8 import quantize_int8, synthetic_calibration_feeds
from calibnet.runtime import Runtime
from calibnet.runtime.backends.onnxruntime import OnnxRuntimeBackend
from calibnet.runtime.backends.openvino import OpenVinoBackend, cpu_capabilities
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.feeds import stack_frames
from calibnet.runtime.core.targets import IR_SUFFIX, ONNX_SUFFIX

from .backends import ort_session_options
from .cpu_facts import cpu_isa
from .latency import RuntimePath, interleave
from .suite import bench_config

__all__ = ["ROWS", "ab_model", "run_ab"]

#: row -> (file kind, precision, MSDA mode, INT8 float parts forced to FP32)
ROWS: dict[str, tuple[str, str, str, bool]] = {
    "main openvino-f32": ("portable", "f32", "decomposed", False),
    "main openvino-bf16": ("portable", "bf16", "decomposed", False),
    "main openvino-int8": ("portable_int8", "int8", "decomposed", True),
    "branch openvino-f32": ("tensorrt", "f32", "auto", False),
    "branch openvino-bf16": ("tensorrt", "bf16", "auto", False),
    "branch openvino-int8": ("tensorrt_int8", "int8", "auto", False),
}


def ab_model(config: str, weights: str | None, height: int, width: int) -> Any:
    """The ``calibnet.CalibNet`` the tool compares: ``config`` as the bench builds it for this network size."""
    return calibnet.build_model(bench_config(config, height, width)[0], weights, quiet=True)


def _files(model: Any, height: int, width: int, threads: int, calib: int, workdir: Path,
           say: Callable[[str], None]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for flavor in ("portable", "tensorrt"):
        say(f"exporting the {flavor} flavour")
        files[flavor] = export_onnx(model, workdir / f"ab_{flavor}{ONNX_SUFFIX}", flavor=flavor, height=height,
                                    width=width)
        with Runtime.open(files[flavor], backend="openvino", precision="f32", threads=threads, cache_dir="") as rt:
            frames = synthetic_calibration_feeds(rt, calib)
            check = synthetic_calibration_feeds(rt, 2, seed=9000)
        say(f"quantizing the {flavor} flavour ({calib} synthetic scenes)")
        files[f"{flavor}_int8"] = quantize_int8(files[flavor], workdir / f"ab_{flavor}_int8{IR_SUFFIX}", frames,
                                                check, threads=threads, force=True).path
    return files


def run_ab(model: Any, height: int, width: int, workdir: Path, threads: int = 2, iters: int = 10, warmup: int = 2,
           calib: int = 8, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Export ``model`` (a ``calibnet.CalibNet``) in both flavours, quantize each, open every row, time them
    interleaved; returns the JSON document (``rows``: per row its file, description, MSDA route, the INT8 float
    parts' precision, p50s, speed-ups vs ONNX Runtime and mask agreement with it)."""
    files = _files(model, height, width, threads, calib, workdir, say)
    caps = cpu_capabilities()
    runtimes = {"onnxruntime": Runtime(OnnxRuntimeBackend(files["portable"], providers=["CPUExecutionProvider"],
                                                          session_options=ort_session_options(threads)))}
    rows: dict[str, Any] = {"onnxruntime": {"file": files["portable"].name, "detail": "ONNX Runtime FP32 (CPU)"}}
    for name, (kind, precision, msda, f32_islands) in ROWS.items():
        if precision == "bf16" and "BF16" not in caps:
            rows[name] = {"skipped": "no native BF16"}
            continue
        be = OpenVinoBackend(files[kind], precision, threads=threads, cache_dir="", msda=msda,
                             capabilities=[c for c in caps if c != "BF16"] if f32_islands else None)
        runtimes[name] = Runtime(be)
        rows[name] = {"file": files[kind].name, "detail": be.describe(), "msda": be.msda.mode,
                      "float_precision": be.float_precision}
    scene = make_scene(seed=0, height=round(height * 1.5), width=round(width * 1.5))
    feeds = stack_frames([runtimes["onnxruntime"].prepare(scene.rgb, scene.depth)])
    reference = runtimes["onnxruntime"].backend.run(feeds)
    for name, rt in runtimes.items():
        precision = getattr(rt.backend, "precision", "fp32")  # OpenVINO's names: compare.ALIASES
        report = compare_outputs(reference, rt.backend.run(feeds), rt.metadata, precision)
        rows[name]["mask_agreement_vs_onnxruntime"] = report.outputs["pred_masks"].mask_agreement
    paths = [RuntimePath(name, rt, [scene.rgb], [scene.depth]) for name, rt in runtimes.items()]
    say(f"timing {len(paths)} rows: {warmup} warm-up + {iters} rounds, interleaved")
    times = interleave(paths, warmup, iters)
    ort = times["onnxruntime"].summary_ms()
    for name, t in times.items():
        s = t.summary_ms()
        rows[name].update(e2e_ms=s["e2e"], infer_ms=s["infer"], speedup_vs_onnxruntime=ort["e2e"]["p50"] /
                          s["e2e"]["p50"], infer_speedup_vs_onnxruntime=ort["infer"]["p50"] / s["infer"]["p50"])
    for rt in runtimes.values():
        rt.close()
    return {"height": height, "width": width, "threads": threads, "iters": iters, "calib": calib,
            "cpu_isa": cpu_isa(), "openvino_cpu_capabilities": caps, "rows": rows}


if __name__ == "__main__":
    from calibnet.cli.openvino_ab import main

    raise SystemExit(main())
