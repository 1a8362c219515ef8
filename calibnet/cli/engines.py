"""``python -m calibnet.engines``: build / inspect / verify TensorRT engines and run the ONNX FP16 pass."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..engines.builder import EngineBuildError, build_engine
from ..engines.cache import get_or_build
from ..engines.fp16 import convert_to_fp16, fp32_patterns
from ..engines.verify import verification_lines, verify_engine
from ..runtime.backends.tensorrt_deps import require_tensorrt
from ..runtime.core.profiles import parse_profile_spec
from ..runtime.core.sidecar import read_sidecar
from .app import CliError, parser, run_cli

PROG = "python -m calibnet.engines"
EXAMPLES = """examples:
  # FP16 engine next to the ONNX file, profiles from the ONNX metadata
  python -m calibnet.engines build calibnet_r50.onnx -o calibnet_r50.fp16.engine --timing-cache trt.cache
  # same, through the engine cache (reused when ONNX/TensorRT/GPU/precision/profiles match)
  python -m calibnet.engines build calibnet_r50.onnx --cache-dir ~/.cache/calibnet/engines
  # explicit dynamic profile and extra FP32 islands (patterns or the export FP16-readiness JSON)
  python -m calibnet.engines build m.onnx -o m.engine --profile rgb:1x3x320x320,1x3x320x480,4x3x480x640 \\
      --profile depth:1x1x320x320,1x1x320x480,4x1x480x640 --profile valid_hw:1x2,1x2,4x2 \\
      --fp32-layers fp16_readiness.json --fp32-layers 'op:Softmax'
  python -m calibnet.engines info calibnet_r50.fp16.engine
  python -m calibnet.engines verify calibnet_r50.fp16.engine --onnx calibnet_r50.portable.onnx --report verify.json
  # ONNX-level FP16 conversion with FP32 islands (what TensorRT 11 builds from); runs on CPU
  python -m calibnet.engines fp16-onnx m.onnx m.fp16.onnx
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m calibnet.engines`` (sub-commands build, info, verify, fp16-onnx)."""
    ap = parser(PROG, "TensorRT engines for CalibNet: build FP16 engines from exported ONNX files (with FP32 islands "
                "for LayerNorm, attention softmax and sampling-location arithmetic), inspect their sidecars, verify "
                "them against ONNX Runtime. Building and verifying need TensorRT and an NVIDIA GPU.", epilog=EXAMPLES)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build an engine (+ JSON sidecar)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("onnx", type=Path, help="exported ONNX file (tensorrt flavour recommended)")
    b.add_argument("-o", "--output", type=Path, help="engine path; without it the engine cache is used")
    b.add_argument("--cache-dir", type=Path, help="engine cache folder (default $CALIBNET_ENGINE_CACHE or "
                                                  "~/.cache/calibnet/engines)")
    b.add_argument("--fp32", action="store_true", help="build an FP32 engine instead of FP16")
    b.add_argument("--fp16-path", choices=["auto", "flags", "onnx"], default="auto",
                   help="FP16 method: builder flags (TensorRT 10) or ONNX FP16 pass (TensorRT 11); default auto")
    b.add_argument("--profile", action="append", default=[], metavar="NAME:MIN,OPT,MAX",
                   help="optimization profile for one input, shapes like 1x3x320x480 (repeat per input)")
    b.add_argument("--fp32-layers", action="append", metavar="PATTERN|JSON",
                   help="FP32 island: 'op:Type' or a node-name regex (replaces the default islands), or an "
                        "FP16-readiness JSON (its layers are added to the defaults); repeatable")
    b.add_argument("--workspace-gib", type=float, help="workspace memory limit in GiB")
    b.add_argument("--timing-cache", type=Path, help="timing cache file (read if present, written after)")
    b.add_argument("--opt-level", type=int, choices=range(6), help="builder optimization level 0..5")
    b.add_argument("--plugin", action="append", default=[], help="extra TensorRT plugin library (.so)")
    b.add_argument("-v", "--verbose", action="store_true", help="verbose TensorRT log")
    i = sub.add_parser("info", help="print an engine's sidecar")
    i.add_argument("engine", type=Path)
    v = sub.add_parser("verify", help="compare an engine with ONNX Runtime and time it (GPU)")
    v.add_argument("engine", type=Path)
    v.add_argument("--onnx", type=Path, required=True, help="ONNX file ONNX Runtime can run (portable flavour)")
    v.add_argument("--samples", type=int, default=3)
    v.add_argument("--iters", type=int, default=50, help="timing iterations (0: no timing)")
    v.add_argument("--min-mask-agreement", type=float, default=0.99)
    v.add_argument("--cuda-graph", action="store_true", help="time with CUDA-graph replay")
    v.add_argument("--report", type=Path, help="write the JSON report here")
    f = sub.add_parser("fp16-onnx", help="convert an ONNX file to FP16 with FP32 islands (CPU)")
    f.add_argument("onnx", type=Path)
    f.add_argument("output", type=Path)
    f.add_argument("--fp32-layers", action="append", metavar="PATTERN|JSON")
    return ap


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; returns the exit code (1 for a failed verification)."""
    if args.cmd == "build":
        profiles = [parse_profile_spec(args.profile)] if args.profile else None
        kw = dict(fp16=not args.fp32, profiles=profiles, fp32_layers=args.fp32_layers,
                  workspace=int(args.workspace_gib * (1 << 30)) if args.workspace_gib else None,
                  timing_cache=args.timing_cache, builder_optimization_level=args.opt_level,
                  plugin_libraries=args.plugin, fp16_path=args.fp16_path, verbose=args.verbose)
        require_tensorrt("building an engine")
        print(f"building from {args.onnx} (this can take minutes) ...", file=sys.stderr)
        try:
            path = build_engine(args.onnx, args.output, **kw) if args.output else \
                get_or_build(args.onnx, cache_dir=args.cache_dir, **kw)
        except EngineBuildError as exc:
            raise CliError(str(exc)) from None
        print(path)
    elif args.cmd == "info":
        print(json.dumps(read_sidecar(args.engine).to_dict(), indent=2))
    elif args.cmd == "verify":
        rep = verify_engine(args.engine, args.onnx, samples=args.samples, timing_iters=args.iters,
                            min_mask_agreement=args.min_mask_agreement, report_path=args.report,
                            use_cuda_graph=args.cuda_graph)
        print("\n".join(verification_lines(rep)))
        return 0 if rep["passed"] else 1
    elif args.cmd == "fp16-onnx":
        import onnx

        model = onnx.load(str(args.onnx))
        m16, report = convert_to_fp16(model, fp32_patterns(args.fp32_layers))
        onnx.save(m16, str(args.output))
        d = report.to_dict()
        print(json.dumps({**d, "fp32_nodes": len(d["fp32_nodes"])}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m calibnet.engines``: every error ends in one line naming the file at fault."""
    return run_cli(PROG, build_parser(), run, argv,
                   files=lambda a: [getattr(a, "onnx", None), getattr(a, "engine", None)])
