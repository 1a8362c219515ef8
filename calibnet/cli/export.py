"""calibnet-export: a CalibNet checkpoint -> ONNX (portable or TensorRT-flavoured), verified on CPU, and the
artifacts built from it: a TensorRT engine, an OpenVINO IR or INT8 IR, a Triton model repository.

Examples:
  # portable ONNX (plain ONNX ops, ONNX Runtime anywhere), any H/W multiple of 32, checked vs PyTorch
  calibnet-export --config r50 --weights model_final.pth --onnx calibnet_r50.onnx --dynamic --verify

  # TensorRT flavour (one MultiscaleDeformableAttnPlugin_TRT node per encoder layer), top-10 selection
  # in the graph, FP16 readiness report, then an FP16 engine (needs TensorRT and a GPU)
  calibnet-export --config configs/CalibNet_R50_50e_50q_320size.yaml --weights model_final.pth \\
      --onnx calibnet_r50_trt.onnx --flavor tensorrt --topk 10 --verify --check-fp16 \\
      --engine calibnet_r50_fp16.engine --fp16

  # an INT8 OpenVINO IR calibrated on your RGB-D pairs, and a check of BF16 against FP32
  calibnet-export --weights model_final.pth --onnx r50.onnx --int8 r50_int8.xml --calib-dir calib/ --check-bf16

Without --weights the model gets calibnet's deterministic initialization: the file runs, but its outputs
are meaningless. Static sizes: the padded size of your frames after the official resize (short side 320,
long side <= 480): 320x448 for 4:3 frames, 320x480 for 3:2; --dynamic covers all of them.

Exit codes: 0 done (and verified), 1 a check failed (verification, INT8 comparison) or a build failed, 2 bad
arguments or checkpoint, 3 a step cannot run here (TensorRT/GPU or OpenVINO missing: the
other files are written anyway).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from calibnet.export.openvino_int8 import DEFAULT_KEEP_FLOAT, KEEP_FLOAT_GROUPS, parse_keep_float
from calibnet.runtime.core.cachedir import file_sha256
from calibnet.runtime.core.contract import ModelMetadata
from calibnet.runtime.core.targets import is_kind
from calibnet.serving.triton_repo import VARIANTS

from .app import CliError, parser, run_cli
from .options import add_checkpoint, add_input_size, checkpoint_files, hw

PROG = "calibnet-export"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-export``."""

    p = parser(PROG, __doc__)
    add_checkpoint(p)
    g = p.add_argument_group("the ONNX graph")
    g.add_argument("--onnx", required=True, help="where to write the ONNX file")
    g.add_argument("--flavor", choices=("portable", "tensorrt"), default="portable",
                   help="portable: MSDA as GridSample; tensorrt: MSDA as the TensorRT plugin node, with its CPU "
                        "reference body (ONNX Runtime runs it too)")
    add_input_size(g, what="(optimal) input")
    g.add_argument("--dynamic", action="store_true", help="dynamic H/W and batch")
    g.add_argument("--static-batch", action="store_true", help="with --dynamic: keep the batch static")
    g.add_argument("--min-hw", type=hw, default=(320, 320), help="profile minimum with --dynamic (320x320)")
    g.add_argument("--max-hw", type=hw, default=(480, 480), help="profile maximum with --dynamic (480x480)")
    g.add_argument("--batch", type=int, default=1, help="batch (the static batch, or the optimal one) (1)")
    g.add_argument("--max-batch", type=int, default=None, help="profile maximum batch with --dynamic (4)")
    g.add_argument("--topk", type=int, default=0, help="in-graph NMS-free selection of K instances (0: off)")
    g.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..19 (17)")
    g.add_argument("--no-reference-body", action="store_true",
                   help="tensorrt flavour: do not embed the plugin's CPU reference body (a local function that "
                        "lets ONNX Runtime run the file; TensorRT >= 10.7 ignores it, older parsers inline it)")
    g.add_argument("--plugin-version", choices=("1", "2"), default="1",
                   help="TensorRT MSDA plugin version: 1 (TensorRT 8.x..11.x) or 2 (>= 10.11) (1)")
    g.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    c = p.add_argument_group("checks")
    c.add_argument("--verify", action="store_true",
                   help="run the file on ONNX Runtime CPU vs PyTorch; writes <onnx>.verify.json. With --engine, "
                        "also the engine vs ONNX Runtime (GPU); writes <engine>.verify.json")
    c.add_argument("--verify-size", type=hw, action="append", default=[], metavar="HxW",
                   help="verify at this size too (dynamic files; repeatable)")
    c.add_argument("--check-fp16", nargs="?", const="", default=None, metavar="JSON",
                   help="FP16 readiness report (default <onnx>.fp16.json); its fp32_layers feed --engine")
    c.add_argument("--check-bf16", action="store_true", help="compare OpenVINO BF16 with FP32 on held-out synthetic "
                   "frames (the shared comparator); writes <onnx>.bf16.json")
    e = p.add_argument_group("TensorRT engine (needs TensorRT and an NVIDIA GPU)")
    e.add_argument("--engine", help="also build a TensorRT engine here (calibnet.engines)")
    e.add_argument("--fp16", action="store_true", help="with --engine: FP16 engine with FP32 islands")
    o = p.add_argument_group("OpenVINO (needs calibnet[openvino]); INT8: NNCF post-training quantization, guarded "
                             "by the comparator")
    o.add_argument("--openvino-ir", metavar="OUT", help="also write an OpenVINO IR (XML + .bin, FP32 weights)")
    o.add_argument("--int8", metavar="OUT", help="also write an INT8 OpenVINO IR here (its XML file; the weights go "
                   "beside it)")
    o.add_argument("--calib-dir", metavar="DIR", help="calibration RGB-D pairs: DIR/RGB and DIR/depth, pairs by file "
                   "stem, read and pre-processed by the runtime")
    o.add_argument("--calib-synthetic", type=int, metavar="N", help="calibrate on N synthetic scenes (default 16 "
                   "when no --calib-dir)")
    o.add_argument("--calib-limit", type=int, default=300, help="at most this many --calib-dir pairs (300)")
    o.add_argument("--int8-keep-float", default=None, metavar="GROUPS",
                   help=f"groups kept in float, comma-separated, or none: {', '.join(KEEP_FLOAT_GROUPS)} "
                        f"(default {','.join(DEFAULT_KEEP_FLOAT)})")
    o.add_argument("--int8-preset", choices=("mixed", "performance"), default="mixed", help="NNCF preset (mixed)")
    o.add_argument("--int8-transformer", action="store_true", help="NNCF model_type=TRANSFORMER")
    o.add_argument("--int8-check-frames", type=int, default=4,
                   help="held-out frames for the comparison with FP32 (4)")
    o.add_argument("--force", action="store_true", help="write the INT8 IR even if it fails the comparison "
                   "(marked forced in its metadata)")
    t = p.add_argument_group("Triton")
    t.add_argument("--triton-repo", metavar="DIR", help="also write a Triton model repository for the NGC container "
                   "(its README.md says how to run it)")
    t.add_argument("--triton-variant", choices=VARIANTS,
                   help="network on ONNX Runtime or a TensorRT plan (+ Python-backend pre/post), or the whole "
                        "runtime in the Python backend (default: onnxruntime, tensorrt for --flavor tensorrt)")
    return p


