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

The request parameter ``request_id`` (letters, digits, ``._:-``, at most 64) names the request in a refusal and
in the server log; without it the server makes one up.

Outputs: ``scores`` FP32 [K], ``boxes`` FP32 [K,4] (xyxy pixels), ``masks_rle`` BYTES [K] (each a COCO RLE
as JSON ``{"size": [H, W], "counts": "..."}``: never raw masks over the wire), ``depth_trust`` FP32 [3],
``instance_depth`` FP32 [K] (each instance's median 8-bit depth, :attr:`Prediction.instance_depth`),
``depth_health`` BYTES [1] (the frame's depth health as JSON ``{"invalid_share", "depth_trust", "verdict"}``:
:class:`~calibnet.runtime.core.depth_health.DepthHealth`) and ``error`` BYTES [1]: empty for an answered
request; for a refused one (undecodable, oversized, inconsistent...) the one-line reason and the request id,
with no instances and no depth health. An output with no elements is left out of the answer (PyTriton cannot
send empty tensors): no ``scores``, ``boxes``, ``masks_rle`` and ``instance_depth`` means no instances. A request
is refused alone: the others of its dynamic batch are answered. Reasons never hold server paths or tracebacks
(those stay in the server log, at debug level).

Inputs are held to :class:`~calibnet.runtime.core.limits.InputLimits` before anything is decoded: the pixels of a
raw ``rgb``/``depth`` tensor or of an encoded file's header, and the bytes of every input.

Every server of this package decodes requests with :func:`decode_request`, answers with
:func:`encode_prediction` and refuses with :func:`encode_refusal`; :func:`prediction_from_outputs` turns an
answer back into the runtime's :class:`~calibnet.runtime.Prediction` and :func:`refusal_of` reads a refusal.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils  # type: ignore[import-untyped]

from ..runtime.core import readers
from ..runtime.core.depth import DepthFormat
from ..runtime.core.depth_health import DepthHealth
from ..runtime.core.errors import InputError
from ..runtime.core.filecheck import one_line
from ..runtime.core.limits import InputLimits, LimitExceeded, default_limits
from ..runtime.core.prediction import Prediction

__all__ = ["MODEL_NAME", "TensorSpec", "INPUTS", "OUTPUTS", "DEPTH_PARAMETERS", "REQUEST_ID", "Frame",
           "decode_request", "encode_prediction", "encode_refusal", "public_reason", "prediction_from_outputs",
           "queue_size", "refusal_of", "request_id", "rle_to_json"]

#: the name of the served model, in every way of serving
MODEL_NAME = "calibnet"
#: the request parameter naming a request (in refusals and in the server log)
REQUEST_ID = "request_id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of the served model: name, numpy dtype (``object`` for BYTES), dims without the
    batch dimension (-1: any), optional (inputs)."""

    name: str
    dtype: Any
    dims: tuple[int, ...]
    optional: bool = False


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
    TensorSpec("instance_depth", np.float32, (-1,)),
    TensorSpec("depth_health", object, (1,)),
    TensorSpec("error", object, (1,)),
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


def _raw(name: str, arr: np.ndarray, ndim: int, limits: InputLimits) -> np.ndarray:
    """The single frame of a raw tensor, [1,...] (batched model) or [...] as sent, its size within ``limits``."""
    if arr.ndim == ndim + 1:
        if arr.shape[0] != 1:
            raise InputError(f"{name}: one frame per request, got a batch of {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected {ndim} dims, got shape {tuple(arr.shape)}")
    limits.check_size(int(arr.shape[1]), int(arr.shape[0]), name)
    return arr


def _decode_file(name: str, arr: np.ndarray, depth: bool, limits: InputLimits) -> np.ndarray:
    """The one encoded image of an input, decoded by the runtime's one reader of that file kind within ``limits``;
    the reason of a refusal names the input, never a file of the server."""
    flat = arr.reshape(-1)
    if flat.size != 1:
        raise InputError(f"{name}: one encoded image per request, got {flat.size} elements")
    data = flat[0]
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray, np.bytes_)) or not len(data):
        raise InputError(f"{name}: empty or not bytes")
    data = bytes(data)
    try:
        return readers.read_depth(data, limits) if depth else readers.read_rgb(data, limits)
    except LimitExceeded as exc:
        raise LimitExceeded(f"{name}: {exc}") from None
    except InputError:
        raise InputError(f"{name}: cannot decode the {len(data)} bytes as an image") from None


def _within_bytes(inputs: Mapping[str, np.ndarray], limits: InputLimits) -> None:
    for name, arr in inputs.items():
        if arr is not None:
            a = np.asarray(arr)
            size = sum(len(x) for x in a.reshape(-1) if isinstance(x, (bytes, bytearray))) if a.dtype == object \
                else a.nbytes
            limits.check_bytes(int(size), name)


def _depth_format(params: Mapping[str, Any] | None) -> DepthFormat:
    params = params or {}
    near, far, direction = (params.get(k) for k in ("depth_near", "depth_far", "depth_direction"))
    try:
        return DepthFormat(str(params.get("depth_format", "auto")), None if near is None else float(near),
                           None if far is None else float(far), None if direction is None else str(direction))
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad depth parameters: {exc}") from None


def decode_request(inputs: Mapping[str, np.ndarray], parameters: Mapping[str, Any] | None = None,
                   limits: InputLimits | None = None) -> Frame:
    """The frame of one request (inputs as named in :data:`INPUTS`, each [1,...] or unbatched), each input held to
    ``limits`` (default :func:`~calibnet.runtime.core.limits.default_limits`) before it is decoded.

    Raises :class:`~calibnet.runtime.core.errors.InputError` naming the problem: no or two RGB/depth inputs,
    an oversized or undecodable image, wrong ranks, RGB and depth of different sizes, bad depth parameters."""
    limits = limits or default_limits()
    _within_bytes(inputs, limits)
    rgb_name, rgb = _one(inputs, _RGB_INPUTS, "RGB")
    depth_name, depth = _one(inputs, _DEPTH_INPUTS, "depth")
    if rgb_name == "rgb_encoded":
        rgb = _decode_file(rgb_name, rgb, False, limits)
    else:
        rgb = _raw(rgb_name, rgb, 3, limits)
        if rgb.dtype != np.uint8 or rgb.shape[2] != 3:
            raise InputError(f"rgb must be uint8 [H,W,3], got {rgb.dtype} {tuple(rgb.shape)}")
    depth = (_decode_file(depth_name, depth, True, limits) if depth_name == "depth_encoded"
             else _raw(depth_name, depth, 2, limits))
    if tuple(depth.shape[:2]) != tuple(rgb.shape[:2]):
        raise InputError(f"{depth_name} is {depth.shape[0]}x{depth.shape[1]} but {rgb_name} is "
                         f"{rgb.shape[0]}x{rgb.shape[1]}: send a depth map of the image's size")
    return Frame(np.ascontiguousarray(rgb), np.ascontiguousarray(depth), _depth_format(parameters))


def rle_to_json(rle: Mapping[str, Any]) -> bytes:
    """One COCO RLE as the JSON bytes sent in ``masks_rle``."""
    return json.dumps({"size": [int(v) for v in rle["size"]], "counts": rle["counts"]},
                      separators=(",", ":")).encode("ascii")


def _bytes_array(items: list[bytes]) -> np.ndarray:
    """A BYTES output (numpy ``S``)."""
    return np.array(items, dtype=np.bytes_).reshape(-1) if items else np.zeros(0, "S1")


def _answer(out: dict[str, np.ndarray], batched: bool) -> dict[str, np.ndarray]:
    """The outputs as sent: empty ones left out, a leading batch dimension of 1 when ``batched``."""
    return {k: v[None] if batched else v for k, v in out.items() if v.size}


def encode_prediction(pred: Prediction, batched: bool = True) -> dict[str, np.ndarray]:
    """The outputs of one answered request (with a leading batch dimension of 1 when ``batched``)."""
    out = {
        "scores": np.asarray(pred.scores, np.float32).reshape(-1),
        "boxes": np.asarray(pred.boxes, np.float32).reshape(-1, 4),
        "masks_rle": _bytes_array([rle_to_json(r) for r in pred.rle()]),
        "depth_trust": np.asarray(pred.depth_trust, np.float32).reshape(3),
        "instance_depth": (np.full(len(pred), np.nan, np.float32) if pred.instance_depth is None
                           else np.asarray(pred.instance_depth, np.float32).reshape(-1)),
        "depth_health": _bytes_array([json.dumps(None if pred.depth_health is None else pred.depth_health.to_dict(),
                                                 separators=(",", ":")).encode("ascii")]),
        "error": np.array([b""], dtype="S1"),
    }
    return _answer(out, batched)


def request_id(parameters: Mapping[str, Any] | None) -> str:
    """The request's ``request_id`` parameter when it is a plain name, else a new random one."""
    given = str((parameters or {}).get(REQUEST_ID, ""))
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]


