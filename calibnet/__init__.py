"""calibnet: deployment toolkit for CalibNet (RGB-D salient instance segmentation, IEEE TIP 2024).

``import calibnet`` does not import torch: the model-side names below (``CalibNet``,
``load_checkpoint``, ``count_parameters``, ...) are loaded on first use, so a runtime-only install
(``calibnet.runtime`` with onnxruntime or TensorRT) works without PyTorch.
"""

from __future__ import annotations

from .config import CalibNetConfig, ConfigError, get_config
from .lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "CalibNet": ("calibnet.modeling", "CalibNet"),
    "load_checkpoint": ("calibnet.checkpoint", "load_checkpoint"),
    "save_checkpoint": ("calibnet.checkpoint", "save_checkpoint"),
    "read_state_dict": ("calibnet.checkpoint", "read_state_dict"),
    "CheckpointMismatchError": ("calibnet.checkpoint", "CheckpointMismatchError"),
    "count_parameters": ("calibnet.params", "count_parameters"),
    "build_model": ("calibnet.builder", "build_model"),
    "evaluate_coco": ("calibnet.evaluation.coco_eval", "evaluate_coco"),
}

__all__ = ["CalibNetConfig", "ConfigError", "get_config", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
