"""The robot-data outputs of a batch run (calibnet-infer): the run's results as a ROS 2 MCAP and / or a Rerun
recording (the robot inputs, a ROS bag or a RealSense camera / recording, are a mode of :mod:`.batch`).

:class:`RobotOutputs` writes every finished frame to ``--bag-out`` and/or ``--rerun``; a resumed run writes its
frames to ``NAME_from_NNNNNN.SUFFIX`` beside the first run's file, as the overlay video does. No torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.prediction import Prediction
from .bagwriter import BagWriter
from .rerunlog import RerunLogger
from .sources import Frame

__all__ = ["RobotOutputs", "continued"]


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
