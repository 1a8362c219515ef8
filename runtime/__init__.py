"""calibnet.runtime: RGB-D in, salient instances out, on ONNX Runtime or TensorRT. Never imports torch."""

from .backends.base import BackendUnavailable
from .contract import ModelMetadata
from .depth import DepthFormat
from .errors import InputError, InputWarning
from .prediction import Prediction
from .runtime import Runtime

__all__ = ["BackendUnavailable", "DepthFormat", "InputError", "InputWarning", "ModelMetadata", "Prediction",
           "Runtime"]