def queue_size(max_batch: int, instances: int) -> int:
    """How many requests may wait for the model in every server of this package unless told otherwise: four
    dynamic batches per instance (Triton refuses the ones beyond at once)."""
    return 4 * max(1, max_batch) * max(1, instances)


def public_reason(exc: BaseException) -> str:
    """What a client is told about a failure: an :class:`InputError`'s one line (calibnet's own words about the
    request), else only the kind of failure (another exception's text may hold server paths)."""
    if isinstance(exc, InputError):
        return one_line(exc)
    if isinstance(exc, MemoryError):
        return "the server ran out of memory on this request"
    return f"the server could not process this request ({type(exc).__name__})"


def encode_refusal(reason: str, rid: str, batched: bool = True) -> dict[str, np.ndarray]:
    """The outputs of a refused request: no instances, NaN depth trust, ``error`` = reason and request id."""
    out = {
        "scores": np.zeros(0, np.float32),
        "boxes": np.zeros((0, 4), np.float32),
        "masks_rle": _bytes_array([]),
        "depth_trust": np.full(3, np.nan, np.float32),
        "error": _bytes_array([f"{reason} (request {rid})".encode("utf-8", "replace")]),
    }
    return _answer(out, batched)


def refusal_of(outputs: Mapping[str, np.ndarray]) -> str:
    """The reason of a refused answer ("" for an answered one or a server without the ``error`` output)."""
    if outputs.get("error") is None:
        return ""
    flat = np.asarray(outputs["error"]).reshape(-1)
    value = flat[0] if flat.size else b""
    return (value if isinstance(value, (bytes, np.bytes_)) else str(value).encode()).decode("utf-8", "replace")


