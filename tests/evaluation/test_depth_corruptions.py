"""calibnet.evaluation.depth_corruptions: every corruption on 8-bit, 16-bit and float depth maps."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.data.synthetic import make_scene
from calibnet.evaluation.depth_corruptions import CORRUPTIONS, SEVERITIES, changed_share, constant_depth, corrupt_depth
from calibnet.runtime.core.depth import invalid_share, valid_depth


def _maps() -> dict[str, np.ndarray]:
    """One scene's depth as an 8-bit map (near-dark), 16-bit millimetres and float metres, with a few holes."""
    d8 = make_scene(3, 120, 160).depth.copy()
    d8[:4, :6] = 0
    mm = np.where(d8 > 0, 300.0 + 15.0 * d8, 0.0)
    d16 = mm.astype(np.uint16)
    df = np.where(d8 > 0, mm / 1000.0, np.nan).astype(np.float32)
    return {"u8": d8, "u16": d16, "f32": df}


MAPS = _maps()
CASES = [(kind, name) for kind in MAPS for name in CORRUPTIONS]


@pytest.mark.parametrize("kind,name", CASES)
def test_each_corruption_is_deterministic_keeps_dtype_and_shape_and_is_monotone(kind, name):
    d = MAPS[kind]
    before = d.copy()
    outs = [corrupt_depth(d, name, s, seed=5) for s in SEVERITIES]
    np.testing.assert_array_equal(d, before)  # the input is not modified
    for s, o in zip(SEVERITIES, outs):
        assert o.dtype == d.dtype and o.shape == d.shape
        np.testing.assert_array_equal(o, corrupt_depth(d, name, s, seed=5))  # deterministic (NaN == NaN here)
        assert not (valid_depth(o) & ~valid_depth(d)).any(), "an invalid pixel became a reading"
    shares = [changed_share(d, o) for o in outs]
    assert all(a <= b + 1e-12 for a, b in zip(shares, shares[1:])), shares
    assert shares[-1] > 0.0


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n not in ("edge_dropout", "quantization", "blur",
                                                                         "wrong_direction", "missing")])
def test_random_corruptions_depend_on_the_seed(name):
    d = MAPS["u16"]
    assert changed_share(corrupt_depth(d, name, 3, seed=1), corrupt_depth(d, name, 3, seed=2)) > 0


def test_what_each_corruption_does():
    d = MAPS["u8"]
    base = invalid_share(d)
    for s, share in zip(SEVERITIES, (0.05, 0.10, 0.20, 0.35, 0.50)):  # holes: a growing share of the area
        assert invalid_share(corrupt_depth(d, "holes", s)) == pytest.approx(base + share * (1 - base), abs=0.01)
    assert invalid_share(corrupt_depth(d, "missing", 1)) == 1.0
    assert np.isnan(corrupt_depth(MAPS["f32"], "missing", 2)).all()
    inv = corrupt_depth(d, "wrong_direction", 1)
    np.testing.assert_array_equal(inv[d > 0], 255 - d[d > 0])
    np.testing.assert_array_equal(inv[d == 0], 0)
    q = corrupt_depth(d, "quantization", 3)  # 16 levels of the 8-bit scale
    assert set(np.unique(q[d > 0]) % 16) == {0}
    shifted = corrupt_depth(d, "shift", 5)  # 16 px at 480 px: 5 px at 160: an invalid border, the rest moved
    assert 0.02 < invalid_share(shifted) - base < 0.1
    edge = corrupt_depth(d, "edge_dropout", 3)
    dropped = valid_depth(d) & ~valid_depth(edge)
    assert 0.0 < dropped.mean() < 0.3
    grad = np.abs(np.diff(d.astype(int), axis=1))
    assert grad[:, :-1][dropped[:, 1:-1]].mean() > 3 * grad.mean()  # the bands lie along depth jumps
    # noise grows with the distance (near-dark: larger = farther), in both 8-bit conventions
    noisy = corrupt_depth(d, "noise", 5, seed=1).astype(float) - d
    far, near = d > 150, (d > 0) & (d < 90)
    assert noisy[far].std() > 1.5 * noisy[near].std()
    noisy_nb = corrupt_depth(255 - d, "noise", 5, seed=1, direction="near-bright").astype(float) - (255 - d)
    assert noisy_nb[far].std() > 1.5 * noisy_nb[near].std()


def test_gray_maps_with_channels_keep_their_channels_alike():
    d = np.repeat(MAPS["u8"][:, :, None], 3, axis=2)
    out = corrupt_depth(d, "holes", 2, seed=3)
    assert out.shape == d.shape
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    np.testing.assert_array_equal(out[:, :, 0], corrupt_depth(MAPS["u8"], "holes", 2, seed=3))


def test_bad_names_and_severities_are_refused():
    with pytest.raises(ValueError, match="unknown depth corruption 'fog'"):
        corrupt_depth(MAPS["u8"], "fog", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt_depth(MAPS["u8"], "holes", 6)


def test_constant_depth():
    assert (constant_depth(MAPS["u8"]) == 128).all()
    c16 = constant_depth(MAPS["u16"])
    assert c16.dtype == np.uint16 and len(np.unique(c16)) == 1 and valid_depth(c16).all()
    cf = constant_depth(MAPS["f32"])
    assert cf.dtype == np.float32 and np.isfinite(cf).all()
