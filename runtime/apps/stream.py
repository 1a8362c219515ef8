"""``Runtime.stream``: a pipelined iterator of ``(frame, Prediction)`` for cameras, videos and folders.

Three threads overlap the work of consecutive frames, joined by bounded queues::

    source --[read + decode + pre-process]--> q1 --[inference]--> q2 --[post-process (+ tracking)]--> q3 --> you

ONNX Runtime, OpenCV and most numpy kernels release the GIL, so with a file source the stages of three
frames run at the same time and the stream's throughput is at least that of calling ``predict`` in a loop.

Policies
--------
``"all"`` (files): every frame is processed, in order; a full queue blocks the stage before it (back-pressure,
bounded memory). ``"latest"`` (live cameras): every queue holds one item and a new item replaces a waiting
one, so each stage takes the freshest frame and the latency stays bounded when the source is faster than the
model; replaced frames are counted in :attr:`StreamStats.dropped`. The reader keeps pulling from the source
at its own pace.

Sources (:func:`open_source`)
-----------------------------
``(rgb_dir, depth_dir)`` folder pairs matched by file stem; ``(video, depth_video_or_depth_dir)``;
an OpenCV capture (device index or URL, or a video path) with ``depth=`` a callable ``rgb -> depth``;
any iterable of ``(rgb, depth)`` arrays (or of :class:`~calibnet.runtime.apps.sources.Frame`-like objects with
``.name``, ``.rgb``, ``.depth``), such as :class:`~calibnet.runtime.apps.sources.BagSource` and
:class:`~calibnet.runtime.apps.sources.RealSenseSource`. A source with a ``depth_format`` attribute (those two:
metric depth with one range for the whole recording) gives the depth format of its maps unless the stream is
given one.

Timing: each Prediction's ``timings`` holds ``read``, ``pre``, ``infer``, ``post`` (and ``track``) seconds
and ``latency``, capture to result: from the moment the frame came out of the source to the moment the
iterator hands it to you. :meth:`Stream.stats` gives p50/p99 of each, the throughput and the results per
depth-health verdict (``ok`` / ``degraded`` / ``unusable``, :mod:`calibnet.runtime.core.depth_health`).

Shutdown: ``close()`` (or leaving a ``with`` block, or dropping the iterator) stops the threads; the
source is closed in the reader thread. An exception in a stage (the source raising, inference failing) stops
the stream: ``next()`` in the caller's thread returns the frames that stage had already passed on, then
raises it. With ``on_error=callback``, a frame that cannot be read or is refused
(:class:`~calibnet.runtime.core.errors.InputError`) is reported to ``callback(index, name, error)`` and
skipped instead.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.closing import Closing
from ..core.depth_health import VERDICTS
from ..core.errors import InputError
from ..core.prediction import Prediction
from ..core.stats import Window, percentiles
from .sources import capture_frames, image_frames, match_pairs, video_frames
from .tracking import InstanceTracker

if TYPE_CHECKING:
    from ..core.depth import DepthFormat
    from ..core.preprocess import PreparedFrame
    from ..core.runtime import Runtime

__all__ = ["POLICIES", "Stream", "StreamFrame", "StreamStats", "capture_frames", "open_source"]

POLICIES = ("all", "latest")
STATS_WINDOW = 10_000
ErrorCallback = Callable[[int, str, BaseException], None]


@dataclass
class StreamFrame:
    """One frame as the stream read it."""

    index: int  # position in the source (0-based; dropped frames count)
    name: str
    rgb: np.ndarray
    depth: np.ndarray
    t_capture: float  # time.perf_counter() when it came out of the source
    stem: str = ""  # for output file names
    source: Any = None  # the source's own item (e.g. a sources.Frame), when it had one


@dataclass
class StreamStats:
    """What a stream did so far (times in seconds; :meth:`to_dict` gives milliseconds)."""

    policy: str = "all"
    read: int = 0  # frames taken from the source
    done: int = 0  # results handed to the caller
    dropped: int = 0  # frames replaced by newer ones ("latest")
    errors: int = 0  # frames reported to on_error
    t_start: float = 0.0
    t_last: float = 0.0
    #: per-stage seconds of the last :data:`STATS_WINDOW` results (fixed memory: a camera stream may run for days)
    stages: dict[str, Window] = field(default_factory=lambda: collections.defaultdict(lambda: Window(STATS_WINDOW)))
    #: results per depth-health verdict (ok / degraded / unusable), over the whole stream
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))

    @property
    def throughput(self) -> float:
        """Results per second, from the start of the stream to the last result."""
        span = self.t_last - self.t_start
        return self.done / span if span > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Counts, throughput (frames/s) and per-stage p50/p99/mean in milliseconds."""
        return {"policy": self.policy, "read": self.read, "done": self.done, "dropped": self.dropped,
                "errors": self.errors, "throughput_fps": self.throughput, "depth_verdicts": dict(self.verdicts),
                "ms": {k: percentiles(v.values(), (50, 99)) for k, v in self.stages.items()}}

    def summary(self) -> str:
        """A few lines for a terminal."""
        d = self.to_dict()
        lines = [f"stream ({self.policy}): {self.done} results from {self.read} frames read, {self.dropped} dropped, "
                 f"{self.errors} errors, {d['throughput_fps']:.2f} frames/s",
                 "  depth    " + ", ".join(f"{n} {v}" for n, v in self.verdicts.items())]
        ms = d["ms"]
        lines += [f"  {k:8s} p50 {ms[k]['p50']:8.1f} ms  p99 {ms[k]['p99']:8.1f} ms  mean {ms[k]['mean']:8.1f} ms"
                  for k in ("read", "pre", "infer", "post", "track", "latency") if k in ms]
        if "latency" in ms:
            work = sum(ms[k]["p50"] for k in ("pre", "infer", "post", "track") if k in ms)
            wait = max(0.0, ms["latency"]["p50"] - work)
            behind = ("each frame waits behind the ones read before it" if self.policy == "all"
                      else "a waiting frame is replaced by a newer one")
            lines.append(f"  latency is capture to result: the stages above plus about {wait:.1f} ms (p50) of "
                         f"waiting in the queues between them ({self.policy!r}: {behind})")
        return "\n".join(lines)


