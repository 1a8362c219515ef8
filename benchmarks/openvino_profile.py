"""Where an OpenVINO row's time goes (``calibnet-bench --profile``): OpenVINO's performance counters
(``PERF_COUNT``, :meth:`calibnet.runtime.backends.openvino.OpenVinoBackend.perf_counters`) summed per operation
type over a few inferences, the top types with their ms and share of the profiled total, and the deformable
attention's share: the fused kernel (``MultiscaleDeformableAttnPlugin_TRT``) or, decomposed, GridSample and the
rest of its body (the nodes named ``.../msda_*`` in the attention's scope, reorders into and out of them included).

Shares are less sensitive to a busy machine than milliseconds; the counters add OpenVINO's per-node bookkeeping,
so a profiled run is not the latency of the row (the bench times rows without counters, then profiles each row
whose backend counts: :func:`calibnet.benchmarks.backends.profile_row`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from calibnet.runtime.core.contract import PLUGIN_NAME

__all__ = ["is_msda", "summarize", "profile_backend", "format_profile", "format_profiles"]


def is_msda(counter: dict[str, Any]) -> bool:
    """Whether a counter belongs to the deformable attention: the fused op or GridSample, or a node of the
    decomposed body (``/msda`` in its name) or a reorder feeding or fed by the fused op."""
    name = counter["name"]
    return counter["type"] in (PLUGIN_NAME, "GridSample") or "/msda" in name or PLUGIN_NAME in name


def summarize(runs: list[list[dict[str, Any]]], top: int = 8) -> dict[str, Any]:
    """Mean ms per inference of each operation type over ``runs`` (lists of counters), the ``top`` types by time
    (``{"type", "ms", "share"}``), the total, and the deformable attention's ms and share (``msda``)."""
    if not runs:
        raise ValueError("no profiled runs")
    by_type: dict[str, float] = defaultdict(float)
    msda = 0.0
    for counters in runs:
        for c in counters:
            by_type[c["type"]] += c["ms"] / len(runs)
            msda += c["ms"] / len(runs) if is_msda(c) else 0.0
    total = sum(by_type.values())
    ranked = sorted(by_type.items(), key=lambda kv: -kv[1])
    fused = by_type.get(PLUGIN_NAME, 0.0) > 0
    return {"runs": len(runs), "total_ms": total,
            "top": [{"type": t, "ms": ms, "share": ms / total if total else 0.0} for t, ms in ranked[:top]],
            "msda": {"ms": msda, "share": msda / total if total else 0.0, "fused_kernel_ran": fused,
                     "what": "fused kernel (MultiscaleDeformableAttnPlugin_TRT) and its reorders" if fused else
                             "decomposed: GridSample and the rest of the reference body"}}


def profile_backend(backend: Any, feeds: dict[str, Any], runs: int = 3, top: int = 8) -> dict[str, Any]:
    """``runs`` inferences of an OpenVINO backend opened with ``profile=True`` (after one untimed), summarized by
    :func:`summarize`, with how its deformable attention runs (``backend.msda``)."""
    backend.run(feeds)
    counters = []
    for _ in range(max(1, runs)):
        backend.run(feeds)
        counters.append(backend.perf_counters())
    out = summarize(counters, top)
    out["msda"].update(route=backend.msda.mode, reason=backend.msda.reason)
    return out


def format_profiles(backends: dict[str, dict[str, Any]]) -> list[str]:
    """The ``--profile`` section of the bench report: every row that has a ``profile``."""
    lines = [line for name, b in backends.items() if b.get("profile") for line in format_profile(name, b["profile"])]
    return ["", "where the time goes (OpenVINO performance counters, per inference; shares of the profiled total)",
            *lines] if lines else []


def format_profile(name: str, profile: dict[str, Any]) -> list[str]:
    """Report lines of one row's profile: the attention's share and how it ran, then the top types."""
    m = profile["msda"]
    lines = [f"{name}: profiled {profile['total_ms']:.1f} ms per inference ({profile['runs']} runs); deformable "
             f"attention {100 * m['share']:.1f}% ({m['ms']:.1f} ms, {m['what']})"]
    lines += [f"    {t['type']:<36}{t['ms']:9.1f} ms {100 * t['share']:6.1f}%" for t in profile["top"]]
    return lines
