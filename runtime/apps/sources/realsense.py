"""``RealSenseSource``: the RGB-D frames of an Intel RealSense camera or of its recording, through the RealSense
SDK (``pyrealsense2``; ``pip install ".[robotics]"``, and the system library libusb-1.0).

- A live camera: ``serial`` (default: the first one), ``size`` and ``fps`` of the colour (rgb8) and depth (z16)
  streams. A recording (``recording=``: the SDK's rosbag2 ``.db3``, or an older SDK's ROS 1 ``.bag``) is played
  back frame by frame as fast as it is read, not throttled to real time (``set_real_time(False)``), once. The SDK
  starts it in real time: it is paused, switched and restarted from its beginning, but the first frames (one
  or two) can be lost before that (an SDK limit, docs/robotics.md); later frames come once, in order.
- Depth is aligned to colour (``rs.align``: one depth value per colour pixel) and scaled by the device's depth
  scale: float32 metres, 0 where there is no reading.
- Pairing: the SDK's syncer offers colour frames with depth frames; a colour frame (told by its frame number)
  may come in several such sets, and gets the depth frame nearest in time among them, at most ``max_skew_ms``
  away (default: half the depth stream's period), by the one rule of :mod:`.pairing`; a colour frame is
  therefore handed out when the next one arrives (one frame of latency). One without depth in its window comes
  as a :class:`~.files.FrameError`.
- :attr:`RealSenseSource.depth_format`: ``metric`` with one range for the whole run (``near``/``far`` in
  metres, or what is left open measured on the first ``range_frames`` frames, which are kept and handed out).

The source is a one-pass iterator (a camera cannot be rewound): open a new one to read a recording again;
:meth:`close` stops the pipeline (also at the end of the recording). No torch.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...core.depth import DepthFormat
from ...core.errors import InputError
from ...core.filecheck import one_line
from ...core.limits import InputLimits, default_limits
from ..optional import require
from .files import Frame, FrameError
from .pairing import nearest_stamps
from .rosimage import to_rgb

__all__ = ["RealSenseSource"]


class RealSenseSource:
    """RGB-D frames of a RealSense camera or recording (see the module doc). ``timeout_s``: how long to wait for
    a frame before a live camera counts as lost (InputError); ``limits``: streams with larger frames are refused
    when they start (default :func:`~calibnet.runtime.core.limits.default_limits`)."""

    def __init__(self, recording: str | Path | None = None, serial: str | None = None,
                 size: tuple[int, int] = (640, 480), fps: int = 30, max_skew_ms: float | None = None,
                 near: float | None = None, far: float | None = None, range_frames: int = 10,
                 timeout_s: float = 5.0, limits: InputLimits | None = None) -> None:
        self.rs = require("pyrealsense2", "reading a RealSense camera or recording")
        self.recording = Path(recording) if recording is not None else None
        if self.recording is not None and not self.recording.is_file():
            raise InputError(f"RealSense recording not found: {self.recording}")
        self.serial, self.size, self.fps = serial, size, fps
        self.limits, self.range_frames, self.timeout_s = limits or default_limits(), range_frames, timeout_s
        self._fmt = DepthFormat("metric", near, far)
        self._range: DepthFormat | None = None
        self._skew_ms = max_skew_ms
        self._buffer: collections.deque[Frame | FrameError] = collections.deque()
        self._pipe: Any = None
        self._frames = self._read()

    @property
    def name(self) -> str:
        """What frames and errors are named after: the recording's file name, or the camera."""
        if self.recording is not None:
            return self.recording.name
        return f"realsense:{self.serial}" if self.serial else "realsense"

    def _start(self) -> tuple[Any, Any, float, int]:
        """Start the pipeline: (pipeline, playback or None, depth scale, max skew in ns)."""
        rs = self.rs
        cfg = rs.config()
        if self.recording is not None:
            cfg.enable_device_from_file(str(self.recording), repeat_playback=False)
        else:
            if self.serial:
                cfg.enable_device(self.serial)
            w, h = self.size
            cfg.enable_stream(rs.stream.color, w, h, rs.format.rgb8, self.fps)
            cfg.enable_stream(rs.stream.depth, w, h, rs.format.z16, self.fps)
        pipe = rs.pipeline()
        try:
            profile = pipe.start(cfg)
        except RuntimeError as exc:
            what = f"recording {self.recording}" if self.recording else "camera"
            raise InputError(f"cannot start the RealSense {what}: {one_line(exc)}") from None
        self._pipe = pipe
        device = profile.get_device()
        playback = None
        if self.recording is not None:  # from the start, frame by frame: frames the pipeline passed on before
            playback = device.as_playback()  # real time was off could have been dropped
            playback.pause()
            playback.set_real_time(False)
            playback.seek(datetime.timedelta(0))
            playback.resume()
        streams = {s.stream_type(): s.as_video_stream_profile() for s in profile.get_streams()
                   if s.is_video_stream_profile()}
        if rs.stream.color not in streams or rs.stream.depth not in streams:
            raise InputError(f"{self.name}: needs a colour and a depth stream, found "
                             f"{', '.join(str(s) for s in streams) or 'none'}")
        for s in streams.values():
            self.limits.check_size(s.width(), s.height(), f"{self.name}: {s.stream_type()}")
        skew = (float(self._skew_ms) * 1e6 if self._skew_ms is not None
                else 0.5e9 / max(1, streams[rs.stream.depth].fps()))
        return pipe, playback, float(device.first_depth_sensor().get_depth_scale()), int(round(skew))

    def _read(self) -> Iterator[Frame | FrameError]:
        rs = self.rs
        pipe, playback, scale, max_skew = self._start()
        align = rs.align(rs.stream.color)
        current: tuple[int, int] | None = None  # (frame number, stamp) of the colour frame being paired
        last = -1  # the stamp of the last colour frame handed out: a frame offered again later (the playback's
        # restart from the first frame may offer frames again, under new frame numbers) is skipped
        candidates: list[tuple[int, np.ndarray, np.ndarray]] = []  # (depth stamp, rgb, depth) offered with it
        index = 0
        try:
            wait_ms = int(self.timeout_s * 1000) if playback is None else 100  # a recording: look at its end often
            while True:
                ok, fs = pipe.try_wait_for_frames(wait_ms)
                if not ok:
                    if playback is None:
                        raise InputError(f"{self.name}: no frames within {self.timeout_s:g} s")
                    if playback.current_status() == rs.playback_status.stopped:
                        break
                    continue
                color = fs.get_color_frame()
                if not color:
                    continue
                number, stamp = int(color.get_frame_number()), _ns(color)
                if playback is not None and stamp <= last:
                    continue
                if current is not None and stamp < current[1]:  # time went back: the playback's restart offers
                    current, candidates = None, []  # the held frame again, after the frames before it
                if current is not None and current[1] != stamp:
                    yield self._frame(index, current, candidates, max_skew)
                    index, candidates, last = index + 1, [], current[1]
                current = (number, stamp)
                depth = fs.get_depth_frame()
                if depth:
                    aligned = align.process(fs)
                    c, d = aligned.get_color_frame(), aligned.get_depth_frame()
                    rgb = to_rgb(np.asanyarray(c.get_data()).reshape(c.get_height(), c.get_width(), -1),
                                 str(c.get_profile().format()).split(".")[-1])
                    metres = np.asanyarray(d.get_data()).astype(np.float32) * np.float32(scale)
                    candidates.append((_ns(depth), rgb, metres))
            if current is not None:
                yield self._frame(index, current, candidates, max_skew)
        except RuntimeError as exc:  # the SDK's errors (a camera unplugged, a broken recording): the source ends
            raise InputError(f"{self.name}: {one_line(exc)}") from None
        finally:
            self.close()

    def _frame(self, index: int, color: tuple[int, int], candidates: list[tuple[int, np.ndarray, np.ndarray]],
               max_skew: int) -> Frame | FrameError:
        """The colour frame ``color`` (number, stamp) with the nearest of the depth frames offered with it."""
        number, stamp = color
        k = int(nearest_stamps([stamp], [c[0] for c in candidates], max_skew)[0])
        name, stem = f"{self.name}#{number}", f"{index:06d}"
        meta = {"index": index, "frame_id": "camera_color_optical_frame", "frame_number": number}
        if k < 0:
            return FrameError(name, stem, InputError(f"no depth frame within {max_skew / 1e6:.1f} ms of this colour "
                                                     "frame"), "", stamp, meta)
        d_stamp, rgb, metres = candidates[k]
        return Frame(name, stem, rgb, metres, f"{self.name} depth", stamp, d_stamp, meta)

    @property
    def depth_format(self) -> DepthFormat:
        """``metric`` with one depth range (metres) for the whole run: see the module doc."""
        if self._range is None:
            if self._fmt.near is None or self._fmt.far is None:
                for item in self._frames:
                    self._buffer.append(item)
                    if len(self._buffer) >= self.range_frames:
                        break
            self._range = self._fmt.with_range_of(f.depth for f in self._buffer if isinstance(f, Frame))
        return self._range

    def __iter__(self) -> RealSenseSource:
        return self

    def __next__(self) -> Frame | FrameError:
        if self._buffer:
            return self._buffer.popleft()
        return next(self._frames)

    def close(self) -> None:
        """Stop the pipeline (idempotent)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(RuntimeError):  # already stopped
                pipe.stop()


def _ns(frame: Any) -> int:
    """A RealSense frame's timestamp (milliseconds) in nanoseconds."""
    return int(round(float(frame.get_timestamp()) * 1e6))
