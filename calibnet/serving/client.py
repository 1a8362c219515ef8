"""A small client for the served model ``calibnet`` (calibnet-serve or the generated Triton repository).

    from calibnet.serving.client import CalibnetClient
    with CalibnetClient("localhost:8000") as c:                 # HTTP; "grpc://localhost:8001" for gRPC
        pred = c.predict(rgb_uint8_hxwx3, depth_uint8_hxw)      # the runtime's Prediction (masks from the RLEs)
        pred = c.predict_files("A.jpg", "A.png")                # the encoded files as sent (rgb_encoded, ...)
        pred = c.predict(rgb, depth_mm_uint16, depth_format=DepthFormat("metric", near=300, far=4000))

Every failure is a :class:`ServingError` with one line naming the request: :class:`ServerOverloaded` when the server
sheds the request (its queue is full, or the request waited past the server's timeout): the client retries those
``retries`` times, waiting ``backoff_s``, then twice that, ... (each wait drawn between half and all of it, so
that clients refused together come back apart), no retry starting later than ``timeout_s`` after the first try,
then raises; :class:`ServerUnreachable` when the server cannot be reached or stops answering (refused or closed
connection, no answer within ``timeout_s``): raised at once. Both messages name the server's URL. One try never
waits longer than ``timeout_s``, so a request ends, answered or with an error, within twice ``timeout_s``.

Uses ``tritonclient`` (``pip install "tritonclient[http,grpc]"``); any Triton client in any language can
send the same requests (:mod:`calibnet.serving.protocol`).
"""

from __future__ import annotations

import random
import re
import time
import uuid
from http.client import HTTPException
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.closing import Closing
from ..runtime.core.depth import DepthFormat
from ..runtime.core.prediction import Prediction
from .protocol import DEPTH_PARAMETERS, MODEL_NAME, OUTPUTS, REQUEST_ID, prediction_from_outputs, refusal_of

__all__ = ["CalibnetClient", "ServerOverloaded", "ServerUnreachable", "ServingError"]

#: something that looks like a file path (two or more /-separated parts)
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^\s/\\'\"(),:]+){2,}[/\\]?")


class ServingError(RuntimeError):
    """The server refused a request: ``str()`` is the one-line reason with the request id (``request_id``)."""

    def __init__(self, reason: str, request_id: str = "") -> None:
        self.request_id = request_id
        super().__init__(reason)


class ServerOverloaded(ServingError):
    """The server shed the request (its queue was full, or the request waited past the server's timeout): retry
    later (:class:`CalibnetClient` does, ``retries`` times with backoff)."""


class ServerUnreachable(ServingError):
    """The server could not be reached or stopped answering (connection refused or closed, no answer within the
    client's timeout); the message names the server's URL."""


#: Triton's words for a request it sheds (queue policy: max_queue_size, default_timeout_microseconds), and ours
_SHED = {"exceeds maximum queue size": "is overloaded (its request queue is full), retry later",
         "request timeout expired": "is overloaded (the request waited past the server's timeout), retry later"}
#: gRPC status codes of a server that is gone or does not answer in time
_GRPC_GONE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


