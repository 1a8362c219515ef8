"""``python -m calibnet.benchmarks.loadgen``: concurrent clients against calibnet-serve."""

from __future__ import annotations

import argparse

from calibnet.benchmarks import loadgen as bench
from calibnet.serving.client import CalibnetClient

from .app import CliError, parser, run_cli

PROG = "python -m calibnet.benchmarks.loadgen"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    p.add_argument("--url", action="append", help="server URL (repeat: clients use them in turn); "
                   "default 127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    p.add_argument("--requests", type=int, default=25, help="requests per client (25)")
    p.add_argument("--frames", type=int, default=8, help="distinct synthetic frames in the pool (8)")
    p.add_argument("--height", type=int, default=240, help="frame height (240)")
    p.add_argument("--width", type=int, default=320, help="frame width (320)")
    p.add_argument("--warmup", type=int, default=2, help="requests sent before timing (2)")
    p.add_argument("--overload", default="", metavar="M1,M2",
                   help="after the closed-loop run, send at these multiples of its rate (e.g. 2,10), open loop")
    p.add_argument("--duration-s", type=float, default=60.0, help="seconds per --overload phase (60)")
    p.add_argument("--server-pid", type=int, default=0, help="calibnet-serve's pid: report its process tree's peak RSS")
    p.add_argument("--senders", type=int, default=256,
                   help="sender threads of an --overload phase (256; more than the server's queue and batch hold)")
    return p


def _multiples(text: str) -> list[float]:
    try:
        out = [float(m) for m in text.split(",") if m.strip()]
    except ValueError:
        out = []
    if not out or any(m <= 0 for m in out):
        raise CliError(f"--overload: expected positive numbers like 2,10, got {text!r}")
    return out


def run(args: argparse.Namespace) -> int:
    """Send the load, print throughput and latency; exit 1 if any request failed (under --overload: if any got
    neither a result nor an explicit "overloaded", or the server did not answer afterwards)."""
    urls = args.url or ["127.0.0.1:8000"]
    multiples = _multiples(args.overload) if args.overload else []
    frames = bench.synthetic_frames(args.frames, args.height, args.width)
    with CalibnetClient(urls[0]) as c:
        c.wait_ready()
        for i in range(args.warmup):
            c.predict(*frames[i % len(frames)])
    report = bench.run_load(urls, frames, args.clients, args.requests)
    print(f"{args.clients} clients x {args.requests} requests, {args.height}x{args.width} frames: {report.summary()}")
    errors = [a.error for a in report.answers if a.error]
    if errors:
        print(f"first error: {errors[0]}")
    if not multiples:
        return 1 if errors else 0
    phases = bench.run_overload(urls, frames, report.throughput, multiples, args.duration_s, args.server_pid,
                                args.senders)
    bad = 0
    for phase in phases:
        print(phase.summary())
        kinds = phase.report.kinds()
        bad += kinds["unreachable"] + kinds["refused"]
    with CalibnetClient(urls[0]) as c:
        try:
            c.predict(*frames[0])
            print("after the overload: the server answers")
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure
            print(f"after the overload: the server does not answer: {exc}")
            bad += 1
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the load generator."""
    return run_cli(PROG, build_parser(), run, argv)
