"""``BagSource``: the RGB-D frames of a ROS bag (rosbag2 with MCAP or sqlite3 storage, or ROS 1), read with
``rosbags`` (pure Python; ``pip install ".[robotics]"``).

What is read
------------
A rosbag2 ``.mcap`` or ``.db3`` file, a rosbag2 folder (its ``metadata.yaml``; a folder a killed recorder
left without one is read through its single storage file) or a ROS 1 ``.bag``. The colour and depth topics
are found by themselves when the bag has exactly one of each (sensor_msgs/Image or CompressedImage, told apart
by their encoding); otherwise a one-line :class:`~calibnet.runtime.core.errors.InputError` lists the image
topics and names the option (``rgb_topic=``, ``depth_topic=``). Messages are decoded by
:mod:`.rosimage` (colour -> uint8 RGB, depth -> float32 metres).

Pairing and order
-----------------
Opening the bag reads every colour and depth header stamp once (the messages are not decoded; a message whose
header has no stamp counts at its log time). Each colour frame is paired with the depth message whose header
stamp is nearest, at most ``max_skew_ms`` away (default: half the depth topic's median period measured from the
bag; :mod:`.pairing`). Frames come out in colour-stamp order, frame ``index`` 0, 1, ... in that order; a colour
frame without depth in its window comes as a :class:`~.files.FrameError` (never paired with a far-away depth
map).

Depth range
-----------
:attr:`BagSource.depth_format` is ``metric`` with ONE range for the whole bag: the user's ``near``/``far``
(metres), or what is left open measured on the first ``range_frames`` depth messages
(:meth:`~calibnet.runtime.core.depth.DepthFormat.with_range_of`) -- no per-frame min-max that flickers.
``Runtime.stream(BagSource(...))`` uses it.

Damage
------
An MCAP file cut short (a killed recorder, an interrupted copy: no footer) is read up to its last whole
record; a bag whose reading fails part-way is read up to the failure. The frames before the damage come out as
usual, :attr:`BagSource.damage` says in one line what is damaged and where (also warned once), and the
iteration ends there. A bag that cannot be opened at all is an InputError.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...core.depth import DepthFormat
from ...core.errors import InputError, InputWarning
from ...core.filecheck import one_line
from ...core.limits import InputLimits, default_limits
from ..optional import require
from .files import Frame, FrameError
from .pairing import default_max_skew_ns, nearest_stamps
from .rosimage import decode_color, decode_depth, encoding, image_kind, stamp_ns

__all__ = ["BagSource", "PlannedFrame", "IMAGE_TYPES"]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_MCAP_MAGIC = b"\x89MCAP0\r\n"
# what follows the last whole record of a cut MCAP: a data-end record and a footer without summary (so the
# reader scans the records), then the magic
_MCAP_TAIL = (b"\x0f" + (4).to_bytes(8, "little") + bytes(4)
              + b"\x02" + (20).to_bytes(8, "little") + bytes(20) + _MCAP_MAGIC)


@dataclass
class PlannedFrame:
    """One colour message of the bag and the depth message paired with it (stamps in ns; -1: none)."""

    index: int  # position in colour-stamp order
    stamp_ns: int
    depth_stamp_ns: int
    frame_id: str
    skew_ns: int  # |colour - nearest depth| (also when it is too far to pair); -1 without any depth message
    color_ord: int = field(repr=False, default=-1)  # position among the colour messages in bag order
    depth_ord: int = field(repr=False, default=-1)


def _mcap_intact_end(path: Path) -> int | None:
    """Where the last whole record of an MCAP file's data section ends (None: not an MCAP file)."""
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(8) != _MCAP_MAGIC:
            return None
        pos = 8
        while pos + 9 <= size:
            f.seek(pos)
            op, length = f.read(1)[0], int.from_bytes(f.read(8), "little")
            if op in (0x0F, 0x02) or pos + 9 + length > size:  # data end / footer, or a record cut short
                break
            pos += 9 + length
        return pos


