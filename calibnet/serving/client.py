"""A small client for the served model ``calibnet`` (calibnet-serve or the generated Triton repository).

    from calibnet.serving.client import CalibnetClient
    with CalibnetClient("localhost:8000") as c:                 # HTTP; "grpc://localhost:8001" for gRPC
        pred = c.predict(rgb_uint8_hxwx3, depth_uint8_hxw)      # the runtime's Prediction (masks from the RLEs)
        pred = c.predict_files("A.jpg", "A.png")                # the encoded files as sent (rgb_encoded, ...)
        pred = c.predict(rgb, depth_mm_uint16, depth_format=DepthFormat("metric", near=300, far=4000))

Uses ``tritonclient`` (``pip install "tritonclient[http,grpc]"``); any Triton client in any language can
send the same requests (:mod:`calibnet.serving.protocol`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.depth import DepthFormat
from ..runtime.core.prediction import Prediction
from .protocol import BATCH_REJECTED, DEPTH_PARAMETERS, MODEL_NAME, OUTPUTS, prediction_from_outputs

__all__ = ["CalibnetClient", "ServingError"]


class ServingError(RuntimeError):
    """The server refused a request: ``str()`` is the reason (the InputError line of a PyTriton traceback),
    ``details`` the server's whole message."""

    def __init__(self, message: str) -> None:
        self.details = message
        super().__init__(_reason(message))


def _reason(message: str) -> str:
    """The line of a server error that says what was wrong (PyTriton wraps it in tracebacks)."""
    for line in reversed(message.splitlines()):
        if "InputError: " in line:
            return line.split("InputError: ", 1)[1].strip()
    return message.strip()


def _parameters(fmt: DepthFormat | None) -> dict[str, Any] | None:
    if fmt is None:
        return None
    values = (fmt.kind, *(None if v is None else float(v) for v in (fmt.near, fmt.far)), fmt.direction)
    return {name: v for name, v in zip(DEPTH_PARAMETERS, values) if v is not None}


class CalibnetClient:
    """Sends frames to a Triton server serving ``calibnet``; ``url`` ``host:port`` (HTTP) or
    ``grpc://host:port`` / ``http://host:port``. ``retries``: how often a request whose dynamic batch was
    rejected for another request's sake (:data:`~calibnet.serving.protocol.BATCH_REJECTED`) is sent again; an
    invalid request alone in its batch gets its own error without the mark and is never resent."""

    def __init__(self, url: str = "localhost:8000", protocol: str | None = None, model_name: str = MODEL_NAME,
                 timeout_s: float = 60.0, retries: int = 3) -> None:
        if "://" in url:
            scheme, url = url.split("://", 1)
            protocol = protocol or scheme
        self.protocol = (protocol or "http").lower()
        if self.protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be http or grpc, not {self.protocol!r}")
        self.model_name, self.timeout_s, self.retries = model_name, timeout_s, retries
        if self.protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc  # type: ignore[no-redef]
        self._tc = tc
        kwargs: dict[str, Any] = {} if self.protocol == "grpc" else {"connection_timeout": timeout_s,
                                                                      "network_timeout": timeout_s}
        self._client = tc.InferenceServerClient(url, **kwargs)

    def __enter__(self) -> CalibnetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """Send inputs as given (each with its batch dimension of 1); the outputs as arrays. ServingError
        with the server's message if it refuses the request."""
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        tensors = [self._input(k, v, "BYTES" if v.dtype == object else np_to_triton_dtype(v.dtype))
                   for k, v in inputs.items()]
        outputs = [self._tc.InferRequestedOutput(s.name) for s in OUTPUTS]
        for attempt in range(self.retries + 1):
            try:
                kw: dict[str, Any] = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
                res = self._client.infer(self.model_name, tensors, outputs=outputs, parameters=parameters, **kw)
                return {s.name: res.as_numpy(s.name) for s in OUTPUTS}
            except InferenceServerException as exc:
                msg = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
                if BATCH_REJECTED in str(msg) and attempt < self.retries:
                    continue
                raise ServingError(str(msg)) from None
        raise AssertionError("unreachable")  # pragma: no cover

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

