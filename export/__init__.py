"""calibnet.export: PyTorch -> ONNX with the multi-scale deformable-attention op (needs torch, onnx).

Public API: :func:`export_onnx` (portable / tensorrt flavours, dynamic shapes, in-graph top-k),
:func:`verify_onnx` (ONNX Runtime CPU vs PyTorch report), :func:`fp16_readiness` (FP16 range/drift check
and the FP32-layer list for the engine builder).
"""

from .fp16_check import fp16_readiness
from .onnx_export import DeployWrapper, export_onnx
from .verify import VerifyReport, verify_onnx

__all__ = ["DeployWrapper", "export_onnx", "verify_onnx", "VerifyReport", "fp16_readiness"]
