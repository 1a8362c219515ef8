"""Hostile inputs for the limit and safety tests: files whose headers promise huge images (made without ever
allocating those images) and a pickle that runs a command when it is loaded."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


def png_bomb(width: int = 13000, height: int = 13000) -> bytes:
    """An all-zero 8-bit gray PNG of ``width`` x ``height`` (13000 x 13000: ~170 KB that decode to 169 MB, 507 MB
    as RGB), compressed row block by row block."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    block = bytes((width + 1) * 100)  # 100 rows: filter byte 0 + zero pixels
    idat = b"".join(z.compress(block) for _ in range(height // 100))
    idat += z.compress(bytes((width + 1) * (height % 100))) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def hdr_header(width: int = 30000, height: int = 30000) -> bytes:
    """A ~70-byte Radiance RGBE header claiming ``width`` x ``height`` (30000 x 30000: 10.8 GB as float RGB)."""
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n" + f"-Y {height} +X {width}\n".encode() + bytes(16)


def npy_header(shape: tuple[int, ...] = (30000, 30000), dtype: str = "<f4") -> bytes:
    """A ``.npy`` file that is only its header: (30000, 30000) float32 promises 3.35 GiB in 128 bytes."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue()


def tiff_header(width: int = 30000, height: int = 30000) -> bytes:
    """A classic little-endian TIFF whose first IFD claims ``width`` x ``height`` 3 x float32 samples (OpenCV's
    territory: Pillow cannot decode multi-channel float TIFF)."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 32), (259, 3, 1), (262, 3, 2), (273, 4, 200),
            (277, 3, 3), (278, 4, height), (279, 4, min(width * height * 12, 2**32 - 1)), (284, 3, 1), (339, 3, 3)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(64)


class RunsCommand:
    """Pickles as a call of os.system (what a hostile checkpoint does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def hostile_pickle(marker: Path, protocol: int = 2) -> bytes:
    """A detectron2-looking weights pickle whose loading would run ``touch <marker>``."""
    return pickle.dumps({"model": {"w": np.zeros(2, np.float32)}, "__author__": RunsCommand(f"touch {marker}")},
                        protocol=protocol)
