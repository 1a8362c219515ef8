"""calibnet-infer: salient instances for RGB-D images, folders and videos with an exported CalibNet (no torch).

Examples:
  calibnet-infer calibnet.onnx --rgb A.jpg --depth A.png --out out/A
  calibnet-infer calibnet.onnx --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e
  calibnet-infer calibnet.onnx --ray --ray-actors 4 --rgb-dir COME-E/RGB --depth-dir COME-E/depth --out out/come-e
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

Batch runs keep their work: each image's results are appended to progress.jsonl as soon as it is done;
results.json / images.json / errors.json are written atomically at the end, or when the run is interrupted
(Ctrl-C / SIGTERM finish the current frame first). An input that cannot be read or is refused goes to
errors.json with the reason and the run goes on (--fail-fast: stop at the first). --resume skips the inputs
already done in --out, so an interrupted run continued with --resume writes exactly what an uninterrupted run
writes. Exit code: 0 every input succeeded, 1 some failed (see errors.json), 2 bad arguments or model file,
130 / 143 interrupted by SIGINT / SIGTERM (outputs written; continue with --resume).

--stream runs folders and videos through Runtime.stream (reading + pre-processing, inference and
post-processing in three threads) and prints per-stage p50/p99, capture-to-result latency and throughput;
--track adds stable instance IDs (track_id in results.json, one color per ID in the overlays).

Depth: 8-bit maps (the data sets' PNGs) are used as is; 16-bit or float maps (PNG/TIFF/.npy) are metric
depth and are converted to the model's 8-bit convention (near = dark for the official checkpoints), per
frame min-max over the valid pixels or over the fixed --depth-near/--depth-far range; 0/NaN/inf pixels
count as far. See calibnet.runtime.core.depth for the rule.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np

from ..runtime.apps.batchlog import BatchLog
from ..runtime.apps.overlay import draw_overlay
from ..runtime.apps.sources import Frame, FrameError, image_frames, match_pairs, video_frames
from ..runtime.core.depth import DEPTH_DIRECTIONS, DEPTH_KINDS, DepthFormat
from ..runtime.core.errors import InputError, run_cli
from ..runtime.core.filecheck import file_problem, one_line
from ..runtime.core.prediction import Prediction
from ..runtime.core.runtime import Runtime

#: default --max-pixels: larger images are refused (each kept mask is a full-size bool array)
MAX_PIXELS = 40_000_000


class CliError(Exception):
    """A user-facing error (printed without a traceback)."""


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


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise CliError(f"cannot write {path}")


class StopFlag:
    """SIGINT / SIGTERM during a batch run: finish the current frame, write what is done, exit 128+signal.
    A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"calibnet-infer: {signal.Signals(signum).name}: finishing the current frame, then writing the "
              "outputs (continue with --resume)", file=sys.stderr)

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class Task:
    """One input of a run: its key in progress.jsonl and its images.json entry (id, file names, frame)."""

    key: str
    image: dict[str, Any]


@dataclass
class Inputs:
    """What a run reads: frames (or FrameErrors) with their tasks, in image-id order."""

    items: Iterator[tuple[Task, Frame | FrameError]]
    total: int
    video: bool = False
    fps: float = 0.0
    skipped: int = 0  # already done (--resume)


def folder_tasks(pairs: list[tuple[Path, Path]]) -> list[Task]:
    """The tasks of (rgb, depth) pairs: key = the RGB file name, image id = position in the pairs (from 1)."""
    return [Task(r.name, {"id": i, "file_name": r.name, "depth_file": d.name})
            for i, (r, d) in enumerate(pairs, start=1)]


