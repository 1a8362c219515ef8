"""Frame sources: where the RGB-D frames of a run come from. :func:`match_pairs` pairs two folders' files by
stem (``A.jpg`` <-> ``A.png``, the COME15K/DSIS/SIP layout) and :func:`image_frames` reads the pairs;
:func:`video_frames` reads an RGB video with a depth video (frame by frame) or a folder of depth frames (by
index in natural order: ``2.png`` before ``10.png``); :func:`capture_frames` reads an OpenCV capture with depth
from a callable. A missing file or folder, an unreadable video or no pairs: an
:class:`~calibnet.runtime.core.errors.InputError` naming the path. No torch.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...core.errors import InputError
from ...core.filecheck import one_line
from ...core.limits import InputLimits, default_limits
from ...core.readers import read_depth, read_rgb

__all__ = ["IMAGE_EXTS", "Frame", "FrameError", "capture_frames",
           "image_files", "image_frames", "match_pairs", "read_file", "video_frames"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".npy"}


@dataclass
class Frame:
    """One RGB-D input of any source."""

    name: str  # file name (images) or "<video>#<index>" (video frames)
    stem: str  # for output file names
    rgb: np.ndarray
    depth: np.ndarray
    depth_source: str  # what to name in an error about the depth
    stamp_ns: int | None = None  # capture time of the colour image (robot sources: its header stamp), else None
    depth_stamp_ns: int | None = None  # capture time of the depth map paired with it
    meta: dict[str, Any] = field(default_factory=dict)  # what the source knows besides (index, frame_id, topics)


@dataclass
class FrameError:
    """An input a source could not read (yielded instead of raising with ``errors="yield"``)."""

    name: str
    stem: str
    error: InputError
    depth_source: str = ""
    stamp_ns: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The image / depth files of a folder (:data:`IMAGE_EXTS`) in natural sort order (``2`` before ``10``)."""
    if not folder.is_dir():
        raise InputError(f"folder not found: {folder}")
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_natural_key)


def match_pairs(rgb_dir: Path, depth_dir: Path) -> list[tuple[Path, Path]]:
    """(rgb, depth) files with the same stem; warns about unmatched files."""
    rgbs = {p.stem: p for p in image_files(rgb_dir)}
    depths = {p.stem: p for p in image_files(depth_dir)}
    missing = sorted(set(rgbs) - set(depths))
    if missing:
        warnings.warn(f"{len(missing)} RGB images have no depth map (e.g. {missing[0]}); skipped", stacklevel=2)
    pairs = [(rgbs[s], depths[s]) for s in sorted(set(rgbs) & set(depths))]
    if not pairs:
        raise InputError(f"no RGB/depth pairs with matching file stems in {rgb_dir} and {depth_dir}")
    return pairs


def read_file(read: Callable[..., np.ndarray], path: Path, limits: InputLimits) -> np.ndarray:
    """``read(path, limits)``; whatever goes wrong is an :class:`InputError` naming the file (a reader bug or
    MemoryError in one file must not end a run over many)."""
    try:
        return read(path, limits)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {one_line(exc)}") from None


def image_frames(pairs: list[tuple[Path, Path]], errors: str = "raise",
                 limits: InputLimits | None = None) -> Iterator[Frame | FrameError]:
    """Frames of (rgb, depth) file pairs, read when iterated (within ``limits``, default
    :func:`~calibnet.runtime.core.limits.default_limits`). A pair that cannot be read raises :class:`InputError`,
    or with ``errors="yield"`` comes as a :class:`FrameError` and the pairs after it are still read (batch runs
    that go on)."""
    limits = limits or default_limits()
    for rgb_path, depth_path in pairs:
        try:
            frame = Frame(rgb_path.name, rgb_path.stem, read_file(read_rgb, rgb_path, limits),
                          read_file(read_depth, depth_path, limits), str(depth_path))
        except InputError as exc:
            if errors == "raise":
                raise
            yield FrameError(rgb_path.name, rgb_path.stem, exc, str(depth_path))
            continue
        yield frame


