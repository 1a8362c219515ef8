"""An exported CalibNet served by Triton Inference Server through PyTriton (HTTP + gRPC).

  calibnet-serve calibnet.onnx --port 8000 --grpc-port 8001 --max-batch 8 --instances 1

Serves the model ``calibnet`` (inputs and outputs: :mod:`calibnet.serving.protocol`): one RGB-D frame per
request, answered with scores, boxes, COCO RLE masks and the depth-trust scores. Triton's dynamic batcher
stacks requests whose frames have the same size (``--max-batch``, ``--batch-delay-us``), and each batch runs
as one :meth:`Runtime.predict_batch` call; ``--instances N`` runs N model instances, each with its own
runtime. Triton's endpoints: ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/calibnet/ready``,
metrics on ``--metrics-port``. SIGTERM or SIGINT stops the server cleanly (exit code 0).

A bad request (undecodable or oversized image, RGB and depth of different sizes, no or two RGB inputs, bad depth
parameters, or anything else that fails while it is decoded or pre-processed) is refused alone: its answer's
``error`` output holds the one-line reason and the request id (:mod:`calibnet.serving.protocol`), the other
requests of its dynamic batch are answered, and the server goes on serving. No server path or traceback reaches
a client; the log has one line per refused request (and its traceback with CALIBNET_TRACEBACK=1). Wrong data
types and ranks are refused by Triton itself. Without a GPU, Triton's own log (CUDA, NVML and DCGM notices) goes
to a file that the server names in one line.

Limits (docs/security.md): every input is held to :class:`~calibnet.runtime.core.limits.InputLimits` before it is
decoded (``limits``; the defaults of calibnet-infer and the Ray job), a request that waits longer than
``timeout_s`` for the model is refused, and at most ``max_queue`` requests wait. Triton itself reads a whole
request before calibnet sees it and this Triton release has no request-size option: when the server listens
beyond loopback, put a proxy with a body-size limit in front of it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.errors import InputError
from ..runtime.core.limits import REQUEST_TIMEOUT_S, InputLimits, default_limits
from ..runtime.core.prediction import Prediction
from ..runtime.core.runtime import OpenOptions, Runtime
from .protocol import (
    INPUTS,
    MODEL_NAME,
    OUTPUTS,
    Frame,
    decode_request,
    encode_prediction,
    encode_refusal,
    public_reason,
    queue_size,
    request_id,
)
from .stub_env import stub_process_env, stub_python_env

__all__ = ["CalibnetInfer", "answer_requests", "predict_frames", "serve"]

LOG = logging.getLogger("calibnet.serving")
#: Triton APIs closed to clients (PyTriton's defaults and the model config)
RESTRICTED_APIS = ["shared-memory", "model-repository", "statistics", "trace", "logging", "model-config"]


class CalibnetInfer:
    """The inference callable bound to Triton: a list of requests (one dynamic batch) in, one answer per
    request out (:func:`answer_requests`). Each instance holds its own :class:`Runtime` (``strict``: RGB/depth
    size mismatches are errors, never silently resized); ``limits``: the input limits (default
    :func:`~calibnet.runtime.core.limits.default_limits`)."""

    def __init__(self, model: str | Path, options: OpenOptions | None = None, limits: InputLimits | None = None
                 ) -> None:
        self.runtime = Runtime.open(model, strict=True, options=options or OpenOptions())
        self.limits = limits or default_limits()
        self.batches: list[int] = []  # requests per dynamic batch (for statistics)

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        return answer_requests(self.runtime, [(r.data, getattr(r, "parameters", None)) for r in requests],
                               self.limits, batches=self.batches)


def predict_frames(runtime: Runtime, frames: Sequence[Frame]) -> list[Prediction | Exception]:
    """The prediction of each decoded frame, or the exception that frame alone raised: one
    :meth:`Runtime.predict_batch` per depth format, and when a batch fails, its frames one by one (so that the
    frame at fault is named and its neighbours answered)."""
    results: list[Prediction | Exception] = [InputError("not run")] * len(frames)
    by_format: dict[Any, list[int]] = {}
    for i, f in enumerate(frames):
        by_format.setdefault(f.depth_format, []).append(i)
    for fmt, idx in by_format.items():
        try:
            preds = runtime.predict_batch([frames[i].rgb for i in idx], [frames[i].depth for i in idx],
                                          depth_format=fmt)
        except Exception:  # noqa: BLE001 - find the frame at fault
            preds = []
            for i in idx:
                try:
                    preds.append(runtime.predict(frames[i].rgb, frames[i].depth, depth_format=fmt))
                except Exception as exc:  # noqa: BLE001 - this frame's error only
                    preds.append(exc)
        for i, p in zip(idx, preds):
            results[i] = p
    return results


def _refusal(exc: BaseException, rid: str, batched: bool) -> dict[str, np.ndarray]:
    """The refusal of one request; the reason (and, at debug level, the traceback) goes to the log."""
    reason = public_reason(exc)
    if isinstance(exc, InputError):
        LOG.warning("request %s refused: %s", rid, reason)
    else:
        LOG.warning("request %s failed: %s: %s", rid, type(exc).__name__, " ".join(str(exc).split())[:300])
    LOG.debug("request %s", rid, exc_info=(type(exc), exc, exc.__traceback__))
    return encode_refusal(reason, rid, batched)


def answer_requests(runtime: Runtime, requests: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, Any] | None]],
                    limits: InputLimits, batched: bool = True,
                    batches: list[int] | None = None) -> list[dict[str, np.ndarray]]:
    """One answer per ``(inputs, parameters)`` request of a dynamic batch, never an exception: a request that
    fails to decode or pre-process (any exception) is refused alone (:func:`~calibnet.serving.protocol.encode_refusal`)
    and the others are run together. ``batches``: where to append the batch's size in requests (statistics)."""
    ids = [request_id(params) for _, params in requests]
    answers: list[dict[str, np.ndarray] | None] = [None] * len(requests)
    frames: dict[int, Frame] = {}
    for i, (inputs, params) in enumerate(requests):
        try:
            frames[i] = decode_request(inputs, params, limits)
        except Exception as exc:  # noqa: BLE001 - this request's refusal only
            answers[i] = _refusal(exc, ids[i], batched)
    if batches is not None:
        batches.append(len(requests))
    if frames:
        for i, result in zip(frames, predict_frames(runtime, list(frames.values()))):
            answers[i] = (encode_prediction(result, batched) if isinstance(result, Prediction)
                          else _refusal(result, ids[i], batched))
    return [a for a in answers if a is not None]


