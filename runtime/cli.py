"""calibnet-infer: salient instances for RGB-D image pairs with an exported CalibNet (no torch needed).

Examples:
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A.png --out out/A
  calibnet-infer calibnet.onnx --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e

Pairs in folder mode are matched by file stem (A.jpg <-> A.png), as in the COME15K/DSIS/SIP layout.
Writes results.json (COCO results: RLE segmentation, score, category 1), one overlay PNG per image and,
in folder mode, image ids in sorted stem order. Depth must be an 8-bit map (0..255) as in the data sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from .backends.base import BackendUnavailable
from .overlay import draw_overlay
from .preprocess import InputError
from .runtime import Runtime

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


class CliError(Exception):
    """A user-facing error (printed without a traceback)."""


def _imread(path: Path, flags: int, what: str) -> np.ndarray:
    if not path.is_file():
        raise CliError(f"file not found: {path}")
    img = cv2.imread(str(path), flags)
    if img is None:
        raise CliError(f"cannot read {what}: {path}")
    return img


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB image from a file; CliError naming the file if unreadable."""
    return _imread(path, cv2.IMREAD_COLOR, "image")[:, :, ::-1].copy()


def read_depth(path: Path) -> np.ndarray:
    """uint8 depth map (gray) from a file; CliError naming the file if unreadable or not 8-bit."""
    img = _imread(path, cv2.IMREAD_UNCHANGED, "depth map")
    if img.dtype != np.uint8:
        raise CliError(f"{path}: depth must be an 8-bit PNG (0..255, near = bright), got {img.dtype}")
    return img if img.ndim == 2 else img[:, :, 0]


def match_pairs(rgb_dir: Path, depth_dir: Path) -> list[tuple[Path, Path]]:
    """(rgb, depth) files with the same stem; warns about unmatched files."""
    for d in (rgb_dir, depth_dir):
        if not d.is_dir():
            raise CliError(f"folder not found: {d}")
    rgbs = {p.stem: p for p in sorted(rgb_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTS}
    depths = {p.stem: p for p in sorted(depth_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTS}
    missing = sorted(set(rgbs) - set(depths))
    if missing:
        warnings.warn(f"{len(missing)} RGB images have no depth map (e.g. {missing[0]}); skipped", stacklevel=2)
    pairs = [(rgbs[s], depths[s]) for s in sorted(set(rgbs) & set(depths))]
    if not pairs:
        raise CliError(f"no RGB/depth pairs with matching file stems in {rgb_dir} and {depth_dir}")
    return pairs


def run(args: argparse.Namespace) -> int:
    if args.rgb_dir or args.depth_dir:
        if not (args.rgb_dir and args.depth_dir):
            raise CliError("folder mode needs both --rgb-dir and --depth-dir")
        pairs = match_pairs(Path(args.rgb_dir), Path(args.depth_dir))
    elif args.rgb and args.depth:
        pairs = [(Path(args.rgb), Path(args.depth))]
    else:
        raise CliError("give --rgb and --depth, or --rgb-dir and --depth-dir (see --help)")
    try:
        rt = Runtime.open(args.model)
    except (FileNotFoundError, ValueError, BackendUnavailable) as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    results, images = [], []
    for image_id, (rgb_path, depth_path) in enumerate(tqdm(pairs, desc="infer", unit="img", disable=len(pairs) < 2),
                                                      start=1):
        rgb, depth = read_rgb(rgb_path), read_depth(depth_path)
        if depth.shape != rgb.shape[:2]:
            if args.strict:
                raise CliError(f"{depth_path}: depth {depth.shape} and RGB {rgb.shape[:2]} sizes differ (--strict)")
            warnings.warn(f"{depth_path}: depth resized from {depth.shape} to the RGB size {rgb.shape[:2]}",
                          stacklevel=2)
            depth = cv2.resize(depth, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        try:
            pred = rt.predict(rgb, depth)
        except InputError as exc:
            raise CliError(f"{rgb_path}: {exc}") from None
        results.extend(r for r in pred.coco_results(image_id) if r["score"] >= args.min_score)
        images.append({"id": image_id, "file_name": rgb_path.name, "height": rgb.shape[0], "width": rgb.shape[1]})
        if not args.no_overlay:
            cv2.imwrite(str(out / f"{rgb_path.stem}_overlay.png"), draw_overlay(rgb, pred)[:, :, ::-1])
        t = pred.timings
        print(f"{rgb_path.name}: {len(pred)} instances, top score {pred.scores[0] if len(pred) else 0:.3f}, "
              f"pre {t['pre'] * 1e3:.1f} ms, infer {t['infer'] * 1e3:.1f} ms, post {t['post'] * 1e3:.1f} ms")
    (out / "results.json").write_text(json.dumps(results))
    (out / "images.json").write_text(json.dumps(images, indent=1))
    print(f"wrote {len(results)} detections for {len(images)} images to {out / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-infer``."""
    parser = argparse.ArgumentParser(prog="calibnet-infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="exported model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT)")
    parser.add_argument("--rgb", help="RGB image")
    parser.add_argument("--depth", help="8-bit depth map (PNG, near = bright)")
    parser.add_argument("--rgb-dir", help="folder of RGB images (folder mode)")
    parser.add_argument("--depth-dir", help="folder of depth maps with the same file stems")
    parser.add_argument("--out", default="out/infer", help="output folder (default: out/infer)")
    parser.add_argument("--strict", action="store_true", help="error instead of resizing a mismatched depth map")
    parser.add_argument("--min-score", type=float, default=0.0, help="drop detections below this score in the json")
    parser.add_argument("--no-overlay", action="store_true", help="do not write overlay PNGs")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        print(f"calibnet-infer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
