"""PyTorch reference backend: the eager CalibNet model behind the same ``Backend`` interface.

Imported only when asked for (``Runtime.open("model_final.pth", backend="torch")`` or
``Runtime.from_model(model)``): the rest of :mod:`calibnet.runtime` never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cachedir import file_sha256
from ..core.contract import INPUT_NAMES, OUTPUT_NAMES, metadata_from_config
from ..core.targets import install_hint
from .base import BackendUnavailable

__all__ = ["TorchBackend", "open_checkpoint"]


class TorchBackend:
    """Runs a ``calibnet.CalibNet`` in eval mode (CPU, or ``device="cuda"``) under ``torch.no_grad``."""

    name = "torch"

    def __init__(self, model: Any = None, *, weights: str | Path | None = None, config: Any = None,
                 device: str = "cpu", threads: int = 0) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"the torch backend needs PyTorch: {install_hint('torch')}") from exc
        if threads:
            torch.set_num_threads(threads)
        meta_over: dict[str, Any] = {}
        if model is None:
            # imported by name: the model side is not part of the runtime's type-checked surface
            builder = importlib.import_module("calibnet.builder")
            model = builder.build_model(config, weights, quiet=weights is None)
            meta_over["deterministic_weights"] = weights is None
            if weights is not None:
                meta_over.update(checkpoint=str(weights), checkpoint_sha256=file_sha256(weights))
        self._torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # the eager model takes any H/W (multiples of 32) and batch, full outputs, FP32
        self.metadata = metadata_from_config(model.cfg, flavor="torch", dynamic_hw=True, dynamic_batch=True,
                                             max_batch=64, min_hw=(32, 32), max_hw=(4096, 4096),
                                             config=str(getattr(model.cfg, "source", "")),
                                             torch_version=torch.__version__, **meta_over)

    @property
    def input_names(self) -> list[str]:
        return list(INPUT_NAMES)

    @property
    def output_names(self) -> list[str]:
        return list(OUTPUT_NAMES)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        rgb, depth, valid_hw = (torch.from_numpy(np.ascontiguousarray(feeds[k])).to(self.device)
                                for k in INPUT_NAMES)
        with torch.no_grad():
            out = self.model(rgb, depth, image_sizes=valid_hw.long())
        return {k: out[k].float().cpu().numpy() for k in OUTPUT_NAMES}

    def close(self) -> None:
        self.model = None


def open_checkpoint(path: str | Path, **options: Any) -> TorchBackend:
    """The torch backend of a checkpoint file (``config=`` preset or YAML, default the model side's default preset;
    ``device=``, ``threads=``)."""
    return TorchBackend(weights=path, **options)