class _Closed(Exception):
    """The channel was closed while a stage waited on it."""


_END = object()


class _Channel:
    """A bounded FIFO between two stages; with ``drop_oldest`` a put into a full channel replaces the oldest
    item (returned to the caller) instead of waiting."""

    def __init__(self, maxsize: int, drop_oldest: bool) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self.maxsize, self.drop_oldest = max(1, maxsize), drop_oldest
        self.cond = threading.Condition()
        self.closed = False

    def put(self, item: Any, force: bool = False) -> Any:
        """Append ``item``; returns the item it replaced ("latest"), else None. ``force``: never wait or
        drop (end markers, failures)."""
        with self.cond:
            dropped = None
            if not force and self.drop_oldest and len(self.items) >= self.maxsize:
                dropped = self.items.popleft()
            elif not force:
                self.cond.wait_for(lambda: len(self.items) < self.maxsize or self.closed)
            if self.closed:
                raise _Closed
            self.items.append(item)
            self.cond.notify_all()
            return dropped

    def get(self) -> Any:
        with self.cond:
            self.cond.wait_for(lambda: self.items or self.closed)
            if self.closed:
                raise _Closed
            item = self.items.popleft()
            self.cond.notify_all()
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.items.clear()
            self.cond.notify_all()


def open_source(source: Any, depth: Callable[[np.ndarray], np.ndarray] | None = None,
                max_frames: int = 0) -> Iterator[Any]:
    """The items of a stream source (see the module doc): ``(rgb_dir, depth_dir)``, ``(video, depth)``, a
    capture index / URL / video path with ``depth=``, or an iterable of ``(rgb, depth)`` / Frame-like items."""
    if depth is not None:
        if not isinstance(source, (int, str, Path)):
            raise TypeError("depth= goes with an OpenCV capture source (device index, URL or video path)")
        return capture_frames(source if isinstance(source, int) else str(source), depth, max_frames)
    if isinstance(source, (int, str, Path)):
        raise TypeError(f"source {source!r}: give a depth callable (depth=) for a capture, or a "
                        "(rgb_dir, depth_dir) / (video, depth_video_or_dir) pair")
    if isinstance(source, (tuple, list)) and len(source) == 2 and all(isinstance(x, (str, Path)) for x in source):
        first, second = Path(source[0]), Path(source[1])
        if first.is_dir():
            pairs = match_pairs(first, second)
            return image_frames(pairs[:max_frames] if max_frames else pairs, errors="yield")
        return video_frames(first, None if second.is_dir() else second, second if second.is_dir() else None,
                            max_frames, errors="yield")[0]
    return iter(source)


