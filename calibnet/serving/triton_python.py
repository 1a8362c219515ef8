"""The model ``calibnet`` inside Triton's Python backend (the ``model.py`` of a generated repository imports
:class:`TritonPythonModel` from here: calibnet's own runtime code runs in Triton, nothing is copied).

Two modes, set by the ``mode`` parameter of its ``config.pbtxt`` (written by
:func:`calibnet.serving.triton_repo.write_triton_repo`):

- ``runtime``: the whole :class:`~calibnet.runtime.Runtime` in the Python backend, on the ONNX file
  next to ``model.py`` (ONNX Runtime: CPU, or CUDA / TensorRT execution providers with onnxruntime-gpu).
- ``bls``: pre- and post-processing here, the network on another Triton model (``network`` parameter:
  ONNX Runtime backend or a TensorRT plan) called through Business Logic Scripting; the runtime drives it
  through :class:`TritonBLSBackend`, a runtime backend like the others.

Each request in a batch gets its own answer or its own refusal (:func:`calibnet.serving.server.answer_requests`,
the one rule of every server of this package), within the input limits of the ``max_pixels`` and
``max_input_bytes`` parameters. Requires ``triton_python_backend_utils`` (present only inside Triton).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.contract import ModelMetadata
from ..runtime.core.limits import InputLimits, default_limits
from ..runtime.core.runtime import Runtime
from .protocol import INPUTS, OUTPUTS
from .server import answer_requests

__all__ = ["TritonPythonModel", "TritonBLSBackend", "METADATA_FILE"]

#: the network's ModelMetadata next to model.py in the BLS mode (the runtime reads nothing else)
METADATA_FILE = "metadata.json"


def _pb_utils() -> Any:
    import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

    return pb_utils


class TritonBLSBackend:
    """A runtime backend whose graph is another Triton model, run through BLS (``pb_utils.InferenceRequest``)."""

    name = "triton-bls"

    def __init__(self, network: str, metadata: ModelMetadata, output_names: list[str]) -> None:
        self.network = network
        self.metadata = metadata
        self.input_names = list(metadata.input_names)  # the graph inputs (rgb, depth, valid_hw)
        self.output_names = list(output_names)  # the graph outputs requested from the network model

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch through the network model; outputs on the CPU as numpy arrays."""
        pb = _pb_utils()
        kwargs: dict[str, Any] = {}
        if hasattr(pb, "PreferredMemory"):
            kwargs["preferred_memory"] = pb.PreferredMemory(pb.TRITONSERVER_MEMORY_CPU, 0)
        req = pb.InferenceRequest(model_name=self.network, requested_output_names=self.output_names,
                                  inputs=[pb.Tensor(k, np.ascontiguousarray(v)) for k, v in feeds.items()], **kwargs)
        resp = req.exec()
        if resp.has_error():
            raise RuntimeError(f"network model {self.network!r}: {resp.error().message()}")
        return {n: pb.get_output_tensor_by_name(resp, n).as_numpy() for n in self.output_names}

    def close(self) -> None:
        """Nothing to release."""


class TritonPythonModel:
    """Triton Python-backend model ``calibnet`` (see the module docs)."""

    def initialize(self, args: dict[str, Any]) -> None:
        """Open the runtime (``runtime`` mode) or the BLS backend (``bls`` mode) from the model config."""
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        here = Path(args["model_repository"]) / str(args["model_version"])
        mode = params.get("mode", "runtime")
        if mode == "runtime":
            threads = int(params.get("threads", "0") or 0)
            self.runtime = Runtime.open(here / params.get("model_file", "model.onnx"), strict=True,
                                        **({"threads": threads} if threads else {}))
        elif mode == "bls":
            meta = ModelMetadata.from_dict(json.loads((here / METADATA_FILE).read_text()))
            outputs = [str(n) for n in json.loads(params.get("network_outputs") or "[]")]
            backend = TritonBLSBackend(params["network"], meta, outputs or list(meta.output_names))
            self.runtime = Runtime(backend, strict=True)
        else:
            raise ValueError(f"unknown mode {mode!r} (runtime or bls)")
        self.batched = int(config.get("max_batch_size", 0)) > 0
        base = default_limits()
        self.limits = InputLimits(int(params.get("max_pixels") or base.max_pixels),
                                  int(params.get("max_input_bytes") or base.max_bytes))

    def execute(self, requests: list[Any]) -> list[Any]:
        """One answer per request; an invalid request gets its own refusal, the others are run together."""
        pb = _pb_utils()
        batch = []
        for req in requests:
            tensors = {s.name: pb.get_input_tensor_by_name(req, s.name) for s in INPUTS}
            try:
                params = json.loads(req.parameters() or "{}")
            except ValueError:
                params = {}
            batch.append(({name: t.as_numpy() for name, t in tensors.items() if t is not None}, params))
        answers = answer_requests(self.runtime, batch, self.limits, batched=self.batched)
        return [pb.InferenceResponse(output_tensors=[pb.Tensor(s.name, ans[s.name].astype(
            s.dtype if s.dtype is not object else np.object_)) for s in OUTPUTS if s.name in ans]) for ans in answers]

    def finalize(self) -> None:
        """Release the runtime."""
        self.runtime.close()
