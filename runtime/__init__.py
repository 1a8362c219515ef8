"""calibnet.runtime: RGB-D in, salient instances out, on ONNX Runtime or TensorRT. Never imports torch."""

from .metadata import ModelMetadata

__all__ = ["ModelMetadata"]
