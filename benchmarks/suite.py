"""The measurements of one ``calibnet-bench`` run, assembled into its JSON document.

:func:`run_benchmark` builds the model, counts parameters and MACs, measures the SGEMM peak, prepares each
row (export, validation: :mod:`.backends`), times them interleaved with the official-style path and, with a
data set, evaluates mask AP per row; the command line (:mod:`calibnet.cli.bench`) parses, checks and prints.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import calibnet
from calibnet.config import ConfigError, get_config
from calibnet.data.synthetic import make_scene
from calibnet.evaluation import run_eval

from .cpu_facts import cpu_isa, openvino_facts
from .latency import RuntimePath, interleave
from .sgemm import measure_sgemm

__all__ = ["BenchError", "BenchOptions", "bench_config", "run_benchmark"]


class BenchError(ValueError):
    """A benchmark that cannot be run as asked (a bad size, frame or checkpoint); the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    """One ``calibnet-bench`` run: the model, the rows (:func:`calibnet.runtime.core.targets.bench_rows` names),
    the network size and batch, the timing rounds and threads, the frame (default: the size that resizes to the
    network size), a data set for mask AP, where files go, the extras of the INT8 row, and whether to profile."""

    config: str
    weights: str | None = None
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    height: int = 320
    width: int = 480
    frame: tuple[int, int] | None = None
    batch: int = 1
    warmup: int = 2
    iters: int = 10
    threads: int = 2
    accuracy: Any = None  # a calibnet.data.DatasetSpec
    accuracy_limit: int | None = None
    workdir: str | None = None
    sgemm_size: int = 2048
    dataset_sizes: bool = True
    quiet: bool = False
    int8_model: str | None = None
    int8_calib: int = 8
    profile: bool = False  # where the time goes, for rows whose backend counts it (backends.profile_row)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def bench_config(name: str, height: int, width: int) -> tuple[Any, str]:
    """The config ``name`` (a preset or an official YAML) for a ``height`` x ``width`` network input, its resize
    scaled down when that size is smaller than the official one, and a note saying which resize it uses;
    :class:`BenchError` for a bad config."""
    try:
        cfg = get_config(name)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise BenchError(str(exc)) from exc
    note = f"official resize: short side {cfg.input.min_size_test}, long side <= {cfg.input.max_size_test}"
    if min(height, width) < cfg.input.min_size_test:
        cfg = cfg.replace(**{"input.min_size_test": min(height, width), "input.max_size_test": max(height, width)})
        note = (f"resize scaled to the small network size: short side {cfg.input.min_size_test}, long side <= "
                f"{cfg.input.max_size_test}")
    return cfg, note