def _pytriton_tensors(specs: Sequence[Any]) -> list[Any]:
    from pytriton.model_config import Tensor

    return [Tensor(name=s.name, dtype=bytes if s.dtype is object else s.dtype, shape=s.dims,
                   **({"optional": True} if s.optional else {})) for s in specs]


def serve(model: str | Path, port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
          max_batch: int = 8, instances: int = 1, options: OpenOptions | None = None, batch_delay_us: int = 2000,
          address: str = "127.0.0.1", stop: threading.Event | None = None, log_verbose: int = 0,
          limits: InputLimits | None = None, timeout_s: float = REQUEST_TIMEOUT_S, max_queue: int = 0) -> int:
    """Serve ``model`` until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code (0 after a clean
    stop). ``max_batch`` 1 turns dynamic batching off; ``options``: how each instance opens the model. ``limits``:
    the input limits of every request (default :func:`~calibnet.runtime.core.limits.default_limits`);
    ``timeout_s``: a request waiting longer for the model is refused (0: no timeout); ``max_queue``: requests
    allowed to wait (0: :func:`~calibnet.serving.protocol.queue_size`, 4 x max batch x instances)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, TimeoutAction
    from pytriton.server import triton_server
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    limits = limits or default_limits()
    callables = [CalibnetInfer(model, options, limits) for _ in range(max(1, instances))]
    # the Python-backend stub: this interpreter's libpython, and NumPy < 2 (see calibnet.serving.stub_env)
    stub_env = stub_python_env()
    triton_server.get_triton_python_backend_python_env = lambda: stub_env  # PyTriton's only hook for it
    os.environ.update({k: v for k, v in stub_process_env().items() if k == "LD_LIBRARY_PATH"})
    stop = stop or threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        LOG.info("signal %d: stopping", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    # without a GPU, Triton's own start-up lines are CUDA/NVML/DCGM notices that say nothing: its log goes to a file
    gpu = Path("/dev/nvidiactl").exists()  # an NVIDIA driver is loaded (its control device exists)
    triton_log = None if gpu or log_verbose else Path(tempfile.mkdtemp(prefix="calibnet-serve-")) / "triton.log"
    config = TritonConfig(http_address=address, http_port=port, grpc_address=address, grpc_port=grpc_port,
                          metrics_port=metrics_port, log_verbose=log_verbose, exit_timeout_secs=5,
                          allow_gpu_metrics=gpu, log_file=triton_log)
    batching = max_batch > 1
    max_queue = max_queue or queue_size(max_batch, len(callables))
    queue = QueuePolicy(timeout_action=TimeoutAction.REJECT, default_timeout_microseconds=int(timeout_s * 1e6),
                        allow_timeout_override=True, max_queue_size=max_queue)
    model_config = ModelConfig(batching=True, max_batch_size=max(1, max_batch),
                               batcher=DynamicBatcher(max_queue_delay_microseconds=batch_delay_us if batching else 0,
                                                      default_queue_policy=queue))
    # Triton's APIs beyond health, metadata and inference need a random token only PyTriton holds (the model
    # config too: PyTriton's holds its workspace path)
    with Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=RESTRICTED_APIS)) as triton:
        triton.bind(model_name=MODEL_NAME, infer_func=callables if len(callables) > 1 else callables[0],
                    inputs=_pytriton_tensors(INPUTS), outputs=_pytriton_tensors(OUTPUTS), config=model_config,
                    strict=True)
        triton.run()
        print(f"calibnet-serve: model {MODEL_NAME!r} ({Path(model).name}, {callables[0].runtime.backend.name}) on "
              f"http://{address}:{port} and grpc {address}:{grpc_port}, max batch {max_batch}, "
              f"{len(callables)} instance(s)", flush=True)
        if triton_log is not None:
            print(f"calibnet-serve: no GPU here: Triton's own log is {triton_log}", flush=True)
        print(f"calibnet-serve: limits: {limits.summary()}; a request waits "
              + (f"at most {timeout_s:g} s" if timeout_s else "without a timeout")
              + f" for the model, at most {max_queue} wait", flush=True)
        while not stop.wait(0.5):
            if not triton.is_alive():
                print("calibnet-serve: error: Triton stopped unexpectedly", file=sys.stderr, flush=True)
                return 1
        sizes = [b for c in callables for b in c.batches]
        print(f"calibnet-serve: stopping after {sum(sizes)} requests in {len(sizes)} batches"
              + (f" (mean batch {np.mean(sizes):.2f}, largest {max(sizes)})" if sizes else ""), flush=True)
    print("calibnet-serve: stopped", flush=True)
    return 0
