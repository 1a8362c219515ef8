"""Verify an exported ONNX file on ONNX Runtime CPU against the PyTorch model (both flavours).

The TensorRT-flavoured graph runs after :func:`~calibnet.export.msda_onnx.attach_reference_function` gives
its plugin nodes the GridSample body, so the custom node's wiring (input order, shapes, INT32 casts) is
exercised without a GPU. Report: per output the max abs difference vs a tolerance, the binarized-mask
agreement (logits > 0 for ``pred_masks``, probability > mask threshold for ``masks``) and for top-k graphs
whether the kept kernel indices are equal; :meth:`VerifyReport.to_json` and :meth:`VerifyReport.table`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from calibnet.runtime.metadata import ModelMetadata

from .msda_onnx import attach_reference_function, plugin_nodes
from .topk import TopKDeploy

__all__ = ["verify_onnx", "VerifyReport", "Check", "DEFAULT_TOLERANCES", "random_inputs"]

#: max abs difference per output (logits/scores/depth-trust 1e-3, mask logits 1e-2, mask probabilities 1e-3)
DEFAULT_TOLERANCES: dict[str, float] = {"pred_logits": 1e-3, "pred_scores": 1e-3, "pred_masks": 1e-2,
                                        "depth_trust": 1e-3, "scores": 1e-4, "masks": 1e-3, "keep_index": 0.0}
MIN_MASK_AGREEMENT = 0.999


@dataclass
class Check:
    """One line of the report: ``value`` compared with ``limit`` (``<=`` for diffs, ``>=`` for agreement)."""

    name: str
    metric: str
    value: float
    limit: float
    passed: bool


@dataclass
class VerifyReport:
    """All checks of one verification run."""

    onnx_path: str
    flavor: str
    input_shape: list[int]
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """JSON-serializable dict."""
        return {"onnx": self.onnx_path, "flavor": self.flavor, "input_shape": self.input_shape,
                "passed": self.passed, "checks": [asdict(c) for c in self.checks]}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2))
        return path

    def table(self) -> str:
        """A readable table, one row per check."""
        rows = [f"{'output':<14}{'metric':<18}{'value':>12}{'limit':>12}  result"]
        for c in self.checks:
            op = ">=" if c.metric.endswith("agreement") or c.metric == "equal" else "<="
            rows.append(f"{c.name:<14}{c.metric:<18}{c.value:>12.4g}{op + format(c.limit, '.4g'):>12}  "
                        f"{'pass' if c.passed else 'FAIL'}")
        rows.append(f"{self.flavor} graph {Path(self.onnx_path).name} at {self.input_shape}: "
                    f"{'PASSED' if self.passed else 'FAILED'}")
        return "\n".join(rows)


def random_inputs(batch: int, height: int, width: int, valid_hw: tuple[int, int] | None = None,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform 0..255 frames (``rgb``, ``depth``) and ``valid_hw`` (default: the full size)."""
    g = np.random.default_rng(seed)
    vh, vw = valid_hw or (height, width)
    return {"rgb": (g.random((batch, 3, height, width)) * 255).astype(np.float32),
            "depth": (g.random((batch, 1, height, width)) * 255).astype(np.float32),
            "valid_hw": np.array([[vh, vw]] * batch, dtype=np.int64)}


def _session(model: onnx.ModelProto, providers: list[str] | None) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=providers or ["CPUExecutionProvider"])


def _torch_outputs(model: nn.Module, meta: ModelMetadata, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    rgb, depth, valid = (torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in ("rgb", "depth", "valid_hw"))
    with torch.no_grad():
        if meta.topk:
            out = TopKDeploy(model.eval(), meta.topk).eval()(rgb, depth, valid)
            return {k: v.numpy() for k, v in zip(("scores", "masks", "depth_trust", "keep_index"), out)}
        ref = model.eval()(rgb, depth, image_sizes=valid)
    return {k: ref[k].numpy() for k in ("pred_logits", "pred_scores", "pred_masks", "depth_trust")}


def verify_onnx(onnx_path: str | Path, model: nn.Module, inputs: Mapping[str, np.ndarray] | None = None,
                tolerances: Mapping[str, float] | None = None, min_mask_agreement: float = MIN_MASK_AGREEMENT,
                providers: list[str] | None = None) -> VerifyReport:
    """Run ``onnx_path`` on ONNX Runtime and compare every output with ``model`` (PyTorch eager).

    Args:
        inputs: ``{"rgb", "depth", "valid_hw"}`` numpy arrays; default: :func:`random_inputs` at the
            file's metadata size and batch.
        tolerances: per-output max abs difference, merged over :data:`DEFAULT_TOLERANCES`.
        min_mask_agreement: fraction of mask pixels whose binarized value must agree.
    """
    proto = onnx.load(str(onnx_path))
    meta = ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})
    if plugin_nodes(proto):
        proto = attach_reference_function(proto)
    feeds = dict(inputs) if inputs is not None else random_inputs(meta.batch, meta.height, meta.width)
    sess = _session(proto, providers)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    ref = _torch_outputs(model, meta, feeds)
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    report = VerifyReport(str(onnx_path), meta.flavor, list(feeds["rgb"].shape))
    for name, want in ref.items():
        have = got[name]
        if have.shape != want.shape:
            report.checks.append(Check(name, "shape", float("nan"), 0.0, False))
            continue
        if name == "keep_index":
            same = float((have == want).mean())
            report.checks.append(Check(name, "equal", same, 1.0, same == 1.0))
            continue
        diff = float(np.abs(have.astype(np.float64) - want).max()) if have.size else 0.0
        report.checks.append(Check(name, "max_abs_diff", diff, tol[name], bool(diff <= tol[name])))
        if name in ("pred_masks", "masks"):
            thr = 0.0 if name == "pred_masks" else meta.mask_threshold
            agree = float(((have > thr) == (want > thr)).mean()) if have.size else 1.0
            report.checks.append(Check(name, "binary_agreement", agree, min_mask_agreement,
                                       agree >= min_mask_agreement))
    return report
