"""Stage latencies (pre-processing, inference, post-processing, end to end) of several paths, measured with
interleaved iterations (path A, path B, ..., path A, ...) so that load from other processes on a shared
machine hits every path alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from calibnet.runtime.core.stats import percentiles

__all__ = ["STAGES", "Timed", "RuntimePath", "StageTimes", "interleave"]

STAGES = ("pre", "infer", "post", "e2e")


class Timed(Protocol):
    """Anything the harness can time: one end-to-end pass returning seconds per stage."""

    name: str

    def run_once(self) -> dict[str, float]: ...


class RuntimePath:
    """A :class:`calibnet.runtime.Runtime` on fixed frames; stages from ``Prediction.timings``, end to end
    measured around ``predict_batch``."""

    def __init__(self, name: str, runtime: Any, rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray]) -> None:
        self.name = name
        self.runtime = runtime
        self.rgbs, self.depths = list(rgbs), list(depths)
        self.last_predictions: list[Any] = []

    def run_once(self) -> dict[str, float]:
        t = time.perf_counter()
        preds = self.runtime.predict_batch(self.rgbs, self.depths)
        e2e = time.perf_counter() - t
        self.last_predictions = preds
        out = {s: float(sum(p.timings.get(s, 0.0) for p in preds)) for s in ("pre", "infer", "post")}
        out["e2e"] = e2e
        return out


@dataclass
class StageTimes:
    """Seconds per stage, one entry per timed iteration."""

    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})

    def add(self, times: dict[str, float]) -> None:
        for s in STAGES:
            self.samples[s].append(float(times[s]))

    def summary_ms(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50", "p90", "p99", "mean"}}`` in milliseconds."""
        return {s: percentiles(v) for s, v in self.samples.items()}


def interleave(paths: Sequence[Timed], warmup: int, iters: int,
               progress: Callable[[Iterable[int], str], Iterable[int]] | None = None) -> dict[str, StageTimes]:
    """Run ``warmup`` untimed then ``iters`` timed rounds; each round runs every path once, the starting path
    rotating from round to round (no path always runs first, e.g. right after a slow one).
    ``progress(iterable, description)`` may wrap the rounds (e.g. a tqdm bar)."""
    if iters < 1 or warmup < 0:
        raise ValueError("iters must be >= 1 and warmup >= 0")
    wrap = progress or (lambda rounds, _desc: rounds)
    n = len(paths)
    for r in wrap(range(warmup), "warm-up"):
        for i in range(n):
            paths[(r + i) % n].run_once()
    out = {p.name: StageTimes() for p in paths}
    for r in wrap(range(iters), "timed"):
        for i in range(n):
            p = paths[(r + i) % n]
            out[p.name].add(p.run_once())
    return out