def _reason(message: str) -> str:
    """One line of a server error message: calibnet's servers send one line; an error raised inside Triton or
    PyTriton may be a traceback, of which only the last line is kept, without anything that looks like a path."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if not lines:
        return "the server refused the request"
    traceback = any(line.startswith(("Traceback", 'File "')) for line in lines)
    text = lines[-1] if traceback else " ".join(lines)
    return _PATH.sub("<path>", text)[:400]


def _parameters(fmt: DepthFormat | None) -> dict[str, Any] | None:
    if fmt is None:
        return None
    values = (fmt.kind, *(None if v is None else float(v) for v in (fmt.near, fmt.far)), fmt.direction)
    return {name: v for name, v in zip(DEPTH_PARAMETERS, values) if v is not None}


class CalibnetClient(Closing):
    """Sends frames to a Triton server serving ``calibnet``; ``url`` ``host:port`` (HTTP) or
    ``grpc://host:port`` / ``http://host:port``. Every request carries a ``request_id`` parameter; a refused
    request raises :class:`ServingError` with the server's one-line reason and that id. ``timeout_s``: the longest
    wait for one answer; a shed request (:class:`ServerOverloaded`) is sent again up to ``retries`` times after
    waits growing from ``backoff_s`` (see the module doc)."""

    def __init__(self, url: str = "localhost:8000", protocol: str | None = None, model_name: str = MODEL_NAME,
                 timeout_s: float = 60.0, retries: int = 3, backoff_s: float = 0.25) -> None:
        self.retries, self.backoff_s = max(0, retries), backoff_s
        if "://" in url:
            scheme, url = url.split("://", 1)
            protocol = protocol or scheme
        self.protocol = (protocol or "http").lower()
        self._server = f"{self.protocol}://{url}"
        if self.protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be http or grpc, not {self.protocol!r}")
        self.model_name, self.timeout_s = model_name, timeout_s
        if self.protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc  # type: ignore[no-redef]
        self._tc = tc
        kwargs: dict[str, Any] = {} if self.protocol == "grpc" else {"connection_timeout": timeout_s,
                                                                      "network_timeout": timeout_s}
        self._client = tc.InferenceServerClient(url, **kwargs)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def is_ready(self) -> bool:
        """Server live and the model ready (False while starting or unreachable)."""
        try:
            return bool(self._client.is_server_ready() and self._client.is_model_ready(self.model_name))
        except Exception:  # noqa: BLE001 - connection refused etc.: not ready
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until :meth:`is_ready`; TimeoutError after ``timeout_s``."""
        end = time.monotonic() + timeout_s
        while not self.is_ready():
            if time.monotonic() > end:
                raise TimeoutError(f"model {self.model_name!r} not ready after {timeout_s:.0f} s")
            time.sleep(0.2)

    def _input(self, name: str, arr: np.ndarray, dtype: str) -> Any:
        x = self._tc.InferInput(name, list(arr.shape), dtype)
        x.set_data_from_numpy(arr)
        return x

    def infer_raw(self, inputs: dict[str, np.ndarray],
                  parameters: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
        """Send inputs as given (each with its batch dimension of 1); the outputs as arrays. :class:`ServingError`
        with the server's one-line reason and the request id if it refuses the request; a shed request is sent
        again up to ``retries`` times with backoff, then raises :class:`ServerOverloaded`;
        :class:`ServerUnreachable` at once when the server is gone or does not answer within ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(self.retries + 1):
            try:
                return self._infer_once(inputs, parameters)
            except ServerOverloaded:
                wait = self.backoff_s * 2**attempt * random.uniform(0.5, 1.0)
                if attempt == self.retries or time.monotonic() + wait >= deadline:
                    raise
                time.sleep(wait)
        raise AssertionError("not reached")  # the loop returns or raises

    def _infer_once(self, inputs: dict[str, np.ndarray], parameters: dict[str, Any] | None) -> dict[str, np.ndarray]:
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        rid = uuid.uuid4().hex[:16]
        tensors = [self._input(k, v, "BYTES" if v.dtype == object else np_to_triton_dtype(v.dtype))
                   for k, v in inputs.items()]
        outputs = [self._tc.InferRequestedOutput(s.name) for s in OUTPUTS]
        kw: dict[str, Any] = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        try:
            res = self._client.infer(self.model_name, tensors, outputs=outputs, request_id=rid,
                                     parameters={**(parameters or {}), REQUEST_ID: rid}, **kw)
        except InferenceServerException as exc:
            msg = str(exc.message() if callable(getattr(exc, "message", None)) else exc)
            status = str(exc.status() if callable(getattr(exc, "status", None)) else "")
            shed = next((ours for theirs, ours in _SHED.items() if theirs in msg.lower()), None)
            if shed:
                raise ServerOverloaded(f"server {self._server} {shed} (request {rid})", rid) from None
            if status.rsplit(".", 1)[-1] in _GRPC_GONE:
                raise self._unreachable(msg, rid) from None
            raise ServingError(f"{_reason(msg)} (request {rid})", rid) from None
        except (OSError, HTTPException) as exc:  # refused, reset or closed connection, or no answer in time
            raise self._unreachable(str(exc) or type(exc).__name__, rid) from None
        answer = {s.name: res.as_numpy(s.name) for s in OUTPUTS}  # None: left out (no elements)
        refused = refusal_of(answer)
        if refused:
            raise ServingError(_reason(refused), rid)
        return answer

    def _unreachable(self, detail: str, rid: str) -> ServerUnreachable:
        return ServerUnreachable(f"server {self._server} unreachable or not answering within "
                                 f"{self.timeout_s:g} s: {_reason(detail)} (request {rid})", rid)

    def predict(self, rgb: np.ndarray, depth: np.ndarray, depth_format: DepthFormat | None = None) -> Prediction:
        """Salient instances of one frame: ``rgb`` uint8 [H,W,3] RGB, ``depth`` uint8 or uint16 [H,W]."""
        rgb = np.ascontiguousarray(rgb)
        depth = np.ascontiguousarray(depth)
        if depth.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"depth must be uint8 or uint16 to send (got {depth.dtype}); encode float maps as TIFF "
                             "and use predict_files")
        name = "depth" if depth.dtype == np.uint8 else "depth_u16"
        out = self.infer_raw({"rgb": rgb[None], name: depth[None]}, _parameters(depth_format))
        return prediction_from_outputs(out, image_hw=rgb.shape[:2])

    def predict_encoded(self, rgb_bytes: bytes, depth_bytes: bytes, depth_format: DepthFormat | None = None,
                        image_hw: tuple[int, int] = (0, 0)) -> Prediction:
        """One frame from encoded files (JPEG/PNG RGB, PNG/TIFF depth), decoded by the server."""
        out = self.infer_raw({"rgb_encoded": np.array([[rgb_bytes]], dtype=object),
                              "depth_encoded": np.array([[depth_bytes]], dtype=object)}, _parameters(depth_format))
        return prediction_from_outputs(out, image_hw=image_hw)

    def predict_files(self, rgb_path: str | Path, depth_path: str | Path,
                      depth_format: DepthFormat | None = None) -> Prediction:
        """One frame from an RGB file and a depth file, sent encoded."""
        return self.predict_encoded(Path(rgb_path).read_bytes(), Path(depth_path).read_bytes(), depth_format)

