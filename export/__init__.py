"""calibnet.export: PyTorch -> ONNX with the multi-scale deformable-attention op (needs torch, onnx)."""

from .onnx_export import DeployWrapper, export_onnx

__all__ = ["DeployWrapper", "export_onnx"]
