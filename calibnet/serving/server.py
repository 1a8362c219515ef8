"""An exported CalibNet served by Triton Inference Server through PyTriton (HTTP + gRPC).

  calibnet-serve calibnet.onnx --port 8000 --grpc-port 8001 --max-batch 8 --instances 1

Serves the model ``calibnet`` (inputs and outputs: :mod:`calibnet.serving.protocol`): one RGB-D frame per
request, answered with scores, boxes, COCO RLE masks and the depth-trust scores. Triton's dynamic batcher
stacks requests whose frames have the same size (``--max-batch``, ``--batch-delay-us``), and each batch runs
as one :meth:`Runtime.predict_batch` call; ``--instances N`` runs N model instances, each with its own
runtime. Triton's endpoints: ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/calibnet/ready``,
metrics on ``--metrics-port``. SIGTERM or SIGINT stops the server cleanly (exit code 0).

A bad request (undecodable image, RGB and depth of different sizes, no or two RGB inputs, bad depth
parameters) is answered with an error that says what is wrong; the server goes on serving. Wrong data types
and ranks are refused by Triton itself. PyTriton answers a whole dynamic batch with one error, so the valid
requests that shared a batch with an invalid one get an error marked ``[calibnet:batch-rejected]``; the
client helper (:class:`calibnet.serving.client.CalibnetClient`) resends those.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.errors import InputError
from ..runtime.core.runtime import OpenOptions, Runtime
from .protocol import BATCH_REJECTED, INPUTS, MODEL_NAME, OUTPUTS, decode_request, encode_prediction
from .stub_env import stub_process_env, stub_python_env

__all__ = ["CalibnetInfer", "serve", "predict_frames"]

LOG = logging.getLogger("calibnet.serving")


class CalibnetInfer:
    """The inference callable bound to Triton: a list of requests (one dynamic batch) in, one answer per
    request out. Each instance holds its own :class:`Runtime` (``strict``: RGB/depth size mismatches are
    errors, never silently resized)."""

    def __init__(self, model: str | Path, options: OpenOptions | None = None) -> None:
        self.runtime = Runtime.open(model, strict=True, options=options or OpenOptions())
        self.batches: list[int] = []  # sizes of the batches run (for statistics)

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        frames, errors = [], []
        for i, req in enumerate(requests):
            try:
                frames.append(decode_request(req.data, getattr(req, "parameters", None)))
            except InputError as exc:
                errors.append(f"request {i + 1} of {len(requests)}: {exc}")
        if errors:
            note = (f" {BATCH_REJECTED} valid requests of this batch were not run; send them again"
                    if len(requests) > 1 else "")
            raise InputError("; ".join(errors) + note)
        self.batches.append(len(frames))
        return predict_frames(self.runtime, frames)


def predict_frames(runtime: Runtime, frames: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    """Answers (batched outputs) for decoded frames: one :meth:`Runtime.predict_batch` per depth format."""
    answers: dict[int, dict[str, np.ndarray]] = {}
    by_format: dict[Any, list[int]] = {}
    for i, f in enumerate(frames):
        by_format.setdefault(f.depth_format, []).append(i)
    for fmt, idx in by_format.items():
        preds = runtime.predict_batch([frames[i].rgb for i in idx], [frames[i].depth for i in idx], depth_format=fmt)
        for i, p in zip(idx, preds):
            answers[i] = encode_prediction(p)
    return [answers[i] for i in range(len(frames))]


def _pytriton_tensors(specs: Sequence[Any]) -> list[Any]:
    from pytriton.model_config import Tensor

    return [Tensor(name=s.name, dtype=bytes if s.dtype is object else s.dtype, shape=s.dims,
                   **({"optional": True} if s.optional else {})) for s in specs]


def serve(model: str | Path, port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
          max_batch: int = 8, instances: int = 1, options: OpenOptions | None = None, batch_delay_us: int = 2000,
          address: str = "127.0.0.1", stop: threading.Event | None = None, log_verbose: int = 0) -> int:
    """Serve ``model`` until SIGTERM/SIGINT (or ``stop`` is set); returns the exit code (0 after a clean
    stop). ``max_batch`` 1 turns dynamic batching off; ``options``: how each instance opens the model."""
    from pytriton.model_config import DynamicBatcher, ModelConfig
    from pytriton.server import triton_server
    from pytriton.triton import Triton, TritonConfig


    callables = [CalibnetInfer(model, options) for _ in range(max(1, instances))]
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
    config = TritonConfig(http_address=address, http_port=port, grpc_address=address, grpc_port=grpc_port,
                          metrics_port=metrics_port, log_verbose=log_verbose, exit_timeout_secs=5)
    batching = max_batch > 1
    model_config = ModelConfig(batching=True, max_batch_size=max(1, max_batch),
                               batcher=DynamicBatcher(max_queue_delay_microseconds=batch_delay_us if batching else 0))
    with Triton(config=config) as triton:
        triton.bind(model_name=MODEL_NAME, infer_func=callables if len(callables) > 1 else callables[0],
                    inputs=_pytriton_tensors(INPUTS), outputs=_pytriton_tensors(OUTPUTS), config=model_config,
                    strict=True)
        triton.run()
        print(f"calibnet-serve: model {MODEL_NAME!r} ({Path(model).name}, {callables[0].runtime.backend.name}) on "
              f"http://{address}:{port} and grpc {address}:{grpc_port}, max batch {max_batch}, "
              f"{len(callables)} instance(s)", flush=True)
        while not stop.wait(0.5):
            if not triton.is_alive():
                print("calibnet-serve: error: Triton stopped unexpectedly", file=sys.stderr, flush=True)
                return 1
        sizes = [b for c in callables for b in c.batches]
        print(f"calibnet-serve: stopping after {sum(sizes)} frames in {len(sizes)} batches"
              + (f" (mean batch {np.mean(sizes):.2f}, largest {max(sizes)})" if sizes else ""), flush=True)
    print("calibnet-serve: stopped", flush=True)
    return 0