def _say(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _accuracy(args: BenchOptions, prepared: list[Any]) -> dict[str, Any]:
    """Mask AP (percent) per runnable backend via :func:`calibnet.evaluation.run_eval`."""
    spec = args.accuracy
    out: dict[str, Any] = {"dataset": spec.name, "limit": args.accuracy_limit, "backends": {}}
    for p in prepared:
        if p.runnable:
            _say(f"evaluating {p.name} on {spec.name}", args.quiet)
            out["backends"][p.name] = run_eval(p.runtime, spec, out_dir=None, progress=not args.quiet,
                                               limit=args.accuracy_limit)
    return out


def run_benchmark(args: BenchOptions) -> dict[str, Any]:
    """Measure ``args.backends`` as ``args`` say; returns the JSON document."""
    import onnxruntime as ort
    import torch

    from .backends import prepare_backend, profile_row
    from .flops import count_model_macs
    from .model_stats import model_stats, padded_network_size
    from .official_path import OfficialStylePath
    from .report import BASELINE, add_speedups_vs, backend_entry

    quiet = args.quiet
    load_start = _loadavg()
    torch.set_num_threads(args.threads)
    cfg, resize_note = bench_config(args.config, args.height, args.width)
    frame_hw = args.frame or (round(args.height * 1.5), round(args.width * 1.5))  # resizes to the network size
    resized, padded = padded_network_size(*frame_hw, cfg.input.min_size_test, cfg.input.max_size_test,
                                          cfg.input.size_divisibility)
    if resized[0] > args.height or resized[1] > args.width:
        raise BenchError(f"a {frame_hw[0]}x{frame_hw[1]} frame resizes to {resized[0]}x{resized[1]}, which does not "
                         f"fit the {args.height}x{args.width} network input; pick --frame or --height/--width")
    _say(f"building {args.config} ({'weights ' + args.weights if args.weights else 'deterministic weights'})", quiet)
    try:
        model = calibnet.build_model(cfg, args.weights, quiet=True)
    except Exception as exc:  # a checkpoint that does not fit the config is a user error
        raise BenchError(f"cannot build the model: {exc}") from exc
    scenes = [make_scene(seed=i, height=frame_hw[0], width=frame_hw[1]) for i in range(args.batch)]
    rgbs, depths = [s.rgb for s in scenes], [s.depth for s in scenes]

    _say("counting parameters and MACs", quiet)
    stats = model_stats(model, args.height, args.width, dataset_sizes=args.dataset_sizes)
    _say(f"measuring the SGEMM peak ({args.sgemm_size}x{args.sgemm_size} float32)", quiet)
    sgemm = measure_sgemm(args.sgemm_size, args.threads)

    # the runtimes are closed (exit stack) before their files in the temporary folder are removed
    with tempfile.TemporaryDirectory(prefix="calibnet-bench-") as tmp, contextlib.ExitStack() as opened:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = replace(args, workdir=str(workdir))
        prepared = []
        for name in args.backends:
            _say(f"preparing backend {name}", quiet)
            prepared.append(prepare_backend(name, model, rgbs[0], depths[0], rows))
            if prepared[-1].runnable:
                opened.enter_context(prepared[-1].runtime)
            _say(f"  {name}: {prepared[-1].status}", quiet)
        baseline = OfficialStylePath(model, rgbs, depths)
        paths = [baseline, *(RuntimePath(p.name, p.runtime, rgbs, depths) for p in prepared if p.runnable)]
        _say(f"timing {', '.join(p.name for p in paths)}: {args.warmup} warm-up + {args.iters} timed rounds, "
             "interleaved", quiet)
        times = interleave(paths, args.warmup, args.iters, None if quiet else
                           lambda it, desc: tqdm(it, desc=desc, unit="round", file=sys.stderr, leave=False))

        @functools.cache
        def gmacs_at(hw: tuple[int, int]) -> float:
            return stats.macs.gmacs if hw == (args.height, args.width) else count_model_macs(model, *hw).gmacs

        base_summary = times[BASELINE].summary_ms()
        base_p50 = base_summary["e2e"]["p50"]
        base_instances = len(baseline.last_results[0]["scores"]) if baseline.last_results else None
        doc_backends: dict[str, Any] = {}
        for p in prepared:
            extra: dict[str, Any] = {"precision": p.precision, "detail": p.detail, "validation": p.validation,
                                     "artifact": p.artifact.name if p.artifact else None}
            summary = gmacs = None
            if p.runnable:
                net_hw = tuple(int(v) for v in p.runtime.prepare(rgbs[0], depths[0]).rgb.shape[-2:])
                path = next(x for x in paths if x.name == p.name)
                extra.update(network_hw=list(net_hw), instances=len(path.last_predictions[0]))  # type: ignore[attr-defined]
                summary, gmacs = times[p.name].summary_ms(), gmacs_at(net_hw)  # type: ignore[arg-type]
            doc_backends[p.name] = backend_entry(p.status, summary, base_p50, args.batch, gmacs, sgemm.peak_gflops,
                                                 p.artifact_mb, extra)
        add_speedups_vs(doc_backends, "onnxruntime")
        if args.profile:  # after the timed rounds: the counters cost time of their own
            for p in prepared:
                if (prof := profile_row(p, rgbs[0], depths[0], rows)) is not None:
                    _say(f"profiled {p.name}", quiet)
                    doc_backends[p.name]["profile"] = prof
        baseline_entry = backend_entry(
            "passed (reference path)", base_summary, base_p50, args.batch, gmacs_at(baseline.network_hw),
            sgemm.peak_gflops, None,
            {"network_hw": list(baseline.network_hw), "instances": base_instances,
             "detail": "Pillow ResizeShortestEdge + torch normalize/pad, eager model with grid_sample MSDA, "
                       "official post-processing in torch"})
        accuracy = _accuracy(args, prepared) if args.accuracy is not None else None

    cpu = cpu_isa()["model_name"] or platform.processor() or platform.machine()
    doc: dict[str, Any] = {
        **stats.to_dict(),
        "sgemm_gflops": sgemm.peak_gflops,
        "sgemm": sgemm.to_dict(),
        "baseline": baseline_entry,
        "backends": doc_backends,
        "setup": {
            "config": args.config, "weights": args.weights or "deterministic weights (seed 0)",
            "height": args.height, "width": args.width, "batch": args.batch, "warmup": args.warmup,
            "iters": args.iters, "threads": args.threads, "frame_hw": list(frame_hw),
            "frame": f"synthetic RGB-D scene (make_scene seeds 0..{args.batch - 1}), resized to "
                     f"{resized[0]}x{resized[1]}, padded to {padded[0]}x{padded[1]}",
            "resize": resize_note, "msda_eager": "grid_sample reference (official CPU fallback)",
            "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
            "torch": torch.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "loadavg_start": load_start, "loadavg_end": _loadavg(),
            "units": "ms per batch of --batch frames; fps = frames per second",
            **openvino_facts(),
        },
    }
    if accuracy is not None:
        doc["accuracy"] = accuracy
    return doc
