"""The robot-data parts of a batch run (calibnet-infer): a ROS bag or a RealSense camera / recording as the run's
inputs, and the run's results as robot data (a ROS 2 MCAP, a Rerun recording).

:func:`robot_inputs` opens the source and yields one task per colour frame: key = the frame's index in
colour-stamp order (what ``--resume`` skips by), an ``images.json`` entry (``id`` = index + 1, ``file_name``,
``frame_index``, ``stamp_ns``, ``depth_stamp_ns``) and the Frame, or the FrameError of a frame the source could
not pair or decode (errors.json). :class:`RobotOutputs` writes every finished frame to ``--bag-out`` and/or
``--rerun``; a resumed run writes its frames to ``NAME_from_NNNNNN.SUFFIX`` beside the first run's file, as the
overlay video does. No torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.depth import DepthFormat
from ..core.limits import InputLimits
from ..core.prediction import Prediction
from .bagwriter import BagWriter
from .rerunlog import RerunLogger
from .sources import BagSource, Frame, FrameError, RealSenseSource
from .sources.pairing import median_period_ns

__all__ = ["RobotInputs", "RobotOutputs", "continued", "robot_inputs"]


@dataclass
class RobotInputs:
    """What a run reads from a robot source: (key, images.json entry, frame) items, how many there are to do
    (0: unknown, a camera), how many an earlier run did, the frame rate, the source and its depth format."""

    items: Iterator[tuple[str, dict[str, Any], Frame | FrameError]]
    total: int
    skipped: int
    fps: float
    source: BagSource | RealSenseSource
    depth_format: DepthFormat

    @property
    def damage(self) -> str | None:
        """What was damaged in the bag (one line), if anything."""
        return getattr(self.source, "damage", None)


def _image(frame: Frame | FrameError) -> dict[str, Any]:
    i = int(frame.meta["index"])
    image = {"id": i + 1, "file_name": frame.name, "frame_index": i, "stamp_ns": frame.stamp_ns}
    if isinstance(frame, Frame):
        image["depth_stamp_ns"] = frame.depth_stamp_ns
    return image


def robot_inputs(fmt: DepthFormat, done: Callable[[str], bool], max_frames: int = 0, bag: str | Path | None = None,
                 rgb_topic: str | None = None, depth_topic: str | None = None, max_skew_ms: float | None = None,
                 realsense_bag: str | Path | None = None, limits: InputLimits | None = None) -> RobotInputs:
    """The frames of ``bag`` (a :class:`BagSource`), else of a RealSense camera or ``realsense_bag``, that
    ``done(key)`` has not finished, at most ``max_frames`` (0: all), none beyond ``limits`` (default
    :func:`~calibnet.runtime.core.limits.default_limits`). ``fmt``: the run's depth format (its near / far in
    metres, its direction); the depth format of the frames is the source's with that direction."""
    if bag is not None:
        src: BagSource | RealSenseSource = BagSource(bag, rgb_topic, depth_topic, max_skew_ms, fmt.near, fmt.far,
                                                     limits=limits)
        plan = src.frames[:max_frames] if max_frames else src.frames
        todo = {f.index for f in plan if not done(str(f.index))}
        period = median_period_ns([f.stamp_ns for f in plan])
        items = ((str(f.meta["index"]), _image(f), f) for f in src.read(todo))
        return RobotInputs(items, len(todo), len(plan) - len(todo), 1e9 / period if period else 30.0, src,
                           replace(src.depth_format, direction=fmt.direction))
    rs = RealSenseSource(realsense_bag, max_skew_ms=max_skew_ms, near=fmt.near, far=fmt.far, limits=limits)
    depth_format = replace(rs.depth_format, direction=fmt.direction)  # (reads the first frames)

    def camera() -> Iterator[tuple[str, dict[str, Any], Frame | FrameError]]:
        try:
            for f in rs:
                if max_frames and f.meta["index"] >= max_frames:
                    break
                if not done(str(f.meta["index"])):
                    yield str(f.meta["index"]), _image(f), f
        finally:
            rs.close()

    return RobotInputs(camera(), max_frames, 0, float(rs.fps), rs, depth_format)


def continued(path: Path, skipped: int) -> Path:
    """Where a run that skipped ``skipped`` finished inputs (``--resume``) writes a sequence file: ``path``, or
    ``NAME_from_NNNNNN.SUFFIX`` beside it."""
    return path if not skipped else path.with_name(f"{path.stem}_from_{skipped:06d}{path.suffix}")


class RobotOutputs:
    """The run's results as robot data: ``bag_out`` (a ROS 2 MCAP: :class:`~.bagwriter.BagWriter`, with the
    input frames when ``copy_inputs``) and / or ``rerun`` (a .rrd file) / ``rerun_spawn`` (a viewer:
    :class:`~.rerunlog.RerunLogger`); ``skipped``: see :func:`continued`."""

    def __init__(self, bag_out: Path | None = None, copy_inputs: bool = False, rerun: Path | None = None,
                 rerun_spawn: bool = False, track: bool = False, min_score: float = 0.0, skipped: int = 0) -> None:
        self.bag = BagWriter(continued(Path(bag_out), skipped), copy_inputs, track, min_score) if bag_out else None
        self.rerun = None
        if rerun is not None or rerun_spawn:
            self.rerun = RerunLogger(continued(Path(rerun), skipped) if rerun is not None else None, rerun_spawn,
                                     track, min_score)

    def __bool__(self) -> bool:
        return self.bag is not None or self.rerun is not None

    def write(self, frame: Frame, pred: Prediction, overlay: np.ndarray | None, stamp_ns: int, index: int) -> None:
        """One finished frame (``stamp_ns`` / ``index``: for frames without their own, e.g. a video's)."""
        if self.bag is not None:
            self.bag.write(frame, pred, overlay, stamp_ns)
        if self.rerun is not None:
            self.rerun.log(frame, pred, stamp_ns, index)

    def close(self) -> None:
        """Finish the files (the bag is moved into place)."""
        for sink in (self.bag, self.rerun):
            if sink is not None:
                sink.close()