def _inputs(args: argparse.Namespace, log: BatchLog) -> Inputs:
    """The frames of the run's mode, skipping those ``log`` has done."""
    if args.video:
        if args.depth_video and args.depth_dir:
            raise CliError("give --depth-video or --depth-dir with --video, not both")
        if not (args.depth_video or args.depth_dir):
            raise CliError("video mode needs --depth-video or --depth-dir (depth frames)")
        frames, fps, total = video_frames(Path(args.video), Path(args.depth_video) if args.depth_video else None,
                                          Path(args.depth_dir) if args.depth_dir else None, args.max_frames,
                                          errors="yield")
        skipped = sum(log.done(str(i)) for i in range(total))

        def video_items() -> Iterator[tuple[Task, Frame | FrameError]]:
            try:
                for i, fr in enumerate(frames):
                    if not log.done(str(i)):
                        yield Task(str(i), {"id": i + 1, "file_name": fr.name, "frame_index": i}), fr
            finally:
                frames.close()  # type: ignore[attr-defined]

        return Inputs(video_items(), total - skipped, True, fps, skipped)
    if args.rgb_dir or args.depth_dir:
        if not (args.rgb_dir and args.depth_dir):
            raise CliError("folder mode needs both --rgb-dir and --depth-dir")
        pairs = match_pairs(Path(args.rgb_dir), Path(args.depth_dir))
    elif args.rgb and args.depth:
        pairs = [(Path(args.rgb), Path(args.depth))]
    else:
        raise CliError("give --rgb and --depth, --rgb-dir and --depth-dir, or --video and --depth-video/--depth-dir "
                       "(see --help)")
    tasks = folder_tasks(pairs)
    todo = [(t, pair) for t, pair in zip(tasks, pairs) if not log.done(t.key)]
    items = ((t, next(image_frames([pair], errors="yield"))) for t, pair in todo)
    return Inputs(items, len(todo), skipped=len(tasks) - len(todo))


def _open_runtime(args: argparse.Namespace, fmt: DepthFormat) -> Runtime:
    path = Path(args.model)
    problem = file_problem(path)
    if problem is not None:
        raise CliError(f"{path}: {problem}")
    try:
        extra = {"threads": args.threads} if args.threads else {}
        rt = Runtime.open(path, depth_format=fmt, strict=args.strict, **extra)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a bad model file for the user
        raise CliError(f"{path}: cannot load the model ({one_line(exc)})") from None
    names = set(rt.backend.input_names)
    expected = set(rt.metadata.input_names)
    if names != expected:
        raise CliError(f"{path}: not a CalibNet model (inputs {sorted(names)}; expected {sorted(expected)})")
    return rt


class Run:
    """One calibnet-infer batch run over its inputs (sequential or streamed)."""

    def __init__(self, args: argparse.Namespace, rt: Runtime, log: BatchLog, inputs: Inputs) -> None:
        self.args, self.rt, self.log, self.inputs = args, rt, log, inputs
        self.out = Path(args.out)
        self.stage = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        self.n_ok = self.n_failed = 0
        self.out.mkdir(parents=True, exist_ok=True)
        self.sink: VideoSink | None = None
        if inputs.video and not args.no_overlay:
            name = "overlay.avi" if not inputs.skipped else f"overlay_from_{inputs.skipped:06d}.avi"
            self.sink = VideoSink(self.out / name, inputs.fps)
        if args.saliency:
            (self.out / "saliency" if inputs.video else self.out).mkdir(parents=True, exist_ok=True)

    def check(self, frame: Frame) -> None:
        """Refusals before the model runs (too many pixels)."""
        h, w = frame.rgb.shape[:2]
        if self.args.max_pixels and h * w > self.args.max_pixels:
            raise InputError(f"image {w}x{h} ({h * w / 1e6:.1f} MP) is larger than --max-pixels "
                             f"{self.args.max_pixels / 1e6:.1f} MP (each kept mask is a full-size array; raise "
                             "--max-pixels to run it)")

    def failed(self, task: Task, reason: str, depth_source: str = "") -> None:
        """Record an input that could not be read or was refused (errors.json) and say so on stderr."""
        image = dict(task.image)
        if depth_source and "depth_file" not in image:
            image["depth_file"] = depth_source
        self.log.add_error(task.key, image, reason)
        self.n_failed += 1
        print(f"calibnet-infer: {task.image['file_name']}: {reason}", file=sys.stderr)

    def done(self, task: Task, frame: Frame, pred: Prediction, caught: list[str]) -> None:
        """Write a finished input's overlay / saliency map and record its results (progress.jsonl)."""
        args, out = self.args, self.out
        results = [r for r in pred.coco_results(task.image["id"]) if r["score"] >= args.min_score]
        image = {**task.image, "height": int(frame.rgb.shape[0]), "width": int(frame.rgb.shape[1])}
        if caught:
            image["warnings"] = caught
        if not args.no_overlay:
            overlay = draw_overlay(frame.rgb, pred)
            if self.sink is not None:
                self.sink.write(overlay)
            else:
                _imwrite(out / f"{frame.stem}_overlay.png", overlay[:, :, ::-1])
        if args.saliency:
            target = out / "saliency" / f"{frame.stem}.png" if self.inputs.video else out / f"{frame.stem}_saliency.png"
            _imwrite(target, np.rint(pred.saliency_map() * 255.0).astype(np.uint8))  # 255 x the best covering score
        self.log.add_result(task.key, image, results)
        self.n_ok += 1
        for k in self.stage:
            self.stage[k] += pred.timings.get(k, 0.0)

    def sequential(self, stop: StopFlag, bar: Any) -> None:
        """One input after the other; stops after the current one on a signal (or the first failure with
        --fail-fast)."""
        for task, fr in self.inputs.items:
            if isinstance(fr, FrameError):
                self.failed(task, str(fr.error), fr.depth_source)
            else:
                try:
                    with warnings.catch_warnings(record=True) as ws:
                        warnings.simplefilter("always")
                        self.check(fr)
                        pred = self.rt.predict(fr.rgb, fr.depth)
                    caught = [str(w.message) for w in ws]
                    for w in ws:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                except InputError as exc:
                    self.failed(task, str(exc), fr.depth_source)
                else:
                    self.done(task, fr, pred, caught)
                    if not self.inputs.video:
                        ms = {k: v * 1e3 for k, v in pred.timings.items()}
                        bar.write(f"{fr.name}: {len(pred)} instances, top score "
                                  f"{pred.scores[0] if len(pred) else 0:.3f}, pre {ms['pre']:.1f} ms, "
                                  f"infer {ms['infer']:.1f} ms, post {ms['post']:.1f} ms")
            bar.update(1)
            if stop.signum or (self.args.fail_fast and self.n_failed):
                break

    def streamed(self, stop: StopFlag, bar: Any) -> None:
        """The inputs through Runtime.stream (policy "all", tracking with --track); frames in flight when a
        signal arrives are dropped, not recorded (--resume redoes them)."""
        meta: list[tuple[Task, str]] = []  # (task, depth file) by stream index: small, frames are not kept

        def source() -> Iterator[Frame | FrameError]:
            for task, fr in self.inputs.items:
                meta.append((task, fr.depth_source))
                if isinstance(fr, Frame):
                    try:
                        self.check(fr)
                    except InputError as exc:
                        fr = FrameError(fr.name, fr.stem, exc, fr.depth_source)
                yield fr

        def on_error(index: int, name: str, exc: BaseException) -> None:
            del name
            self.failed(meta[index][0], str(exc), meta[index][1])
            bar.update(1)

        st = self.rt.stream(source(), policy="all", track=self.args.track, on_error=on_error)
        try:
            for sf, pred in st:
                self.done(meta[sf.index][0], sf.source, pred, [])
                bar.update(1)
                if stop.signum or (self.args.fail_fast and self.n_failed):
                    break
        finally:
            st.close()
        self.stats = st.stats()


