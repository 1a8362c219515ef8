"""Turn measurements into the benchmark's outputs: a plain-text table, the JSON document and a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calibnet.runtime.core.compare import ALIASES

from .model_stats import BACKBONE_TABLE, OFFICIAL_GMACS, PAPER
from .openvino_profile import format_profiles

__all__ = ["backend_entry", "format_report", "compare_paper_rows", "backbone_table_rows", "plot_stages", "BASELINE",
           "add_speedups_vs"]

BASELINE = "official"
_LABEL = {BASELINE: "official (baseline)"}


def backend_entry(status: str, summary_ms: dict[str, dict[str, float]] | None, baseline_e2e_p50: float | None,
                  batch: int, network_gmacs: float | None, sgemm_gflops: float, artifact_mb: float | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``backends.<name>`` entry: status, artifact size, ms per stage (p50/p90/p99/mean), end to end,
    FPS, speed-up over the official-style path, achieved model GFLOP/s and its share of the SGEMM peak (an FP32
    peak: only for an FP32 row; ``extra["precision"]`` names the row's, FP32 when absent; other rows: None)."""
    entry: dict[str, Any] = {"status": status, "artifact_mb": artifact_mb, "e2e_ms": None, "stages_ms": None,
                             "fps": None, "speedup_vs_official": None, "host_share": None,
                             "achieved_gflops": None, "fraction_of_sgemm_peak": None}
    if summary_ms is not None:
        e2e = summary_ms["e2e"]
        stages = {s: summary_ms[s] for s in ("pre", "infer", "post")}
        entry.update(
            e2e_ms=e2e, stages_ms=stages, fps=1e3 * batch / e2e["p50"],
            fps_inference_only=1e3 * batch / stages["infer"]["p50"],
            speedup_vs_official=(baseline_e2e_p50 / e2e["p50"]) if baseline_e2e_p50 else None,
            host_share=(stages["pre"]["p50"] + stages["post"]["p50"]) / e2e["p50"],
        )
        if network_gmacs:
            achieved = 2 * network_gmacs * batch / (stages["infer"]["p50"] / 1e3)
            precision = str((extra or {}).get("precision") or "fp32")
            same = ALIASES.get(precision, precision) == "fp32"  # the peak is an FP32 one
            entry.update(achieved_gflops=achieved, fraction_of_sgemm_peak=achieved / sgemm_gflops
                         if sgemm_gflops and same else None, network_gmacs=network_gmacs)
    entry.update(extra or {})
    return entry


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _agreement(entry: dict[str, Any]) -> str:
    """Mask-pixel agreement with the eager FP32 model (the comparator's validation), in percent."""
    masks = ((entry.get("validation") or {}).get("outputs") or {}).get("pred_masks") or {}
    value = masks.get("mask_agreement")
    return "-" if value is None else f"{100 * value:.2f}%"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))  # under the header
    return "\n".join(lines)


def compare_paper_rows(doc: dict[str, Any]) -> list[list[str]]:
    """Rows of the paper-vs-here table; each figure names the device it came from."""
    setup = doc["setup"]
    cpu = f"this CPU ({setup['cpu']}, {setup['threads']} threads)"
    hw = f"{setup['height']}x{setup['width']}"
    bb = doc.get("backbone", {})
    r50 = bb.get("label", "ResNet-50") == "ResNet-50"
    official = next((r for r in BACKBONE_TABLE if r["backbone"] == bb.get("label")), None)
    paper_params = f"{PAPER['params_m']}M" if r50 else (f"{official['params'] / 1e6:.1f}M (official code)"
                                                        if official else "-")
    ref = OFFICIAL_GMACS.get(bb.get("name", ""), {}).get((setup["height"], setup["width"]))
    no_sampling = doc["gmacs"] - doc["flops"]["msda_sampling_gmacs"]
    gflops_row = (["GFLOPs (fvcore: 1 MAC = 1 flop)", f"{PAPER['gflops']}", "-", f"{doc['gmacs']:.2f} at {hw}",
                   "counted, fvcore rules"] if r50 else
                  ["GMACs (fvcore, no grid sampler)", f"{ref} (official fvcore)" if ref else "-", "-",
                   f"{no_sampling:.2f} at {hw}", "counted, fvcore rules without the MSDA grid-sampler term"])
    rows = [["figure", "paper", "paper device", "here", "here: device / note"],
            ["params (total, aux heads incl.)", paper_params, "-",
             f"{doc['params']['total'] / 1e6:.1f}M ({doc['params']['total']:,})", "counted, no device"],
            ["params without aux heads", "-", "-", f"{doc['params']['without_aux'] / 1e6:.1f}M", "counted"],
            gflops_row,
            ["GFLOPs as 2 x MACs", "-", "-", f"{doc['gflops_2x_macs']:.1f} at {hw}", "counted"]]
    for s in doc["flops"].get("dataset_sizes", []):
        nh, nw = s["network_hw"]
        rows.append([f"  GMACs, {s['label']}", "", "", f"{s['gmacs']:.1f} at {nh}x{nw}", "counted"])
    for name, b in [(BASELINE, doc["baseline"]), *doc["backends"].items()]:
        if b.get("fps") is None:
            rows.append([f"FPS {_LABEL.get(name, name)}", "", "", "-", b["status"].split(", but")[0][:60]])
            continue
        # the paper's one speed figure (its R50) stays the reference for every backbone, labelled as R50's
        paper_fps = name == BASELINE
        device = PAPER["fps_device"] + ("" if r50 else ", the paper's R50")
        rows.append([f"FPS {_LABEL.get(name, name)} (end to end)", f"{PAPER['fps']}" if paper_fps else "",
                     device if paper_fps else "", f"{b['fps']:.2f} at {hw}", cpu])
        rows.append([f"FPS {_LABEL.get(name, name)} (inference only)", "", "", f"{b['fps_inference_only']:.2f}",
                     cpu])
    return rows


