"""Depth health of one frame: can its depth be trusted? (the one owner of the verdict rule)

Every :class:`~calibnet.runtime.core.prediction.Prediction` carries a :class:`DepthHealth`:

- ``invalid_share``: the share of invalid pixels of the depth map as it was given, before conversion
  (:func:`~calibnet.runtime.core.depth.invalid_share`: 0, negative, NaN, inf);
- ``depth_trust``: the model's three depth-trust scores (DSA of the kernel branch, WSF-T3, WSF-res2);
- ``verdict``: ``ok``, ``degraded`` or ``unusable`` by :class:`DepthHealthRule`.

The rule's default thresholds come from the depth-robustness study in docs/depth.md (the synthetic-r18 model,
100 held-out scenes, every corruption at severities 1, 3 and 5;
:func:`calibnet.evaluation.depth_robustness.suggest_rule`): among the corruptions that remove readings (holes,
edge dropout, missing frames), the smallest mean invalid share of a row whose AP fell below 90 % of the clean
AP was 4.0 % (edge dropout, severity 1) -> ``degraded`` from 4 %; the smallest of a row below 50 % of the clean
AP was 16.5 % (edge dropout, severity 5) -> ``unusable`` from 16 %. A frame without any valid pixel is always
``unusable``. The depth-trust scores are reported, not used: in the same study they overlapped between clean
and corrupted frames (WSF-T3 rises with holes, but the frames of a wrong-direction map fall inside the clean
range), so no threshold on them separates good from bad depth (the ROC AUC figures of docs/depth.md).
Models and sensors differ: run the study on your model and data (``calibnet-eval --depth-corruption``), and
give its suggested rule to the :class:`~calibnet.runtime.Runtime` (``health_rule=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["VERDICTS", "DepthHealth", "DepthHealthRule", "assess_depth"]

VERDICTS = ("ok", "degraded", "unusable")


@dataclass(frozen=True)
class DepthHealthRule:
    """Invalid-share thresholds of the verdicts: ``degraded`` from ``degraded_invalid``, ``unusable`` from
    ``unusable_invalid`` (shares of the frame, 0..1)."""

    degraded_invalid: float = 0.04
    unusable_invalid: float = 0.16

    def __post_init__(self) -> None:
        if not 0.0 <= self.degraded_invalid <= self.unusable_invalid <= 1.0:
            raise ValueError(f"depth health thresholds need 0 <= degraded_invalid <= unusable_invalid <= 1, got "
                             f"{self.degraded_invalid} and {self.unusable_invalid}")

    def verdict(self, invalid_share: float) -> str:
        """``ok``, ``degraded`` or ``unusable`` for a frame with this share of invalid depth pixels."""
        if not invalid_share < 1.0 or invalid_share >= self.unusable_invalid:  # NaN or all invalid: unusable
            return "unusable"
        return "degraded" if invalid_share >= self.degraded_invalid else "ok"


@dataclass(frozen=True)
class DepthHealth:
    """How far one frame's depth can be trusted (see the module doc)."""

    invalid_share: float
    depth_trust: tuple[float, float, float]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"invalid_share", "depth_trust": [3 floats or null], "verdict"}``."""
        return {"invalid_share": round(float(self.invalid_share), 6),
                "depth_trust": [round(t, 6) if np.isfinite(t) else None for t in self.depth_trust],
                "verdict": self.verdict}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DepthHealth:
        """The inverse of :meth:`to_dict`; ``ValueError`` for a malformed entry."""
        try:
            trust = tuple(float("nan") if t is None else float(t) for t in d["depth_trust"])
            verdict = str(d["verdict"])
            share = float(d["invalid_share"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a depth health entry: {exc}") from None
        if len(trust) != 3 or verdict not in VERDICTS:
            raise ValueError(f"not a depth health entry: {d!r:.200}")
        return cls(share, trust, verdict)


def assess_depth(invalid_share: float, depth_trust: np.ndarray, rule: DepthHealthRule | None = None) -> DepthHealth:
    """The :class:`DepthHealth` of a frame from its invalid share and the model's depth-trust scores."""
    trust = np.full(3, np.nan) if depth_trust is None or len(depth_trust) != 3 else np.asarray(depth_trust, np.float64)
    return DepthHealth(float(invalid_share), (float(trust[0]), float(trust[1]), float(trust[2])),
                       (rule or DepthHealthRule()).verdict(float(invalid_share)))
