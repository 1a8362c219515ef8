"""``python -m calibnet.benchmarks.analysis_bench``: calibnet-analyze timed on a generated data set."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from calibnet.benchmarks import analysis_bench as bench

from .analyze import main as analyze_main
from .app import parser, run_cli

PROG = "python -m calibnet.benchmarks.analysis_bench"


def build_parser() -> argparse.ArgumentParser:
    """The tool's argument parser."""
    p = parser(PROG, bench.__doc__)
    p.add_argument("--images", type=int, default=2000, help="images of the generated data set (2000)")
    p.add_argument("--height", type=int, default=320, help="image height (320)")
    p.add_argument("--width", type=int, default=480, help="image width (480)")
    p.add_argument("--data", type=Path, default=None, help="data-set folder (default out/analysis-bench/syn<N>)")
    p.add_argument("--out", type=Path, default=Path("out/analysis-bench/report"), help="calibnet-analyze's --out")
    p.add_argument("--no-figures", action="store_true", help="JSON and markdown only")
    p.add_argument("--json-out", type=Path, help="also write the JSON line here")
    return p


def run(args: argparse.Namespace) -> int:
    """Write the data set once, time calibnet-analyze on it; returns its exit status."""
    data = args.data or Path(f"out/analysis-bench/syn{args.images}")
    json_file, gt_dir = bench.prepare_dataset(data, args.images, args.height, args.width)
    cmd = ["--json", str(json_file), "--image-root", str(data / "RGB"), "--depth-root", str(data / "depth"),
           "--saliency-dir", str(gt_dir), "--out", str(args.out), "--no-progress"]
    if args.no_figures:
        cmd.append("--no-figures")
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    rc = analyze_main(cmd)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    row = {"images": args.images, "size": f"{args.height}x{args.width}", "wall_s": round(wall, 2),
           "cpu_s": round(cpu, 2), "ms_per_image": round(1000 * wall / max(args.images, 1), 2),
           "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
           "cpus": os.cpu_count(), "command": "calibnet-analyze " + " ".join(cmd), "exit": rc}
    line = json.dumps(row)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    return rc


def main(argv: list[str] | None = None) -> int:
    """Entry point of the analysis benchmark."""
    return run_cli(PROG, build_parser(), run, argv)
