"""Batch runs that keep their work: a folder, a video or one pair through a :class:`Runtime`, results on disk.

:func:`run_batch` reads the frames :class:`BatchInputs` names, runs them (one after the other, or pipelined
through :meth:`Runtime.stream <calibnet.runtime.core.runtime.Runtime.stream>` with tracking), and records every
finished input at once in the output folder's ``progress.jsonl`` (:class:`~.batchlog.BatchLog`), so nothing
finished is lost: ``results.json``, ``images.json`` and ``errors.json`` are written at the end, or when SIGINT /
SIGTERM interrupt the run (the current frame is finished first); ``resume`` skips what the folder already has.
An input that cannot be read or is refused goes to ``errors.json`` with its reason and the run goes on
(``fail_fast``: stop). Overlay PNGs (or an overlay video) and saliency maps are written beside the results.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..core.depth import DepthFormat
from ..core.errors import InputError
from ..core.limits import InputLimits, default_limits
from ..core.prediction import Prediction
from ..core.runtime import Runtime
from .batchlog import BatchLog, finished_entry
from .overlay import DRAW_MIN_SCORE, draw_overlay
from .robot_batch import RobotOutputs, continued
from .sources import BagSource, Frame, FrameError, RealSenseSource, image_frames, match_pairs, video_frames
from .sources.pairing import median_period_ns
from .stream import StreamStats
from .tracking import InstanceTracker

__all__ = ["BatchInputs", "BatchOptions", "BatchResult", "Task", "folder_tasks", "run_batch"]


@dataclass(frozen=True)
class BatchInputs:
    """Where a run's frames come from, one mode: a pair (``rgb`` + ``depth``), two folders paired by file stem
    (``rgb_dir`` + ``depth_dir``), a video (``video`` + ``depth_video`` frame by frame, or + ``depth_dir``
    frames by index), a ROS bag (``bag``, its topics found or named, colour paired with depth within
    ``max_skew_ms``), or a RealSense camera (``realsense``) or recording (``realsense_bag``); at most
    ``max_frames`` frames of a sequence (0: all)."""

    rgb: str | None = None
    depth: str | None = None
    rgb_dir: str | None = None
    depth_dir: str | None = None
    video: str | None = None
    max_frames: int = 0
    depth_video: str | None = None
    bag: str | None = None
    rgb_topic: str | None = None
    depth_topic: str | None = None
    max_skew_ms: float | None = None
    realsense: bool = False
    realsense_bag: str | None = None


@dataclass(frozen=True)
class BatchOptions:
    """How a run treats its inputs and what it writes into ``out``."""

    out: Path
    resume: bool = False
    fail_fast: bool = False
    stream: bool = False  # pipelined through Runtime.stream (implied by track)
    track: bool = False  # stable instance IDs (track_id in results.json)
    min_score: float = 0.0  # results below it are not written
    overlay: bool = True
    saliency: bool = False
    limits: InputLimits | None = None  # every input's pixel and byte limits (None: default_limits())
    bag_out: Path | None = None  # the results as a ROS 2 MCAP (robot_batch.RobotOutputs)
    bag_copy_inputs: bool = False  # ... with the input frames
    rerun: Path | None = None  # a Rerun recording
    rerun_spawn: bool = False  # a Rerun viewer
    overlay_min_score: float = DRAW_MIN_SCORE  # the overlays draw, and the tracker tracks, only those at or above it


@dataclass
class BatchResult:
    """What a run did: counts, seconds, the stream statistics (streamed runs) and the signal that stopped it."""

    out: Path
    video: bool
    detections: int = 0
    images: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    video_path: Path | None = None
    stats: StreamStats | None = None
    signum: int = 0
    damage: str | None = None  # what was damaged in a bag (the frames before it were run)

    @property
    def exit_code(self) -> int:
        """0 every input succeeded, 1 some failed (or none ran, or the bag was damaged), 128 + signal when
        interrupted."""
        if self.signum:
            return 128 + self.signum
        return 1 if self.errors or self.damage or not self.images else 0


@dataclass
class Task:
    """One input of a run: its key in progress.jsonl and its images.json entry (id, file names, frame)."""

    key: str
    image: dict[str, Any]


@dataclass
class _Inputs:
    items: Iterator[tuple[Task, Frame | FrameError]]
    total: int  # inputs to do (0: unknown, a camera)
    video: bool = False
    fps: float = 0.0
    skipped: int = 0  # inputs an earlier run did
    source: BagSource | RealSenseSource | None = None  # a robot source
    depth_format: DepthFormat | None = None  # a robot source's (one metric range), with the run's direction

    @property
    def damage(self) -> str | None:
        """What was damaged in a bag (one line), if anything."""
        return getattr(self.source, "damage", None)


def folder_tasks(pairs: list[tuple[Path, Path]]) -> list[Task]:
    """The tasks of (rgb, depth) pairs: key = the RGB file name, image id = position in the pairs (from 1)."""
    return [Task(r.name, {"id": i, "file_name": r.name, "depth_file": d.name})
            for i, (r, d) in enumerate(pairs, start=1)]


def _video_inputs(src: BatchInputs, log: BatchLog, limits: InputLimits) -> _Inputs:
    if src.depth_video and src.depth_dir:
        raise InputError("give a depth video or a depth folder with a video, not both")
    if not (src.depth_video or src.depth_dir):
        raise InputError("a video needs depth frames: a depth video or a folder of depth frames")
    frames, fps, total = video_frames(Path(str(src.video)), Path(src.depth_video) if src.depth_video else None,
                                      Path(src.depth_dir) if src.depth_dir else None, src.max_frames, errors="yield",
                                      limits=limits)
    skipped = sum(log.done(str(i)) for i in range(total))

    def items() -> Iterator[tuple[Task, Frame | FrameError]]:
        try:
            for i, fr in enumerate(frames):
                if not log.done(str(i)):
                    yield Task(str(i), {"id": i + 1, "file_name": fr.name, "frame_index": i}), fr
        finally:
            frames.close()  # type: ignore[attr-defined]

    return _Inputs(items(), total - skipped, True, fps, skipped)


def _robot_task(frame: Frame | FrameError) -> Task:
    i = int(frame.meta["index"])
    image = {"id": i + 1, "file_name": frame.name, "frame_index": i, "stamp_ns": frame.stamp_ns}
    if isinstance(frame, Frame):
        image["depth_stamp_ns"] = frame.depth_stamp_ns
    return Task(str(i), image)


def _robot_inputs(src: BatchInputs, log: BatchLog, fmt: DepthFormat, limits: InputLimits) -> _Inputs:
    """The frames of ``src.bag`` (a :class:`BagSource`), else of a RealSense camera or ``src.realsense_bag``, that
    ``log`` has not finished: one task per colour frame, key = its index in colour-stamp order (what ``resume``
    skips by), its ``images.json`` entry ``id`` = index + 1, ``file_name``, ``frame_index``, ``stamp_ns``,
    ``depth_stamp_ns``; a frame the source could not pair or decode comes as its FrameError. ``fmt``: the run's
    depth format (its near / far in metres, its direction); the frames' is the source's with that direction."""
    if src.bag is not None:
        bag = BagSource(src.bag, src.rgb_topic, src.depth_topic, src.max_skew_ms, fmt.near, fmt.far, limits=limits)
        plan = bag.frames[:src.max_frames] if src.max_frames else bag.frames
        todo = {f.index for f in plan if not log.done(str(f.index))}
        period = median_period_ns([f.stamp_ns for f in plan])
        return _Inputs(((_robot_task(f), f) for f in bag.read(todo)), len(todo), True,
                       1e9 / period if period else 30.0, len(plan) - len(todo), bag,
                       replace(bag.depth_format, direction=fmt.direction))
    rs = RealSenseSource(src.realsense_bag, max_skew_ms=src.max_skew_ms, near=fmt.near, far=fmt.far, limits=limits)
    depth_format = replace(rs.depth_format, direction=fmt.direction)  # (reads the first frames)

    def camera() -> Iterator[tuple[Task, Frame | FrameError]]:
        try:
            for f in rs:
                if src.max_frames and f.meta["index"] >= src.max_frames:
                    break
                if not log.done(str(f.meta["index"])):
                    yield _robot_task(f), f
        finally:
            rs.close()

    return _Inputs(camera(), src.max_frames, True, float(rs.fps), 0, rs, depth_format)


def _inputs(src: BatchInputs, log: BatchLog, fmt: DepthFormat, limits: InputLimits) -> _Inputs:
    """The frames of the run's mode within ``limits``, skipping those ``log`` has done (``fmt``: the run's depth
    format)."""
    if src.bag or src.realsense or src.realsense_bag:
        return _robot_inputs(src, log, fmt, limits)
    if src.video:
        return _video_inputs(src, log, limits)
    if src.rgb_dir or src.depth_dir:
        if not (src.rgb_dir and src.depth_dir):
            raise InputError("folder mode needs both an RGB folder and a depth folder")
        pairs = match_pairs(Path(src.rgb_dir), Path(src.depth_dir))
    elif src.rgb and src.depth:
        pairs = [(Path(src.rgb), Path(src.depth))]
    else:
        raise InputError("no inputs: give an RGB image and its depth map, two folders, or a video with depth")
    tasks = folder_tasks(pairs)
    todo = [(t, pair) for t, pair in zip(tasks, pairs) if not log.done(t.key)]
    items = ((t, next(image_frames([pair], errors="yield", limits=limits))) for t, pair in todo)
    return _Inputs(items, len(todo), skipped=len(tasks) - len(todo))


class _VideoSink:
    """The overlay video of a video run (MJPG in .avi: OpenCV writes it without extra codecs)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None:
            h, w = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"MJPG"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video: {self.path}")
        self.writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def _imwrite(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


class _StopFlag:
    """SIGINT / SIGTERM during a run: finish the current frame, write what is done, stop. A second Ctrl-C
    interrupts at once. Installed only in the main thread."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.signum = 0
        self.say = say
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.say(f"{signal.Signals(signum).name}: finishing the current frame, then writing the outputs "
                 "(continue with --resume)")

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Run:
    """One batch run over its inputs (sequential or streamed)."""

    def __init__(self, rt: Runtime, log: BatchLog, inputs: _Inputs, opts: BatchOptions, bar: Any,
                 say: Callable[[str], None]) -> None:
        self.rt, self.log, self.inputs, self.opts, self.bar, self.say = rt, log, inputs, opts, bar, say
        self.out = Path(opts.out)
        self.stage = {"pre": 0.0, "infer": 0.0, "post": 0.0}
        self.n_ok = self.n_failed = 0
        self.stats: StreamStats | None = None
        self.out.mkdir(parents=True, exist_ok=True)
        self.sink: _VideoSink | None = None
        if inputs.video and opts.overlay:
            self.sink = _VideoSink(continued(self.out / "overlay.avi", inputs.skipped), inputs.fps)
        if opts.saliency:
            (self.out / "saliency" if inputs.video else self.out).mkdir(parents=True, exist_ok=True)
        self.robot_out = RobotOutputs(opts.bag_out, opts.bag_copy_inputs, opts.rerun, opts.rerun_spawn, opts.track,
                                      opts.min_score, inputs.skipped)

    def failed(self, task: Task, reason: str, depth_source: str = "") -> None:
        """Record an input that could not be read or was refused (errors.json) and say so."""
        image = dict(task.image)
        if depth_source and "depth_file" not in image:
            image["depth_file"] = depth_source
        self.log.add_error(task.key, image, reason)
        self.n_failed += 1
        self.say(f"{task.image['file_name']}: {reason}")

    def done(self, task: Task, frame: Frame, pred: Prediction, caught: list[str]) -> None:
        """Write a finished input's overlay / saliency map and record its results (progress.jsonl)."""
        opts, out = self.opts, self.out
        image, results = finished_entry(task.image, frame.rgb.shape[:2], pred, opts.min_score)
        if caught:
            image["warnings"] = caught
        overlay = draw_overlay(frame.rgb, pred, min_score=opts.overlay_min_score) if opts.overlay else None
        if overlay is not None:
            if self.sink is not None:
                self.sink.write(overlay)
            else:
                _imwrite(out / f"{frame.stem}_overlay.png", overlay[:, :, ::-1])
        if self.robot_out:  # frames without a stamp of their own: a video's frame time, one second per image
            index = int(task.image.get("frame_index", task.image["id"] - 1))
            stamp = round(index * 1e9 / (self.inputs.fps if self.inputs.video and self.inputs.fps else 1.0))
            self.robot_out.write(frame, pred, overlay, stamp, index)
        if opts.saliency:
            target = out / "saliency" / f"{frame.stem}.png" if self.inputs.video else out / f"{frame.stem}_saliency.png"
            _imwrite(target, np.rint(pred.saliency_map() * 255.0).astype(np.uint8))  # 255 x the best covering score
        self.log.add_result(task.key, image, results)
        self.n_ok += 1
        for k in self.stage:
            self.stage[k] += pred.timings.get(k, 0.0)

    def sequential(self, stop: _StopFlag) -> None:
        """One input after the other; stops after the current one on a signal (or the first failure with
        ``fail_fast``)."""
        for task, fr in self.inputs.items:
            if isinstance(fr, FrameError):
                self.failed(task, str(fr.error), fr.depth_source)
            else:
                try:
                    with warnings.catch_warnings(record=True) as ws:
                        warnings.simplefilter("always")
                        pred = self.rt.predict(fr.rgb, fr.depth, depth_format=self.inputs.depth_format)
                    caught = [str(w.message) for w in ws]
                    for w in ws:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                except InputError as exc:
                    self.failed(task, str(exc), fr.depth_source)
                else:
                    self.done(task, fr, pred, caught)
                    if not self.inputs.video:
                        ms = {k: v * 1e3 for k, v in pred.timings.items()}
                        self.say(f"{fr.name}: {len(pred)} instances, top score "
                                 f"{pred.scores[0] if len(pred) else 0:.3f}, pre {ms['pre']:.1f} ms, "
                                 f"infer {ms['infer']:.1f} ms, post {ms['post']:.1f} ms")
            self.bar.update(1)
            if stop.signum or (self.opts.fail_fast and self.n_failed):
                break

    def streamed(self, stop: _StopFlag) -> None:
        """The inputs through Runtime.stream (policy "all", tracking with ``track``); frames in flight when a
        signal arrives are dropped, not recorded (a resumed run redoes them)."""
        meta: list[tuple[Task, str]] = []  # (task, depth file) by stream index: small, frames are not kept

        def source() -> Iterator[Frame | FrameError]:
            for task, fr in self.inputs.items:
                meta.append((task, fr.depth_source))
                yield fr

        def on_error(index: int, name: str, exc: BaseException) -> None:
            del name
            self.failed(meta[index][0], str(exc), meta[index][1])
            self.bar.update(1)

        track = InstanceTracker(min_score=self.opts.overlay_min_score) if self.opts.track else False  # what is drawn
        st = self.rt.stream(source(), policy="all", track=track, on_error=on_error,
                            depth_format=self.inputs.depth_format)
        try:
            for sf, pred in st:
                self.done(meta[sf.index][0], sf.source, pred, [])
                self.bar.update(1)
                if stop.signum or (self.opts.fail_fast and self.n_failed):
                    break
        finally:
            st.close()
        self.stats = st.stats()


def run_batch(rt: Runtime, src: BatchInputs, opts: BatchOptions, say: Callable[[str], None] = print,
              progress: bool = True) -> BatchResult:
    """Run ``src`` through ``rt`` into ``opts.out`` (see the module doc), with a progress bar unless
    ``progress`` is False; ``say`` gets one line per failed input, per image and for signals (give it
    ``tqdm.write`` to keep lines apart from the bar). Bad inputs (a missing folder, no pairs) raise
    ``InputError``."""
    log = BatchLog(opts.out, resume=opts.resume)
    inputs = _inputs(src, log, rt.depth_format, opts.limits or default_limits())
    if opts.resume and inputs.skipped:
        say(f"resuming: {inputs.skipped} inputs already done in {opts.out}")
    bar = tqdm(total=inputs.total or None, desc="infer", unit="frame" if inputs.video else "img",
               disable=not progress or (inputs.total <= 1 and not inputs.video))
    job = _Run(rt, log, inputs, opts, bar, say)
    t0 = time.perf_counter()
    with _StopFlag(job.say) as stop:
        try:
            job.streamed(stop) if opts.stream or opts.track else job.sequential(stop)
        finally:
            bar.close()
            if job.sink is not None:
                job.sink.close()
            job.robot_out.close()
            n_det, n_img = log.write_outputs()
            log.close()
    return BatchResult(Path(opts.out), inputs.video, n_det, n_img, job.n_ok, job.n_failed, inputs.skipped,
                       log.errors, job.stage, time.perf_counter() - t0,
                       job.sink.path if job.sink is not None and job.n_ok else None, job.stats, stop.signum,
                       inputs.damage)
