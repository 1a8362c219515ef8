"""``Runtime``: open an exported model, feed RGB-D frames, get :class:`Prediction` objects."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..apps.stream import Stream
from ..backends.base import Backend
from ..backends.torch_backend import TorchBackend
from .closing import Closing
from .contract import ModelMetadata
from .depth import DEFAULT_DIRECTION, DepthFormat
from .depth_health import DepthHealthRule
from .feeds import stack_frames
from .postprocess import decode_prediction
from .prediction import Prediction
from .preprocess import PreparedFrame, prepare_frame
from .targets import Target, open_backend, resolve_target

__all__ = ["Runtime", "OpenOptions"]


@dataclass(frozen=True)
class OpenOptions:
    """How to open a model, whatever its backend: ``backend`` (None: the file type's), and the options each
    backend takes if it has them (its row's ``options`` in the table of targets; the others are ignored):
    ``precision`` (OpenVINO), ``threads`` (CPU backends), ``device`` (torch; ONNX Runtime: ``cpu`` = the CPU
    provider only), ``config`` (a PyTorch checkpoint's preset or YAML). Unset values (None, 0) are not passed."""

    backend: str | None = None
    precision: str | None = None
    threads: int = 0
    device: str | None = None
    config: str | None = None

    def for_target(self, target: Target) -> dict[str, Any]:
        """The options ``target`` accepts, those that are set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v and k in target.options and k != "backend"}


class Runtime(Closing):
    """A CalibNet model on one backend, with the official pre- and post-processing.

    ``depth_format`` says how depth maps are read (8-bit as is by default; see
    :class:`~calibnet.runtime.core.depth.DepthFormat`; its direction defaults to the model's metadata);
    ``strict`` turns an RGB/depth size mismatch into an :class:`InputError` instead of a resize with a warning.
    Both can be overridden per call. ``health_rule`` sets the thresholds of each Prediction's
    ``depth_health`` verdict (:class:`~calibnet.runtime.core.depth_health.DepthHealthRule`; an attribute, it
    may also be replaced later). :meth:`close` releases the backend (sessions, GPU buffers); a
    ``Runtime`` is a context manager: ``with Runtime.open(path) as rt: ...``.
    """

    def __init__(self, backend: Backend, depth_format: DepthFormat | None = None, strict: bool = False,
                 health_rule: DepthHealthRule | None = None) -> None:
        self.backend = backend
        self.metadata: ModelMetadata = backend.metadata
        self.depth_format = self._with_model_direction(depth_format)
        self.strict = strict
        self.health_rule = health_rule or DepthHealthRule()

    def _with_model_direction(self, fmt: DepthFormat | None) -> DepthFormat:
        return (fmt or DepthFormat()).with_direction(self.metadata.depth_direction or DEFAULT_DIRECTION)

    @classmethod
    def open(cls, path: str | Path, backend: str | None = None, depth_format: DepthFormat | None = None,
             strict: bool = False, options: OpenOptions | None = None, **backend_options: Any) -> Runtime:
        """Open a model file on the backend its type selects, or on ``backend`` (a name of the table of targets,
        :mod:`calibnet.runtime.core.targets`: onnxruntime, openvino, tensorrt, torch, ...). ``options`` go to
        the backend (e.g. ``threads=``; ``precision=`` for OpenVINO; ``providers=`` for ONNX Runtime;
        ``config=`` for a PyTorch checkpoint), or as ``options`` (:class:`OpenOptions`, which also names the
        backend; each backend takes the ones it has). A missing file is a ``FileNotFoundError``, a file type no
        backend opens a ``ValueError``, a backend whose library is missing :class:`BackendUnavailable`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        if options is not None:
            backend = backend or options.backend
            backend_options = {**options.for_target(resolve_target(path, backend)), **backend_options}
        return cls(open_backend(path, backend, **backend_options), depth_format=depth_format, strict=strict)

    @classmethod
    def from_model(cls, model: Any, device: str = "cpu", depth_format: DepthFormat | None = None,
                   strict: bool = False) -> Runtime:
        """The PyTorch reference backend around an in-memory ``calibnet.CalibNet`` (needs torch)."""
        return cls(TorchBackend(model, device=device), depth_format=depth_format, strict=strict)

    def close(self) -> None:
        """Release the backend (ONNX Runtime session, TensorRT buffers and stream, torch model)."""
        self.backend.close()

    def prepare(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False, depth_format: DepthFormat | None = None,
                strict: bool | None = None) -> PreparedFrame:
        """Resize and pad one frame for this model (see :func:`~calibnet.runtime.core.preprocess.prepare_frame`)."""
        m = self.metadata
        fmt = self.depth_format if depth_format is None else self._with_model_direction(depth_format)
        static_hw = None if m.dynamic_hw else (m.height, m.width)
        return prepare_frame(rgb, depth, m.resize_short, m.resize_max, static_hw, m.size_divisibility, bgr,
                             depth_format=fmt, strict=self.strict if strict is None else strict)

    def predict(self, rgb: np.ndarray, depth: np.ndarray, bgr: bool = False, depth_format: DepthFormat | None = None,
                strict: bool | None = None) -> Prediction:
        """Salient instances of one frame; masks at the frame's size.

        ``rgb``: uint8 [H,W,3] RGB (BGR with ``bgr=True``), RGBA or gray; ``depth``: [H,W] 8-bit map, 16-bit or
        float metric depth, or disparity (``depth_format``). A frame without any instance gives an empty
        Prediction (masks [0,H,W]). Bad frames raise :class:`~calibnet.runtime.core.errors.InputError`.
        """
        return self.predict_batch([rgb], [depth], bgr=bgr, depth_format=depth_format, strict=strict)[0]

    def predict_batch(self, rgbs: Sequence[np.ndarray], depths: Sequence[np.ndarray], bgr: bool = False,
                      depth_format: DepthFormat | None = None, strict: bool | None = None) -> list[Prediction]:
        """Several frames. Frames whose padded inputs have the same shape run as one batch, up to the graph's
        batch size (``max_batch`` for dynamic-batch graphs; a static batch is filled by repeating a frame);
        each Prediction's ``timings["infer"]`` is its share of the batch's inference time."""
        if len(rgbs) != len(depths):
            raise ValueError(f"{len(rgbs)} RGB images but {len(depths)} depth maps")
        frames: list[PreparedFrame] = []
        pre: list[float] = []
        for rgb, depth in zip(rgbs, depths):
            t0 = time.perf_counter()
            frames.append(self.prepare(rgb, depth, bgr, depth_format, strict))
            pre.append(time.perf_counter() - t0)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(f.rgb.shape, []).append(i)
        m = self.metadata
        cap = max(1, int(m.max_batch if m.dynamic_batch else m.batch))
        results: dict[int, Prediction] = {}
        for idx in groups.values():
            for c in range(0, len(idx), cap):
                chunk = idx[c:c + cap]
                out, seconds = self.infer([frames[i] for i in chunk])
                for b, i in enumerate(chunk):
                    t2 = time.perf_counter()
                    pred = self.decode(out, b, frames[i])
                    pred.timings = {"pre": pre[i], "infer": seconds / len(chunk), "post": time.perf_counter() - t2}
                    results[i] = pred
        return [results[i] for i in range(len(frames))]

    def stream(self, source: Any, policy: str = "all", track: Any = False, **kwargs: Any) -> Any:
        """A pipelined iterator of ``(frame, Prediction)`` over ``source`` (reading + pre-processing,
        inference and post-processing in three threads; ``policy`` "all" or "latest"; ``track=True`` adds
        stable instance IDs): see :class:`calibnet.runtime.apps.stream.Stream` for sources and options."""
        return Stream(self, source, policy, track, **kwargs)

    def infer(self, frames: list[PreparedFrame]) -> tuple[dict[str, np.ndarray], float]:
        """Graph outputs of prepared frames (:meth:`prepare`) of one padded size, at most the graph's batch (a
        static batch is filled by repeating the last frame), and the seconds the backend took."""
        m = self.metadata
        fill = [] if m.dynamic_batch else frames[-1:] * (max(1, int(m.batch)) - len(frames))
        feeds = stack_frames(frames + fill)
        t = time.perf_counter()
        return self.backend.run(feeds), time.perf_counter() - t

    def decode(self, out: dict[str, np.ndarray], b: int, frame: PreparedFrame) -> Prediction:
        """The Prediction of batch item ``b`` of :meth:`infer`'s outputs (full-output or top-k graph), at the size
        of the frame ``frame`` was prepared from."""
        padded = (int(frame.rgb.shape[-2]), int(frame.rgb.shape[-1]))
        return decode_prediction(out, b, padded, frame.resized_hw, frame.original_hw, self.metadata, frame.depth_u8,
                                 frame.invalid_share, self.health_rule)
