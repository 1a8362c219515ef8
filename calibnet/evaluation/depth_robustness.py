"""How much accuracy each depth-sensor failure costs a model, and whether the frame's depth health notices.

:func:`depth_robustness` runs a labelled data set through any :class:`~calibnet.runtime.Runtime` (every
backend) with :func:`~calibnet.evaluation.runner.run_eval`: once with the depth as given (clean), once per
corruption and severity (:func:`~calibnet.evaluation.depth_corruptions.corrupt_depth`, seeded per image), and
once RGB-only (every depth map replaced by a constant: :func:`constant_depth`). It writes, into ``out_dir``:

- ``depth_robustness.json``: AP / AP50 / AP70 of every row, the mean depth-trust scores, the mean invalid
  share and the verdict counts of each row, the summary figure, the ROC AUC figures (two targets, below) and a
  suggested :class:`~calibnet.runtime.core.depth_health.DepthHealthRule`;
- ``depth_robustness.md``: the tables;
- ``depth_robustness.png``: AP vs severity, one line per corruption (needs matplotlib, an optional
  dependency: without it the figure is skipped with a note);
- ``depth_health_frames.json``: every frame's depth health (corruption, severity, image id, invalid share,
  depth trust, verdict).

The summary figure, as ImageNet-C does for classifiers: the mean AP over all corruptions and severities
relative to the clean AP (``relative_AP``, percent; 100 = no loss). The ROC AUC figures say how well the
verdict, the invalid share and each depth-trust score (low trust = flagged) alone tell frames at severity
``detect_severity`` or more from clean frames and lower severities (``roc_auc``; 0.5 = chance), and harmful
frames from harmless ones (``roc_auc_harm``: a frame is harmful when its row's AP fell below
:data:`HARM_FRACTION` of the clean AP; there the frames the verdict flags are counted too).
:func:`recount` recounts a written study under another rule, without running the model again.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.registry import DatasetSpec
from ..runtime.core.depth_health import VERDICTS, DepthHealthRule
from .depth_corruptions import CORRUPTIONS, SEVERITIES, constant_depth, corrupt_depth
from .runner import run_eval

__all__ = ["HARM_FRACTION", "INVALIDATING", "RobustnessOptions", "depth_robustness", "format_tables", "recount",
           "roc_auc", "suggest_rule"]

#: the corruptions that act by removing readings: the rows a depth-health rule can be fitted on
INVALIDATING = ("holes", "edge_dropout", "missing")
#: a frame is harmful (``roc_auc_harm``) when its row's AP fell below this fraction of the clean AP
HARM_FRACTION = 0.9
METRICS = ("AP", "AP50", "AP70")


@dataclass(frozen=True)
class RobustnessOptions:
    """What a depth-robustness study runs: the corruptions and severities, the seed of the corruptions (image
    ``i`` is corrupted with the seed ``(seed, i)``), the first ``limit`` images only, progress bars, and the
    severity from which a frame counts as bad for the ROC AUC figures."""

    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = (1, 3, 5)
    seed: int = 0
    limit: int | None = None
    progress: bool = True
    detect_severity: int = 3

    def __post_init__(self) -> None:
        unknown = [c for c in self.corruptions if c not in CORRUPTIONS]
        if unknown or not self.corruptions:
            raise ValueError(f"unknown depth corruption {', '.join(unknown) or '(none given)'}: "
                             f"use all or some of {', '.join(CORRUPTIONS)}")
        bad = [s for s in self.severities if s not in SEVERITIES]
        if bad or not self.severities:
            raise ValueError(f"severities must be among {', '.join(map(str, SEVERITIES))}, got "
                             f"{', '.join(map(str, self.severities)) or 'none'}")


@dataclass
class _Row:
    """The frames of one row of the study and what the runtime said about their depth."""

    corruption: str
    severity: int
    frames: list[dict[str, Any]] = field(default_factory=list)

    def observe(self, image_id: int, pred: Any) -> None:
        h = pred.depth_health
        self.frames.append({"corruption": self.corruption, "severity": self.severity, "image_id": int(image_id),
                            **(h.to_dict() if h is not None else {"invalid_share": None, "depth_trust": [None] * 3,
                                                                  "verdict": None})})

    def summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        trust = _trust(self.frames)
        shares = [f["invalid_share"] for f in self.frames if f["invalid_share"] is not None]
        return {"corruption": self.corruption, "severity": self.severity,
                **{k: _num(metrics[k]) for k in METRICS},
                "depth_trust": [_num(v) for v in (np.nanmean(trust, 0) if len(trust) and np.isfinite(trust).any()
                                                  else [math.nan] * 3)],
                "invalid_share": _num(float(np.mean(shares))) if shares else None,
                "verdicts": _verdict_counts(self.frames)}


def _trust(frames: list[dict[str, Any]]) -> np.ndarray:
    """[N,3] the frames' depth-trust scores (NaN where unknown)."""
    return np.array([[np.nan if t is None else t for t in f["depth_trust"]] for f in frames],
                    np.float64).reshape(len(frames), 3)


