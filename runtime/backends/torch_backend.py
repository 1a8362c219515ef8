"""PyTorch reference backend: the eager CalibNet model behind the same ``Backend`` interface.

Imported only when asked for (``Runtime.open("model_final.pth", backend="torch")`` or
``Runtime.from_model(model)``): the rest of :mod:`calibnet.runtime` never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..metadata import ModelMetadata
from .base import BackendUnavailable

__all__ = ["TorchBackend", "metadata_from_config"]

FULL_OUTPUTS = ("pred_logits", "pred_scores", "pred_masks", "depth_trust")


def metadata_from_config(cfg: Any, **overrides: Any) -> ModelMetadata:
    """The runtime metadata a CalibNet config implies (dynamic H/W, full outputs, FP32)."""
    meta = ModelMetadata(
        flavor="torch", dynamic_hw=True, dynamic_batch=True, max_batch=64,
        min_hw=(32, 32), max_hw=(4096, 4096),
        pixel_mean=tuple(cfg.pixel_mean), pixel_std=tuple(cfg.pixel_std),
        size_divisibility=cfg.input.size_divisibility,
        resize_short=cfg.input.min_size_test, resize_max=cfg.input.max_size_test,
        num_kernels=cfg.decoder.num_kernels, cls_threshold=cfg.inference.cls_threshold,
        mask_threshold=cfg.inference.mask_threshold, max_detections=cfg.inference.max_detections,
        config=str(getattr(cfg, "source", "")), output_names=FULL_OUTPUTS,
    )
    for k, v in overrides.items():
        setattr(meta, k, v)
    return meta


class TorchBackend:
    """Runs a ``calibnet.CalibNet`` in eval mode (CPU, or ``device="cuda"``) under ``torch.no_grad``."""

    name = "torch"

    def __init__(self, model: Any = None, *, weights: str | Path | None = None, config: Any = "r50",
                 device: str = "cpu", threads: int = 0) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable('the torch backend needs PyTorch: pip install "calibnet[torch]"') from exc
        if threads:
            torch.set_num_threads(threads)
        if model is None:
            # imported by name: the model side is not part of the runtime's type-checked surface
            builder = importlib.import_module("calibnet.builder")
            model = builder.build_model(config, weights, quiet=weights is None)
            meta_over: dict[str, Any] = {"deterministic_weights": weights is None}
            if weights is not None:
                meta_over.update(checkpoint=str(weights), checkpoint_sha256=builder.file_sha256(weights))
        else:
            meta_over = {}
        self._torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.metadata = metadata_from_config(model.cfg, torch_version=torch.__version__, **meta_over)

    @property
    def input_names(self) -> list[str]:
        return ["rgb", "depth", "valid_hw"]

    @property
    def output_names(self) -> list[str]:
        return list(FULL_OUTPUTS)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.no_grad():
            out = self.model(torch.from_numpy(np.ascontiguousarray(feeds["rgb"])).to(self.device),
                             torch.from_numpy(np.ascontiguousarray(feeds["depth"])).to(self.device),
                             image_sizes=torch.from_numpy(np.asarray(feeds["valid_hw"], np.int64)).to(self.device))
        return {k: out[k].float().cpu().numpy() for k in FULL_OUTPUTS}

    def close(self) -> None:
        self.model = None
