"""``python -m calibnet.benchmarks.tracking_depth``: IDF1 and ID switches with and without instance depth."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from calibnet.benchmarks import tracking_depth as bench

from .app import parser, run_cli
from .options import add_threads, open_options, open_runtime, typed_options

PROG = "python -m calibnet.benchmarks.tracking_depth"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    d = bench.TrackingBenchOptions()
    helps = {"sequences": "sequences", "seed": "seed of the first sequence", "frames": "frames per sequence",
             "height": "frame height", "width": "frame width", "pairs": "crossing pairs per sequence",
             "speed": "px per frame of each object", "depth_noise": "depth noise sigma, 8-bit levels",
             "holes": "share of depth pixels without reading", "miss": "simulated detector: drop probability",
             "merge": "simulated detector: probability that two touching objects are one detection"}
    for name, text in helps.items():  # one option per field of TrackingBenchOptions, its default in the help
        default = getattr(d, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default, help=f"{text} ({default})")
    p.add_argument("--model", help="detect with this model instead (any file calibnet.runtime opens)")
    add_threads(p)
    p.add_argument("--json-out", type=Path, help="also write the JSON line to this file")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table and the JSON line."""
    opts = typed_options(bench.TrackingBenchOptions, args)
    if args.model:
        with open_runtime(args.model, open_options(args)) as rt:
            res = bench.run_tracking_bench(opts, rt)
        res["detector"] = f"model {args.model}"
    else:
        res = bench.run_tracking_bench(opts)
    print(f"{opts.sequences} crossing sequences x {opts.frames} frames ({opts.height}x{opts.width}, {opts.pairs} "
          f"pairs, depth noise {opts.depth_noise}, holes {opts.holes}); detector: {res['detector']}")
    print(f"{'tracker':<12} {'IDF1':>6} {'IDsw':>5} {'MOTA':>6} {'IDP':>6} {'IDR':>6}")
    for mode in ("masks_only", "with_depth"):
        m = res[mode]
        print(f"{mode:<12} {100 * m['IDF1']:6.1f} {m['ID_switches']:5d} {100 * m['MOTA']:6.1f} "
              f"{100 * m['IDP']:6.1f} {100 * m['IDR']:6.1f}")
    line = json.dumps({"options": dataclasses.asdict(opts), "model": args.model, **res})
    print(line)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the tracking benchmark."""
    return run_cli(PROG, build_parser(), run, argv)
