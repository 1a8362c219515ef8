"""calibnet.export: a CalibNet model -> ONNX (with the multi-scale deformable-attention op) and every artifact
built from it (needs torch, onnx).

Public API: :func:`export` (the ONNX graph plus TensorRT engine, OpenVINO IR / INT8 IR, Triton repository, with
the checks), :func:`export_onnx` (portable / tensorrt flavours, dynamic shapes, in-graph top-k),
:func:`verify_onnx` (ONNX Runtime CPU vs PyTorch report), :func:`fp16_readiness` (FP16 range/drift check and the
FP32-layer list for the engine builder).
"""

from .api import ExportOptions, ExportResult, GraphOptions, Step, export
from .fp16_check import fp16_readiness
from .onnx_export import DeployWrapper, export_onnx
from .openvino_int8 import Int8Options
from .verify import VerifyReport, verify_onnx

__all__ = ["export", "ExportOptions", "ExportResult", "GraphOptions", "Int8Options", "Step", "DeployWrapper",
           "export_onnx", "verify_onnx", "VerifyReport", "fp16_readiness"]
