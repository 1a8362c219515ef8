"""Post-processing benchmark: the runtime's numpy/OpenCV post-processing next to the official one in torch.

Examples:
  python -m calibnet.benchmarks.postprocess_bench                       # R50, a 375x500 frame, 50 iterations
  python -m calibnet.benchmarks.postprocess_bench --config r50 --height 375 --width 500 --iters 100
  python -m calibnet.benchmarks.postprocess_bench --no-forward --iters 20  # synthetic cases only (no model)

On the same raw network outputs, one run times per frame
  * runtime: :func:`calibnet.runtime.core.postprocess.decode_prediction` (selection, rescoring, mask decoding to
    the original size, boxes; what ``Prediction.timings["post"]`` measures), and
  * official: :func:`calibnet.benchmarks.official_postprocess.official_inference`, the official
    ``CalibNet.inference`` in torch (sigmoid of all masks, two ``F.interpolate`` calls, threshold),
interleaved iteration by iteration, and checks that both give the same instances: the same count, scores
within 1e-5 and mask pixels equal except at most 0.1% (interpolation ties). It also times the runtime's
pre-processing of the frame (official resize + pad) to report pre + post.

Cases (raw outputs [1,N,1], [1,N,1], [1,N,H/2,W/2] for the network input of the frame):
  r50-forward  the real model (``--config``, deterministic weights unless ``--weights``) on a synthetic
               RGB-D scene; with deterministic weights every kernel passes the threshold (50 instances);
  blobs-50     50 kept instances, smooth elliptical mask logits (every mask has a real contour);
  blobs-10     10 kept instances among 50 kernels.
Exit status 1 when some case's outputs differ beyond the tolerance.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import calibnet
from calibnet.data.synthetic import make_scene
from calibnet.runtime.backends.torch_backend import TorchBackend
from calibnet.runtime.core.contract import OUTPUT_NAMES, ModelMetadata
from calibnet.runtime.core.feeds import stack_frames
from calibnet.runtime.core.postprocess import decode_prediction
from calibnet.runtime.core.prediction import Prediction
from calibnet.runtime.core.preprocess import prepare_frame
from calibnet.runtime.core.resize import shortest_edge_size

from .official_postprocess import official_inference

__all__ = ["RawCase", "blob_case", "forward_case", "compare", "run_case", "format_results", "SCORE_TOL", "PIXEL_TOL"]

SCORE_TOL = 1e-5
PIXEL_TOL = 1e-3  # share of mask pixels that may differ (interpolation ties)


@dataclass
class RawCase:
    """Raw outputs of one frame plus the sizes post-processing needs."""

    name: str
    outputs: dict[str, np.ndarray]  # pred_logits [1,N,1], pred_scores [1,N,1], pred_masks [1,N,h,w] (+depth_trust)
    padded_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    original_hw: tuple[int, int]
    frame: tuple[np.ndarray, np.ndarray] | None = None  # (rgb, depth) the outputs came from, if any


def blob_case(name: str, height: int, width: int, kept: int, kernels: int = 50, seed: int = 0,
              stride: int = 2) -> RawCase:
    """Synthetic raw outputs: ``kept`` of ``kernels`` kernels pass the score threshold, each mask is a smooth
    ellipse-shaped logit map (positive inside, a soft edge a few pixels wide, noise) over the valid region."""
    g = np.random.default_rng(seed)
    resized = shortest_edge_size(height, width, 320, 480)
    padded = (-(-resized[0] // 32) * 32, -(-resized[1] // 32) * 32)
    mh, mw = padded[0] // stride, padded[1] // stride
    vh, vw = resized[0] / stride, resized[1] / stride
    yy, xx = np.mgrid[0:mh, 0:mw].astype(np.float32)
    masks = np.empty((kernels, mh, mw), np.float32)
    for k in range(kernels):
        cy, cx = g.uniform(0.1, 0.9) * vh, g.uniform(0.1, 0.9) * vw
        ry, rx = g.uniform(0.05, 0.45) * vh, g.uniform(0.05, 0.45) * vw
        r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
        masks[k] = (1.0 - r) * g.uniform(4, 12) + g.normal(0, 0.3, (mh, mw)).astype(np.float32)
    logits = np.full((kernels, 1), -20.0, np.float32)
    on = g.choice(kernels, kept, replace=False)
    logits[on, 0] = g.uniform(-1.0, 3.0, kept)
    objectness = g.uniform(0.0, 3.0, (kernels, 1)).astype(np.float32)
    outputs = {"pred_logits": logits[None], "pred_scores": objectness[None], "pred_masks": masks[None],
               "depth_trust": np.full((1, 3), 0.5, np.float32)}
    return RawCase(name, outputs, padded, resized, (height, width))


def forward_case(config: str, height: int, width: int, weights: str | None = None, seed: int = 0,
                 name: str | None = None) -> RawCase:
    """Raw outputs of the real model (torch, eager) on a synthetic RGB-D scene of ``height`` x ``width``."""
    model = calibnet.build_model(config, weights, seed=seed, quiet=True)
    scene = make_scene(seed, height, width)
    frame = prepare_frame(scene.rgb, scene.depth)
    outputs = TorchBackend(model).run(stack_frames([frame]))
    padded = (int(frame.rgb.shape[1]), int(frame.rgb.shape[2]))
    return RawCase(name or f"{config}-forward", outputs, padded, frame.resized_hw, frame.original_hw,
                   (scene.rgb, scene.depth))


def runtime_post(case: RawCase, meta: ModelMetadata) -> Prediction:
    """The runtime's post-processing of one case."""
    return decode_prediction(case.outputs, 0, case.padded_hw, case.resized_hw, case.original_hw, meta)