def run(args: argparse.Namespace) -> int:
    """Run calibnet-infer on parsed arguments; CliError for user errors. Returns the exit code."""
    if args.ray:
        return _ray(args, _depth_format(args))
    with _open_runtime(args, _depth_format(args)) as rt:
        return _run_batch(args, rt)


def _run_batch(args: argparse.Namespace, rt: Runtime) -> int:
    out = Path(args.out)
    log = BatchLog(out, resume=args.resume)
    try:
        inputs = _inputs(args, log)
    except InputError as exc:
        raise CliError(str(exc)) from None
    if args.resume and inputs.skipped:
        print(f"calibnet-infer: resuming: {inputs.skipped} inputs already done in {out}", file=sys.stderr)
    from tqdm import tqdm  # type: ignore[import-untyped]

    job = Run(args, rt, log, inputs)
    bar = tqdm(total=inputs.total or None, desc="infer", unit="frame" if inputs.video else "img",
               disable=inputs.total <= 1 and not inputs.video)
    t0 = time.perf_counter()
    try:
        with StopFlag() as stop:
            if args.stream or args.track:
                job.streamed(stop, bar)
            else:
                job.sequential(stop, bar)
    finally:
        bar.close()
        if job.sink is not None:
            job.sink.close()
        n_det, n_img = log.write_outputs()
        log.close()
    wall = time.perf_counter() - t0
    errors = log.errors
    print(f"wrote {n_det} detections for {n_img} {'frames' if inputs.video else 'images'} to {out / 'results.json'}"
          + (f" and {job.sink.path}" if job.sink is not None and job.n_ok else "")
          + (f"; {len(errors)} failed, see {out / 'errors.json'}" if errors else ""))
    if job.n_ok:
        mean = {k: v / job.n_ok * 1e3 for k, v in job.stage.items()}
        print(f"this run: {job.n_ok} frames in {wall:.1f} s ({job.n_ok / max(wall, 1e-9):.2f} frames/s with I/O); "
              f"mean per frame: pre {mean['pre']:.1f} ms, infer {mean['infer']:.1f} ms, post {mean['post']:.1f} ms")
    if hasattr(job, "stats"):
        print(job.stats.summary())
    if stop.signum:
        return 128 + stop.signum
    return 1 if errors or not n_img else 0