def _check(args: argparse.Namespace) -> None:
    """Usage errors of option combinations, before anything is built."""
    if args.fp16 and not args.engine:
        raise CliError("--fp16 needs --engine OUT")
    if not args.int8:
        if args.calib_dir or args.calib_synthetic or args.int8_keep_float or args.force:
            raise CliError("--calib-dir/--calib-synthetic/--int8-keep-float/--force need --int8 OUT")
    elif not is_kind(args.int8, "openvino"):
        raise CliError(f"--int8 writes an OpenVINO IR: give an XML path, got {args.int8}")
    if args.calib_dir and args.calib_synthetic:
        raise CliError("--calib-dir and --calib-synthetic are exclusive")
    if args.calib_synthetic is not None and args.calib_synthetic < 1:
        raise CliError("--calib-synthetic must be >= 1")
    if args.calib_dir and not all((Path(args.calib_dir) / sub).is_dir() for sub in ("RGB", "depth")):
        raise CliError(f"--calib-dir {args.calib_dir}: expected RGB/ and depth/ subfolders (pairs by file stem)")


def run(args: argparse.Namespace) -> int:
    """Build the model, then :func:`calibnet.export.export` every artifact asked for; returns the exit code."""
    _check(args)
    from calibnet.builder import build_model  # imports torch
    from calibnet.export import ExportOptions, GraphOptions, Int8Options, export

    int8 = Int8Options(args.calib_dir, args.calib_synthetic, args.calib_limit, parse_keep_float(args.int8_keep_float),
                       args.int8_preset, args.int8_transformer, args.int8_check_frames, args.force)
    provenance = ModelMetadata(config=str(args.config), checkpoint=str(args.weights or ""),
                               checkpoint_sha256=file_sha256(args.weights) if args.weights else "",
                               deterministic_weights=args.weights is None)
    graph = GraphOptions(args.flavor, args.height, args.width, args.dynamic, args.dynamic and not args.static_batch,
                         args.batch, args.min_hw, args.max_hw, args.max_batch, args.topk, args.opset,
                         not args.no_simplify, args.plugin_version, not args.no_reference_body, provenance)
    fp16_json = None if args.check_fp16 is None else Path(args.check_fp16 or args.onnx + ".fp16.json")
    opts = ExportOptions(graph, args.verify, tuple(args.verify_size), fp16_json, args.fp16, int8, args.check_bf16,
                         args.triton_variant)
    paths = {t: path for t, path in {"engine": args.engine, "openvino-ir": args.openvino_ir, "openvino-int8": args.int8,
                                     "triton": args.triton_repo}.items() if path}  # the artifacts asked for
    model = build_model(args.config, args.weights)  # a bad checkpoint fails here, before any progress bar
    with tqdm(total=2, initial=1, desc=PROG, unit="stage", file=sys.stderr,
              bar_format="{desc}: {n}/{total} {bar} [{elapsed}] {postfix}") as bar:
        bar.set_postfix_str("export")
        result = export(model, args.onnx, list(paths), opts, paths=paths, say=bar.write)
        bar.update()
    for step in result.failed + result.unavailable:
        print(f"{PROG}: {step.name}: {step.status}: {step.message}", file=sys.stderr)
    return 1 if result.failed else 3 if result.unavailable else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-export``; every error ends in one line (a bad --weights / --config file named)."""
    return run_cli(PROG, build_parser(), run, argv, files=checkpoint_files)


if __name__ == "__main__":
    raise SystemExit(main())
