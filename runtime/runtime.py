"""``Runtime``: open an exported model, feed RGB-D frames, get :class:`Prediction` objects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend, BackendUnavailable
from .metadata import ModelMetadata
from .postprocess import decode_masks, select_instances
from .prediction import Prediction, masks_to_boxes
from .preprocess import PreparedFrame, prepare_frame

__all__ = ["Runtime"]


class Runtime:
    """A CalibNet model on one backend, with the official pre- and post-processing."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.metadata: ModelMetadata = backend.metadata

    @classmethod
    def open(cls, path: str | Path, backend: str | None = None, providers: list | None = None,
             **kwargs: Any) -> Runtime:
        """Open an ``.onnx`` file (ONNX Runtime) or an ``.engine``/``.plan`` file (TensorRT)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        kind = backend or ("tensorrt" if path.suffix in (".engine", ".plan") else "onnxruntime")
        if kind == "onnxruntime":
            from .backends.onnxruntime import OnnxRuntimeBackend

            return cls(OnnxRuntimeBackend(path, providers=providers, **kwargs))
        if kind == "tensorrt":
            try:
                from .backends.tensorrt import TensorRTBackend
            except ImportError as exc:
                raise BackendUnavailable(f"TensorRT backend unavailable: {exc}") from exc
            return cls(TensorRTBackend(path, **kwargs))
        raise ValueError(f"unknown backend {kind!r} (onnxruntime or tensorrt)")

    def _static_hw(self) -> tuple[int, int] | None:
        m = self.metadata
        return None if m.dynamic_hw else (m.height, m.width)

    def prepare(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False) -> PreparedFrame:
        """Resize and pad one frame for this model."""
        m = self.metadata
        return prepare_frame(rgb, depth, m.resize_short, m.resize_max, self._static_hw(), m.size_divisibility, bgr)

    def predict(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False) -> Prediction:
        """Salient instances of one frame (uint8 RGB [H,W,3], uint8 depth [H,W])."""
        return self.predict_batch([rgb], [depth], bgr=bgr)[0]

    def predict_batch(self, rgbs: list[np.ndarray], depths: list[np.ndarray], bgr: bool = False) -> list[Prediction]:
        """Several frames, one batch per frame (static-batch graphs)."""
        results = []
        for rgb, depth in zip(rgbs, depths, strict=True):
            t0 = time.perf_counter()
            frame = self.prepare(rgb, depth, bgr)
            feeds = {"rgb": frame.rgb[None], "depth": frame.depth[None],
                     "valid_hw": np.array([frame.resized_hw], dtype=np.int64)}
            t1 = time.perf_counter()
            out = self.backend.run(feeds)
            t2 = time.perf_counter()
            pred = self._decode(out, frame)
            t3 = time.perf_counter()
            pred.timings = {"pre": t1 - t0, "infer": t2 - t1, "post": t3 - t2}
            results.append(pred)
        return results

    def _decode(self, out: dict[str, np.ndarray], frame: PreparedFrame) -> Prediction:
        m = self.metadata
        keep, scores, probs = select_instances(out["pred_logits"][0], out["pred_scores"][0], out["pred_masks"][0],
                                               m.cls_threshold, m.mask_threshold, m.max_detections)
        masks = decode_masks(probs, frame.rgb.shape[-2:], frame.resized_hw, frame.original_hw, m.mask_threshold)
        order = np.argsort(-scores, kind="stable")
        trust = out.get("depth_trust", np.full((1, 3), np.nan, np.float32))[0].astype(np.float32)
        masks = masks[order]
        return Prediction(masks=masks, scores=scores[order], boxes=masks_to_boxes(masks), depth_trust=trust,
                          kernel_index=keep[order].astype(np.int64))
