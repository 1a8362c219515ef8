"""Depth health: the invalid share of the depth as given, the verdict rule, and the Prediction that carries it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from calibnet.data.synthetic import make_scene
from calibnet.runtime import InputWarning, Runtime
from calibnet.runtime.core.depth import invalid_share
from calibnet.runtime.core.depth_health import DepthHealth, DepthHealthRule, assess_depth

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_fakes import SleepBackend  # noqa: E402


def _maps(invalid_rows: int):
    """One scene's depth as 8-bit, 16-bit millimetres and float metres, its first ``invalid_rows`` rows invalid."""
    d8 = make_scene(1, 96, 128).depth.copy()
    d16 = (300 + 15 * d8.astype(np.uint16))
    df = d16.astype(np.float32) / 1000
    d8[:invalid_rows], d16[:invalid_rows] = 0, 0
    df[:invalid_rows] = np.nan
    if invalid_rows:
        df[0, 0] = -1.0  # negative: invalid too
    return {"u8": d8, "u16": d16, "f32": df}


@pytest.mark.parametrize("kind", ["u8", "u16", "f32"])
def test_verdicts_on_a_clean_a_half_invalid_and_an_all_invalid_map(kind):
    rt = Runtime(SleepBackend(0.0))
    rgb = make_scene(1, 96, 128).rgb
    got = []
    for rows in (0, 48, 96):
        depth = _maps(rows)[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)  # no valid pixel (16-bit, float): a uniform far map
            h = rt.predict(rgb, depth).depth_health
        got.append((h.invalid_share, h.verdict))
        assert h.depth_trust == (1.0, 1.0, 1.0)
    assert got == [(0.0, "ok"), (0.5, "unusable"), (1.0, "unusable")]


def test_the_rule_and_its_thresholds():
    rule = DepthHealthRule()  # from the study of docs/depth.md
    assert (rule.degraded_invalid, rule.unusable_invalid) == (0.04, 0.16)
    assert [rule.verdict(s) for s in (0.0, 0.039, 0.04, 0.10, 0.16, 0.5, 1.0, float("nan"))] == [
        "ok", "ok", "degraded", "degraded", "unusable", "unusable", "unusable", "unusable"]
    lenient = DepthHealthRule(0.2, 0.6)
    assert [lenient.verdict(s) for s in (0.1, 0.5, 0.6, 1.0)] == ["ok", "degraded", "unusable", "unusable"]
    loose = DepthHealthRule(0.5, 1.0)
    assert loose.verdict(0.99) == "degraded" and loose.verdict(1.0) == "unusable"  # no valid pixel: unusable
    with pytest.raises(ValueError, match="degraded_invalid <= unusable_invalid"):
        DepthHealthRule(0.5, 0.2)
    d = _maps(10)["u16"]
    assert invalid_share(d) == pytest.approx(10 / 96)
    rt = Runtime(SleepBackend(0.0), health_rule=lenient)
    assert rt.predict(make_scene(1, 96, 128).rgb, d).depth_health.verdict == "ok"
    assert Runtime(SleepBackend(0.0)).predict(make_scene(1, 96, 128).rgb, d).depth_health.verdict == "degraded"


def test_health_round_trips_through_json():
    h = assess_depth(0.25, np.array([0.9, np.nan, 0.5], np.float32))
    d = h.to_dict()
    assert d == {"invalid_share": 0.25, "depth_trust": [0.9, None, 0.5], "verdict": "unusable"}
    back = DepthHealth.from_dict(d)
    assert back.verdict == "unusable" and np.isnan(back.depth_trust[1]) and back.depth_trust[0] == pytest.approx(0.9)
    for bad in ({}, {"invalid_share": 0.1, "depth_trust": [1, 2], "verdict": "ok"},
                {"invalid_share": 0.1, "depth_trust": [1, 2, 3], "verdict": "fine"}):
        with pytest.raises(ValueError, match="not a depth health entry"):
            DepthHealth.from_dict(bad)