def _verdict_counts(frames: list[dict[str, Any]]) -> dict[str, int]:
    return {v: sum(f["verdict"] == v for f in frames) for v in VERDICTS}


def _num(v: float) -> float | None:
    return round(float(v), 4) if v is not None and math.isfinite(float(v)) else None


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` (higher = flagged) for bool ``labels`` (the Mann-Whitney
    statistic, ties counted half); None without both classes or with NaN scores only."""
    s, y = np.asarray(scores, np.float64), np.asarray(labels, bool)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    _, value_of, ties = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(ties) - 0.5 * (ties - 1))[value_of]  # 1-based ranks, tied values share their mean rank
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _aucs(frames: list[dict[str, Any]], detect: int, per_corruption: bool = True) -> dict[str, Any]:
    """ROC AUC of the verdict, the invalid share and each depth-trust score for frames at severity >= detect
    (and the same per corruption: its frames against the clean ones)."""
    frames = [f for f in frames if f["corruption"] != "rgb_only" and f["verdict"] is not None]
    names = sorted({f["corruption"] for f in frames} - {"clean"}) if per_corruption else []
    labels = np.array([f["severity"] >= detect for f in frames], bool)
    verdict = np.array([VERDICTS.index(f["verdict"]) for f in frames], np.float64)
    share = np.array([f["invalid_share"] for f in frames], np.float64)
    trust = _trust(frames)

    def auc(scores: np.ndarray) -> float | None:
        a = roc_auc(scores, labels)
        return None if a is None else round(a, 4)

    return {"positives": int(labels.sum()), "negatives": int((~labels).sum()),
            "definition": f"positive: a frame at severity >= {detect} of any corruption; negative: a clean frame "
                          f"or one at a lower severity; score: verdict (ok < degraded < unusable), invalid share, "
                          f"or 1 - depth_trust (low trust flags the frame)",
            "verdict": auc(verdict), "invalid_share": auc(share),
            "depth_trust": {name: auc(1.0 - trust[:, k]) for k, name in enumerate(("kernel", "wsf_t3", "wsf_res2"))},
            "depth_trust_mean": auc(1.0 - np.nanmean(trust, 1) if np.isfinite(trust).any() else trust[:, 0]),
            **({"per_corruption": {n: {k: v for k, v in _aucs([f for f in frames if f["corruption"] in ("clean", n)],
                                                               detect, False).items() if k != "definition"}
                                   for n in names}} if names else {})}


def _harm_aucs(frames: list[dict[str, Any]], rows: list[dict[str, Any]], clean_ap: float) -> dict[str, Any] | None:
    """ROC AUC of the verdict, the invalid share and each depth-trust score for the harmful frames (their row's AP
    below :data:`HARM_FRACTION` x the clean AP) against the clean and harmless ones, and how many of each the
    verdict flags (degraded or unusable). None without a clean AP."""
    if not clean_ap or not math.isfinite(clean_ap):
        return None
    row_ap = {(r["corruption"], r["severity"]): r["AP"] for r in rows}
    frames = [f for f in frames if f["corruption"] != "rgb_only" and f["verdict"] is not None]
    harmful = np.array([f["corruption"] != "clean" and (row_ap.get((f["corruption"], f["severity"])) or 0.0)
                        < HARM_FRACTION * clean_ap for f in frames], bool)
    flagged = np.array([f["verdict"] != "ok" for f in frames], bool)
    aucs = _aucs([{**f, "severity": int(h)} for f, h in zip(frames, harmful)], 1, per_corruption=False)
    aucs["definition"] = (f"positive: a frame of a row whose AP fell below {HARM_FRACTION:.0%} of the clean AP; "
                          f"negative: a clean frame or one of a row above; scores as in roc_auc")
    return aucs | {"flagged_harmful": int((flagged & harmful).sum()),
                   "flagged_harmless": int((flagged & ~harmful).sum())}


def recount(folder: str | Path, rule: DepthHealthRule | None = None) -> dict[str, Any]:
    """The report of the study written in ``folder`` (``depth_robustness.json`` and ``depth_health_frames.json``)
    with the verdicts, their counts and the ROC AUC figures recounted under ``rule`` (default: the runtime's
    default rule); nothing is written and the model is not run again (a verdict depends on the invalid share
    only)."""
    folder = Path(folder)
    report = json.loads((folder / "depth_robustness.json").read_text())
    rule = rule or DepthHealthRule()
    frames = [f if f["invalid_share"] is None else {**f, "verdict": rule.verdict(f["invalid_share"])}
              for f in json.loads((folder / "depth_health_frames.json").read_text())]
    for row in [report["clean"], report["rgb_only"], *report["rows"]]:
        mine = [f for f in frames if (f["corruption"], f["severity"]) == (row["corruption"], row["severity"])]
        row["verdicts"] = _verdict_counts(mine)
    report["health_rule"] = asdict(rule)
    report["roc_auc"] = _aucs(frames, report["detect_severity"])
    report["roc_auc_harm"] = _harm_aucs(frames, report["rows"], report["clean"]["AP"] or 0.0)
    return report


def suggest_rule(rows: list[dict[str, Any]], clean_ap: float, drop: float = 0.9,
                 collapse: float = 0.5) -> dict[str, Any] | None:
    """Invalid-share thresholds read off the rows of the corruptions that remove readings (:data:`INVALIDATING`):
    ``degraded_invalid`` = the smallest mean invalid share of a row whose AP fell below ``drop`` x the clean AP,
    ``unusable_invalid`` = the smallest one of a row below ``collapse`` x the clean AP. None when no row
    qualifies (or the clean AP is 0)."""
    if not clean_ap or not math.isfinite(clean_ap):
        return None
    fitted = [r for r in rows if r["corruption"] in INVALIDATING and r["invalid_share"] and r["AP"] is not None]

    def first(frac: float) -> float | None:
        shares = [r["invalid_share"] for r in fitted if r["AP"] < frac * clean_ap]
        return round(min(shares), 4) if shares else None

    degraded, unusable = first(drop), first(collapse)
    if degraded is None or unusable is None:
        return None
    return asdict(DepthHealthRule(min(degraded, unusable), unusable)) | {
        "how": f"degraded: the smallest mean invalid share of a {'/'.join(INVALIDATING)} row whose AP fell below "
               f"{drop:.0%} of the clean AP; unusable: of one below {collapse:.0%}"}


def depth_robustness(runtime: Any, spec: DatasetSpec, out_dir: str | Path,
                     options: RobustnessOptions | None = None) -> dict[str, Any]:
    """Run the study (see the module doc) and write its files into ``out_dir``; returns the report (the
    contents of ``depth_robustness.json``)."""
    opts = options or RobustnessOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []

    def run(corruption: str, severity: int, hook: Any) -> dict[str, Any]:
        row = _Row(corruption, severity)
        metrics = run_eval(runtime, spec, progress=opts.progress, limit=opts.limit, depth_hook=hook,
                           observer=row.observe)
        frames.extend(row.frames)
        return {**row.summary(metrics), "images": int(metrics["images"])}

    clean = run("clean", 0, None)
    rgb_only = run("rgb_only", 0, lambda depth, image_id: constant_depth(depth))
    for name in opts.corruptions:
        for sev in opts.severities:
            def hook(depth: np.ndarray, image_id: int, name: str = name, sev: int = sev) -> np.ndarray:
                return corrupt_depth(depth, name, sev, (opts.seed, image_id))

            rows.append(run(name, sev, hook))
    clean_ap = clean["AP"] or 0.0
    mean = {k: float(np.mean([r[k] or 0.0 for r in rows])) for k in METRICS}
    summary = {**{f"mean_{k}": round(mean[k], 4) for k in METRICS},
               **{f"relative_{k}": round(100.0 * mean[k] / clean[k], 2) if clean[k] else None for k in METRICS},
               "definition": "mean over every corruption and severity of the row's metric; relative_*: that mean "
                             "in percent of the clean row's (ImageNet-C style; 100 = no loss)"}
    mean_ap = {name: float(np.mean([r["AP"] or 0.0 for r in rows if r["corruption"] == name]))
               for name in opts.corruptions}
    per_corruption = {name: {"mean_AP": round(ap, 4),
                             "relative_AP": round(100.0 * ap / clean_ap, 2) if clean_ap else None}
                      for name, ap in mean_ap.items()}
    report: dict[str, Any] = {
        "dataset": spec.name, "images": clean["images"], "seed": opts.seed, "corruptions": list(opts.corruptions),
        "severities": list(opts.severities), "detect_severity": opts.detect_severity, "clean": clean,
        "rgb_only": rgb_only, "rows": rows,
        "summary": summary, "per_corruption": per_corruption,
        "health_rule": asdict(runtime.health_rule) if hasattr(runtime, "health_rule") else None,
        "roc_auc": _aucs(frames, opts.detect_severity),
        "roc_auc_harm": _harm_aucs(frames, rows, clean_ap),
        "suggested_rule": suggest_rule(rows, clean_ap),
    }
    report["figure"], note = _figure(report, out / "depth_robustness.png")
    if note:
        report["figure_note"] = note
    (out / "depth_health_frames.json").write_text(json.dumps(frames))
    (out / "depth_robustness.json").write_text(json.dumps(report, indent=1))
    (out / "depth_robustness.md").write_text(format_tables(report) + "\n")
    return report


def _cell(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_tables(report: dict[str, Any]) -> str:
    """Markdown: AP per corruption and severity with the summary figure, then every row in full."""
    sev = report["severities"]
    clean, rgb = report["clean"], report["rgb_only"]
    by = {(r["corruption"], r["severity"]): r for r in report["rows"]}
    s = report["summary"]
    lines = [f"Depth robustness on {report['dataset']} ({report['images']} images, corruption seed {report['seed']}): "
             f"clean AP {_cell(clean['AP'])}, RGB-only AP {_cell(rgb['AP'])}; mean AP over all corruptions and "
             f"severities {s['mean_AP']:.1f} = **{_cell(s['relative_AP'])} % of clean** "
             f"(AP50: {_cell(s['relative_AP50'])} %, AP70: {_cell(s['relative_AP70'])} %).", "",
             "| corruption | " + " | ".join(f"AP s{v}" for v in sev) + " | mean AP | % of clean |",
             "|---|" + "---|" * (len(sev) + 2)]
    for name in report["corruptions"]:
        pc = report["per_corruption"][name]
        lines.append(f"| {name} | " + " | ".join(_cell(by[(name, v)]["AP"]) for v in sev)
                     + f" | {_cell(pc['mean_AP'])} | {_cell(pc['relative_AP'])} |")
    lines += ["", "| depth given | severity | AP | AP50 | AP70 | depth_trust (kernel / T3 / res2) | invalid share | "
              "ok / degraded / unusable |", "|---|---|---|---|---|---|---|---|"]
    for r in [clean, *report["rows"], rgb]:
        trust = " / ".join("n/a" if t is None else f"{t:.3f}" for t in r["depth_trust"])
        share = "n/a" if r["invalid_share"] is None else f"{100 * r['invalid_share']:.1f} %"
        v = r["verdicts"]
        label = {"clean": "clean", "rgb_only": "RGB-only (constant depth)"}.get(r["corruption"], r["corruption"])
        lines.append(f"| {label} | {r['severity'] or '-'} | {_cell(r['AP'])} | {_cell(r['AP50'])} | "
                     f"{_cell(r['AP70'])} | {trust} | {share} | {v['ok']} / {v['degraded']} / {v['unusable']} |")
    auc = report["roc_auc"]
    t = auc["depth_trust"]
    lines += ["", f"Detecting severity >= {report['detect_severity']} ({auc['positives']} bad frames vs "
                  f"{auc['negatives']} clean or milder ones), ROC AUC: verdict {_auc(auc['verdict'])}, invalid "
                  f"share {_auc(auc['invalid_share'])}, depth_trust alone (1 - trust) kernel {_auc(t['kernel'])}, "
                  f"WSF-T3 {_auc(t['wsf_t3'])}, WSF-res2 {_auc(t['wsf_res2'])}, mean "
                  f"{_auc(auc['depth_trust_mean'])}."]
    harm = report.get("roc_auc_harm")
    if harm:
        t = harm["depth_trust"]
        lines += ["", f"Detecting harmful depth (a row below {HARM_FRACTION:.0%} of the clean AP: "
                      f"{harm['positives']} frames vs {harm['negatives']} clean or harmless ones), ROC AUC: verdict "
                      f"{_auc(harm['verdict'])}, invalid share {_auc(harm['invalid_share'])}, depth_trust alone "
                      f"kernel {_auc(t['kernel'])}, WSF-T3 {_auc(t['wsf_t3'])}, WSF-res2 {_auc(t['wsf_res2'])}; the "
                      f"verdict flags {harm['flagged_harmful']} of the harmful and {harm['flagged_harmless']} of "
                      f"the harmless frames."]
    if auc.get("per_corruption"):
        lines += ["", "| corruption (vs clean) | verdict AUC | invalid share AUC | depth_trust AUC "
                      "(kernel / T3 / res2) |", "|---|---|---|---|"]
        for name, a in auc["per_corruption"].items():
            t = a["depth_trust"]
            lines.append(f"| {name} | {_auc(a['verdict'])} | {_auc(a['invalid_share'])} | {_auc(t['kernel'])} / "
                         f"{_auc(t['wsf_t3'])} / {_auc(t['wsf_res2'])} |")
    return "\n".join(lines)


def _auc(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _figure(report: dict[str, Any], path: Path) -> tuple[str | None, str | None]:
    """AP vs severity, one line per corruption, the clean and RGB-only APs as dashed lines: (path, None), or
    (None, why) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed: no depth_robustness.png (pip install matplotlib)"
    sev = report["severities"]
    by = {(r["corruption"], r["severity"]): r for r in report["rows"]}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in report["corruptions"]:
        ax.plot(sev, [by[(name, v)]["AP"] or 0.0 for v in sev], marker="o", label=name)
    for key, style, label in (("clean", "--", "clean"), ("rgb_only", ":", "RGB-only")):
        ax.axhline(report[key]["AP"] or 0.0, color="black", linestyle=style, linewidth=1, label=label)
    ax.set(xlabel="severity", ylabel="mask AP", xticks=sev,
           title=f"Depth robustness: {report['dataset']} ({report['images']} images); "
                 f"mean {report['summary']['relative_AP']} % of clean")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path), None
