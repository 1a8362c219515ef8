"""Benchmark of ``calibnet-analyze``: the whole command on a generated data set of N images.

Examples:
  python -m calibnet.benchmarks.analysis_bench                    # 2,000 images of 320x480, with salient maps
  python -m calibnet.benchmarks.analysis_bench --images 500 --data out/analysis-bench/syn500

The data set (``calibnet.data.write_synthetic_dataset``: JPEG RGB, 8-bit depth, RLE instances) and its
salient-object maps (the union of instances, the last instance of every 7th image left out:
``calibnet.analysis.write_saliency_maps``) are written once into ``--data`` and reused. Then
``calibnet-analyze --json ... --saliency-dir ... --out ...`` runs in this process, timed from argument
parsing to the last figure: wall clock, process CPU time, and the 1-minute load average before and after
(the machine may be shared). Prints one JSON line; ``--json-out`` also writes it to a file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from calibnet.analysis import write_saliency_maps
from calibnet.data import synthetic_dataset_spec, write_synthetic_dataset

__all__ = ["prepare_dataset"]


def prepare_dataset(data: Path, images: int, height: int, width: int, seed: int = 0) -> tuple[Path, Path]:
    """(annotations json, salient-map folder) of a synthetic data set of ``images`` images in ``data``,
    written unless a complete one is there."""
    spec = synthetic_dataset_spec(data, name=data.name)
    gt_dir = data / "GT"
    marker = data / f".complete-{images}-{height}x{width}-{seed}"
    if not marker.is_file():
        t = time.perf_counter()
        spec = write_synthetic_dataset(data, images, seed=seed, height=height, width=width, name=data.name)
        write_saliency_maps(spec, gt_dir, drop_every=7)
        marker.write_text("")
        print(f"wrote {images} images to {data} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return spec.json_file, gt_dir


if __name__ == "__main__":
    from calibnet.cli.analysis_bench import main

    raise SystemExit(main())