def backbone_table_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The official backbone table (params of the official code, COME15K-E/H AP of the released models),
    with this run's parameter count beside the benchmarked backbone."""
    label = doc.get("backbone", {}).get("label", "")
    rows = [["backbone", "params (official code)", "AP COME15K-E", "AP COME15K-H", "here"]]
    for r in BACKBONE_TABLE:
        here = ""
        if r["backbone"] == label:
            total = doc["params"]["total"]
            here = f"{total / 1e6:.1f}M ({'equal' if total == r['params'] else f'{total:,}'}) <- this run"
        rows.append([r["backbone"], f"{r['params'] / 1e6:.1f}M", f"{r['ap_come15k_e']}", f"{r['ap_come15k_h']}", here])
    return rows


def format_report(doc: dict[str, Any], compare_paper: bool = False) -> str:
    """The human-readable report (plain text)."""
    s = doc["setup"]
    out = [f"calibnet-bench: {s['config']} at {s['height']}x{s['width']}, batch {s['batch']}, {s['iters']} timed "
           f"iterations ({s['warmup']} warm-up), {s['threads']} threads, frame {s['frame_hw'][0]}x{s['frame_hw'][1]} "
           f"({s['frame']}); {s['weights']}",
           f"machine: {s['cpu']}; torch {s['torch']}, onnxruntime {s['onnxruntime']}; load average at start "
           f"{s['loadavg_start']}, at end {s.get('loadavg_end')}",
           ""]
    p = doc["params"]
    out.append(f"parameters: total {p['total']:,} ({p['total'] / 1e6:.1f}M, the paper's convention: training model, "
               f"aux heads included); without the training-only heads {p['without_aux']:,} "
               f"({p['without_aux'] / 1e6:.1f}M)")
    out.append("  by module: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in p["by_module"].items()))
    f = doc["flops"]
    out.append(f"MACs (fvcore convention, 1 multiply-add = 1 flop): {doc['gmacs']:.2f} G at "
               f"{f['network_hw'][0]}x{f['network_hw'][1]}; FLOPs = 2 x MACs: {doc['gflops_2x_macs']:.1f} G")
    out.append("  by module: " + ", ".join(f"{k} {v:.2f}" for k, v in f["by_module_gmacs"].items()))
    out.append(f"  deformable-attention sampling: {f['msda_sampling_gmacs']:.3f} G in the count (fvcore's "
               f"grid-sampler rule); its weighted sum, {f['msda_weighted_sum_gmacs_not_in_fvcore']:.3f} G, is not "
               f"counted by fvcore")
    out += ["  " + line for line in f.get("paper_gflops_explained", [])[1:]]
    sg = doc["sgemm"]
    out.append(f"SGEMM peak (float32 {sg['n']}x{sg['n']} matmul, GFLOP/s): torch {_f(sg['torch_gflops'])} and "
               f"ONNX Runtime {_f(sg.get('onnxruntime_gflops'))} ({sg['threads']} threads), numpy "
               f"{_f(sg['numpy_gflops'])} (BLAS default threads) -> peak {doc['sgemm_gflops']:.1f}")
    out.append("")
    rows = [["backend", "status", "size MB", "pre ms", "infer ms", "post ms", "e2e p50", "e2e p90", "e2e p99", "FPS",
             "speedup", "vs ORT", "mask agree", "host %", "GFLOP/s", "% SGEMM"]]
    notes: list[str] = []
    for name, b in [(BASELINE, doc["baseline"]), *doc["backends"].items()]:
        st = b.get("stages_ms") or {}
        e = b.get("e2e_ms") or {}
        status = b["status"]
        if len(status) > 32:
            notes.append(f"[{len(notes) + 1}] {name}: {status}")
            status = f"{status.split(':')[0][:28]} [{len(notes)}]"
        rows.append([_LABEL.get(name, name), status, _f(b.get("artifact_mb")),
                     _f(st.get("pre", {}).get("p50")), _f(st.get("infer", {}).get("p50")),
                     _f(st.get("post", {}).get("p50")), _f(e.get("p50")), _f(e.get("p90")), _f(e.get("p99")),
                     _f(b.get("fps"), "{:.2f}"), _f(b.get("speedup_vs_official"), "{:.2f}x"),
                     _f(b.get("speedup_vs_onnxruntime"), "{:.2f}x"), _agreement(b),
                     _f(None if b.get("host_share") is None else 100 * b["host_share"]),
                     _f(b.get("achieved_gflops")),
                     _f(None if b.get("fraction_of_sgemm_peak") is None else 100 * b["fraction_of_sgemm_peak"])])
    out.append(_table(rows))
    out.extend(notes)
    out.append("stage columns: p50 ms per batch; vs ORT = ONNX Runtime's end-to-end p50 / this row's; mask agree = "
               "mask pixels on the same side of the threshold as the eager FP32 model; host % = (pre + post) / end to "
               "end; GFLOP/s = 2 x MACs / inference p50; % SGEMM = that over the measured (FP32) SGEMM peak, for "
               "FP32 rows only (- for BF16 / INT8 / FP16 rows: no peak of their precision is measured).")
    out += format_profiles(doc["backends"])
    if doc.get("accuracy"):
        out += ["", "accuracy (" + doc["accuracy"].get("dataset", "") + "): " + ", ".join(
            f"{k}: AP {v.get('AP', float('nan')):.1f}" if isinstance(v, dict) and "AP" in v else f"{k}: {v}"
            for k, v in doc["accuracy"].get("backends", {}).items())]
    if compare_paper:
        out += ["", "paper vs this run (no GPU here: every measured figure below is from this CPU)",
                _table(compare_paper_rows(doc)), "",
                "backbones (official repository: released models' mask AP, no device; params counted from the "
                "official code, aux heads included)", _table(backbone_table_rows(doc))]
    return "\n".join(out)


def plot_stages(doc: dict[str, Any], path: str | Path) -> Path:
    """Stacked bars of the p50 stage latencies per backend, the official-style baseline first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [(BASELINE, doc["baseline"]), *doc["backends"].items()]
    names, pre, infer, post, notes = [], [], [], [], []
    for name, b in entries:
        names.append(_LABEL.get(name, name))
        st = b.get("stages_ms")
        for stage, values in (("pre", pre), ("infer", infer), ("post", post)):
            values.append(st[stage]["p50"] if st is not None else 0.0)
        if st is None:
            notes.append(b["status"].split(":")[0])  # e.g. "unavailable" (the reason is in the table and JSON)
            continue
        sp = b.get("speedup_vs_official")
        notes.append(f"{b['e2e_ms']['p50']:.0f} ms" + (f" ({sp:.2f}x)" if sp and name != BASELINE else ""))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(names)), 4.2))
    x = range(len(names))
    ax.bar(x, pre, label="pre-processing", color="#4c72b0")
    ax.bar(x, infer, bottom=pre, label="inference", color="#dd8452")
    ax.bar(x, post, bottom=[a + b for a, b in zip(pre, infer)], label="post-processing", color="#55a868")
    top = max([a + b + c for a, b, c in zip(pre, infer, post)] + [1.0])
    for i, note in enumerate(notes):
        ax.text(i, pre[i] + infer[i] + post[i] + 0.01 * top, note, ha="center", va="bottom", fontsize=8)
    s = doc["setup"]
    ax.set_xticks(list(x), names)
    ax.set(ylabel="ms per batch (p50)", ylim=(0, top * 1.15))
    ax.set_title(f"calibnet-bench {s['config']} {s['height']}x{s['width']}, batch {s['batch']}, {s['threads']} threads "
                 f"(CPU)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def add_speedups_vs(backends: dict[str, dict[str, Any]], reference: str = "onnxruntime") -> None:
    """Add ``speedup_vs_<reference>`` (end to end p50) and ``infer_speedup_vs_<reference>`` (inference p50) to
    every timed row when the reference row was timed."""
    ref = backends.get(reference) or {}
    for entry in backends.values():
        if ref.get("e2e_ms") and entry.get("e2e_ms"):
            entry[f"speedup_vs_{reference}"] = ref["e2e_ms"]["p50"] / entry["e2e_ms"]["p50"]
            entry[f"infer_speedup_vs_{reference}"] = (ref["stages_ms"]["infer"]["p50"] /
                                                     entry["stages_ms"]["infer"]["p50"])
