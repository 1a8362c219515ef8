"""The depth-robustness study on a stand-in model whose only cue is depth (no torch, a few seconds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from calibnet.data import write_synthetic_dataset
from calibnet.evaluation.depth_robustness import (
    RobustnessOptions,
    depth_robustness,
    format_tables,
    recount,
    roc_auc,
    suggest_rule,
)
from calibnet.runtime import Runtime
from calibnet.runtime.core.depth_health import DepthHealthRule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from stream_fakes import SleepBackend  # noqa: E402  (the stand-in model: its instance is the near half of the depth)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("robust"), 6, seed=4, height=128, width=192,
                                   n_salient=1, n_clutter=2, image_format="png")


def test_study_rows_summary_tables_and_figure(spec, tmp_path):
    rt = Runtime(SleepBackend(0.0))
    opts = RobustnessOptions(corruptions=("holes", "missing", "noise"), severities=(1, 5), progress=False)
    rep = depth_robustness(rt, spec, tmp_path, opts)
    saved = json.loads((tmp_path / "depth_robustness.json").read_text())
    assert saved["summary"] == rep["summary"] and saved["images"] == 6
    assert [(r["corruption"], r["severity"]) for r in rep["rows"]] == [
        ("holes", 1), ("holes", 5), ("missing", 1), ("missing", 5), ("noise", 1), ("noise", 5)]
    clean, rgb = rep["clean"], rep["rgb_only"]
    by = {(r["corruption"], r["severity"]): r for r in rep["rows"]}
    # the stand-in segments the near (dark) half of the depth: constant mid-gray depth finds nothing, holes
    # (0 = nearest in an 8-bit map) add false instances, and the invalid share says so
    assert clean["AP"] > 30 and rgb["AP"] == 0.0
    assert by[("holes", 5)]["AP"] < clean["AP"]
    assert by[("holes", 5)]["invalid_share"] == pytest.approx(0.5, abs=0.01) and clean["invalid_share"] == 0.0
    assert by[("missing", 1)]["verdicts"] == {"ok": 0, "degraded": 0, "unusable": 6}
    assert clean["verdicts"]["ok"] == 6
    mean = np.mean([r["AP"] for r in rep["rows"]])
    assert rep["summary"]["mean_AP"] == pytest.approx(mean, abs=1e-3)
    assert rep["summary"]["relative_AP"] == pytest.approx(100 * mean / clean["AP"], abs=0.01)
    md = (tmp_path / "depth_robustness.md").read_text()
    assert "| holes |" in md and "RGB-only" in md and f"{rep['summary']['relative_AP']:.1f} % of clean" in md
    frames = json.loads((tmp_path / "depth_health_frames.json").read_text())
    assert len(frames) == 6 * (2 + 6)
    auc = rep["roc_auc"]
    assert auc["positives"] == 18 and auc["negatives"] == 6 + 18  # severity 5 vs clean and severity 1
    assert auc["invalid_share"] is not None and auc["verdict"] is not None
    assert (tmp_path / "depth_robustness.png").stat().st_size > 1000 and rep["figure"]


def test_harm_figures_and_a_recount_under_another_rule(spec, tmp_path):
    rt = Runtime(SleepBackend(0.0))
    opts = RobustnessOptions(corruptions=("holes", "noise"), severities=(1, 5), progress=False, limit=4)
    rep = depth_robustness(rt, spec, tmp_path, opts)
    by = {(r["corruption"], r["severity"]): r for r in rep["rows"]}
    harmful = [k for k, r in by.items() if r["AP"] < 0.9 * rep["clean"]["AP"]]
    assert ("holes", 5) in harmful and ("noise", 1) not in harmful
    harm = rep["roc_auc_harm"]
    assert harm["positives"] == 4 * len(harmful) and harm["negatives"] == 4 + 4 * (4 - len(harmful))
    flagged = sum(by[k]["verdicts"]["degraded"] + by[k]["verdicts"]["unusable"] for k in harmful)
    assert harm["flagged_harmful"] == flagged and harm["flagged_harmless"] == 0  # noise leaves no invalid pixel
    assert "Detecting harmful depth" in (tmp_path / "depth_robustness.md").read_text()
    # recounted, not re-run: holes at 5 % are ok under a 10 % / 60 % rule, at 50 % degraded; the file is unchanged
    again = recount(tmp_path, DepthHealthRule(0.10, 0.60))
    rows = {(r["corruption"], r["severity"]): r for r in again["rows"]}
    assert rows[("holes", 1)]["verdicts"] == {"ok": 4, "degraded": 0, "unusable": 0}
    assert rows[("holes", 5)]["verdicts"] == {"ok": 0, "degraded": 4, "unusable": 0}
    assert again["health_rule"] == {"degraded_invalid": 0.10, "unusable_invalid": 0.60}
    assert [r["AP"] for r in again["rows"]] == [r["AP"] for r in rep["rows"]]
    assert recount(tmp_path)["rows"][0]["verdicts"] == by[("holes", 1)]["verdicts"]  # the default rule: as run
    assert "| holes | 5 |" in format_tables(again)
    assert json.loads((tmp_path / "depth_robustness.json").read_text())["health_rule"] == rep["health_rule"]


def test_without_matplotlib_the_figure_is_skipped_with_a_note(spec, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rep = depth_robustness(Runtime(SleepBackend(0.0)), spec, tmp_path,
                           RobustnessOptions(corruptions=("blur",), severities=(2,), progress=False, limit=2))
    assert rep["figure"] is None and "matplotlib" in rep["figure_note"]
    assert not (tmp_path / "depth_robustness.png").exists() and (tmp_path / "depth_robustness.md").is_file()


def test_options_are_checked():
    with pytest.raises(ValueError, match="unknown depth corruption fog"):
        RobustnessOptions(corruptions=("fog",))
    with pytest.raises(ValueError, match="severities must be among"):
        RobustnessOptions(severities=(0,))


def test_roc_auc():
    y = np.array([0, 0, 1, 1], bool)
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert roc_auc(np.array([1, 1, 1, 1]), y) == 0.5  # ties count half
    assert roc_auc(np.array([0, 1, 1, 2]), y) == pytest.approx(0.875)
    assert roc_auc(np.array([0.1, 0.2]), np.array([1, 1], bool)) is None


def test_suggested_rule_reads_the_invalidating_rows():
    rows = [{"corruption": "holes", "severity": s, "AP": ap, "invalid_share": sh}
            for s, ap, sh in ((1, 45.0, 0.05), (3, 30.0, 0.2), (5, 10.0, 0.5))]
    rows.append({"corruption": "noise", "severity": 5, "AP": 1.0, "invalid_share": 0.0})  # not a removal of readings
    rule = suggest_rule(rows, clean_ap=48.0)
    assert rule["degraded_invalid"] == 0.2 and rule["unusable_invalid"] == 0.5  # 45 >= 0.9 * 48 = 43.2
    assert suggest_rule(rows[:1], clean_ap=48.0) is None
