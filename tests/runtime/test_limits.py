"""The one input limit (runtime.core.limits) as every reader applies it: sizes read from headers, refusals before
decoding, one file's failure isolated in a folder run. The peak-memory measurement of the same refusals, through
calibnet-infer's source, the server's decoding and the Ray job, is in tests/serving/test_serving.py."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from hostile_files import hdr_header, npy_header, png_bomb, tiff_header
from PIL import Image

from calibnet.runtime.apps.sources import FrameError, image_frames
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.limits import InputLimits, LimitExceeded, default_limits
from calibnet.runtime.core.readers import header_size, read_depth, read_rgb


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    files = {"bomb.png": png_bomb(), "bomb.hdr": hdr_header(), "bomb.npy": npy_header(), "bomb.tif": tiff_header()}
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow notices too; ours refuses
@pytest.mark.parametrize("name", ["bomb.png", "bomb.hdr", "bomb.npy", "bomb.tif"])
def test_header_bombs_are_refused_by_size_from_files_and_bytes(bombs, name):
    path = bombs / name
    side = "13000x13000" if name == "bomb.png" else "30000x30000"
    for src in (path, path.read_bytes()):
        with pytest.raises(LimitExceeded, match=f"{side} .* larger than the limit of 40.0 MP"):
            read_depth(src)
    if name == "bomb.png":
        with pytest.raises(LimitExceeded, match=str(path)):
            read_rgb(path)


def test_header_sizes_of_the_formats_only_opencv_decodes(tmp_path):
    assert header_size(hdr_header(321, 123)) == (321, 123)
    assert header_size(tiff_header(70, 50)) == (70, 50)
    assert header_size(b"PF\n640 480\n-1.0\n" + bytes(8)) == (640, 480)
    assert header_size(b"\x89PNG\r\n\x1a\n") is None and header_size(b"") is None  # never handed to OpenCV
    hdr = np.random.default_rng(0).random((12, 20, 3)).astype(np.float32)
    assert cv2.imwrite(str(tmp_path / "a.hdr"), hdr)
    assert header_size((tmp_path / "a.hdr").read_bytes()) == (20, 12)
    assert read_depth(tmp_path / "a.hdr").shape == (12, 20)  # a real HDR still reads
    tif = np.random.default_rng(1).random((9, 14, 3)).astype(np.float32)
    assert cv2.imwrite(str(tmp_path / "a.tif"), tif)
    assert header_size((tmp_path / "a.tif").read_bytes()) == (14, 9)
    np.testing.assert_array_equal(read_depth(tmp_path / "a.tif"), tif[:, :, 0])


def test_limits_are_configurable_and_bytes_are_checked_before_reading(tmp_path, monkeypatch):
    img = np.zeros((40, 50, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "a.png", InputLimits(max_pixels=2000)).shape == (40, 50, 3)
    with pytest.raises(LimitExceeded, match="50x40"):
        read_rgb(tmp_path / "a.png", InputLimits(max_pixels=1999))
    size = (tmp_path / "a.png").stat().st_size
    with pytest.raises(LimitExceeded, match="MiB is larger than"):
        read_rgb(tmp_path / "a.png", InputLimits(max_bytes=size - 1))
    assert read_rgb(tmp_path / "a.png", InputLimits(max_pixels=0, max_bytes=0)).shape == (40, 50, 3)  # 0: no limit
    monkeypatch.setenv("CALIBNET_MAX_PIXELS", "1999")
    assert default_limits().max_pixels == 1999
    with pytest.raises(LimitExceeded):
        read_rgb(tmp_path / "a.png")
    monkeypatch.setenv("CALIBNET_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="CALIBNET_MAX_PIXELS"):
        default_limits()
    assert InputLimits(1999, 3 * 2**20).summary() == "0.001999 MP and 3 MiB per input"  # what calibnet-serve prints
    assert InputLimits(0, 0).summary() == "no pixel limit and no byte limit per input"


def test_npy_headers_are_checked_before_the_data_is_allocated(tmp_path):
    f = io.BytesIO()
    np.save(f, np.arange(12, dtype=np.uint16).reshape(3, 4))
    good = f.getvalue()
    np.testing.assert_array_equal(read_depth(good), np.arange(12).reshape(3, 4))
    with pytest.raises(InputError, match="promises 24 bytes of data, the file has 10"):
        read_depth(good[:-14])  # truncated: refused before np.load allocates what the header promises
    with pytest.raises(InputError, match=r"numeric \[H,W\] array"):
        read_depth(npy_header((5,)) + bytes(20))


def test_pillow_opens_only_the_formats_calibnet_reads(tmp_path):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"  # would run Ghostscript in Pillow
    with pytest.raises(InputError, match="cannot read"):
        read_rgb(eps)
    with pytest.raises(InputError):
        read_depth(eps)


def test_a_file_that_breaks_its_reader_is_that_files_error(tmp_path, monkeypatch):
    """Whatever a decoder raises (here a MemoryError) ends as the file's FrameError; the next pair is read."""
    import calibnet.runtime.apps.sources.files as sources

    for stem in ("a", "b"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / f"{stem}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"{stem}_d.png")
    real = sources.read_rgb

    def flaky(path, limits=None):
        if path.name == "a.png":
            raise MemoryError("decoder blew up")
        return real(path, limits)

    monkeypatch.setattr(sources, "read_rgb", flaky)
    pairs = [(tmp_path / "a.png", tmp_path / "a_d.png"), (tmp_path / "b.png", tmp_path / "b_d.png")]
    out = list(image_frames(pairs, errors="yield"))
    assert isinstance(out[0], FrameError) and "a.png" in str(out[0].error) and "MemoryError" in str(out[0].error)
    assert not isinstance(out[1], FrameError) and out[1].rgb.shape == (8, 8, 3)
