"""The figures of the data-set analysis (the paper's Figs. 4-6), every given data set side by side; matplotlib.

matplotlib is optional (``pip install ".[analysis]"``): :func:`plotting_available` says whether it
is installed, and :func:`write_figures` raises :class:`PlottingUnavailable` with the install hint otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calibnet.runtime.core.targets import install_hint

__all__ = ["FIGURES", "PlottingUnavailable", "plotting_available", "write_figures"]

#: File name -> what the figure shows.
FIGURES = {
    "instances_per_image.png": "Fig. 4: share of images with k instances",
    "center_bias.png": "Fig. 6: instance centres (histogram) and mean instance mask, normalized coordinates",
    "instance_size.png": "Fig. 5a: instance size distribution (instance / image pixels, log bins)",
    "objects_instances.png": "Fig. 5b: objects/instances matching curves",
    "depth_saliency.png": "Fig. 5c: depth/saliency matching curves",
    "predictions.png": "predictions vs ground truth: AP by size class and by instance count, counts",
}
#: The last instances-per-image bar holds this many and more.
MAX_COUNT_BAR = 10


class PlottingUnavailable(RuntimeError):
    """matplotlib is not installed."""


def plotting_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlottingUnavailable(f"figures need matplotlib: pip install matplotlib (or {install_hint('analysis')}); "
                                  "the JSON and markdown reports are written without it") from None
    return plt


def _colors(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _instances_per_image(datasets: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    n = len(datasets)
    width = 0.8 / n
    # bars 0..top; the last one holds "top and more" when some image has more instances
    most = max(int(d["instances_per_image"]["max"]) for d in datasets)
    top = min(max(most, 4), MAX_COUNT_BAR)
    xs = np.arange(top + 1)
    for k, (d, c) in enumerate(zip(datasets, _colors(n))):
        frac = np.asarray(d["instances_per_image"]["fraction"], dtype=np.float64)
        bars = np.zeros(top + 1)
        bars[:min(len(frac), top)] = frac[:top]
        bars[top] = frac[top:].sum()
        ax.bar(xs - 0.4 + width * (k + 0.5), 100 * bars, width, color=c,
               label=f"{d['name']} (mean {d['instances_per_image']['mean'] or 0:.2f})")
    ax.set_xticks(xs, [str(i) for i in xs[:-1]] + [f"{top}+" if most > top else str(top)])
    ax.set(xlabel="instances per image", ylabel="images (%)", title="Instances per image")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _center_bias(datasets: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    n = len(datasets)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n + 0.6, 5.6), squeeze=False)
    for k, d in enumerate(datasets):
        cb = d["center_bias"]
        hist = 100 * np.asarray(cb["histogram"], dtype=np.float64)
        im = axes[0, k].imshow(hist, extent=(0, 1, 1, 0), cmap="jet", interpolation="nearest")
        fig.colorbar(im, ax=axes[0, k], fraction=0.046, pad=0.04, label="instances (%)")
        axes[0, k].set_title(f"{d['name']}\n{cb['center']} of {d['instances']} instances", fontsize=9)
        dens = np.asarray(cb["mask_density"]["map"], dtype=np.float64)
        im2 = axes[1, k].imshow(dens, extent=(0, 1, 1, 0), cmap="jet", interpolation="bilinear", vmin=0)
        fig.colorbar(im2, ax=axes[1, k], fraction=0.046, pad=0.04, label="P(inside an instance)")
        axes[1, k].set_title("mean instance mask", fontsize=9)
        for ax in axes[:, k]:
            ax.set(xticks=[0, 0.5, 1], yticks=[0, 0.5, 1])
    fig.suptitle("Instance centre bias\n(normalized image coordinates)", fontsize=10)
    return _save(fig, path)


def _instance_size(datasets: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for d, c in zip(datasets, _colors(len(datasets))):
        s = d["instance_size"]
        edges = np.asarray(s["bin_edges"], dtype=np.float64)
        frac = 100 * np.asarray(s["fraction"], dtype=np.float64)
        # bin 0 is [0, 1e-5): drawn half a decade wide below 1e-5 on the log axis
        left = edges[:-1].copy()
        left[0] = edges[1] / math.sqrt(10)
        ax.stairs(frac, np.concatenate([left, edges[-1:]]), color=c, linewidth=1.8,
                  label=f"{d['name']} (median {100 * (s['median'] or 0):.2f}%)")
    ax.set(xscale="log", xlabel="instance size (instance pixels / image pixels)", ylabel="instances (%)",
           title="Instance size distribution")
    for x in (0.01, 0.1):
        ax.axvline(x, color="gray", linestyle=":", linewidth=0.8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _matching(datasets: Sequence[dict[str, Any]], key: str, title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for d, c in zip(datasets, _colors(len(datasets))):
        s = d[key]
        if s.get("skipped") or not s.get("images"):
            continue
        curve = s["matching_curve"]
        ax.plot(curve["thresholds"], 100 * np.asarray(curve["fraction"]), color=c, linewidth=1.8,
                label=f"{d['name']} (mean IoU {s['mean_iou']:.2f})")
    ax.set(xlim=(0, 1), ylim=(0, 101), xlabel="IoU threshold t", ylabel="images with IoU >= t (%)")
    ax.set_title(title, fontsize=10)
    ax.axvline(0.5, color="gray", linestyle=":", linewidth=0.8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _predictions(datasets: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    with_pred = [d for d in datasets if d.get("predictions")]
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.6))
    colors = _colors(len(with_pred))
    width = 0.8 / max(len(with_pred), 1)
    for k, (d, c) in enumerate(zip(with_pred, colors)):
        p = d["predictions"]
        for ax, table in ((axes[0], p["AP_by_size"]), (axes[1], p["AP_by_instance_count"])):
            labels = list(table)
            heights = [np.nan if table[x]["AP"] is None else table[x]["AP"] for x in labels]
            ax.bar(np.arange(len(labels)) - 0.4 + width * (k + 0.5), heights, width, color=c, label=d["name"])
            ax.set_xticks(np.arange(len(labels)), [f"{x}\n({table[x]['num_gt']} gt)" for x in labels], fontsize=8)
        gt_frac = np.asarray(d["instances_per_image"]["fraction"])
        pr_frac = np.asarray(p["statistics"]["instances_per_image"]["fraction"])
        m = max(len(gt_frac), len(pr_frac))
        xs = np.arange(m)
        axes[2].plot(xs[:len(gt_frac)], 100 * gt_frac, "-o", color=c, label=f"{d['name']} ground truth")
        axes[2].plot(xs[:len(pr_frac)], 100 * pr_frac, "--s", color=c,
                     label=f"{d['name']} predicted (score >= {p['score_threshold']})")
    axes[0].set_title("mask AP by instance size (share of image)", fontsize=10)
    axes[1].set_title("mask AP by ground-truth instances per image", fontsize=10)
    axes[2].set_title("instances per image", fontsize=10)
    axes[0].set_ylabel("AP (%)")
    axes[2].set(ylabel="images (%)", xlabel="instances")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def write_figures(datasets: Sequence[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """One PNG per figure of :data:`FIGURES` for the analysed data sets (the JSON dicts of
    :meth:`DatasetAnalysis.to_json`, with ``predictions`` where given); returns name -> path. A figure with
    nothing to show (no salient-object maps anywhere, no predictions) is not written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _pyplot()
    written = {name: draw(datasets, out / name) for name, draw in (
        ("instances_per_image.png", _instances_per_image), ("center_bias.png", _center_bias),
        ("instance_size.png", _instance_size))}
    for key, title in (("objects_instances", "Objects/instances consistency\nIoU(union of instances, salient map)"),
                       ("depth_saliency", "Depth/saliency consistency\nIoU(Otsu near foreground, salient map)")):
        if any(not d[key].get("skipped") and d[key].get("images") for d in datasets):
            written[f"{key}.png"] = _matching(datasets, key, title, out / f"{key}.png")
    if any(d.get("predictions") for d in datasets):
        written["predictions.png"] = _predictions(datasets, out / "predictions.png")
    return written