def prediction_from_outputs(outputs: Mapping[str, np.ndarray], image_hw: tuple[int, int] = (0, 0)) -> Prediction:
    """The runtime's :class:`Prediction` from the outputs of one answer (batched [1,...] or not); masks are
    decoded from the RLEs (``image_hw``: the frame's size, for the mask array of an answer without
    instances). The kernel index is not sent: ``kernel_index`` is -1. An answer without ``instance_depth`` /
    ``depth_health`` (or a ``null`` health) leaves them None."""

    def item(name: str, ndim: int) -> np.ndarray:
        if outputs.get(name) is None:  # left out: no elements
            return np.zeros((0,) * ndim)
        a = np.asarray(outputs[name])
        return a[0] if a.ndim == ndim + 1 else a

    scores = item("scores", 1).astype(np.float32)
    boxes = item("boxes", 2).astype(np.float32).reshape(-1, 4)
    rles = [json.loads(bytes(r)) for r in item("masks_rle", 1)]
    trust = item("depth_trust", 1).astype(np.float32)
    masks = (np.stack([mask_utils.decode({"size": r["size"], "counts": r["counts"].encode("ascii")})
                       for r in rles]).astype(bool) if rles else np.zeros((0, *image_hw), bool))
    answered = outputs.get("depth_health") is not None  # an answer of a server that sends depth health
    health = json.loads(bytes(item("depth_health", 1)[0])) if answered else None
    depth = item("instance_depth", 1).astype(np.float32) if answered else None
    return Prediction(masks=masks, scores=scores, boxes=boxes, depth_trust=trust,
                      kernel_index=np.full(len(scores), -1, np.int64),
                      instance_depth=depth,
                      depth_health=None if health is None else DepthHealth.from_dict(health))
