"""calibnet.runtime: RGB-D in, salient instances out, on ONNX Runtime or TensorRT. Never imports torch."""

from .apps.sources import BagSource, RealSenseSource
from .backends.base import BackendUnavailable
from .core.contract import ModelMetadata
from .core.depth import DepthFormat
from .core.errors import InputError, InputWarning
from .core.prediction import Prediction
from .core.runtime import Runtime

__all__ = ["BackendUnavailable", "BagSource", "DepthFormat", "InputError", "InputWarning", "ModelMetadata",
           "Prediction", "RealSenseSource", "Runtime"]