def _frame(item: Any, index: int, t_capture: float) -> tuple[StreamFrame, BaseException | None]:
    """The StreamFrame of a source item, and the error the source gave instead of the item's maps (or None)."""
    if isinstance(item, tuple) and len(item) == 2:
        return StreamFrame(index, f"frame{index}", item[0], item[1], t_capture, f"frame{index:06d}"), None
    err = getattr(item, "error", None)
    if err is None and not (hasattr(item, "rgb") and hasattr(item, "depth")):
        raise TypeError(f"stream item {index}: expected (rgb, depth) or a Frame with .rgb/.depth, got {type(item)}")
    rgb, depth = (item.rgb, item.depth) if err is None else (np.empty(0), np.empty(0))  # unread maps: never used
    name, stem = str(getattr(item, "name", f"frame{index}")), str(getattr(item, "stem", "") or f"frame{index:06d}")
    frame = StreamFrame(index, name, rgb, depth, t_capture, stem, item)
    return frame, err if err is None or isinstance(err, BaseException) else InputError(str(err))


class _Pipeline:
    """The stages and their queues (the threads reference this, not the :class:`Stream`, so dropping the
    Stream lets it be collected and closed)."""

    def __init__(self, runtime: Runtime, items: Iterator[Any], policy: str, tracker: InstanceTracker | None,
                 max_frames: int, queue_size: int, on_error: ErrorCallback | None,
                 prepare_kw: dict[str, Any]) -> None:
        self.runtime, self.items, self.tracker, self.on_error = runtime, items, tracker, on_error
        self.max_frames, self.prepare_kw = max_frames, prepare_kw
        latest = policy == "latest"
        self.q = [_Channel(1 if latest else queue_size, latest) for _ in range(3)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats = StreamStats(policy=policy, t_start=time.perf_counter())
        stages = (("read", self._read), ("infer", lambda: self._stage(0, self._infer)),
                  ("post", lambda: self._stage(1, self._post)))
        self.threads = [threading.Thread(target=self._guard, args=(k, fn), name=f"calibnet-stream-{n}", daemon=True)
                        for k, (n, fn) in enumerate(stages)]
        for t in self.threads:
            t.start()

    def _guard(self, k: int, fn: Callable[[], None]) -> None:
        """Run stage ``fn``; its exception goes into its output queue ``k`` behind the frames it already passed on,
        so the caller gets those frames first, then the exception (the reader stops reading)."""
        try:
            fn()
        except _Closed:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.stop.set()
            with contextlib.suppress(_Closed):
                self.q[k].put(exc, force=True)

    def _put(self, k: int, item: Any) -> None:
        if self.q[k].put(item) is not None:
            with self.lock:
                self.stats.dropped += 1

    def _report(self, index: int, name: str, exc: BaseException) -> None:
        if self.on_error is None:
            raise exc
        with self.lock:
            self.stats.errors += 1
        self.on_error(index, name, exc)

    def _read(self) -> None:
        index = 0
        try:
            while not self.stop.is_set() and (not self.max_frames or index < self.max_frames):
                t0 = time.perf_counter()
                try:
                    item = next(self.items)
                except StopIteration:
                    break
                except InputError as exc:  # the source itself failed (e.g. a capture): nothing more to read
                    self._report(index, f"frame{index}", exc)
                    break
                t1 = time.perf_counter()
                frame, error = _frame(item, index, t1)
                with self.lock:
                    self.stats.read += 1
                if error is None:
                    try:
                        prepared = self.runtime.prepare(frame.rgb, frame.depth, **self.prepare_kw)
                    except InputError as exc:
                        error = exc
                if error is None:
                    self._put(0, (frame, prepared, {"read": t1 - t0, "pre": time.perf_counter() - t1}))
                else:
                    self._report(index, frame.name, error)
                index += 1
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()
        self.q[0].put(_END, force=True)

    def _stage(self, k: int, work: Callable[..., Any]) -> None:
        """``work(*item)`` of every item of queue ``k`` into queue ``k + 1``, then the end marker (or the exception
        an earlier stage ended with)."""
        while (item := self.q[k].get()) is not _END:
            if isinstance(item, BaseException):
                self.q[k + 1].put(item, force=True)
                return
            self._put(k + 1, work(*item))
        self.q[k + 1].put(_END, force=True)

    def _infer(self, frame: StreamFrame, prepared: PreparedFrame, times: dict[str, float]) -> tuple[Any, ...]:
        out, times["infer"] = self.runtime.infer([prepared])
        return frame, prepared, out, times

    def _post(self, frame: StreamFrame, prepared: PreparedFrame, out: dict[str, np.ndarray],
              times: dict[str, float]) -> tuple[StreamFrame, Prediction]:
        t0 = time.perf_counter()
        pred = self.runtime.decode(out, 0, prepared)
        times["post"] = time.perf_counter() - t0
        if self.tracker is not None:
            t1 = time.perf_counter()
            self.tracker.update(pred)
            times["track"] = time.perf_counter() - t1
        pred.timings = times
        return frame, pred

    def close(self, timeout: float) -> None:
        self.stop.set()
        for q in self.q:
            q.close()
        me = threading.current_thread()
        for t in self.threads:
            if t is not me and t.is_alive():
                t.join(timeout)


class Stream(Closing):
    """The iterator :meth:`Runtime.stream` returns: ``(StreamFrame, Prediction)`` pairs; see the module doc.

    ``policy`` "all" or "latest"; ``track`` True (a default :class:`InstanceTracker`) or a tracker;
    ``depth`` the depth callable of a capture source; ``max_frames`` stop after that many source frames;
    ``queue_size`` the queue bound of "all"; ``on_error(index, name, error)`` skip bad frames instead of
    raising; ``bgr``, ``depth_format``, ``strict`` as in :meth:`Runtime.predict`.
    """

    def __init__(self, runtime: Runtime, source: Any, policy: str = "all", track: bool | InstanceTracker = False,
                 *, depth: Callable[[np.ndarray], np.ndarray] | None = None, max_frames: int = 0,
                 queue_size: int = 4, on_error: ErrorCallback | None = None, bgr: bool = False,
                 depth_format: DepthFormat | None = None, strict: bool | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.tracker: InstanceTracker | None = (track if isinstance(track, InstanceTracker)
                                                else InstanceTracker() if track else None)
        self._finished = False
        fmt = depth_format or getattr(source, "depth_format", None)
        self._pipe = _Pipeline(runtime, open_source(source, depth, max_frames), policy, self.tracker, max_frames,
                               queue_size, on_error, {"bgr": bgr, "depth_format": fmt, "strict": strict})

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> tuple[StreamFrame, Prediction]:
        if self._finished:
            raise StopIteration
        try:
            item = self._pipe.q[2].get()
        except _Closed:
            self._finished = True
            raise StopIteration from None
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        frame, pred = item
        now = time.perf_counter()
        pred.timings["latency"] = now - frame.t_capture
        with self._pipe.lock:
            s = self._pipe.stats
            s.done += 1
            s.t_last = now
            for k, v in pred.timings.items():
                s.stages[k].append(v)
            if pred.depth_health is not None:
                s.verdicts[pred.depth_health.verdict] += 1
        return frame, pred

    def stats(self) -> StreamStats:
        """A snapshot of the counts and timings so far."""
        with self._pipe.lock:
            s = self._pipe.stats
            snap = StreamStats(s.policy, s.read, s.done, s.dropped, s.errors, s.t_start, s.t_last,
                               verdicts=dict(s.verdicts))
            snap.stages.update((k, v.copy()) for k, v in s.stages.items())
            return snap

    def close(self, timeout: float = 10.0) -> None:
        """Stop the threads (the reader closes the source); idempotent."""
        self._finished = True
        self._pipe.close(timeout)

    @property
    def alive(self) -> bool:
        """Whether any stage thread is still running."""
        return any(t.is_alive() for t in self._pipe.threads)

    def __del__(self) -> None:
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            pipe.close(timeout=0.5)

