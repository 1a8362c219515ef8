"""The load generator's open loop says when it could not keep its schedule (too few senders for a slow server)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("tritonclient")
from calibnet.benchmarks import loadgen  # noqa: E402


class _SlowClient:
    """Answers every request after 50 ms, like a server that holds each request."""

    def __init__(self, *args, **kwargs):
        pass

    def predict(self, rgb, depth):
        time.sleep(0.05)
        raise loadgen.ServerOverloaded("server fake is overloaded (queue full), retry later")

    def close(self):
        pass


@pytest.mark.parametrize("senders, late", [(1, True), (16, False)])
def test_open_loop_reports_when_its_senders_cannot_keep_the_rate(monkeypatch, senders, late):
    monkeypatch.setattr(loadgen, "CalibnetClient", _SlowClient)
    frames = [(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))]
    report = loadgen.run_rate(["fake"], frames, rate=100.0, duration_s=0.5, senders=senders)
    assert len(report.answers) == 50 and report.kinds()["overloaded"] == 50
    # one sender needs 50 x 50 ms = 2.5 s for a 0.5 s schedule; sixteen keep it
    assert (report.late_s > 1.0) is late, report.late_s
    phase = loadgen.OverloadPhase(10, 100.0, report, 0)
    assert ("raise --senders" in phase.summary()) is late
