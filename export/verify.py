"""Verify an exported ONNX file on ONNX Runtime CPU against the PyTorch model (both flavours).

The TensorRT-flavoured graph runs after :func:`~calibnet.export.msda_onnx.attach_reference_function` gives
its plugin nodes the GridSample body, so the custom node's wiring (input order, shapes, INT32 casts) is
exercised without a GPU. The comparison is :func:`calibnet.runtime.core.compare.compare_outputs` at FP32: per
output the max abs difference vs a tolerance, the binarized-mask agreement (probability > the mask
threshold) and for top-k graphs whether the kept kernel indices are equal; :meth:`VerifyReport.to_json`
and :meth:`VerifyReport.table`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from calibnet.runtime.backends.torch_backend import TorchBackend
from calibnet.runtime.core.compare import Check, compare_outputs, format_checks
from calibnet.runtime.core.contract import INPUT_NAMES, TOPK_OUTPUT_NAMES, ModelMetadata
from calibnet.runtime.core.feeds import random_feeds
from calibnet.runtime.core.targets import read_metadata

from .msda_onnx import load_runnable
from .topk import TopKDeploy

__all__ = ["verify_onnx", "VerifyReport", "Check"]


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
        return format_checks(self.checks, f"{self.flavor} graph {Path(self.onnx_path).name} at {self.input_shape}: "
                                          f"{'PASSED' if self.passed else 'FAILED'}")


def _torch_outputs(model: nn.Module, meta: ModelMetadata, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not meta.topk:
        return TorchBackend(model).run(dict(feeds))
    with torch.no_grad():
        inputs = (torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in INPUT_NAMES)
        out = TopKDeploy(model.eval(), meta.topk).eval()(*inputs)
    return {k: v.numpy() for k, v in zip(TOPK_OUTPUT_NAMES, out)}


def verify_onnx(onnx_path: str | Path, model: nn.Module,
                inputs: Mapping[str, np.ndarray] | None = None) -> VerifyReport:
    """Run ``onnx_path`` on ONNX Runtime and compare every output with ``model`` (PyTorch eager).

    Args:
        inputs: ``{"rgb", "depth", "valid_hw"}`` numpy arrays; default:
            :func:`calibnet.runtime.core.feeds.random_feeds` at the file's metadata size and batch.
    """
    import onnxruntime as ort

    meta = read_metadata(onnx_path)
    proto = load_runnable(onnx_path)
    feeds = dict(inputs) if inputs is not None else random_feeds(meta.batch, meta.height, meta.width)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    comparison = compare_outputs(_torch_outputs(model, meta, feeds), got, meta, "fp32")
    return VerifyReport(str(onnx_path), meta.flavor, list(feeds["rgb"].shape), comparison.checks())
