"""Latency statistics: the one way calibnet turns a sample of seconds into percentiles (the stream statistics,
the bench and the load generator)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["percentiles"]


def percentiles(seconds: Iterable[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50", "p90", "p99", "mean"}`` (the percentiles ``qs``) of a sample of seconds, in milliseconds
    (linear interpolation between order statistics); NaN for an empty sample."""
    a = np.fromiter(seconds, np.float64) * 1e3
    pct = np.percentile(a, qs) if a.size else np.full(len(qs), np.nan)
    return {**{f"p{q}": float(v) for q, v in zip(qs, pct)}, "mean": float(a.mean()) if a.size else float("nan")}
