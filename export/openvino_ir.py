"""An exported ONNX graph as an OpenVINO IR (the XML and its ``.bin``), with calibnet's metadata in its
``rt_info``: what OpenVINO deployments load without converting the ONNX file at every start. FP32 weights; BF16
is chosen when the model is opened (:class:`calibnet.runtime.backends.openvino.OpenVinoBackend`)."""

from __future__ import annotations

from pathlib import Path

from calibnet.runtime.backends.base import BackendUnavailable
from calibnet.runtime.backends.openvino import write_ir_metadata
from calibnet.runtime.core.targets import read_metadata

__all__ = ["write_ir"]


def write_ir(onnx_path: str | Path, out_xml: str | Path) -> Path:
    """Convert ``onnx_path`` to an IR at ``out_xml`` (FP32 weights, the ONNX file's metadata); returns the path.
    :class:`BackendUnavailable` without OpenVINO."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(f'the OpenVINO IR needs OpenVINO: pip install "calibnet[openvino]" ({exc})') from None
    out = Path(out_xml)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(str(onnx_path))
    write_ir_metadata(model, read_metadata(onnx_path))
    ov.save_model(model, str(out), compress_to_fp16=False)
    return out
