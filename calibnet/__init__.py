"""calibnet: deployment toolkit for CalibNet (RGB-D salient instance segmentation, IEEE TIP 2024).

``import calibnet`` does not import torch: the model-side names below (``CalibNet``,
``load_checkpoint``, ``count_parameters``, ...) are loaded on first use, so a runtime-only install
(``calibnet.runtime`` with onnxruntime or TensorRT) works without PyTorch.
"""

from __future__ import annotations

from .config import CalibNetConfig, ConfigError, get_config
from .lazy import lazy_attributes, lazy_names

__version__ = "0.1.0"

_LAZY = {
    "calibnet.modeling": ("CalibNet",),
    "calibnet.checkpoint": ("load_checkpoint", "save_checkpoint", "read_state_dict", "CheckpointMismatchError",
                            "UnsafeCheckpointError"),
    "calibnet.params": ("count_parameters",),
    "calibnet.builder": ("build_model",),
    "calibnet.evaluation.coco_eval": ("evaluate_coco",),
}

__all__ = ["CalibNetConfig", "ConfigError", "get_config", "__version__", *lazy_names(_LAZY)]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
