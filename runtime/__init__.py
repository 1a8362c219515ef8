"""calibnet.runtime: RGB-D in, salient instances out, on ONNX Runtime or TensorRT. Never imports torch."""

from .backends.base import BackendUnavailable
from .metadata import ModelMetadata
from .prediction import Prediction
from .preprocess import InputError
from .runtime import Runtime

__all__ = ["BackendUnavailable", "InputError", "ModelMetadata", "Prediction", "Runtime"]
