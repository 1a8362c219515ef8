"""calibnet-demo: the main job on an embedded default.

Exports the default model (R50; your checkpoint with --weights, else deterministic weights and a loud
note) to a portable ONNX file, runs PyTorch and the torch-free runtime on the same generated RGB-D scene and
compares them, then writes:
  compare.png   the scene, its depth, and the best instance as PyTorch and as the runtime decode it (the
                pixels that differ in red), with the mask agreement and the stage timings
  overlay.png   the runtime's instances at or above the overlays' minimum score
  demo.json     the same figures; scene_rgb.png, scene_depth.png: the scene (calibnet-infer reads them)
and ends with the next step to take.

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

from calibnet.data.synthetic import make_scene
from calibnet.runtime import Runtime
from calibnet.runtime.apps.overlay import DRAW_MIN_SCORE, draw_overlay, overlay_layout
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.contract import OUTPUT_NAMES
from calibnet.runtime.core.feeds import stack_frames

from .app import parser, run_cli, status_end, status_start
from .demo_picture import compare_picture
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


class _Steps:
    """One line per step on stdout: its number, what it does, and its time when done."""

    def __init__(self, total: int) -> None:
        self.total, self.k, self.t = total, 0, time.perf_counter()

    def start(self, what: str) -> None:
        self.k += 1
        self.t = time.perf_counter()
        status_start(f"demo [{self.k}/{self.total}] {what} ...")

    def done(self, note: str = "") -> None:
        status_end(f" {time.perf_counter() - self.t:.1f} s{note}")


def next_step(weights: str | None, config: str, onnx: Path) -> str:
    """What to do after the demo."""
    if weights:
        return (f"next: your frames: calibnet-infer {onnx} --rgb A.jpg --depth A.png --out out/A; the speed here: "
                f"calibnet-bench --config {config} --weights {weights}")
    return ("next: pass your checkpoint (calibnet-demo --weights model_final.pth), or train the small synthetic "
            "recipe (600 iterations: 18.5 min on a quiet 2-core AMD EPYC, about 40 min on a shared one; "
            "docs/benchmarks.md): calibnet-train --recipe synthetic-r18 --out out/train-r18, then calibnet-demo "
            "--config out/train-r18/config.yaml --weights out/train-r18/model_final.pth --height 128 --width 192")


def run(args: argparse.Namespace) -> int:
    """Export, compare PyTorch with the runtime on a synthetic scene, write the pictures and the next step."""
    import torch

    from calibnet.builder import build_model
    from calibnet.export import export_onnx

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    steps = _Steps(4)
    steps.start(f"building the model ({args.config}, {args.weights or 'deterministic weights'})")
    model = build_model(args.config, args.weights, quiet=True)  # a bad checkpoint fails here
    steps.done()
    steps.start(f"exporting ONNX ({args.height}x{args.width})")
    onnx_path = export_onnx(model, out / "calibnet.onnx", height=args.height, width=args.width)
    steps.done(f" -> {onnx_path}")
    scene = make_scene(args.seed, height=375, width=500)
    with Runtime.open(onnx_path) as rt:
        steps.start("running PyTorch and the runtime on one synthetic scene")
        frame = rt.prepare(scene.rgb, scene.depth)
        ref_out = Runtime.from_model(model).backend.run(stack_frames([frame]))
        check = compare_outputs(ref_out, rt.backend.run(stack_frames([frame])), rt.metadata)
        reference = rt.decode(ref_out, 0, frame)
        rt.predict(scene.rgb, scene.depth)  # warm-up
        t = time.perf_counter()
        pred = rt.predict(scene.rgb, scene.depth)
        total = time.perf_counter() - t
        steps.done()
    steps.start("writing the pictures")
    diffs = {k: check.outputs[k].max_abs for k in OUTPUT_NAMES[:3]}  # logits, objectness, mask logits
    agree = check.outputs["pred_masks"].mask_agreement
    tm = {k: round(v * 1000, 2) for k, v in pred.timings.items()}
    ok = check.passed
    weights = args.weights or "deterministic: shapes and scores are MEANINGLESS; the proof is that the two agree"
    caption = [f"ONNX Runtime vs PyTorch: mask agreement {agree:.4%} -> {'PASS' if ok else 'FAIL'}; "
               f"max|d| masks {diffs['pred_masks']:.1e}",
               f"runtime on CPU: pre {tm['pre']:.1f} ms, infer {tm['infer']:.1f} ms, post {tm['post']:.1f} ms; "
               f"{args.config} at {args.height}x{args.width}",
               f"weights: {weights}"]
    cv2.imwrite(str(out / "compare.png"), compare_picture(scene.rgb, scene.depth, reference, pred, caption)[:, :, ::-1])
    shown = overlay_layout(pred, DRAW_MIN_SCORE).drawn
    cv2.imwrite(str(out / "overlay.png"), draw_overlay(scene.rgb, pred, min_score=DRAW_MIN_SCORE)[:, :, ::-1])
    cv2.imwrite(str(out / "scene_rgb.png"), scene.rgb[:, :, ::-1])
    cv2.imwrite(str(out / "scene_depth.png"), scene.depth)
    report = {"onnx": str(onnx_path), "verify_max_abs_diff": diffs, "verify_mask_agreement": agree,
              "instances": len(pred), "overlay_instances": len(shown), "overlay_min_score": DRAW_MIN_SCORE,
              "scores": [round(float(s), 4) for s in pred.scores[:10]],
              "depth_trust": [round(float(x), 4) for x in pred.depth_trust],
              "timings_ms": tm, "total_ms": round(total * 1000, 2),
              "weights": args.weights or "deterministic (meaningless outputs)"}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    steps.done()
    print(f"verify ONNX Runtime vs PyTorch: max|d| logits {diffs['pred_logits']:.1e} objectness "
          f"{diffs['pred_scores']:.1e} masks {diffs['pred_masks']:.1e}, mask agreement {agree:.4%} -> "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"timing ({args.config}, {args.height}x{args.width}, ONNX Runtime CPU): pre {tm['pre']:.1f} ms, "
          f"infer {tm['infer']:.1f} ms, post {tm['post']:.1f} ms, total {report['total_ms']:.1f} ms")
    print(f"{out / 'compare.png'}: the best instance as PyTorch and as the runtime decode it, side by side")
    best = f"{pred.scores[0]:.2f}" if len(pred) else "none"
    print(f"{out / 'overlay.png'}: {len(shown)} of {len(pred)} instances reach the overlays' minimum score "
          f"{DRAW_MIN_SCORE} (best {best})")
    if not args.weights:
        print("NOTE: deterministic weights: the masks and scores are MEANINGLESS; the pictures prove only that "
              "the runtime reproduces PyTorch.", file=sys.stderr)
    print(next_step(args.weights, args.config, onnx_path))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
