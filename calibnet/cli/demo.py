"""calibnet-demo: the main job on an embedded default.

Exports the default model (R50; your checkpoint with --weights, else deterministic weights and a loud
note) to a portable ONNX file, verifies ONNX Runtime against PyTorch on one frame, runs the torch-free
runtime on a generated RGB-D scene, writes the overlay PNG and prints a timing line.

Examples:
  calibnet-demo                                   # R50, deterministic weights, out/demo
  calibnet-demo --weights model_final.pth --out out/real
  calibnet-demo --config r18 --height 320 --width 448
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
from tqdm import tqdm

from calibnet.data.synthetic import make_scene
from calibnet.runtime import Runtime
from calibnet.runtime.apps.overlay import draw_overlay
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.contract import OUTPUT_NAMES
from calibnet.runtime.core.feeds import stack_frames

from .app import parser, run_cli
from .options import add_checkpoint, add_input_size, add_output, checkpoint_files

PROG = "calibnet-demo"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-demo``."""
    p = parser(PROG, __doc__)
    add_checkpoint(p)
    add_input_size(p, (320, 448), "static network input")
    add_output(p, "out/demo")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-demo``: every error ends in one line (a bad --weights / --config file named)."""
    return run_cli(PROG, build_parser(), run, argv, files=checkpoint_files)


def run(args: argparse.Namespace) -> int:
    """Export, verify, run on a synthetic scene, write the overlay and a timing line."""
    import torch

    from calibnet.builder import build_model
    from calibnet.export import export_onnx

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model(args.config, args.weights)  # a bad checkpoint fails here, before any progress bar
    steps = tqdm(total=4, initial=1, desc="demo", unit="step", file=sys.stderr)
    onnx_path = export_onnx(model, out / "calibnet.onnx", height=args.height, width=args.width)
    steps.update(1)
    scene = make_scene(args.seed, height=375, width=500)
    with Runtime.open(onnx_path) as rt:
        feeds = stack_frames([rt.prepare(scene.rgb, scene.depth)])
        reference = Runtime.from_model(model).backend.run(feeds)
        check = compare_outputs(reference, rt.backend.run(feeds), rt.metadata)
        steps.update(1)
        rt.predict(scene.rgb, scene.depth)  # warm-up
        t = time.perf_counter()
        pred = rt.predict(scene.rgb, scene.depth)
        total = time.perf_counter() - t
    overlay = draw_overlay(scene.rgb, pred)

    cv2.imwrite(str(out / "overlay.png"), overlay[:, :, ::-1])
    cv2.imwrite(str(out / "scene_rgb.png"), scene.rgb[:, :, ::-1])
    cv2.imwrite(str(out / "scene_depth.png"), scene.depth)
    diffs = {k: check.outputs[k].max_abs for k in OUTPUT_NAMES[:3]}  # logits, objectness, mask logits
    agree = check.outputs["pred_masks"].mask_agreement
    report = {"onnx": str(onnx_path), "verify_max_abs_diff": diffs, "verify_mask_agreement": agree,
              "instances": len(pred), "scores": [round(float(s), 4) for s in pred.scores[:10]],
              "depth_trust": [round(float(x), 4) for x in pred.depth_trust],
              "timings_ms": {k: round(v * 1000, 2) for k, v in pred.timings.items()},
              "total_ms": round(total * 1000, 2),
              "weights": args.weights or "deterministic (meaningless outputs)"}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    steps.update(1)
    steps.close()
    ok = check.passed
    print(f"verify ONNX Runtime vs PyTorch: max|d| logits {diffs['pred_logits']:.1e} objectness "
          f"{diffs['pred_scores']:.1e} masks {diffs['pred_masks']:.1e}, mask agreement {agree:.4%} -> "
          f"{'PASS' if ok else 'FAIL'}")
    tm = report["timings_ms"]
    print(f"timing ({args.config}, {args.height}x{args.width}, ONNX Runtime CPU): pre {tm['pre']:.1f} ms, "
          f"infer {tm['infer']:.1f} ms, post {tm['post']:.1f} ms, total {report['total_ms']:.1f} ms; "
          f"{len(pred)} instances; overlay -> {out / 'overlay.png'}")
    if not args.weights:
        print("NOTE: deterministic weights: the masks in the overlay are meaningless.", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