def official_post(case: RawCase, meta: ModelMetadata, tensors: tuple[Any, Any, Any]) -> dict[str, Any]:
    """The official post-processing (torch) of one case; ``tensors`` = the raw outputs as torch tensors."""
    return official_inference(*tensors, [case.resized_hw], [case.original_hw], case.padded_hw,
                              cls_threshold=meta.cls_threshold, mask_threshold=meta.mask_threshold,
                              max_detections=meta.max_detections)[0]


def compare(pred: Prediction, official: dict[str, Any]) -> dict[str, Any]:
    """Runtime vs official outputs: counts, the largest score difference and the share of differing mask
    pixels (instances matched in kernel order), and whether they are identical within the tolerance."""
    o_scores = official["scores"].detach().cpu().numpy().astype(np.float32)
    o_masks = official["masks"].detach().cpu().numpy().astype(bool)
    order = np.argsort(pred.kernel_index, kind="stable")  # the official result is in kernel order
    r_scores, r_masks = pred.scores[order], pred.masks[order]
    res: dict[str, Any] = {"kept_runtime": int(len(r_scores)), "kept_official": int(len(o_scores)),
                           "max_score_diff": None, "mask_pixel_diff": None}
    same_count = len(r_scores) == len(o_scores) and r_masks.shape == o_masks.shape
    if same_count and len(r_scores):
        res["max_score_diff"] = float(np.abs(r_scores - o_scores).max())
        res["mask_pixel_diff"] = float((r_masks != o_masks).mean())
    elif same_count:
        res["max_score_diff"] = res["mask_pixel_diff"] = 0.0
    res["identical"] = bool(same_count and res["max_score_diff"] <= SCORE_TOL
                            and res["mask_pixel_diff"] <= PIXEL_TOL)
    return res


@dataclass
class CaseResult:
    """Timings (ms per frame) and the comparison of one case."""

    case: str
    frame_hw: tuple[int, int]
    network_hw: tuple[int, int]
    kept: int
    runtime_ms: float  # median
    official_ms: float  # median
    speedup: float  # ratio of the medians
    pre_ms: float | None
    runtime_best_ms: float = 0.0
    official_best_ms: float = 0.0
    runtime_cpu_ms: float = 0.0  # median CPU time of the process (all threads): the work, whatever the load
    official_cpu_ms: float = 0.0
    check: dict[str, Any] = field(default_factory=dict)


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_case(case: RawCase, iters: int = 50, warmup: int = 3, meta: ModelMetadata | None = None) -> CaseResult:
    """Time both post-processings on ``case`` (interleaved, median of ``iters``) and compare their outputs."""
    import torch

    meta = meta or ModelMetadata()  # the official post-processing defaults
    tensors = tuple(torch.from_numpy(case.outputs[k]) for k in OUTPUT_NAMES[:3])  # logits, objectness, masks
    pred, official = runtime_post(case, meta), official_post(case, meta, tensors)  # type: ignore[arg-type]
    check = compare(pred, official)
    frame = case.frame
    rounds = [(_timed(lambda: runtime_post(case, meta)),
               _timed(lambda: official_post(case, meta, tensors)),  # type: ignore[arg-type]
               _timed(lambda: prepare_frame(*frame))[0] if frame is not None else None)
              for _ in range(warmup + iters)][warmup:]
    rt_t, off_t = [r[0] for r in rounds], [r[1] for r in rounds]
    pre_t = [r[2] for r in rounds if r[2] is not None]

    def med(xs: list[tuple[float, float]], j: int) -> float:
        return statistics.median(x[j] for x in xs) * 1e3

    rt_ms, off_ms = med(rt_t, 0), med(off_t, 0)
    return CaseResult(case.name, case.original_hw, case.padded_hw, len(pred), rt_ms, off_ms, off_ms / rt_ms,
                      statistics.median(pre_t) * 1e3 if pre_t else None,
                      runtime_best_ms=min(x[0] for x in rt_t) * 1e3, official_best_ms=min(x[0] for x in off_t) * 1e3,
                      runtime_cpu_ms=med(rt_t, 1), official_cpu_ms=med(off_t, 1), check=check)


def format_results(results: list[CaseResult]) -> str:
    """The terminal table of :func:`run_case` results."""
    head = (f"{'case':14s} {'frame':>9s} {'network':>9s} {'kept':>4s} {'runtime ms':>10s} {'official ms':>11s} "
            f"{'speed-up':>8s} {'(best)':>7s} {'(cpu)':>7s} {'pre ms':>7s} {'max |ds|':>9s} {'px diff':>8s}  outputs")
    lines = [head, "-" * len(head)]
    for r in results:
        c = r.check
        pre = f"{r.pre_ms:7.1f}" if r.pre_ms is not None else f"{'-':>7s}"
        ds = f"{c['max_score_diff']:9.1e}" if c["max_score_diff"] is not None else f"{'-':>9s}"
        px = f"{c['mask_pixel_diff']:8.2e}" if c["mask_pixel_diff"] is not None else f"{'-':>8s}"
        frame, net = "{}x{}".format(*r.frame_hw), "{}x{}".format(*r.network_hw)
        lines.append(f"{r.case:14s} {frame:>9s} {net:>9s} {r.kept:4d} "
                     f"{r.runtime_ms:10.2f} {r.official_ms:11.2f} {r.speedup:7.1f}x "
                     f"{r.official_best_ms / r.runtime_best_ms:6.1f}x {r.official_cpu_ms / r.runtime_cpu_ms:6.1f}x "
                     f"{pre} {ds} {px}  "
                     f"{'identical' if c['identical'] else 'DIFFERENT'}")
    return "\n".join(lines)


if __name__ == "__main__":
    from calibnet.cli.postprocess_bench import main

    raise SystemExit(main())
