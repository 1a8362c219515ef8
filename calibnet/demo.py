"""calibnet-demo: the main job on an embedded default (placeholder until export and runtime land)."""

from __future__ import annotations

import argparse
import time


def main(argv: list[str] | None = None) -> int:
    """Build the default R50 model and run one forward on a synthetic frame."""
    parser = argparse.ArgumentParser(prog="calibnet-demo", description=__doc__)
    parser.add_argument("--config", default="r50")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args(argv)
    import torch

    from calibnet import build_model

    model = build_model(args.config, args.weights)
    rgb = torch.rand(1, 3, 320, 480) * 255
    depth = torch.rand(1, 1, 320, 480) * 255
    t = time.perf_counter()
    with torch.no_grad():
        out = model(rgb, depth)
    print(f"forward 320x480: {(time.perf_counter() - t) * 1000:.0f} ms, masks {tuple(out['pred_masks'].shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
