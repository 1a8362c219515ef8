"""calibnet.serving: CalibNet beyond one process, on engines built for it (no torch).

- ``calibnet-serve`` (:mod:`calibnet.serving.server`): Triton Inference Server through PyTriton, HTTP + gRPC,
  dynamic batching; :class:`calibnet.serving.client.CalibnetClient` returns the runtime's ``Prediction``.
- ``calibnet-export --triton-repo DIR`` (:mod:`calibnet.serving.triton_repo`): a model repository for the
  NGC Triton container (ONNX Runtime or TensorRT network + calibnet's pre/post-processing in the Python
  backend).
- ``calibnet-infer --ray`` / :func:`ray_batch` (:mod:`calibnet.serving.ray_batch`): Ray Data over a folder of
  RGB-D pairs, one runtime per actor, resumable COCO json shards.

Wire contract of the served model: :mod:`calibnet.serving.protocol`. PyTriton, tritonclient and Ray are
imported only where used (``pip install ".[serving]"``; README "Serving and scale").
"""

from __future__ import annotations

from ..lazy import lazy_attributes, lazy_names

_LAZY = {
    "calibnet.serving.ray_batch": ("ray_batch",),
    "calibnet.serving.client": ("CalibnetClient",),
    "calibnet.serving.triton_repo": ("write_triton_repo", "validate_triton_repo"),
}
__all__ = lazy_names(_LAZY)
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
