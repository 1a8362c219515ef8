"""Frame sources: where the RGB-D frames of a run come from. Each yields :class:`Frame` objects (colour, depth,
their capture stamps and what the source knows besides) or :class:`FrameError` for an input it could not read.

- :mod:`.files`: folders of pairs, videos, OpenCV captures;
- :mod:`.bag`: :class:`BagSource`, ROS bags (rosbag2 MCAP / sqlite3, ROS 1), through ``rosbags``;
- :mod:`.realsense`: :class:`RealSenseSource`, a RealSense camera or recording, through ``pyrealsense2``;
- :mod:`.pairing`: the one rule that pairs colour and depth by stamp; :mod:`.rosimage`: the one decoder of
  ROS image messages.

The optional packages are imported when a source is opened, with an install hint when missing. No torch.
"""

from .bag import BagSource
from .files import (
    IMAGE_EXTS,
    Frame,
    FrameError,
    capture_frames,
    image_files,
    image_frames,
    match_pairs,
    read_file,
    video_frames,
)
from .realsense import RealSenseSource

__all__ = ["IMAGE_EXTS", "BagSource", "Frame", "FrameError", "RealSenseSource", "capture_frames", "image_files",
           "image_frames", "match_pairs", "read_file", "video_frames"]
