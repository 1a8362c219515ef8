"""Property tests of the frame preparation: any array a caller may pass gives either a valid PreparedFrame
(with the documented invariants) or an InputError, never another exception."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from calibnet.runtime import DepthFormat, InputError
from calibnet.runtime.core.preprocess import MIN_SIDE, PreparedFrame, prepare_frame
from calibnet.runtime.core.resize import shortest_edge_size

DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.float16, np.float32, np.float64, np.bool_,
          np.complex64]
SIDE = st.integers(0, 90)
EXAMPLES = int(os.environ.get("CALIBNET_HYPOTHESIS_EXAMPLES", "150"))  # more for a deeper local search


@st.composite
def image_arrays(draw, weights_uint8: bool = True):
    """Arrays of many ranks, sizes (including empty and < 32 px), channel counts and dtypes."""
    dtype = draw(st.sampled_from([np.uint8] * 4 + DTYPES if weights_uint8 else DTYPES))
    ndim = draw(st.sampled_from([2, 2, 3, 3, 3, 1, 4]))
    h, w = draw(SIDE), draw(SIDE)
    shape = {1: (h,), 2: (h, w), 3: (h, w, draw(st.sampled_from([1, 3, 4, 0, 2, 5]))), 4: (1, h, w, 3)}[ndim]
    elements = None
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8)
    return draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing() if elements is None else None))


@st.composite
def plausible_rgb(draw):
    """uint8 gray / RGB / RGBA images of at least 32 px per side (the frames a camera gives)."""
    h, w = draw(st.integers(MIN_SIDE, 90)), draw(st.integers(MIN_SIDE, 90))
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3), (h, w, 3), (h, w, 4)]))
    return draw(hnp.arrays(np.uint8, shape))


DEPTH_DTYPES = [np.uint8, np.uint16, np.float32, np.float64, np.int16]


@st.composite
def depth_maps(draw, hw):
    """Depth maps of a given size (or any size with ``hw=None``) in the usual dtypes, floats with NaN/inf."""
    dtype = draw(st.sampled_from(DEPTH_DTYPES))
    shape = hw if hw is not None else (draw(st.integers(1, 90)), draw(st.integers(1, 90)))
    elements = st.floats(allow_nan=True, allow_infinity=True, width=32) if dtype == np.float32 else None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def frames(draw):
    rgb = draw(st.one_of(plausible_rgb(), plausible_rgb(), image_arrays()))
    same = rgb.shape[:2] if rgb.ndim in (2, 3) else None
    depth = draw(st.one_of(depth_maps(same), depth_maps(same), depth_maps(None), image_arrays(weights_uint8=False)))
    return rgb, depth


FORMATS = st.builds(DepthFormat, kind=st.sampled_from(["auto", "u8", "u8-inverted", "metric", "disparity"]),
                    direction=st.sampled_from([None, "near-dark", "near-bright"]))


def check_invariants(f: PreparedFrame, rgb: np.ndarray, pad_hw, divisor: int) -> None:
    h0, w0 = rgb.shape[:2]
    assert f.original_hw == (h0, w0) and min(h0, w0) >= MIN_SIDE
    assert f.resized_hw == shortest_edge_size(h0, w0, 320, 480)
    h, w = f.resized_hw
    assert f.rgb.dtype == np.float32 and f.depth.dtype == np.float32
    H, W = f.rgb.shape[1:]
    assert f.rgb.shape == (3, H, W) and f.depth.shape == (1, H, W)
    if pad_hw:
        assert tuple(pad_hw) == (H, W)
    else:  # the smallest multiples of the divisor that hold the resized frame
        assert H % divisor == 0 and W % divisor == 0 and H - h < divisor and W - w < divisor
    assert 1 <= h <= H and 1 <= w <= W
    for a in (f.rgb, f.depth):
        assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 255 and (a == np.round(a)).all()
        assert not a[:, h:, :].any() and not a[:, :, w:].any()


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames(), FORMATS, st.booleans(), st.booleans(), st.sampled_from([None, (320, 480), (480, 480)]))
def test_prepare_frame_is_valid_or_a_clear_input_error(frame, fmt, bgr, strict, pad_hw):
    rgb, depth = frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = prepare_frame(rgb, depth, pad_hw=pad_hw, bgr=bgr, depth_format=fmt, strict=strict)
        except InputError as exc:
            assert str(exc)  # a message the user can read
            event("InputError")
            return
    event("valid frame")
    check_invariants(f, rgb, pad_hw, 32)


@settings(max_examples=60, deadline=None)
@given(st.integers(MIN_SIDE, 120), st.integers(MIN_SIDE, 120), st.sampled_from([np.uint16, np.float32]),
       st.floats(0, 0.5), st.booleans())
def test_metric_depth_with_holes_is_always_usable(h, w, dtype, hole_fraction, with_nan):
    g = np.random.default_rng(h * 1000 + w)
    depth = g.uniform(200, 6000, (h, w)).astype(dtype)
    holes = g.random((h, w)) < hole_fraction
    depth[holes] = np.nan if (with_nan and dtype == np.float32) else 0
    rgb = g.integers(0, 256, (h, w, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = prepare_frame(rgb, depth)
    check_invariants(f, rgb, None, 32)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 40), (40, 0), (31, 400, 3), (400, 31)])
def test_degenerate_shapes_are_input_errors(shape):
    with pytest.raises(InputError):
        prepare_frame(np.zeros(shape, np.uint8), np.zeros(shape[:2], np.uint8))