class _PrefixView(io.RawIOBase):
    """The first ``end`` bytes of a file followed by ``tail``, as a read-only seekable stream."""

    def __init__(self, path: str, end: int, tail: bytes) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed with the view
        self._end, self._tail, self._pos = end, tail, 0
        self._size = end + len(tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        n = 0
        if self._pos < self._end:
            self._f.seek(self._pos)
            n = self._f.readinto(view[:min(len(view), self._end - self._pos)]) or 0
        if n < len(view) and self._pos + n >= self._end:
            t0 = self._pos + n - self._end
            chunk = self._tail[t0:t0 + len(view) - n]
            view[n:n + len(chunk)] = chunk
            n += len(chunk)
        self._pos += n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


class _CutMcap(type(Path())):  # type: ignore[misc]
    """An MCAP file cut short, opened (by rosbags, with ``open("rb")``) as its whole records and a footer that
    says it has no index, so the reader scans them."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return io.BufferedReader(_PrefixView(str(self), _mcap_intact_end(Path(self)) or 8, _MCAP_TAIL))


def _mcap_cut(path: Path) -> bool:
    """Whether an MCAP file lacks its closing magic (cut short)."""
    with path.open("rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - len(_MCAP_MAGIC)))
        return f.read() != _MCAP_MAGIC


def _describe(topics: dict[str, tuple[str, str]]) -> str:
    return ", ".join(f"{t} ({kind})" for t, (kind, _) in sorted(topics.items())) or "none"


class BagSource:
    """The RGB-D frames of a ROS bag: iterate it (or pass it to ``Runtime.stream``); see the module doc.

    ``rgb_topic``/``depth_topic``: the image topics (default: found by themselves); ``max_skew_ms``: the pairing
    window (default: half the depth topic's median period); ``near``/``far``: the depth range in metres
    (default: measured on the first ``range_frames`` depth messages); ``errors``: ``"yield"`` (an unpaired or
    undecodable colour frame comes as a FrameError) or ``"raise"``; ``limits``: larger images are refused
    before they are decoded (default :func:`~calibnet.runtime.core.limits.default_limits`). Opening reads the
    stamps; InputError for a bag that cannot be read or whose topics are ambiguous.
    """

    def __init__(self, path: str | Path, rgb_topic: str | None = None, depth_topic: str | None = None,
                 max_skew_ms: float | None = None, near: float | None = None, far: float | None = None,
                 errors: str = "yield", range_frames: int = 10, limits: InputLimits | None = None) -> None:
        if errors not in ("yield", "raise"):
            raise ValueError(f"errors must be 'yield' or 'raise', got {errors!r}")
        self.path, self.errors, self.limits = Path(path), errors, limits or default_limits()
        self.range_frames = range_frames
        self._rosbags = require("rosbags.highlevel", "reading ROS bags")
        self._typestores = require("rosbags.typesys", "reading ROS bags")
        self.damage: str | None = None
        self._open_path = self._storage()
        self._fmt = DepthFormat("metric", near, far)
        self._range: DepthFormat | None = None
        self._scan(rgb_topic, depth_topic, max_skew_ms)

    # ---- opening
    def _storage(self) -> Path:
        """What rosbags opens: the bag, a rosbag2 folder's single storage file (when the folder has no
        metadata.yaml, or that file is a cut MCAP), or a view of a cut MCAP file."""
        p = self.path
        if not p.exists():
            raise InputError(f"bag not found: {p}")
        if p.is_dir():
            files = sorted(q for q in p.iterdir() if q.suffix in (".mcap", ".db3"))
            single = files[0] if len(files) == 1 else None  # its one storage file (None: none or several)
            if not (p / "metadata.yaml").is_file():
                if single is None:
                    raise InputError(f"{p}: not a rosbag2 folder (no metadata.yaml and not exactly one .mcap or "
                                     ".db3 file)")
                p = single
            elif single is not None and single.suffix == ".mcap" and _mcap_cut(single):
                p = single
        elif p.suffix not in (".mcap", ".db3", ".bag"):
            raise InputError(f"{p}: not a ROS bag (a .mcap, .db3 or .bag file, or a rosbag2 folder)")
        if p.is_file() and p.suffix == ".mcap" and _mcap_cut(p):
            end = _mcap_intact_end(p)
            if end is not None:
                size = p.stat().st_size
                self.damage = (f"{p}: cut short: the last {size - end} of its {size} bytes are not whole records "
                               "(no footer); reading the messages before them")
                return _CutMcap(p)
        return p

    def _reader(self) -> Any:
        ts = self._typestores
        reader = self._rosbags.AnyReader([self._open_path], default_typestore=ts.get_typestore(ts.Stores.ROS2_HUMBLE))
        try:
            reader.open()
        except Exception as exc:  # noqa: BLE001 - any reader failure is a bag we cannot read
            hint = " (rosbag reindex repairs a ROS 1 bag that was cut short)" if self.path.suffix == ".bag" else ""
            raise InputError(f"cannot read bag {self.path}: {one_line(exc)}{hint}") from None
        return reader

    def _messages(self, reader: Any, topics: tuple[str, ...]) -> Iterator[tuple[str, int, Any]]:
        """(topic, log time, message) of ``topics`` in bag order; a failure part-way is recorded as the damage
        and ends the iteration."""
        conns = [c for c in reader.connections if c.topic in topics]
        if not conns:  # (no connections would mean every message to rosbags)
            return
        n = 0
        it = reader.messages(connections=conns)
        while True:
            try:
                conn, log_ns, raw = next(it)
                msg = reader.deserialize(raw, conn.msgtype)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - damage part-way: keep what came before
                if self.damage is None:
                    self.damage = f"{self.path}: damaged after {n} image messages: {one_line(exc)}"
                return
            n += 1
            yield conn.topic, log_ns, msg

    def _image_topics(self, reader: Any) -> dict[str, tuple[str, str]]:
        """topic -> (what it holds, e.g. "Image rgb8", and its kind: color / depth / "") of the bag's image
        topics, from each one's first message."""
        out: dict[str, tuple[str, str]] = {}
        for topic, info in reader.topics.items():
            if info.msgtype not in IMAGE_TYPES:
                continue
            short = info.msgtype.rsplit("/", 1)[-1]
            first = next(self._messages(reader, (topic,)), None)
            out[topic] = ((f"{short}, no messages", "") if first is None
                          else (f"{short} {encoding(first[2])}", image_kind(first[2]) or ""))
        return out

    def _choose(self, topics: dict[str, tuple[str, str]], given: str | None, kind: str, option: str) -> str:
        if given is not None:
            if given not in topics:
                raise InputError(f"{self.path} has no image topic {given} (image topics: {_describe(topics)})")
            return given
        found = [t for t, (_, k) in topics.items() if k == kind]
        if len(found) == 1:
            return found[0]
        what = "colour" if kind == "color" else "depth"
        if not found:
            raise InputError(f"{self.path} has no {what} image topic (image topics: {_describe(topics)}); "
                             f"name one with {option}")
        raise InputError(f"{self.path} has {len(found)} {what} image topics ({_describe(topics)}); "
                         f"choose one with {option}")

    def _scan(self, rgb_topic: str | None, depth_topic: str | None, max_skew_ms: float | None) -> None:
        """Choose the topics, read every colour and depth stamp, pair them."""
        reader = self._reader()
        try:
            topics = self._image_topics(reader)
            self.rgb_topic = self._choose(topics, rgb_topic, "color", "rgb_topic= (--rgb-topic)")
            self.depth_topic = self._choose(topics, depth_topic, "depth", "depth_topic= (--depth-topic)")
            if self.rgb_topic == self.depth_topic:
                raise InputError(f"{self.path}: rgb_topic and depth_topic are both {self.rgb_topic}")
            color: list[tuple[int, str]] = []
            depth: list[int] = []
            for topic, log_ns, msg in self._messages(reader, (self.rgb_topic, self.depth_topic)):
                stamp = stamp_ns(msg.header) or log_ns  # a driver that leaves the header unstamped: the log time
                if topic == self.rgb_topic:
                    color.append((stamp, str(msg.header.frame_id)))
                else:
                    depth.append(stamp)
        finally:
            reader.close()
        if self.damage is not None:
            warnings.warn(self.damage, InputWarning, stacklevel=3)
        c_ns = np.array([c[0] for c in color], np.int64)
        d_ns = np.array(depth, np.int64)
        self.max_skew_ns = (default_max_skew_ns(d_ns, c_ns) if max_skew_ms is None
                            else int(round(float(max_skew_ms) * 1e6)))
        paired = nearest_stamps(c_ns, d_ns, self.max_skew_ns)
        nearest = nearest_stamps(c_ns, d_ns, np.iinfo(np.int64).max)
        order = np.argsort(c_ns, kind="stable")
        self.frames: list[PlannedFrame] = []
        for i, k in enumerate(order):
            d = int(paired[k])
            skew = int(abs(c_ns[k] - d_ns[nearest[k]])) if len(d_ns) else -1
            self.frames.append(PlannedFrame(i, int(c_ns[k]), int(d_ns[d]) if d >= 0 else -1, color[k][1], skew,
                                            int(k), d))

    # ---- what a user reads
    def __len__(self) -> int:
        return len(self.frames)

    @property
    def depth_format(self) -> DepthFormat:
        """``metric`` with the bag's one depth range (metres): see the module doc."""
        if self._range is None:
            self._range = self._fmt.with_range_of(self._first_depths())
        return self._range

    def _first_depths(self) -> Iterator[np.ndarray]:
        reader = self._reader()
        try:
            n = 0
            for _, _, msg in self._messages(reader, (self.depth_topic,)):
                if n >= self.range_frames:
                    break
                try:
                    yield decode_depth(msg, self.limits, self.depth_topic)
                except InputError:
                    continue
                n += 1
        finally:
            reader.close()

    def __iter__(self) -> Iterator[Frame | FrameError]:
        return self.read()

    def read(self, indices: Container[int] | None = None) -> Iterator[Frame | FrameError]:
        """The frames (``indices``: only those frame indices; default all), in colour-stamp order, decoded as
        they come; one pass over the bag, holding only the messages of frames still waiting for their pair."""
        plan = [f for f in self.frames if indices is None or f.index in indices]
        if not plan:
            return
        wanted = {f.color_ord for f in plan}
        last_use = {f.depth_ord: pos for pos, f in enumerate(plan) if f.depth_ord >= 0}  # the last frame using each
        colors: dict[int, Any] = {}
        depths: dict[int, Any] = {}
        held = {self.rgb_topic: (wanted, colors), self.depth_topic: (last_use, depths)}  # topic -> (to hold, held)
        seen = dict.fromkeys(held, 0)  # messages of each topic so far: the next one's position in bag order
        nxt = 0
        reader = self._reader()
        try:
            for topic, _, msg in self._messages(reader, (self.rgb_topic, self.depth_topic)):
                keep, store = held[topic]
                if seen[topic] in keep:
                    store[seen[topic]] = msg
                seen[topic] += 1
                while nxt < len(plan) and plan[nxt].color_ord in colors and (
                        plan[nxt].depth_ord < 0 or plan[nxt].depth_ord in depths):
                    f = plan[nxt]
                    item = self._frame(f, colors.pop(f.color_ord), depths.get(f.depth_ord))
                    if f.depth_ord >= 0 and last_use[f.depth_ord] == nxt:
                        del depths[f.depth_ord]
                    nxt += 1
                    yield item
                if nxt == len(plan):
                    return
        finally:
            reader.close()

    def _frame(self, f: PlannedFrame, color_msg: Any, depth_msg: Any) -> Frame | FrameError:
        name, stem = f"{self.rgb_topic}@{f.stamp_ns}", f"{f.index:06d}"
        depth_source = f"{self.depth_topic}@{f.depth_stamp_ns}" if f.depth_ord >= 0 else ""
        meta = {"index": f.index, "frame_id": f.frame_id, "rgb_topic": self.rgb_topic,
                "depth_topic": self.depth_topic}
        try:
            if depth_msg is None:
                nearest = f"the nearest is {f.skew_ns / 1e6:.1f} ms away" if f.skew_ns >= 0 else "the bag has none"
                raise InputError(f"no depth message within {self.max_skew_ns / 1e6:.1f} ms of this colour frame "
                                 f"({nearest}; max_skew_ms / --max-skew-ms widens the window)")
            try:
                rgb = decode_color(color_msg, self.limits, f"{self.rgb_topic} message {f.stamp_ns}")
                depth = decode_depth(depth_msg, self.limits, f"{self.depth_topic} message {f.depth_stamp_ns}")
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad message must not end a run over the bag
                raise InputError(f"cannot decode the messages of {name}: {one_line(exc)}") from None
        except InputError as exc:
            if self.errors == "raise":
                raise
            return FrameError(name, stem, exc, depth_source, f.stamp_ns, meta)
        return Frame(name, stem, rgb, depth, depth_source, f.stamp_ns, f.depth_stamp_ns, meta)
