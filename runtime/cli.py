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
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .backends.base import BackendUnavailable
from .depth import DEPTH_DIRECTIONS, DEPTH_KINDS, DepthFormat
from .errors import InputError
from .overlay import draw_overlay
from .prediction import Prediction
from .runtime import Runtime

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".npy"}


class CliError(Exception):
    """A user-facing error (printed without a traceback)."""


def _imread(path: Path, flags: int, what: str) -> np.ndarray:
    if not path.is_file():
        raise CliError(f"file not found: {path}")
    img = cv2.imread(str(path), flags)
    if img is None or img.size == 0:
        raise CliError(f"cannot read {what}: {path}")
    return img


def read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB image from a file; CliError naming the file if unreadable."""
    return _imread(path, cv2.IMREAD_COLOR, "image")[:, :, ::-1].copy()


def read_depth(path: Path) -> np.ndarray:
    """A depth map as stored: 8-bit, 16-bit or float (PNG/TIFF via OpenCV, or a .npy array); gray
    images saved with three channels give their first channel. CliError naming the file if unreadable."""
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise CliError(f"file not found: {path}")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read depth map: {path} ({exc})") from None
        return np.asarray(arr)
    img = _imread(path, cv2.IMREAD_UNCHANGED, "depth map")
    return img if img.ndim == 2 else img[:, :, 0]


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CliError(f"folder not found: {folder}")
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_natural_key)


def match_pairs(rgb_dir: Path, depth_dir: Path) -> list[tuple[Path, Path]]:
    """(rgb, depth) files with the same stem; warns about unmatched files."""
    rgbs = {p.stem: p for p in _image_files(rgb_dir)}
    depths = {p.stem: p for p in _image_files(depth_dir)}
    missing = sorted(set(rgbs) - set(depths))
    if missing:
        warnings.warn(f"{len(missing)} RGB images have no depth map (e.g. {missing[0]}); skipped", stacklevel=2)
    pairs = [(rgbs[s], depths[s]) for s in sorted(set(rgbs) & set(depths))]
    if not pairs:
        raise CliError(f"no RGB/depth pairs with matching file stems in {rgb_dir} and {depth_dir}")
    return pairs


@dataclass
class Frame:
    """One RGB-D input of any mode."""

    name: str  # file name (images) or "<video>#<index>" (video frames)
    stem: str  # for output file names
    rgb: np.ndarray
    depth: np.ndarray
    depth_source: str  # what to name in an error about the depth


def _open_video(path: Path, what: str) -> cv2.VideoCapture:
    if not path.is_file():
        raise CliError(f"file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CliError(f"cannot open {what}: {path}")
    return cap


def video_frames(video: Path, depth_video: Path | None, depth_dir: Path | None,
                 max_frames: int = 0) -> tuple[Iterator[Frame], float, int]:
    """(frames, fps, frame count or 0 if unknown) of a video mode run; depth from a second video or from a
    folder of depth frames matched by index."""
    cap = _open_video(video, "video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    dcap = _open_video(depth_video, "depth video") if depth_video else None
    files = _image_files(depth_dir) if depth_dir else []
    if depth_dir and not files:
        raise CliError(f"no depth frames in {depth_dir}")
    if files:
        if count and len(files) != count:
            warnings.warn(f"{video} has {count} frames but {depth_dir} {len(files)} depth frames: "
                          f"using the first {min(count, len(files))}", stacklevel=2)
        count = min(count, len(files)) if count else len(files)
    if max_frames:
        count = min(count, max_frames) if count else max_frames

    def gen() -> Iterator[Frame]:
        try:
            i = 0
            while not max_frames or i < max_frames:
                ok, bgr = cap.read()
                if not ok:
                    break
                if dcap is not None:
                    dok, dframe = dcap.read()
                    if not dok:
                        warnings.warn(f"{depth_video} ended after {i} frames; stopping", stacklevel=2)
                        break
                    depth, source = dframe[:, :, 0] if dframe.ndim == 3 else dframe, f"{depth_video} frame {i}"
                else:
                    if i >= len(files):
                        break
                    depth, source = read_depth(files[i]), str(files[i])
                yield Frame(f"{video.name}#{i}", f"{video.stem}_{i:06d}", bgr[:, :, ::-1].copy(), depth, source)
                i += 1
        finally:
            cap.release()
            if dcap is not None:
                dcap.release()

    return gen(), fps if fps and np.isfinite(fps) and fps > 0 else 25.0, count


def image_frames(pairs: list[tuple[Path, Path]]) -> Iterator[Frame]:
    """Frames of the single-pair and folder modes."""
    for rgb_path, depth_path in pairs:
        yield Frame(rgb_path.name, rgb_path.stem, read_rgb(rgb_path), read_depth(depth_path), str(depth_path))


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
    """Entry point of ``calibnet-infer``."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CliError as exc:
        print(f"calibnet-infer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
