"""calibnet-export: a CalibNet checkpoint -> ONNX (portable or TensorRT-flavoured), verified on CPU.

Examples:
  # portable ONNX (plain ONNX ops, ONNX Runtime anywhere), any H/W multiple of 32, checked vs PyTorch
  calibnet-export --config r50 --weights model_final.pth --onnx calibnet_r50.onnx --dynamic --verify

  # TensorRT flavour (one MultiscaleDeformableAttnPlugin_TRT node per encoder layer), top-10 selection
  # in the graph, FP16 readiness report, then an FP16 engine (needs TensorRT and a GPU)
  calibnet-export --config configs/CalibNet_R50_50e_50q_320size.yaml --weights model_final.pth \\
      --onnx calibnet_r50_trt.onnx --flavor tensorrt --topk 10 --verify --check-fp16 \\
      --engine calibnet_r50_fp16.engine --fp16

Without --weights the model gets calibnet's deterministic initialization: the file runs, but its outputs
are meaningless. Static sizes: the padded size of your frames after the official resize (short side 320,
long side <= 480): 320x448 for 4:3 frames, 320x480 for 3:2; --dynamic covers all of them.

Exit codes: 0 done (and verified), 1 verification failed or the engine build failed, 2 bad arguments or
checkpoint, 3 --engine asked but TensorRT/GPU missing (the ONNX file is written anyway).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 320x480, got {text!r}") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-export``."""
    p = argparse.ArgumentParser(prog="calibnet-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="r50", help="preset (r50, r101, r34, r18) or official YAML file (r50)")
    p.add_argument("--weights", help="checkpoint: detectron2 format ({'model': state_dict}) or a state dict")
    p.add_argument("--onnx", required=True, help="output .onnx path")
    p.add_argument("--flavor", choices=("portable", "tensorrt"), default="portable",
                   help="portable: MSDA as GridSample; tensorrt: MSDA as TensorRT plugin node (portable)")
    p.add_argument("--height", type=int, default=320, help="(optimal) input height, multiple of 32 (320)")
    p.add_argument("--width", type=int, default=480, help="(optimal) input width, multiple of 32 (480)")
    p.add_argument("--dynamic", action="store_true", help="dynamic H/W and batch")
    p.add_argument("--static-batch", action="store_true", help="with --dynamic: keep the batch static")
    p.add_argument("--min-hw", type=_hw, default=(320, 320), help="profile minimum with --dynamic (320x320)")
    p.add_argument("--max-hw", type=_hw, default=(480, 480), help="profile maximum with --dynamic (480x480)")
    p.add_argument("--batch", type=int, default=1, help="batch (the static batch, or the optimal one) (1)")
    p.add_argument("--max-batch", type=int, default=None, help="profile maximum batch with --dynamic (4)")
    p.add_argument("--topk", type=int, default=0, help="in-graph NMS-free selection of K instances (0: off)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..19 (17)")
    p.add_argument("--no-reference-body", action="store_true",
                   help="tensorrt flavour: do not embed the plugin's CPU reference body (a local function that "
                        "lets ONNX Runtime run the file; TensorRT >= 10.7 ignores it, older parsers inline it)")
    p.add_argument("--plugin-version", choices=("1", "2"), default="1",
                   help="TensorRT MSDA plugin version: 1 (TensorRT 8.x..11.x) or 2 (>= 10.11) (1)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--verify", action="store_true",
                   help="run the file on ONNX Runtime CPU vs PyTorch; writes <onnx>.verify.json. With --engine, "
                        "also the engine vs ONNX Runtime (GPU); writes <engine>.verify.json")
    p.add_argument("--verify-size", type=_hw, action="append", default=None, metavar="HxW",
                   help="verify at this size too (dynamic files; repeatable)")
    p.add_argument("--check-fp16", nargs="?", const="", default=None, metavar="JSON",
                   help="FP16 readiness report (default <onnx>.fp16.json); its fp32_layers feed --engine")
    p.add_argument("--engine", help="also build a TensorRT engine here (calibnet.engines; needs TensorRT + GPU)")
    p.add_argument("--fp16", action="store_true", help="with --engine: FP16 engine with FP32 islands")
    p.add_argument("--triton-repo", metavar="DIR", help="also write a Triton model repository for the NGC container "
                   "(calibnet.serving.triton_repo; its README.md says how to run it)")
    p.add_argument("--triton-variant", choices=("onnxruntime", "tensorrt", "python"),
                   help="network on ONNX Runtime or a TensorRT plan (+ Python-backend pre/post), or the whole "
                        "runtime in the Python backend (default: onnxruntime, tensorrt for --flavor tensorrt)")
    from ..export.openvino_int8 import add_cli_arguments

    add_cli_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-export``; every error ends in one line (a bad --weights / --config file named)."""
    from calibnet.runtime.core.errors import run_cli

    def files(a: argparse.Namespace) -> list[str | None]:
        return [a.weights, a.config if str(a.config).endswith((".yaml", ".yml")) else None]

    return run_cli("calibnet-export", build_parser(), _main, argv, (), files=files)


def _main(args: argparse.Namespace) -> int:
    if args.fp16 and not args.engine:
        print("calibnet-export: error: --fp16 needs --engine OUT", file=sys.stderr)
        return 2
    from ..export.openvino_int8 import cli_argument_errors

    if (int8_error := cli_argument_errors(args)) is not None:
        print(f"calibnet-export: error: {int8_error}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    # stages: model, export, then each optional one asked for
    optional = (args.verify, args.check_fp16 is not None, args.engine, args.triton_repo, args.int8, args.check_bf16)
    bar = tqdm(total=2 + sum(map(bool, optional)), desc="calibnet-export", unit="stage", file=sys.stderr,
               bar_format="{desc}: {n}/{total} stages {bar} [{elapsed}] {postfix}")
    try:
        return _run(args, bar)
    finally:
        bar.close()


def _run(args: argparse.Namespace, bar) -> int:  # type: ignore[no-untyped-def]
    from calibnet import ConfigError, build_model
    from calibnet.checkpoint import CheckpointMismatchError
    from calibnet.runtime.core.contract import ModelMetadata
    from calibnet.runtime.core.feeds import random_feeds
    from calibnet.runtime.core.sidecar import file_sha256

    from ..export.onnx_export import export_onnx
    from ..export.verify import verify_onnx

    user_errors = (ConfigError, FileNotFoundError, CheckpointMismatchError, ValueError)
    try:
        bar.set_postfix_str("model")
        model = build_model(args.config, args.weights)
        bar.update()
        bar.set_postfix_str("export")
        base = ModelMetadata(config=str(args.config), checkpoint=str(args.weights or ""),
                             checkpoint_sha256=file_sha256(args.weights) if args.weights else "",
                             deterministic_weights=args.weights is None)
        path = export_onnx(model, args.onnx, flavor=args.flavor, height=args.height, width=args.width,
                           dynamic=args.dynamic, batch=args.batch, topk=args.topk or None, opset=args.opset,
                           simplify=not args.no_simplify, metadata=base,
                           dynamic_batch=args.dynamic and not args.static_batch, min_hw=args.min_hw,
                           max_hw=args.max_hw, max_batch=args.max_batch, plugin_version=args.plugin_version,
                           reference_body=not args.no_reference_body)
        bar.update()
    except user_errors as exc:
        print(f"\ncalibnet-export: error: {exc}", file=sys.stderr)
        return 2
    bar.write(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.flavor} flavour)")
    status = 0
    if args.verify:
        bar.set_postfix_str("verify")
        sizes = [(args.height, args.width), *(args.verify_size or [])]
        for i, (h, w) in enumerate(sizes):
            report = verify_onnx(path, model, random_feeds(args.batch, h, w, (h - 7, w - 11) if i else None))
            report.save(str(path) + (".verify.json" if i == 0 else f".verify_{h}x{w}.json"))
            bar.write(report.table())
            status = status or (0 if report.passed else 1)
        bar.update()
    fp32_json = None
    if args.check_fp16 is not None:
        bar.set_postfix_str("fp16 check")
        from ..export.fp16_check import fp16_readiness

        fp32_json = Path(args.check_fp16 or str(path) + ".fp16.json")
        rep = fp16_readiness(model, random_feeds(1, args.height, args.width), out_path=fp32_json)
        drift = ", ".join(f"{k} {v['max_abs_diff']:.3g}" for k, v in rep["outputs"].items())
        bar.write(f"FP16 readiness -> {fp32_json}: output drift under FP16 rounding: {drift}; "
                  f"{len(rep['fp32_layers'])} layer(s) to keep in FP32")
        bar.update()
    from ..export import openvino_int8

    later: list[tuple[str, object, Callable[[], int]]] = [
        ("engine", args.engine, lambda: _engine(path, args.engine, args.fp16, fp32_json, args.verify, bar.write)),
        ("triton repo", args.triton_repo, lambda: _triton_repo(args, path, bar.write)),
        ("int8", args.int8, lambda: openvino_int8.run_cli(args, path, bar.write)),
        ("bf16 check", args.check_bf16, lambda: openvino_int8.check_bf16_cli(path, args.int8_check_frames, bar.write))]
    for name, wanted, step in later:
        if wanted:
            bar.set_postfix_str(name)
            status = step() or status
            bar.update()
    return status


def _triton_repo(args: argparse.Namespace, onnx_path: Path, write: Callable[[str], None]) -> int:
    """Write the Triton model repository of ``--triton-repo`` (calibnet.serving.triton_repo)."""
    from calibnet.serving.triton_repo import write_triton_repo

    variant = args.triton_variant or ("tensorrt" if args.flavor == "tensorrt" else "onnxruntime")
    engine = args.engine if variant == "tensorrt" and args.engine and Path(args.engine).is_file() else None
    try:
        repo = write_triton_repo(onnx_path, args.triton_repo, variant=variant, engine=engine)
    except (ImportError, ValueError) as exc:
        print(f"calibnet-export: cannot write the Triton repository: {exc}", file=sys.stderr)
        return 2
    write(f"wrote Triton model repository {repo} ({variant}); how to serve it: {repo / 'README.md'}")
    return 0


def _engine(onnx_path: Path, engine_path: str, fp16: bool, fp32_json: Path | None, verify: bool = False,
            write: Callable[[str], None] = print) -> int:
    """``calibnet.engines.build_engine`` (a readiness JSON adds its layers to the default FP32 islands), then
    ``calibnet.engines.verify.verify_engine`` against ONNX Runtime when asked."""
    import calibnet.engines as engines  # importable without TensorRT; building raises TensorRTUnavailable

    try:
        out = engines.build_engine(onnx_path, engine_path, fp16=fp16,
                                   fp32_layers=[fp32_json] if fp32_json is not None and fp16 else None)
    except engines.TensorRTUnavailable as exc:
        print(f"calibnet-export: cannot build the engine: {exc}\nThe ONNX file {onnx_path} was written; build "
              "the engine on a machine with TensorRT and an NVIDIA GPU (`python -m calibnet.engines build`).",
              file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - parser/builder errors are reported, not raised
        print(f"calibnet-export: engine build failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    write(f"wrote engine {out}")
    return _verify_engine(onnx_path, Path(out), write) if verify else 0


def _verify_engine(onnx_path: Path, engine_path: Path, write: Callable[[str], None]) -> int:
    """Engine vs ONNX Runtime CPU on the same inputs (the one comparator at the engine's precision); the report
    goes to ``<engine>.verify.json``. A TensorRT-flavoured graph runs on ONNX Runtime with the plugin's
    reference body."""
    from calibnet.engines import verify

    from ..export.msda_onnx import load_runnable

    proto = load_runnable(onnx_path)
    report_path = Path(str(engine_path) + ".verify.json")
    rep = verify.verify_engine(engine_path, proto.SerializeToString(), report_path=report_path)
    for line in verify.verification_lines(rep):
        write(line)
    write(f"engine verification report -> {report_path}")
    return 0 if rep["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
