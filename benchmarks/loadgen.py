"""Concurrent clients against a served ``calibnet``: throughput, and every answer kept for checking.

  python -m calibnet.benchmarks.loadgen --url 127.0.0.1:8000 --url grpc://127.0.0.1:8001 --clients 4 \\
      --requests 25 --height 240 --width 320
  python -m calibnet.benchmarks.loadgen --url 127.0.0.1:8000 --overload 2,10 --duration-s 60 --server-pid PID

Each client (a thread with its own connection; the URLs are used in turn) sends ``--requests`` frames from a
pool of synthetic scenes, one request at a time. Prints requests/s and latency percentiles. Compare a
server started with ``--max-batch 8`` against one with ``--max-batch 1`` (no dynamic batching), one after
the other on the same machine.

``--overload 2,10``: the closed-loop run above measures the sustainable rate R, then requests are sent at 2R and
then 10R per second for ``--duration-s`` each (open loop: on schedule, whether or not earlier ones were answered),
and the server is asked for one more frame afterwards. Each phase prints how many requests were answered, shed by
the server (overloaded, retry later) or failed otherwise, and, with ``--server-pid`` (calibnet-serve's pid), the
peak RSS of the server's process tree (calibnet-serve, tritonserver, its stub). Exit 1 unless every request got
a result or an explicit "overloaded" answer and the server answered afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibnet.data.synthetic import make_scene
from calibnet.runtime.core.prediction import Prediction
from calibnet.runtime.core.stats import percentiles
from calibnet.serving.client import CalibnetClient, ServerOverloaded, ServerUnreachable, ServingError

__all__ = ["Answer", "LoadReport", "OverloadPhase", "RssMonitor", "run_load", "run_overload", "run_rate",
           "synthetic_frames", "tree_rss"]


@dataclass
class Answer:
    """One request of a load run: which client, which frame of the pool, the result or the error."""

    client: int
    index: int
    frame: int
    prediction: Prediction | None
    error: str | None
    latency_s: float
    kind: str = "answered"  # or "overloaded" (shed by the server), "unreachable", "refused"


@dataclass
class LoadReport:
    """All answers of a run and its wall time; ``late_s``: how far an open-loop run's sending fell behind its
    schedule (every sender busy), 0 on schedule."""

    answers: list[Answer] = field(default_factory=list)
    wall_s: float = 0.0
    late_s: float = 0.0

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

    def kinds(self) -> dict[str, int]:
        """How many answers of each kind: answered, overloaded, unreachable, refused (zeros included)."""
        return {**dict.fromkeys(("answered", "overloaded", "unreachable", "refused"), 0),
                **Counter(a.kind for a in self.answers)}


def _send(client: CalibnetClient, frame: tuple[np.ndarray, np.ndarray]) -> tuple[Prediction | None, str | None, str]:
    """One request: (prediction, error, kind)."""
    try:
        return client.predict(*frame), None, "answered"
    except ServerOverloaded as exc:
        return None, str(exc), "overloaded"
    except ServerUnreachable as exc:
        return None, str(exc), "unreachable"
    except ServingError as exc:
        return None, str(exc), "refused"


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
                pred, err, kind = _send(cl, frames[int(f)])
                answers[c].append(Answer(c, i, int(f), pred, err, time.perf_counter() - t0, kind))

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return LoadReport([a for per in answers for a in per], time.perf_counter() - t0)


def run_rate(urls: Sequence[str], frames: Sequence[tuple[np.ndarray, np.ndarray]], rate: float, duration_s: float,
             senders: int = 256, seed: int = 0, timeout_s: float = 30.0, retries: int = 0) -> LoadReport:
    """Open loop: ``rate`` requests per second for ``duration_s``, each sent on schedule by one of ``senders``
    threads (each its own connection per URL; a request is late only when every sender is busy), whatever became
    of the earlier ones; every answer kept (``Answer.client``: the sender). ``retries``: the client's own retries
    of a shed request (0: count every shed request). Senders must outnumber the requests the server holds (its
    queue and batch), or the rate offered is only what the server serves: ``LoadReport.late_s`` says so."""
    rng = np.random.default_rng(seed)
    n = max(1, round(rate * duration_s))
    order = rng.integers(0, len(frames), n)
    local = threading.local()
    clients: list[CalibnetClient] = []
    lock = threading.Lock()
    sent = np.zeros(n)

    def one(i: int) -> Answer:
        if not hasattr(local, "client"):
            with lock:
                local.client = CalibnetClient(urls[len(clients) % len(urls)], timeout_s=timeout_s, retries=retries)
                local.index = len(clients)
                clients.append(local.client)
        sent[i] = t0 = time.perf_counter()
        pred, err, kind = _send(local.client, frames[int(order[i])])
        return Answer(local.index, i, int(order[i]), pred, err, time.perf_counter() - t0, kind)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, senders)) as pool:
        futures = []
        for i in range(n):
            time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            futures.append(pool.submit(one, i))
        answers = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    return LoadReport(answers, wall, max(0.0, float(np.max(sent - t0 - np.arange(n) / rate))))


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (Linux /proc; 0 for a process that is gone)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        if "VmRSS:" in status:
            total += int(status.split("VmRSS:", 1)[1].split()[0]) * 1024
    return total


class RssMonitor:
    """Samples :func:`tree_rss` of ``pid`` every ``every_s`` in a thread while in a ``with`` block; ``peak``."""

    def __init__(self, pid: int, every_s: float = 0.25, rss: Callable[[int], int] = tree_rss) -> None:
        self.pid, self.every_s, self._rss = pid, every_s, rss
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self._rss(self.pid))
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class OverloadPhase:
    """One phase of :func:`run_overload`: ``multiple`` x the sustainable rate, its answers, the server tree's peak
    RSS (0 without a pid)."""

    multiple: float
    rate: float
    report: LoadReport
    peak_rss: int

    def summary(self) -> str:
        """One line: rate, requests, answers by kind, peak RSS, and a warning when sending fell behind."""
        k = self.report.kinds()
        rss = f", server peak RSS {self.peak_rss / 2**20:.0f} MiB" if self.peak_rss else ""
        late = (f"; sending fell {self.report.late_s:.1f} s behind schedule (every sender busy): the rate offered "
                "was lower, raise --senders" if self.report.late_s > 1.0 else "")
        return (f"{self.multiple:g}x ({self.rate:.2f} requests/s, answered within {self.report.wall_s:.0f} s): "
                f"{len(self.report.answers)} requests: {k['answered']} answered, {k['overloaded']} overloaded (shed), "
                f"{k['unreachable']} unreachable, {k['refused']} refused{rss}{late}")


def run_overload(urls: Sequence[str], frames: Sequence[tuple[np.ndarray, np.ndarray]], sustainable: float,
                 multiples: Sequence[float] = (2.0, 10.0), duration_s: float = 60.0, server_pid: int = 0,
                 senders: int = 256, timeout_s: float = 30.0) -> list[OverloadPhase]:
    """:func:`run_rate` at each multiple of the ``sustainable`` rate (requests/s) for ``duration_s``, the server's
    process tree (``server_pid``, 0: not sampled) sampled for its peak RSS."""
    phases = []
    for i, m in enumerate(multiples):
        with RssMonitor(server_pid) if server_pid else contextlib.nullcontext() as mon:
            report = run_rate(urls, frames, sustainable * m, duration_s, senders=senders, seed=i, timeout_s=timeout_s)
        phases.append(OverloadPhase(m, sustainable * m, report, mon.peak if mon else 0))
    return phases


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` synthetic RGB-D scenes (calibnet.data.synthetic) of one size."""
    return [(s.rgb, s.depth) for s in (make_scene(seed + i, height, width) for i in range(n))]


if __name__ == "__main__":
    from calibnet.cli.loadgen import main

    raise SystemExit(main())
