"""``Runtime``: open an exported model, feed RGB-D frames, get :class:`Prediction` objects."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend, BackendUnavailable
from .metadata import ModelMetadata
from .postprocess import decode_masks, select_instances, select_topk
from .prediction import Prediction, masks_to_boxes
from .preprocess import PreparedFrame, prepare_frame

__all__ = ["Runtime"]

_BACKEND_BY_SUFFIX = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".pth": "torch",
                      ".pt": "torch"}


class Runtime:
    """A CalibNet model on one backend, with the official pre- and post-processing."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.metadata: ModelMetadata = backend.metadata

    @classmethod
    def open(cls, path: str | Path, backend: str | None = None, providers: list | None = None,
             **kwargs: Any) -> Runtime:
        """Open an exported model. The backend follows the file type unless ``backend`` names one:
        ``.onnx`` -> ``onnxruntime`` (providers TensorRT > CUDA > CPU, or ``providers``), ``.engine``/``.plan``
        -> ``tensorrt``, ``.pth``/``.pt`` (a checkpoint; ``config=`` preset or YAML, default r50) -> ``torch``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        kind = backend or _BACKEND_BY_SUFFIX.get(path.suffix.lower(), "onnxruntime")
        if kind == "onnxruntime":
            from .backends.onnxruntime import OnnxRuntimeBackend

            return cls(OnnxRuntimeBackend(path, providers=providers, **kwargs))
        if kind == "tensorrt":
            try:
                from .backends.tensorrt import TensorRTBackend
            except ImportError as exc:
                raise BackendUnavailable(f"TensorRT backend unavailable: {exc}") from exc
            return cls(TensorRTBackend(path, **kwargs))
        if kind == "torch":
            from .backends.torch_backend import TorchBackend

            return cls(TorchBackend(weights=path, **kwargs))
        raise ValueError(f"unknown backend {kind!r} (onnxruntime, tensorrt or torch)")

    @classmethod
    def from_model(cls, model: Any, device: str = "cpu") -> Runtime:
        """The PyTorch reference backend around an in-memory ``calibnet.CalibNet`` (needs torch)."""
        from .backends.torch_backend import TorchBackend

        return cls(TorchBackend(model, device=device))

    def _static_hw(self) -> tuple[int, int] | None:
        m = self.metadata
        return None if m.dynamic_hw else (m.height, m.width)

    def prepare(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False) -> PreparedFrame:
        """Resize and pad one frame for this model."""
        m = self.metadata
        return prepare_frame(rgb, depth, m.resize_short, m.resize_max, self._static_hw(), m.size_divisibility, bgr)

    def predict(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False) -> Prediction:
        """Salient instances of one frame (RGB [H,W,3] / gray / RGBA image and depth [H,W]); masks at [H,W]."""
        return self.predict_batch([rgb], [depth], bgr=bgr)[0]

    def _batch_capacity(self) -> int:
        m = self.metadata
        return max(1, int(m.max_batch if m.dynamic_batch else m.batch))

    def predict_batch(self, rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray],
                      bgr: bool = False) -> list[Prediction]:
        """Several frames. Frames whose padded inputs have the same shape run as one batch, up to the graph's
        batch size (``max_batch`` for dynamic-batch graphs; a static batch is filled by repeating a frame);
        each Prediction's ``timings["infer"]`` is its share of the batch's inference time."""
        if len(rgbs) != len(depths):
            raise ValueError(f"{len(rgbs)} RGB images but {len(depths)} depth maps")
        frames: list[PreparedFrame] = []
        pre: list[float] = []
        for rgb, depth in zip(rgbs, depths):
            t0 = time.perf_counter()
            frames.append(self.prepare(rgb, depth, bgr))
            pre.append(time.perf_counter() - t0)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(f.rgb.shape, []).append(i)
        cap = self._batch_capacity()
        static = max(1, int(self.metadata.batch)) if not self.metadata.dynamic_batch else 0
        results: dict[int, Prediction] = {}
        for idx in groups.values():
            for c in range(0, len(idx), cap):
                chunk = idx[c:c + cap]
                fill = chunk + [chunk[-1]] * (static - len(chunk)) if static else chunk
                feeds = {"rgb": np.stack([frames[i].rgb for i in fill]),
                         "depth": np.stack([frames[i].depth for i in fill]),
                         "valid_hw": np.array([frames[i].resized_hw for i in fill], dtype=np.int64)}
                t1 = time.perf_counter()
                out = self.backend.run(feeds)
                infer = (time.perf_counter() - t1) / len(chunk)
                for b, i in enumerate(chunk):
                    t2 = time.perf_counter()
                    pred = self._decode(out, b, frames[i])
                    pred.timings = {"pre": pre[i], "infer": infer, "post": time.perf_counter() - t2}
                    results[i] = pred
        return [results[i] for i in range(len(frames))]

    def _decode(self, out: dict[str, np.ndarray], b: int, frame: PreparedFrame) -> Prediction:
        """Prediction of batch item ``b`` from the graph outputs (full-output or top-k graph)."""
        m = self.metadata
        if "keep_index" in out:  # in-graph top-k selection
            below = float(m.extra.get("topk_below_threshold_score", -1.0))
            keep, scores, probs = select_topk(out["scores"][b], out["masks"][b], out["keep_index"][b],
                                              m.max_detections, below)
        else:
            keep, scores, probs = select_instances(out["pred_logits"][b], out["pred_scores"][b], out["pred_masks"][b],
                                                   m.cls_threshold, m.mask_threshold, m.max_detections)
        order = np.argsort(-scores, kind="stable")
        keep, scores, probs = keep[order], scores[order], probs[order]
        masks = decode_masks(probs, frame.rgb.shape[-2:], frame.resized_hw, frame.original_hw, m.mask_threshold)
        trust = out["depth_trust"][b].astype(np.float32) if "depth_trust" in out else np.full(3, np.nan, np.float32)
        return Prediction(masks=masks, scores=scores, boxes=masks_to_boxes(masks), depth_trust=trust,
                          kernel_index=keep.astype(np.int64))
