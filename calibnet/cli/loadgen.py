"""``python -m calibnet.benchmarks.loadgen``: concurrent clients against calibnet-serve."""

from __future__ import annotations

import argparse

from calibnet.benchmarks import loadgen as bench
from calibnet.serving.client import CalibnetClient

from .app import parser, run_cli

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
    return p


def run(args: argparse.Namespace) -> int:
    """Send the load, print throughput and latency; exit 1 if any request failed."""
    urls = args.url or ["127.0.0.1:8000"]
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
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the load generator."""
    return run_cli(PROG, build_parser(), run, argv)