def _ray(args: argparse.Namespace, fmt: DepthFormat) -> int:
    """Folder mode on Ray Data (calibnet.serving.ray_batch, a consumer of the runtime: imported only here)."""
    if not (args.rgb_dir and args.depth_dir) or args.video:
        raise CliError("--ray runs folder mode: give --rgb-dir and --depth-dir")
    try:
        from calibnet.serving.ray_batch import ray_batch
    except ImportError as exc:
        raise CliError(f"--ray needs Ray Data: pip install 'calibnet[serving]' ({exc})") from None
    rep = ray_batch(args.model, args.rgb_dir, args.depth_dir, args.out, address=args.ray_address,
                    num_actors=args.ray_actors, batch_size=args.ray_batch, threads=args.threads or 1,
                    num_cpus=args.ray_cpus, depth_format=fmt, min_score=args.min_score, strict=args.strict,
                    resume=args.resume)
    print(f"wrote {rep.detections} detections for {rep.total - rep.failed} images to {rep.out / 'results.json'}"
          + (f"; {rep.failed} failed, see {rep.out / 'errors.json'}" if rep.failed else "")
          + f" (this run: {rep.done} images in {rep.wall_s:.1f} s on Ray)")
    return 1 if rep.failed else 0


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
    io.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                    help=f"refuse larger images (default {MAX_PIXELS:,}; 0: no limit)")
    dp = parser.add_argument_group("depth")
    dp.add_argument("--depth-format", choices=DEPTH_KINDS, default="auto",
                    help="auto (default): 8-bit used as is, 16-bit/float = metric depth; u8-inverted: an 8-bit map "
                         "in the other convention; disparity: larger = nearer")
    dp.add_argument("--depth-near", type=float, help="fixed near end of the range, in the map's units (e.g. mm)")
    dp.add_argument("--depth-far", type=float, help="fixed far end of the range (default: per-frame min-max)")
    dp.add_argument("--depth-direction", choices=DEPTH_DIRECTIONS,
                    help="the model's 8-bit convention (default: from the model, near-dark for official weights)")
    dp.add_argument("--strict", action="store_true", help="error instead of resizing a depth map of another size")
    r = parser.add_argument_group("batch runs")
    r.add_argument("--resume", action="store_true", help="skip the inputs already done in --out (progress.jsonl)")
    r.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    r.add_argument("--stream", action="store_true",
                   help="pipelined: read/pre-process, inference and post-process in three threads; prints "
                        "per-stage and capture-to-result p50/p99 and throughput")
    r.add_argument("--track", action="store_true",
                   help="stable instance IDs across frames (track_id in results.json, one color per ID); "
                        "implies --stream")
    r.add_argument("--threads", type=int, default=0, help="CPU threads of ONNX Runtime / torch (default: theirs)")
    ray = parser.add_argument_group("Ray (folder mode on a Ray cluster: calibnet.serving.ray_batch)")
    ray.add_argument("--ray", action="store_true", help="run the folder's pairs with Ray Data, one runtime per actor")
    ray.add_argument("--ray-address", help="join this cluster (e.g. ray://head:10001 or auto; default: a local one)")
    ray.add_argument("--ray-actors", type=int, default=1, help="actors, each with its own runtime (default 1)")
    ray.add_argument("--ray-batch", type=int, default=4, help="pairs per map_batches call (default 4)")
    ray.add_argument("--ray-cpus", type=int, help="CPUs of the local cluster (default: all)")
    o = parser.add_argument_group("outputs")
    o.add_argument("--out", default="out/infer", help="output folder (default: out/infer)")
    o.add_argument("--min-score", type=float, default=0.0, help="drop detections below this score in the json")
    o.add_argument("--no-overlay", action="store_true", help="no overlay PNGs / overlay video")
    o.add_argument("--saliency", action="store_true", help="also write the per-pixel saliency map PNG")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``calibnet-infer``."""
    return run_cli("calibnet-infer", build_parser(), run, argv, (CliError, InputError), files=lambda a: [a.model])


if __name__ == "__main__":
    raise SystemExit(main())
