"""Latency statistics: the one way calibnet turns a sample of seconds into percentiles (the stream statistics,
the bench and the load generator), and the bounded window a long-running stream keeps them in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Window", "percentiles"]


def percentiles(seconds: Iterable[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50", "p90", "p99", "mean"}`` (the percentiles ``qs``) of a sample of seconds, in milliseconds
    (linear interpolation between order statistics); NaN for an empty sample."""
    a = np.fromiter(seconds, np.float64) * 1e3
    pct = np.percentile(a, qs) if a.size else np.full(len(qs), np.nan)
    return {**{f"p{q}": float(v) for q, v in zip(qs, pct)}, "mean": float(a.mean()) if a.size else float("nan")}


class Window:
    """The last ``size`` values of a series, in a buffer allocated with the first value: the memory a stream's
    statistics take is fixed from its first result on, however long it runs."""

    def __init__(self, size: int) -> None:
        self.size, self.count = max(1, int(size)), 0
        self._buf: np.ndarray | None = None

    def append(self, value: float) -> None:
        """Add ``value``, replacing the oldest once the window is full."""
        if self._buf is None:
            self._buf = np.empty(self.size, np.float64)
        self._buf[self.count % self.size] = value
        self.count += 1

    def values(self) -> np.ndarray:
        """The values in the window, oldest first (a copy)."""
        if self._buf is None:
            return np.empty(0, np.float64)
        if self.count <= self.size:
            return self._buf[: self.count].copy()
        cut = self.count % self.size
        return np.concatenate([self._buf[cut:], self._buf[:cut]])

    def copy(self) -> Window:
        """An independent copy."""
        out = Window(self.size)
        out.count, out._buf = self.count, None if self._buf is None else self._buf.copy()
        return out

    def __len__(self) -> int:
        return min(self.count, self.size)
