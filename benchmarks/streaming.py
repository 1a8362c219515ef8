"""``calibnet-bench --stream`` and ``--soak N``: the pipelined runtime against the sequential one, and memory
over a long run. Torch-free once the model is exported (``--model file.onnx`` skips the export).

``--stream``:
  1. file source: the same folder of RGB-D pairs (synthetic scenes written as JPEG + PNG) read and predicted
     in a loop (``read_rgb``/``read_depth`` + ``Runtime.predict``) and through ``Runtime.stream(folders)``,
     interleaved for ``--iters`` rounds; throughput of each, ratio stream / sequential, and the stream's
     per-stage and capture-to-result p50/p99;
  2. live source ``--speedup`` (5) times faster than the model (frames paced at model time / speedup, like a
     camera): ``policy="latest"`` for ``--stream-frames`` results (p99 latency in model-frame times, frames
     dropped) and ``policy="all"`` over the same number of source frames (every frame processed).

``--soak N``: N results of ``Runtime.predict`` in a loop, then N of ``Runtime.stream`` with tracking under each
policy (``"all"``, ``"latest"``; frames cycled from a set of synthetic scenes), the process RSS read at every
result; reports the lowest RSS over the ``--soak-warmup`` (200) results after result 200 and over the last as
many (the frames in flight lift the RSS of a moment, a leak lifts the floor), the growth between them in
percent, and for the streams the threads still alive after ``close()`` that were not there before.
"""

from __future__ import annotations

import itertools
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import calibnet
from calibnet.data.synthetic import make_scene
from calibnet.runtime import Runtime
from calibnet.runtime.apps.sources import match_pairs
from calibnet.runtime.core.readers import read_depth, read_rgb
from calibnet.runtime.core.stats import percentiles
from calibnet.runtime.core.targets import ONNX_SUFFIX

__all__ = ["SOAK_MODES", "StreamBenchOptions", "latest_vs_all", "rss_bytes", "run_streaming", "sequential_vs_stream",
           "soak", "write_pairs"]

#: what ``soak`` runs: Runtime.predict in a loop, then Runtime.stream (tracked) under each policy
SOAK_MODES = ("predict", "stream-all", "stream-latest")


