"""calibnet-export: a CalibNet checkpoint -> a portable ONNX file (ONNX Runtime anywhere).

Examples:
  calibnet-export --config r50 --weights model_final.pth --onnx calibnet_r50.onnx
  calibnet-export --config configs/CalibNet_R50_50e_50q_320size.yaml --weights model_final.pth \\
      --onnx calibnet_r50_320x448.onnx --height 320 --width 448 --verify

Without --weights the model gets calibnet's deterministic initialization: the file runs, but its outputs
are meaningless. The static input size should be the padded size of your frames after the official
resize (short side 320, long side <= 480): 320x448 for 4:3 frames, 320x480 for 3:2, 320x576 is never
needed. Implemented so far: the portable flavour, static size, full outputs (see README status).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-export``."""
    parser = argparse.ArgumentParser(prog="calibnet-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="r50", help="preset (r50, r101, r34, r18) or official YAML file")
    parser.add_argument("--weights", help="checkpoint: detectron2 format ({'model': state_dict}) or a state dict")
    parser.add_argument("--onnx", required=True, help="output .onnx path")
    parser.add_argument("--height", type=int, default=320, help="static input height, multiple of 32 (320)")
    parser.add_argument("--width", type=int, default=480, help="static input width, multiple of 32 (480)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..19 (17)")
    parser.add_argument("--verify", action="store_true",
                        help="run the file on ONNX Runtime CPU and compare with PyTorch; writes <onnx>.verify.json")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from calibnet import ConfigError, build_model
    from calibnet.checkpoint import CheckpointMismatchError

    from .onnx_export import export_onnx

    try:
        model = build_model(args.config, args.weights)
        path = export_onnx(model, args.onnx, height=args.height, width=args.width, opset=args.opset)
    except (ConfigError, FileNotFoundError, CheckpointMismatchError, ValueError, RuntimeError) as exc:
        print(f"calibnet-export: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    if not args.verify:
        return 0
    import onnxruntime as ort

    g = np.random.default_rng(0)
    rgb = (g.random((1, 3, args.height, args.width)) * 255).astype(np.float32)
    depth = (g.random((1, 1, args.height, args.width)) * 255).astype(np.float32)
    valid = np.array([[args.height, args.width]], dtype=np.int64)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"rgb": rgb, "depth": depth,
                                                                           "valid_hw": valid})))
    with torch.no_grad():
        ref = model(torch.from_numpy(rgb), torch.from_numpy(depth), image_sizes=torch.from_numpy(valid))
    tol = {"pred_logits": 1e-3, "pred_scores": 1e-3, "pred_masks": 1e-2, "depth_trust": 1e-3}
    report = {}
    for name, limit in tol.items():
        diff = float(np.abs(outs[name] - ref[name].numpy()).max())
        report[name] = {"max_abs_diff": diff, "tolerance": limit, "pass": diff <= limit}
    agree = float(((outs["pred_masks"] > 0) == (ref["pred_masks"].numpy() > 0)).mean())
    report["mask_agreement"] = {"value": agree, "tolerance": 0.999, "pass": agree >= 0.999}
    Path(str(path) + ".verify.json").write_text(json.dumps(report, indent=2))
    print(f"{'output':<16}{'max|diff|':>12}{'tolerance':>12}  result")
    for name, r in report.items():
        value = r.get("max_abs_diff", r.get("value"))
        print(f"{name:<16}{value:>12.2e}{r['tolerance']:>12.1e}  {'pass' if r['pass'] else 'FAIL'}")
    return 0 if all(r["pass"] for r in report.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