def _check_capture(cap: cv2.VideoCapture, what: str, limits: InputLimits) -> None:
    """The capture's frame size (from the container / device) within ``limits`` before any frame is decoded."""
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w and h:  # 0: not known before the first frame (some network streams)
        try:
            limits.check_size(w, h, what)
        except InputError:
            cap.release()
            raise


def _open_video(path: Path, what: str, limits: InputLimits) -> cv2.VideoCapture:
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"cannot open {what}: {path}")
    _check_capture(cap, f"{what} {path}", limits)
    return cap


def _bgr_frames(cap: cv2.VideoCapture, max_frames: int = 0) -> Iterator[np.ndarray]:
    """The frames of an opened capture as OpenCV decodes them (BGR), at most ``max_frames`` (0: all)."""
    i = 0
    while not max_frames or i < max_frames:
        ok, bgr = cap.read()
        if not ok:
            return
        yield bgr
        i += 1


def capture_frames(source: int | str, depth: Callable[[np.ndarray], np.ndarray], max_frames: int = 0,
                   limits: InputLimits | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rgb, depth)`` of an OpenCV capture (device index, URL or video file) with depth from
    ``depth(rgb)`` (e.g. a sensor SDK call); the capture's frame size is checked against ``limits`` when it is
    opened; the capture is released when the iterator ends or is closed."""
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise InputError(f"cannot open capture {source!r}")
    _check_capture(cap, f"capture {source!r}", limits or default_limits())
    try:
        for bgr in _bgr_frames(cap, max_frames):
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            yield rgb, depth(rgb)
    finally:
        cap.release()


def video_frames(video: Path, depth_video: Path | None, depth_dir: Path | None, max_frames: int = 0,
                 errors: str = "raise", limits: InputLimits | None = None
                 ) -> tuple[Iterator[Frame | FrameError], float, int]:
    """(frames, fps, frame count or 0 if unknown) of a video; depth from a second video or from a folder of
    depth frames matched by index; frame sizes within ``limits``. The captures are released when the iterator
    ends or is closed. An unreadable depth frame raises :class:`InputError`, or with ``errors="yield"`` comes as
    a :class:`FrameError` and the video goes on."""
    limits = limits or default_limits()
    cap = _open_video(video, "video", limits)
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    try:
        dcap = _open_video(depth_video, "depth video", limits) if depth_video else None
        files = image_files(depth_dir) if depth_dir else []
        if depth_dir and not files:
            raise InputError(f"no depth frames in {depth_dir}")
    except InputError:
        cap.release()
        raise
    if files:
        if count and len(files) != count:
            warnings.warn(f"{video} has {count} frames but {depth_dir} {len(files)} depth frames: "
                          f"using the first {min(count, len(files))}", stacklevel=2)
        count = min(count, len(files)) if count else len(files)
    if max_frames:
        count = min(count, max_frames) if count else max_frames

    def gen() -> Iterator[Frame | FrameError]:
        depth_frames = _bgr_frames(dcap) if dcap is not None else None
        try:
            for i, bgr in enumerate(_bgr_frames(cap, max_frames)):
                if depth_frames is not None:
                    dframe = next(depth_frames, None)
                    if dframe is None:
                        warnings.warn(f"{depth_video} ended after {i} frames; stopping", stacklevel=2)
                        break
                    depth, source = dframe[:, :, 0] if dframe.ndim == 3 else dframe, f"{depth_video} frame {i}"
                elif i < len(files):
                    try:
                        depth, source = read_file(read_depth, files[i], limits), str(files[i])
                    except InputError as exc:
                        if errors == "raise":
                            raise
                        yield FrameError(f"{video.name}#{i}", f"{video.stem}_{i:06d}", exc, str(files[i]))
                        continue
                else:
                    break
                yield Frame(f"{video.name}#{i}", f"{video.stem}_{i:06d}", bgr[:, :, ::-1].copy(), depth, source)
        finally:
            cap.release()
            if dcap is not None:
                dcap.release()

    return gen(), fps if fps and np.isfinite(fps) and fps > 0 else 25.0, count
