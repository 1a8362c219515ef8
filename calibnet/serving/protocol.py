"""The wire contract of the served model ``calibnet`` (PyTriton server, generated Triton repository, client).

One request is one RGB-D frame. Inputs (Triton dims without the batch dimension; the batch dimension is
1 per request and the dynamic batcher stacks requests whose inputs have the same shapes):

==================  =========  ===========  ================================================================
name                dtype      dims         meaning
==================  =========  ===========  ================================================================
``rgb``             UINT8      [-1,-1,3]    RGB image (or ``rgb_encoded``)
``rgb_encoded``     BYTES      [1]          the bytes of a JPEG/PNG/... file
``depth``           UINT8      [-1,-1]      8-bit depth map in the data sets' convention (or one of the next)
``depth_u16``       UINT16     [-1,-1]      16-bit depth, e.g. millimetres of a RealSense/Kinect ``z16`` stream
``depth_encoded``   BYTES      [1]          the bytes of a depth PNG (8 or 16 bit) or TIFF
==================  =========  ===========  ================================================================

A Triton input has one data type, so 8-bit and 16-bit maps come as two inputs. Request parameters (all
optional) say how to read the depth, as :class:`~calibnet.runtime.core.depth.DepthFormat`: ``depth_format``
(``auto``, ``u8``, ``u8-inverted``, ``metric``, ``disparity``), ``depth_near``, ``depth_far`` and
``depth_direction``.

Outputs: ``scores`` FP32 [K], ``boxes`` FP32 [K,4] (xyxy pixels), ``masks_rle`` BYTES [K] (each a COCO RLE
as JSON ``{"size": [H, W], "counts": "..."}``: never raw masks over the wire) and ``depth_trust`` FP32 [3].

Every server of this package decodes requests with :func:`decode_request` and answers with
:func:`encode_prediction`; :func:`prediction_from_outputs` turns an answer back into the runtime's
:class:`~calibnet.runtime.Prediction`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

from ..runtime.core import readers
from ..runtime.core.depth import DepthFormat
from ..runtime.core.errors import InputError
from ..runtime.core.prediction import Prediction

__all__ = ["MODEL_NAME", "TensorSpec", "INPUTS", "OUTPUTS", "DEPTH_PARAMETERS", "Frame", "decode_request",
           "encode_prediction", "prediction_from_outputs", "rle_to_json", "BATCH_REJECTED"]

#: the name of the served model, in every way of serving
MODEL_NAME = "calibnet"

#: marks the error of a request that was valid but shared a dynamic batch with an invalid one (PyTriton
#: answers a whole batch with one error); :class:`calibnet.serving.client.CalibnetClient` resends it
BATCH_REJECTED = "[calibnet:batch-rejected]"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the served model: name, numpy dtype (``object`` for BYTES), dims without the
    batch dimension (-1: any), optional (inputs)."""

    name: str
    dtype: Any
    dims: tuple[int, ...]
    optional: bool = False

    @property
    def triton_dtype(self) -> str:
        """The Triton data type name (``UINT8``, ``FP32``, ``BYTES``, ...)."""
        return _TRITON_DTYPES[np.dtype(self.dtype).str[1:]] if self.dtype is not object else "BYTES"


_TRITON_DTYPES = {"u1": "UINT8", "u2": "UINT16", "f4": "FP32", "i8": "INT64", "i4": "INT32", "b1": "BOOL"}

INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("rgb", np.uint8, (-1, -1, 3), True),
    TensorSpec("rgb_encoded", object, (1,), True),
    TensorSpec("depth", np.uint8, (-1, -1), True),
    TensorSpec("depth_u16", np.uint16, (-1, -1), True),
    TensorSpec("depth_encoded", object, (1,), True),
)
OUTPUTS: tuple[TensorSpec, ...] = (
    TensorSpec("scores", np.float32, (-1,)),
    TensorSpec("boxes", np.float32, (-1, 4)),
    TensorSpec("masks_rle", object, (-1,)),
    TensorSpec("depth_trust", np.float32, (3,)),
)
#: request parameters read by :func:`decode_request`
DEPTH_PARAMETERS = ("depth_format", "depth_near", "depth_far", "depth_direction")
_RGB_INPUTS = ("rgb", "rgb_encoded")
_DEPTH_INPUTS = ("depth", "depth_u16", "depth_encoded")


@dataclass
class Frame:
    """A decoded request: RGB uint8 [H,W,3], the depth map as sent, and how to read it."""

    rgb: np.ndarray
    depth: np.ndarray
    depth_format: DepthFormat


def _one(inputs: Mapping[str, np.ndarray], names: tuple[str, ...], what: str) -> tuple[str, np.ndarray]:
    given = [n for n in names if n in inputs and inputs[n] is not None]
    if len(given) != 1:
        raise InputError(f"send exactly one {what} input of {', '.join(names)} (got {', '.join(given) or 'none'})")
    return given[0], np.asarray(inputs[given[0]])


