"""calibnet-infer: salient instances for RGB-D images, folders and videos with an exported CalibNet (no torch).

Examples:
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A.png --out out/A
  calibnet-infer calibnet.onnx --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A_mm.png --depth-format metric --depth-near 300 \\
      --depth-far 4000 --out out/A            # a 16-bit depth PNG in millimetres (RealSense/Kinect)
  calibnet-infer calibnet.onnx --video scene.mp4 --depth-video scene_depth.mp4 --out out/scene
  calibnet-infer calibnet.onnx --video scene.mp4 --depth-dir scene_depth/ --depth-format metric --saliency

Modes:
  single pair  --rgb and --depth;
  folder       --rgb-dir and --depth-dir: pairs matched by file stem (A.jpg <-> A.png), as in the
               COME15K/DSIS/SIP layout; image ids in sorted stem order;
  video        --video plus --depth-video (frame by frame) or --depth-dir (depth frames matched to video
               frames by index in natural sort order: 2.png before 10.png); writes overlay.avi (MJPG).

Writes results.json (COCO results: RLE segmentation, score, category 1, image id), images.json (id, file
name, size; in video mode one image id per frame), an overlay PNG per image (or the overlay video) and, with
--saliency, the per-pixel saliency map (255 x the score of the best instance covering the pixel) as PNG.

Depth: 8-bit maps (the data sets' PNGs) are used as is; 16-bit or float maps (PNG/TIFF/.npy) are metric
depth and are converted to the model's 8-bit convention (near = dark for the official checkpoints), per
frame min-max over the valid pixels or over the fixed --depth-near/--depth-far range; 0/NaN/inf pixels
count as far. See calibnet.runtime.depth for the rule.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .backends.base import BackendUnavailable
from .depth import DEPTH_DIRECTIONS, DEPTH_KINDS, DepthFormat
from .errors import InputError, run_cli
from .overlay import draw_overlay
from .prediction import Prediction
from .runtime import Runtime
from .sources import image_frames, match_pairs, video_frames


class CliError(Exception):
    """A user-facing error (printed without a traceback)."""


def saliency_png(pred: Prediction) -> np.ndarray:
    """uint8 [H,W] saliency image: 255 x the highest score of the instances covering each pixel."""
    return np.rint(pred.saliency_map() * 255.0).astype(np.uint8)


class VideoSink:
    """The overlay video of a video-mode run (MJPG in .avi: OpenCV writes it without extra codecs)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None:
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"MJPG"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise CliError(f"cannot write video: {self.path}")
        self.writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _depth_format(args: argparse.Namespace) -> DepthFormat:
    try:
        return DepthFormat(args.depth_format, args.depth_near, args.depth_far, args.depth_direction)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Run calibnet-infer on parsed arguments; CliError for user errors."""
    fmt = _depth_format(args)
    video_mode = bool(args.video)
    if video_mode:
        if args.depth_video and args.depth_dir:
            raise CliError("give --depth-video or --depth-dir with --video, not both")
        if not (args.depth_video or args.depth_dir):
            raise CliError("video mode needs --depth-video or --depth-dir (depth frames)")
        frames, fps, total = video_frames(Path(args.video), Path(args.depth_video) if args.depth_video else None,
                                          Path(args.depth_dir) if args.depth_dir else None, args.max_frames)
    elif args.rgb_dir or args.depth_dir:
        if not (args.rgb_dir and args.depth_dir):
            raise CliError("folder mode needs both --rgb-dir and --depth-dir")
        pairs = match_pairs(Path(args.rgb_dir), Path(args.depth_dir))
        frames, fps, total = image_frames(pairs), 0.0, len(pairs)
    elif args.rgb and args.depth:
        pairs = [(Path(args.rgb), Path(args.depth))]
        frames, fps, total = image_frames(pairs), 0.0, 1
    else:
        raise CliError("give --rgb and --depth, --rgb-dir and --depth-dir, or --video and --depth-video/--depth-dir "
                       "(see --help)")
    try:
        rt = Runtime.open(args.model, depth_format=fmt, strict=args.strict)
    except (FileNotFoundError, ValueError, BackendUnavailable) as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.saliency:
        (out / "saliency" if video_mode else out).mkdir(parents=True, exist_ok=True)
    sink = VideoSink(out / "overlay.avi", fps) if video_mode and not args.no_overlay else None
    from tqdm import tqdm  # type: ignore[import-untyped]

    results: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    stage = {"pre": 0.0, "infer": 0.0, "post": 0.0}
    bar = tqdm(frames, total=total or None, desc="infer", unit="frame" if video_mode else "img",
               disable=total == 1)
    try:
        for image_id, fr in enumerate(bar, start=1):
            try:
                pred = rt.predict(fr.rgb, fr.depth)
            except InputError as exc:
                where = fr.name if "depth" not in str(exc) else f"{fr.name} / {fr.depth_source}"
                raise CliError(f"{where}: {exc}") from None
            results.extend(r for r in pred.coco_results(image_id) if r["score"] >= args.min_score)
            entry = {"id": image_id, "file_name": fr.name, "height": fr.rgb.shape[0], "width": fr.rgb.shape[1]}
            if video_mode:
                entry["frame_index"] = image_id - 1
            images.append(entry)
            if not args.no_overlay:
                overlay = draw_overlay(fr.rgb, pred)
                if sink is not None:
                    sink.write(overlay)
                else:
                    cv2.imwrite(str(out / f"{fr.stem}_overlay.png"), overlay[:, :, ::-1])
            if args.saliency:
                target = out / "saliency" / f"{fr.stem}.png" if video_mode else out / f"{fr.stem}_saliency.png"
                cv2.imwrite(str(target), saliency_png(pred))
            for k in stage:
                stage[k] += pred.timings[k]
            if not video_mode:
                ms = {k: v * 1e3 for k, v in pred.timings.items()}
                bar.write(f"{fr.name}: {len(pred)} instances, top score {pred.scores[0] if len(pred) else 0:.3f}, "
                          f"pre {ms['pre']:.1f} ms, infer {ms['infer']:.1f} ms, post {ms['post']:.1f} ms")
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    if not images:
        raise CliError(f"no frames could be read from {args.video}" if video_mode else "no images")
    (out / "results.json").write_text(json.dumps(results))
    (out / "images.json").write_text(json.dumps(images, indent=1))
    n = len(images)
    mean = {k: v / n * 1e3 for k, v in stage.items()}
    print(f"wrote {len(results)} detections for {n} {'frames' if video_mode else 'images'} to {out / 'results.json'}"
          + (f" and {sink.path}" if sink is not None else ""))
    print(f"mean per frame: pre {mean['pre']:.1f} ms, infer {mean['infer']:.1f} ms, post {mean['post']:.1f} ms "
          f"({1e3 / max(sum(mean.values()), 1e-9):.1f} FPS without I/O)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``calibnet-infer``."""
    parser = argparse.ArgumentParser(prog="calibnet-infer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="exported model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT)")
    io = parser.add_argument_group("inputs")
    io.add_argument("--rgb", help="RGB image")
    io.add_argument("--depth", help="depth map: 8-bit PNG as in the data sets, or 16-bit PNG / float TIFF / .npy")
    io.add_argument("--rgb-dir", help="folder of RGB images (folder mode)")
    io.add_argument("--depth-dir", help="folder of depth maps: same file stems (folder mode) or frames (video mode)")
    io.add_argument("--video", help="RGB video (video mode)")
    io.add_argument("--depth-video", help="depth video, frame by frame with --video (8-bit gray)")
    io.add_argument("--max-frames", type=int, default=0, help="video mode: stop after this many frames (0: all)")
    dp = parser.add_argument_group("depth")
    dp.add_argument("--depth-format", choices=DEPTH_KINDS, default="auto",
                    help="auto (default): 8-bit used as is, 16-bit/float = metric depth; u8-inverted: an 8-bit map "
                         "in the other convention; disparity: larger = nearer")
    dp.add_argument("--depth-near", type=float, help="fixed near end of the range, in the map's units (e.g. mm)")
    dp.add_argument("--depth-far", type=float, help="fixed far end of the range (default: per-frame min-max)")
    dp.add_argument("--depth-direction", choices=DEPTH_DIRECTIONS,
                    help="the model's 8-bit convention (default: from the model, near-dark for official weights)")
    dp.add_argument("--strict", action="store_true", help="error instead of resizing a depth map of another size")
    o = parser.add_argument_group("outputs")
    o.add_argument("--out", default="out/infer", help="output folder (default: out/infer)")
    o.add_argument("--min-score", type=float, default=0.0, help="drop detections below this score in the json")
    o.add_argument("--no-overlay", action="store_true", help="no overlay PNGs / overlay video")
    o.add_argument("--saliency", action="store_true", help="also write the per-pixel saliency map PNG")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-infer``; InputError: a file or folder that cannot be read, named."""
    return run_cli("calibnet-infer", build_parser(), run, argv, (CliError, InputError))


if __name__ == "__main__":
    raise SystemExit(main())
