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
import numpy as np

from calibnet.data.synthetic import make_scene
from calibnet.runtime import Runtime
from calibnet.runtime.apps.overlay import DRAW_MIN_SCORE, draw_overlay, overlay_layout
from calibnet.runtime.core.compare import compare_outputs
from calibnet.runtime.core.contract import OUTPUT_NAMES
from calibnet.runtime.core.feeds import stack_frames
from calibnet.runtime.core.prediction import Prediction

from .app import Steps, parser, run_cli
from .options import add_checkpoint, add_input_size, add_output, checkpoint_files

PROG = "calibnet-demo"
REFERENCE_COLOR = (60, 200, 90)  # RGB
RUNTIME_COLOR = (40, 130, 240)
DIFF_COLOR = (240, 30, 30)
CAPTION_H = 22  # pixels per caption line


def _title(img: np.ndarray, text: str) -> None:
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    cv2.rectangle(img, (0, 0), (w + 10, h + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (5, h + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def _mask_panel(gray: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], diff: np.ndarray | None,
                title: str) -> np.ndarray:
    out = np.repeat(gray[:, :, None], 3, axis=2)
    out[mask] = color
    if diff is not None:
        out[diff] = DIFF_COLOR
    _title(out, title)
    return out


def panel(picture: np.ndarray, row: int, col: int, hw: tuple[int, int]) -> np.ndarray:
    """The panel at ``row``, ``col`` of a :func:`compare_picture` of frames of size ``hw``."""
    h, w = hw
    return picture[row * h:(row + 1) * h, col * w:(col + 1) * w]


def compare_picture(rgb: np.ndarray, depth: np.ndarray, reference: Prediction, result: Prediction,
                    caption: list[str]) -> np.ndarray:
    """The demo's picture, what proves that the exported pipeline works: uint8 RGB [2H + lines, 2W, 3] of one frame
    (``rgb`` uint8 [H,W,3], ``depth`` uint8 [H,W]). A 2 x 2 grid and the ``caption`` lines (the mask agreement, the
    stage timings, what the weights are): the scene's RGB and depth on top; below, the best-scored instance of
    ``reference`` (PyTorch) and the same rank in ``result`` (the torch-free runtime), in solid
    :data:`REFERENCE_COLOR` and :data:`RUNTIME_COLOR` over the dimmed gray scene, the pixels where the two differ
    in :data:`DIFF_COLOR`."""
    h, w = rgb.shape[:2]
    gray = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) * 0.4).astype(np.uint8)
    empty = np.zeros((h, w), bool)
    ref = reference.masks[0] if len(reference) else empty
    got = result.masks[0] if len(result) else empty
    diff = ref ^ got
    top = [rgb.copy(), np.repeat(depth[:, :, None], 3, axis=2)]
    _title(top[0], "scene (RGB)")
    _title(top[1], "depth (near = dark)")
    score = f" {reference.scores[0]:.2f}" if len(reference) else ": none"
    bottom = [_mask_panel(gray, ref, REFERENCE_COLOR, None, f"PyTorch: instance 1, score{score}"),
              _mask_panel(gray, got, RUNTIME_COLOR, diff, f"runtime (ONNX): instance 1, {int(diff.sum())} px differ")]
    grid = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    strip = np.zeros((CAPTION_H * len(caption) + 6, 2 * w, 3), np.uint8)
    for k, line in enumerate(caption):
        cv2.putText(strip, line, (6, CAPTION_H * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([grid, strip], axis=0)


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
    steps = Steps("demo", 4)
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
