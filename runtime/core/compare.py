"""The one comparator of graph outputs (numpy only): a candidate backend's raw outputs against a reference's.

Used by ``verify_onnx`` (ONNX Runtime vs PyTorch), engine verification (TensorRT vs ONNX Runtime), the
benchmark's validation, the demo and reduced-precision artifacts (FP16 / BF16 / INT8 vs FP32).

Rules, per output of the reference:

- missing in the candidate, or another shape: failed;
- any non-finite candidate value: failed;
- integer outputs (``keep_index``): every entry equal;
- float outputs: max |candidate - reference| <= the tolerance of that output at that ``precision``
  (:data:`TOLERANCES`; ``None``: reported, not gated);
- mask outputs (:data:`~calibnet.runtime.core.contract.MASK_OUTPUTS`): additionally the share of pixels whose
  binary mask agrees must reach the precision's minimum. ONE mask rule, the official binarization:
  probability > ``metadata.mask_threshold`` (0.45), i.e. ``sigmoid(logit) > t`` for ``pred_masks`` logits
  (evaluated as ``logit > log(t / (1 - t))``, the same set without overflow) and ``p > t`` for the top-k
  graph's ``masks`` probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .contract import MASK_OUTPUTS, ModelMetadata

__all__ = ["Tolerance", "TOLERANCES", "PRECISIONS", "ALIASES", "Check", "OutputCheck", "ComparisonReport",
           "compare_outputs", "binary_masks", "format_checks"]


@dataclass(frozen=True)
class Tolerance:
    """Limits for one output: max abs difference (``None``: not gated) and, for masks, the minimum share of
    pixels whose binarized value agrees."""

    atol: float | None
    min_agreement: float | None = None


def _table(logits: float, masks: float | None, trust: float, scores: float, probs: float | None,
           agreement: float) -> dict[str, Tolerance]:
    return {"pred_logits": Tolerance(logits), "pred_scores": Tolerance(logits),
            "pred_masks": Tolerance(masks, agreement), "depth_trust": Tolerance(trust),
            "scores": Tolerance(scores), "masks": Tolerance(probs, agreement)}


#: per precision of the candidate, per output. FP32: ONNX Runtime vs PyTorch (same math, other kernels).
#: Reduced precision: masks are judged by binary agreement only (a mask logit of 20 may move by 1 in FP16
#: without changing a pixel). Outputs not listed get their precision's ``pred_logits`` limit.
TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "fp32": _table(1e-3, 1e-2, 1e-3, 1e-4, 1e-3, 0.999),
    "fp16": _table(0.1, None, 0.02, 0.02, None, 0.99),
    "bf16": _table(0.25, None, 0.05, 0.05, None, 0.98),
    "int8": _table(0.5, None, 0.1, 0.1, None, 0.95),
}
PRECISIONS = tuple(TOLERANCES)
#: backend precision names that mean one of :data:`PRECISIONS` (OpenVINO's ``f32``)
ALIASES = {"f32": "fp32"}


@dataclass
class Check:
    """One line of a report: ``value`` compared with ``limit`` (``>=`` for agreement/equality, else ``<=``)."""

    name: str
    metric: str
    value: float
    limit: float
    passed: bool


@dataclass
class OutputCheck:
    """What was measured for one output."""

    name: str
    passed: bool
    error: str = ""  # "missing" | "shape ... != ..."
    max_abs: float | None = None  # over finite differences
    nonfinite: int = 0  # non-finite candidate values
    atol: float | None = None
    equal: float | None = None  # integer outputs: share of equal entries
    mask_agreement: float | None = None
    min_mask_agreement: float | None = None

    def checks(self) -> list[Check]:
        """This output as report lines."""
        if self.error:
            return [Check(self.name, self.error.split()[0], float("nan"), 0.0, False)]
        out = [Check(self.name, "nonfinite", float(self.nonfinite), 0.0, False)] if self.nonfinite else []
        if self.equal is not None:
            out.append(Check(self.name, "equal", self.equal, 1.0, self.equal == 1.0))
        elif self.atol is not None:
            value = float("nan") if self.max_abs is None else self.max_abs
            out.append(Check(self.name, "max_abs_diff", value, self.atol, value <= self.atol))
        if self.mask_agreement is not None and self.min_mask_agreement is not None:
            out.append(Check(self.name, "binary_agreement", self.mask_agreement, self.min_mask_agreement,
                             self.mask_agreement >= self.min_mask_agreement))
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON form (fields that do not apply are left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}


def format_checks(checks: Sequence[Check], footer: str) -> str:
    """A readable table, one row per check, then ``footer``."""
    rows = [f"{'output':<14}{'metric':<18}{'value':>12}{'limit':>12}  result"]
    for c in checks:
        op = ">=" if c.metric.endswith("agreement") or c.metric == "equal" else "<="
        rows.append(f"{c.name:<14}{c.metric:<18}{c.value:>12.4g}{op + format(c.limit, '.4g'):>12}  "
                    f"{'pass' if c.passed else 'FAIL'}")
    rows.append(footer)
    return "\n".join(rows)


@dataclass
class ComparisonReport:
    """The result of :func:`compare_outputs`."""

    precision: str
    mask_threshold: float
    outputs: dict[str, OutputCheck] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when there was something to compare and every output passed."""
        return bool(self.outputs) and all(o.passed for o in self.outputs.values())

    def checks(self) -> list[Check]:
        """All report lines, output by output."""
        return [c for o in self.outputs.values() for c in o.checks()]

    def table(self) -> str:
        """A readable table (one row per check) and the verdict."""
        return format_checks(self.checks(), f"{self.precision} comparison, masks at p > {self.mask_threshold:g}: "
                                            f"{'PASSED' if self.passed else 'FAILED'}")

    def to_json(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        return {"precision": self.precision, "mask_threshold": self.mask_threshold, "passed": self.passed,
                "outputs": {n: o.to_json() for n, o in self.outputs.items()}}


def binary_masks(name: str, values: np.ndarray, mask_threshold: float) -> np.ndarray:
    """The official binarization of a mask output: probability > ``mask_threshold`` (logits of ``pred_masks``
    are compared with the threshold's logit, the same set as ``sigmoid(x) > t``)."""
    t = float(mask_threshold)
    if MASK_OUTPUTS.get(name) == "logits":
        t = math.log(t / (1.0 - t))
    return np.asarray(values) > t


def compare_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                    metadata: ModelMetadata, precision: str = "fp32",
                    tolerances: Mapping[str, Tolerance] | None = None,
                    min_mask_agreement: float | None = None) -> ComparisonReport:
    """Compare every output of ``reference`` with ``candidate`` (see the module rules).

    ``precision``: of the candidate, one of :data:`PRECISIONS` (or a backend's name of one: ``f32``, ``auto``:
    see :data:`ALIASES`); ``tolerances`` override entries of its table; ``min_mask_agreement`` overrides the mask
    outputs' minimum agreement. The mask threshold is ``metadata.mask_threshold``.
    """
    precision = ALIASES.get(precision, precision)
    if precision not in TOLERANCES:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    table = {**TOLERANCES[precision], **(tolerances or {})}
    report = ComparisonReport(precision, float(metadata.mask_threshold))
    for name, ref in reference.items():
        if name not in candidate:
            report.outputs[name] = OutputCheck(name, False, "missing")
            continue
        a, b = np.asarray(ref), np.asarray(candidate[name])
        if a.shape != b.shape:
            report.outputs[name] = OutputCheck(name, False, f"shape {list(b.shape)} != {list(a.shape)}")
            continue
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        finite = diff[np.isfinite(diff)]
        entry = OutputCheck(name, True, max_abs=float(finite.max()) if finite.size else (None if diff.size else 0.0),
                            nonfinite=int(np.count_nonzero(~np.isfinite(b))) if b.dtype.kind == "f" else 0)
        if a.dtype.kind in "iub":
            entry.equal = float(np.mean(a == b)) if a.size else 1.0
        else:
            tol = table.get(name, table["pred_logits"])
            entry.atol = tol.atol
            if name in MASK_OUTPUTS:
                t = metadata.mask_threshold
                same = binary_masks(name, a, t) == binary_masks(name, b, t)
                entry.mask_agreement = float(same.mean()) if a.size else 1.0
                entry.min_mask_agreement = tol.min_agreement if min_mask_agreement is None else min_mask_agreement
        entry.passed = all(c.passed for c in entry.checks())
        report.outputs[name] = entry
    return report