def _unbatch(name: str, arr: np.ndarray, ndim: int) -> np.ndarray:
    """The single frame of a request: [1,...] (batched model) or [...] as sent."""
    if arr.ndim == ndim + 1:
        if arr.shape[0] != 1:
            raise InputError(f"{name}: one frame per request, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dims, got shape {tuple(arr.shape)}")
    return arr


def _encoded_bytes(name: str, arr: np.ndarray) -> bytes:
    flat = arr.reshape(-1)
    if flat.size != 1:
        raise InputError(f"{name}: one encoded image per request, got {flat.size} elements")
    data = flat[0]
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray, np.bytes_)) or not len(data):
        raise InputError(f"{name}: empty or not bytes")
    return bytes(data)


def _decode_file_bytes(data: bytes, name: str, depth: bool) -> np.ndarray:
    """An encoded image decoded by the runtime's one reader of that file kind."""

    try:
        return readers.read_depth(data) if depth else readers.read_rgb(data)
    except InputError:
        raise InputError(f"{name}: cannot decode the {len(data)} bytes as an image") from None


def _depth_format(params: Mapping[str, Any] | None) -> DepthFormat:
    params = params or {}
    try:
        near = params.get("depth_near")
        far = params.get("depth_far")
        return DepthFormat(str(params.get("depth_format", "auto")), float(near) if near is not None else None,
                           float(far) if far is not None else None,
                           str(params["depth_direction"]) if params.get("depth_direction") is not None else None)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad depth parameters: {exc}") from None


def decode_request(inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any] | None = None) -> Frame:
    """The frame of one request (inputs as named in :data:`INPUTS`, each [1,...] or unbatched).

    Raises :class:`~calibnet.runtime.core.errors.InputError` naming the problem: no or two RGB/depth inputs,
    an undecodable image, wrong ranks, RGB and depth of different sizes, bad depth parameters."""
    rgb_name, rgb = _one(inputs, _RGB_INPUTS, "RGB")
    depth_name, depth = _one(inputs, _DEPTH_INPUTS, "depth")
    if rgb_name == "rgb_encoded":
        rgb = _decode_file_bytes(_encoded_bytes(rgb_name, rgb), rgb_name, depth=False)
    else:
        rgb = _unbatch(rgb_name, rgb, 3)
        if rgb.dtype != np.uint8 or rgb.shape[2] != 3:
            raise InputError(f"rgb must be uint8 [H,W,3], got {rgb.dtype} {tuple(rgb.shape)}")
    if depth_name == "depth_encoded":
        depth = _decode_file_bytes(_encoded_bytes(depth_name, depth), depth_name, depth=True)
    else:
        depth = _unbatch(depth_name, depth, 2)
    if tuple(depth.shape[:2]) != tuple(rgb.shape[:2]):
        raise InputError(f"{depth_name} is {depth.shape[0]}x{depth.shape[1]} but {rgb_name} is "
                         f"{rgb.shape[0]}x{rgb.shape[1]}: send a depth map of the image's size")
    return Frame(np.ascontiguousarray(rgb), np.ascontiguousarray(depth), _depth_format(parameters))


def rle_to_json(rle: Mapping[str, Any]) -> bytes:
    """One COCO RLE as the JSON bytes sent in ``masks_rle``."""
    return json.dumps({"size": [int(v) for v in rle["size"]], "counts": rle["counts"]},
                      separators=(",", ":")).encode("ascii")


def encode_prediction(pred: Prediction, batched: bool = True) -> dict[str, np.ndarray]:
    """The outputs of one request (with a leading batch dimension of 1 when ``batched``)."""
    out = {
        "scores": np.asarray(pred.scores, np.float32).reshape(-1),
        "boxes": np.asarray(pred.boxes, np.float32).reshape(-1, 4),
        "masks_rle": np.array([rle_to_json(r) for r in pred.rle()], dtype=object).reshape(-1),
        "depth_trust": np.asarray(pred.depth_trust, np.float32).reshape(3),
    }
    return {k: v[None] for k, v in out.items()} if batched else out


def prediction_from_outputs(outputs: Mapping[str, np.ndarray], image_hw: tuple[int, int] = (0, 0)) -> Prediction:
    """The runtime's :class:`Prediction` from the outputs of one answer (batched [1,...] or not); masks are
    decoded from the RLEs (``image_hw``: the frame's size, for the mask array of an answer without
    instances). The kernel index is not sent: ``kernel_index`` is -1."""

    def item(name: str, ndim: int) -> np.ndarray:
        a = np.asarray(outputs[name])
        return a[0] if a.ndim == ndim + 1 else a

    scores = item("scores", 1).astype(np.float32)
    boxes = item("boxes", 2).astype(np.float32).reshape(-1, 4)
    rles = [json.loads(bytes(r)) for r in item("masks_rle", 1)]
    trust = item("depth_trust", 1).astype(np.float32)
    if rles:
        masks = np.stack([mask_utils.decode({"size": r["size"], "counts": r["counts"].encode("ascii")})
                          for r in rles]).astype(bool)
    else:
        masks = np.zeros((0, *image_hw), bool)
    return Prediction(masks=masks, scores=scores, boxes=boxes, depth_trust=trust,
                      kernel_index=np.full(len(scores), -1, np.int64))