@dataclass(frozen=True)
class StreamBenchOptions:
    """The streaming / soak measurements of one run: the model (an exported file, or a config exported at the
    network size), threads, the frame size, where files go, and what to measure."""

    model: str | None = None
    config: str | None = None
    weights: str | None = None
    height: int = 320
    width: int = 480
    threads: int = 2
    frame: tuple[int, int] | None = None
    workdir: str | None = None
    stream: bool = False
    stream_frames: int = 100
    iters: int = 10
    speedup: float = 5.0
    soak: int = 0
    soak_warmup: int = 200


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; peak RSS from getrusage elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def write_pairs(folder: Path, n: int, hw: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    """``n`` synthetic scenes as ``RGB/<i>.jpg`` + ``depth/<i>.png``; returns the two folders."""
    rgb_dir, depth_dir = folder / "RGB", folder / "depth"
    rgb_dir.mkdir(parents=True, exist_ok=True)
    depth_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = make_scene(seed + i, *hw)
        cv2.imwrite(str(rgb_dir / f"{i:05d}.jpg"), s.rgb[:, :, ::-1])
        cv2.imwrite(str(depth_dir / f"{i:05d}.png"), s.depth)
    return rgb_dir, depth_dir


def _sequential(rt: Any, rgb_dir: Path, depth_dir: Path) -> float:
    pairs = match_pairs(rgb_dir, depth_dir)
    t0 = time.perf_counter()
    for r, d in pairs:
        rt.predict(read_rgb(r), read_depth(d))
    return len(pairs) / (time.perf_counter() - t0)


def sequential_vs_stream(rt: Any, rgb_dir: Path, depth_dir: Path, rounds: int = 3) -> dict[str, Any]:
    """Throughput (frames/s) of predict-in-a-loop and of ``Runtime.stream`` over the same files, ``rounds``
    interleaved rounds (order alternating); the ratio is of the summed frames over summed time."""
    seq: list[float] = []
    strm: list[float] = []
    last_stats: Any = None
    for k in range(rounds):
        for what in ("seq", "stream") if k % 2 == 0 else ("stream", "seq"):
            if what == "seq":
                seq.append(_sequential(rt, rgb_dir, depth_dir))
            else:
                with rt.stream((rgb_dir, depth_dir), policy="all") as st:
                    n = sum(1 for _ in st)
                    last_stats = st.stats()
                strm.append(n / (last_stats.t_last - last_stats.t_start))
    hmean = lambda xs: len(xs) / sum(1 / x for x in xs)  # noqa: E731 - frames over total time
    return {"sequential_fps": hmean(seq), "stream_fps": hmean(strm), "ratio": hmean(strm) / hmean(seq),
            "rounds": {"sequential_fps": seq, "stream_fps": strm}, "stream": last_stats.to_dict(),
            "summary": last_stats.summary()}


def _paced(frame: tuple[np.ndarray, np.ndarray], n: int, interval: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    t0 = time.perf_counter()
    for i in range(n):
        time.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
        yield frame


def latest_vs_all(rt: Any, rgb: np.ndarray, depth: np.ndarray, results: int = 100, speedup: float = 5.0,
                  ) -> dict[str, Any]:
    """A source ``speedup`` times faster than the model: "latest" for ``results`` results, "all" over
    ``results`` source frames. Model time = median inference time of the run itself."""
    for _ in range(3):
        rt.predict(rgb, depth)
    model_s = float(np.median([rt.predict(rgb, depth).timings["infer"] for _ in range(5)]))
    interval = model_s / speedup
    lat, infer = [], []
    with rt.stream(_paced((rgb, depth), int(results * speedup * 3), interval), policy="latest") as st:
        for _, pred in itertools.islice(st, results):
            lat.append(pred.timings["latency"])
            infer.append(pred.timings["infer"])
        latest = st.stats()
    model_in_run = float(np.median(infer))
    with rt.stream(_paced((rgb, depth), results, interval), policy="all") as st:
        done = [f.index for f, _ in st]
        all_stats = st.stats()
    pct = percentiles(lat, (50, 99))
    return {
        "model_ms": model_in_run * 1e3, "source_interval_ms": interval * 1e3, "speedup": speedup,
        "latest": {"results": len(lat), "dropped": latest.dropped, "p50_ms": pct["p50"], "p99_ms": pct["p99"],
                   "p99_in_model_frames": pct["p99"] / 1e3 / model_in_run},
        "all": {"source_frames": results, "processed": len(done), "in_order": done == list(range(results)),
                "p99_ms": all_stats.to_dict()["ms"]["latency"]["p99"]},
    }


def soak(rt: Any, frames: list[tuple[np.ndarray, np.ndarray]], n: int, warmup: int = 200,
         progress: Callable[[str], None] | None = None, modes: tuple[str, ...] = SOAK_MODES) -> dict[str, Any]:
    """RSS over ``n`` results of each of ``modes`` (:data:`SOAK_MODES`; frames cycled, so a "latest" stream, which
    drops what the model cannot keep up with, reads more than ``n``), read at every result. The growth compares
    the floor (lowest RSS) over the ``warmup`` results after result ``warmup`` with the floor over the last
    ``warmup``: the frames in flight in the bounded queues lift the RSS of a moment by a few MiB, a leak lifts
    the floor. ``samples_mib`` holds the floor of every 100 results. The streams track instances and report
    ``threads_left``, the threads alive after ``close()`` that were not before the stream."""
    out: dict[str, Any] = {}
    every = 100
    span = max(1, min(warmup, (n - warmup) // 2))
    start = max(0, min(warmup, n - span))
    for mode in modes:
        rss = np.full(n, -1, np.int64)  # every page touched before the first reading
        t0 = time.perf_counter()
        threads_before = {t.ident for t in threading.enumerate()}
        source = itertools.cycle(frames)
        stream = None if mode == "predict" else rt.stream(source, policy=mode.split("-")[1], track=True)
        results = (rt.predict(rgb, depth) for rgb, depth in source) if stream is None else (p for _, p in stream)
        try:
            for i, _ in enumerate(itertools.islice(results, n)):
                rss[i] = rss_bytes()
                if progress is not None and (i + 1) % (every * 5) == 0:
                    progress(f"soak {mode}: result {i + 1}/{n}, RSS {rss[i] / 2**20:.1f} MiB")
        finally:
            if stream is not None:
                stream.close()
        at_warm, at_end = float(rss[start:start + span].min()), float(rss[n - span:].min())
        out[mode] = {"frames": n, "seconds": time.perf_counter() - t0, "rss_warmup_mib": at_warm / 2**20,
                     "rss_end_mib": at_end / 2**20, "growth_pct": 100.0 * (at_end - at_warm) / at_warm,
                     "warmup_frame": start, "window": span,
                     "samples_mib": [(min(k + every, n), float(rss[k:k + every].min()) / 2**20)
                                     for k in range(0, n, every)]}
        if stream is not None:
            stats = stream.stats()
            out[mode].update(read=stats.read, dropped=stats.dropped, threads_left=sorted(
                t.name for t in threading.enumerate() if t.ident not in threads_before))
    return out


def run_streaming(args: StreamBenchOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """The ``--stream`` / ``--soak`` part of calibnet-bench; returns its JSON document."""
    doc: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="calibnet-bench-stream-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.model:
            path = Path(args.model)
        else:  # needs torch
            from calibnet.export import export_onnx

            model = calibnet.build_model(args.config, args.weights, quiet=True)
            path = export_onnx(model, workdir / f"stream{ONNX_SUFFIX}", height=args.height, width=args.width)
        rt = Runtime.open(path, threads=args.threads)
        m = rt.metadata
        hw = tuple(args.frame) if args.frame else (m.resize_short, m.resize_max)  # resizes to the graph size
        doc["setup"] = {"model": str(path), "frame_hw": list(hw), "threads": args.threads,
                        "network_hw": [m.height, m.width], "loadavg": os.getloadavg()}
        scene = make_scene(0, *hw)
        if args.stream:
            say(f"stream: writing {args.stream_frames} RGB-D pairs ({hw[0]}x{hw[1]})")
            rgb_dir, depth_dir = write_pairs(workdir / "pairs", args.stream_frames, hw)
            say(f"stream: sequential predict vs Runtime.stream, {args.iters} interleaved rounds")
            doc["file_source"] = sequential_vs_stream(rt, rgb_dir, depth_dir, rounds=max(1, args.iters))
            say(f"stream: source {args.speedup:g}x faster than the model, latest vs all")
            doc["live_source"] = latest_vs_all(rt, scene.rgb, scene.depth, args.stream_frames, args.speedup)
        if args.soak:
            frames = [(s.rgb, s.depth) for s in (make_scene(i, *hw) for i in range(8))]
            say(f"soak: {args.soak} frames through Runtime.predict, then Runtime.stream")
            doc["soak"] = soak(rt, frames, args.soak, warmup=min(args.soak_warmup, args.soak), progress=say)
    return doc


def format_streaming(doc: dict[str, Any]) -> str:
    """The terminal report of :func:`run_streaming`."""
    lines = [f"model {doc['setup']['model']}, frames {doc['setup']['frame_hw']}, threads {doc['setup']['threads']}"]
    if "file_source" in doc:
        f = doc["file_source"]
        lines += [f"file source: sequential predict {f['sequential_fps']:.2f} fps, Runtime.stream "
                  f"{f['stream_fps']:.2f} fps, ratio {f['ratio']:.2f}", f["summary"]]
        lv = doc["live_source"]
        la, al = lv["latest"], lv["all"]
        lines += [f"live source {lv['speedup']:g}x faster than the model ({lv['model_ms']:.1f} ms/frame): "
                  f"latest p50 {la['p50_ms']:.1f} ms, p99 {la['p99_ms']:.1f} ms = "
                  f"{la['p99_in_model_frames']:.2f} model frames, {la['dropped']} dropped over {la['results']} results;"
                  f" all: {al['processed']}/{al['source_frames']} processed, in order {al['in_order']}, "
                  f"p99 {al['p99_ms']:.1f} ms"]
    for mode, s in doc.get("soak", {}).items():
        lines.append(f"soak {mode}: {s['frames']} results in {s['seconds']:.0f} s, "
                     f"RSS floor (over {s['window']} results) {s['rss_warmup_mib']:.1f} MiB "
                     f"after result {s['warmup_frame']} -> {s['rss_end_mib']:.1f} MiB at the end "
                     f"({s['growth_pct']:+.2f}%)" + (f"; {s['read']} frames read, {s['dropped']} dropped, "
                                                     f"{len(s['threads_left'])} threads left after close()"
                                                     if "threads_left" in s else ""))
    return "\n".join(lines)
