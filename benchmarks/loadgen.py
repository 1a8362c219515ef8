"""Concurrent clients against a served ``calibnet``: throughput, and every answer kept for checking.

  python -m calibnet.benchmarks.loadgen --url 127.0.0.1:8000 --url grpc://127.0.0.1:8001 --clients 4 \\
      --requests 25 --height 240 --width 320

Each client (a thread with its own connection; the URLs are used in turn) sends ``--requests`` frames from a
pool of synthetic scenes, one request at a time. Prints requests/s and latency percentiles. Compare a
server started with ``--max-batch 8`` against one with ``--max-batch 1`` (no dynamic batching), one after
the other on the same machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from calibnet.data.synthetic import make_scene
from calibnet.runtime.core.prediction import Prediction
from calibnet.runtime.core.stats import percentiles
from calibnet.serving.client import CalibnetClient, ServingError

__all__ = ["Answer", "LoadReport", "run_load", "synthetic_frames"]


@dataclass
class Answer:
    """One request of a load run: which client, which frame of the pool, the result or the error."""

    client: int
    index: int
    frame: int
    prediction: Prediction | None
    error: str | None
    latency_s: float


@dataclass
class LoadReport:
    """All answers of a run and its wall time."""

    answers: list[Answer] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return len([a for a in self.answers if a.error is None]) / max(self.wall_s, 1e-9)

    def summary(self) -> str:
        """One line: requests, errors, throughput, latency p50/p90."""
        lat = [a.latency_s for a in self.answers if a.error is None]
        errors = sum(a.error is not None for a in self.answers)
        p = percentiles(lat, (50, 90))
        pct = f", latency p50 {p['p50']:.0f} ms p90 {p['p90']:.0f} ms" if lat else ""
        return (f"{len(self.answers)} requests, {errors} errors in {self.wall_s:.1f} s: "
                f"{self.throughput:.2f} requests/s{pct}")


def run_load(urls: Sequence[str], frames: Sequence[tuple[np.ndarray, np.ndarray]], clients: int = 4,
             requests: int = 25, seed: int = 0, timeout_s: float = 120.0) -> LoadReport:
    """``clients`` threads, client ``c`` on ``urls[c % len(urls)]``, each sending ``requests`` frames drawn
    from ``frames`` (RGB, depth) in a seeded order; every answer (or error) is kept."""
    rng = np.random.default_rng(seed)
    orders = [rng.integers(0, len(frames), requests) for _ in range(clients)]
    answers: list[list[Answer]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients)

    def work(c: int) -> None:
        with CalibnetClient(urls[c % len(urls)], timeout_s=timeout_s) as cl:
            start.wait()
            for i, f in enumerate(orders[c]):
                t0 = time.perf_counter()
                try:
                    pred, err = cl.predict(*frames[int(f)]), None
                except ServingError as exc:
                    pred, err = None, str(exc)
                answers[c].append(Answer(c, i, int(f), pred, err, time.perf_counter() - t0))

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadReport([a for per in answers for a in per], time.perf_counter() - t0)


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic RGB-D scenes (calibnet.data.synthetic) of one size."""

    return [(s.rgb, s.depth) for s in (make_scene(seed + i, height, width) for i in range(n))]


if __name__ == "__main__":
    from calibnet.cli.loadgen import main

    raise SystemExit(main())
