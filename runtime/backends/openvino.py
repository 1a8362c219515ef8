"""OpenVINO backend (CPU): FP32, BF16 (AMX / AVX512-BF16) and INT8 IR files behind the Backend interface.

No torch. Opens an exported ONNX file or an OpenVINO IR (its XML file, with the ``.bin`` weights beside it).
The precision is always explicit: OpenVINO's CPU plugin runs BF16 by default on CPUs that report native BF16 (its
``INFERENCE_PRECISION_HINT`` default), so a model opened "as is" would silently lose precision there; this
backend sets the hint for every model.

``precision``:

- ``"f32"``: FP32 everywhere;
- ``"bf16"``: BF16 inference (OpenVINO keeps its own FP32 islands); refused when the CPU does not report
  native BF16 (OpenVINO would emulate it or fall back silently);
- ``"int8"``: an INT8-quantized IR (FakeQuantize nodes, written by ``calibnet-export --int8``); the parts
  kept in float ("BF16 islands") run in BF16 where the CPU reports native BF16, in FP32 elsewhere;
- ``"auto"``: ``int8`` for an INT8 IR, else ``bf16`` when ``OPTIMIZATION_CAPABILITIES`` of the CPU device
  lists ``BF16``, else ``f32``; :attr:`OpenVinoBackend.precision_reason` says which and why.

:func:`choose_precision` decides, :func:`compile_config` turns the choice into OpenVINO's compile settings: the
one owner of them, so the INT8 export guard, ``calibnet-eval --precisions`` and the bench measure what runs.

Deformable attention: a TensorRT-flavoured ONNX (or an IR written from one) runs calibnet's fused CPU kernel
when its extension is built, else the decomposed graph (:mod:`.openvino_msda` decides;
:attr:`OpenVinoBackend.msda` says which and why). ``profile=True`` turns on OpenVINO's performance counters
(:meth:`OpenVinoBackend.perf_counters`).

calibnet metadata: an ONNX file's ``metadata_props``; an IR's ``rt_info`` section ``calibnet`` (one entry per
:class:`~calibnet.runtime.core.contract.ModelMetadata` field, JSON values, the same encoding as ONNX), which
:func:`read_ir_metadata` reads from the XML without OpenVINO.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cachedir import HashLedger, default_cache_dir
from ..core.contract import PLUGIN_NAME, PREFIX, ModelMetadata, read_onnx_metadata
from ..core.targets import install_hint, is_kind
from . import signal_stack
from .base import BackendUnavailable
from .openvino_msda import fused_node_names, read_model

__all__ = ["OpenVinoBackend", "PrecisionChoice", "PrecisionMismatch", "PRECISIONS", "RT_INFO_SECTION",
           "choose_precision", "compile_config", "cpu_capabilities", "default_openvino_cache_dir", "is_int8_model",
           "read_ir_metadata", "write_ir_metadata"]

log = logging.getLogger(__name__)

#: what ``precision=`` accepts
PRECISIONS = ("f32", "bf16", "int8", "auto")
#: the rt_info section of an IR that holds calibnet's metadata
RT_INFO_SECTION = "calibnet"
_INSTALL = install_hint("openvino")


class PrecisionMismatch(ValueError):
    """The model file holds another precision than the one asked for (e.g. ``int8`` asked of an FP32 file)."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision the backend runs (``f32``, ``bf16``, ``int8``), why, and the precision of the parts not
    quantized (``float_precision``: ``f32`` or ``bf16``, OpenVINO's ``INFERENCE_PRECISION_HINT``)."""

    precision: str
    reason: str
    float_precision: str = "f32"


def _first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO error (its messages start with source locations)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check ", "[ GENERAL_ERROR ]"))]
    return (useful or lines or [type(exc).__name__])[0]


def _port_name(port: Any, contract: Iterable[str]) -> str:
    """A compiled model's input/output by its graph-contract name (a port can carry several tensor names, e.g.
    ``valid_hw`` and the name of a cast OpenVINO folded into it; ``get_any_name`` may return either)."""
    names = port.get_names()
    return next((n for n in contract if n in names), port.get_any_name())


def _import_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError as exc:
        raise BackendUnavailable(f"OpenVINO is not installed: {_INSTALL}") from exc
    return ov


def default_openvino_cache_dir() -> Path:
    """OpenVINO's compiled-model cache (``CACHE_DIR``): ``openvino/`` in calibnet's engine cache
    (``$CALIBNET_ENGINE_CACHE`` or ``~/.cache/calibnet/engines``); a blob is loaded only when its sha256 is the one
    recorded when OpenVINO wrote it (:class:`~calibnet.runtime.core.cachedir.HashLedger`)."""
    return default_cache_dir() / "openvino"


def cpu_capabilities(core: Any = None) -> list[str]:
    """``OPTIMIZATION_CAPABILITIES`` of OpenVINO's CPU device (e.g. ``['BF16', 'FP32', 'INT8', ...]``)."""
    with signal_stack.guard():  # the first question to a Core loads its CPU plugin
        if core is None:
            core = _import_openvino().Core()
        return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def choose_precision(requested: str, capabilities: Iterable[str], int8_model: bool) -> PrecisionChoice:
    """Resolve ``requested`` (one of :data:`PRECISIONS`) against the CPU's capabilities and the model file.

    Raises ``ValueError`` for an unknown precision, :class:`PrecisionMismatch` when the file holds another
    precision than asked, :class:`BackendUnavailable` for ``bf16`` on a CPU without native BF16."""
    req = str(requested).lower()
    if req not in PRECISIONS:
        raise ValueError(f"unknown OpenVINO precision {requested!r}: choose from {', '.join(PRECISIONS)}")
    caps = {str(c).upper() for c in capabilities}
    if int8_model:
        if req not in ("int8", "auto"):
            raise PrecisionMismatch(f"precision={req!r} asked, but this IR is INT8-quantized (FakeQuantize nodes): "
                                    "open it with precision='int8' (or 'auto'), or open the FP32 ONNX/IR for f32/bf16")
        floats = ("BF16: OpenVINO's CPU OPTIMIZATION_CAPABILITIES list BF16" if "BF16" in caps else
                  f"FP32: the CPU does not report native BF16 (OPTIMIZATION_CAPABILITIES: {sorted(caps)})")
        return PrecisionChoice("int8", "the IR is INT8-quantized (FakeQuantize nodes); its float parts run in "
                               + floats, "bf16" if "BF16" in caps else "f32")
    if req == "int8":
        raise PrecisionMismatch("precision='int8' asked, but this is a float model (no FakeQuantize nodes): write an "
                                "INT8 IR first with calibnet-export ... --int8 OUT.xml --calib-dir DIR "
                                "(or --calib-synthetic N) and open that")
    if req == "bf16":
        if "BF16" not in caps:
            raise BackendUnavailable("precision='bf16' asked, but this CPU has no native BF16 (OpenVINO's "
                                     f"OPTIMIZATION_CAPABILITIES: {sorted(caps)}): use 'f32' or 'auto'")
        return PrecisionChoice("bf16", "asked for bf16; the CPU reports native BF16", "bf16")
    if req == "f32":
        return PrecisionChoice("f32", "asked for f32")
    if "BF16" in caps:
        return PrecisionChoice("bf16", "auto: OpenVINO's CPU OPTIMIZATION_CAPABILITIES list BF16 (native BF16: "
                                       "AMX or AVX512-BF16), so BF16", "bf16")
    return PrecisionChoice("f32", f"auto: the CPU does not report native BF16 (OPTIMIZATION_CAPABILITIES: "
                                  f"{sorted(caps)}), so FP32")


def compile_config(choice: PrecisionChoice, threads: int = 0, cache_dir: Path | None = None,
                   profile: bool = False) -> dict[str, Any]:
    """OpenVINO's CPU compile settings for a precision choice: the inference precision always explicit
    (``choice.float_precision``), latency-minded (one stream), ``INFERENCE_NUM_THREADS`` when ``threads``,
    ``CACHE_DIR`` when ``cache_dir``, ``PERF_COUNT`` when ``profile``."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": choice.float_precision, "PERFORMANCE_HINT": "LATENCY",
                              "NUM_STREAMS": 1}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    if profile:
        config["PERF_COUNT"] = True
    return config


def is_int8_model(model: Any) -> bool:
    """Whether an ``openvino.Model`` is INT8-quantized (has FakeQuantize nodes)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def write_ir_metadata(model: Any, metadata: ModelMetadata) -> None:
    """Store ``metadata`` in an ``openvino.Model``'s rt_info (section :data:`RT_INFO_SECTION`), to be saved
    with ``openvino.save_model``."""
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key[len(PREFIX):]])


def read_ir_metadata(xml_path: str | Path) -> ModelMetadata:
    """calibnet metadata from an IR's XML (``rt_info/calibnet``), read with the standard library only.
    ``ValueError`` when the file has none (an IR not written by calibnet) or is not an IR."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{xml_path}: not an OpenVINO IR XML file ({exc})") from None
    section = root.find(f"rt_info/{RT_INFO_SECTION}")
    if section is None:
        raise ValueError(f"{xml_path}: no calibnet metadata in its rt_info (was this IR written by calibnet-export?)")
    props = {PREFIX + child.tag: child.get("value", "") for child in section}
    return ModelMetadata.from_props(props)


class OpenVinoBackend:
    """Runs an exported CalibNet model (ONNX or OpenVINO IR) on OpenVINO's CPU device.

    ``precision``: see the module docstring; ``threads``: ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default);
    ``cache_dir``: ``CACHE_DIR`` for compiled blobs (default :func:`default_openvino_cache_dir`; ``""`` turns
    the cache off); ``capabilities``: the CPU's capability list (default: asked from OpenVINO; tests pass a
    fake); ``msda``: ``auto``/``fused``/``decomposed`` (:func:`.openvino_msda.read_model`); ``profile``:
    OpenVINO's performance counters on. Attributes: :attr:`precision`, :attr:`precision_reason`,
    :attr:`float_precision`, :attr:`msda` (an :class:`~.openvino_msda.MsdaRoute`), :attr:`config` (what was
    passed to ``compile_model``)."""

    name = "openvino"

    def __init__(self, path: str | Path, precision: str = "auto", threads: int = 0,
                 cache_dir: str | os.PathLike[str] | None = None, capabilities: Iterable[str] | None = None,
                 device: str = "CPU", msda: str = "auto", profile: bool = False) -> None:
        ov = _import_openvino()
        path = Path(path)
        if str(precision).lower() not in PRECISIONS:  # before any file work
            raise ValueError(f"unknown OpenVINO precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        if is_kind(path, "openvino") and not path.with_suffix(".bin").is_file():
            raise FileNotFoundError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing (an OpenVINO "
                                    "IR is two files, the XML and its .bin, side by side: copy both)")
        try:
            self.metadata: ModelMetadata = read_ir_metadata(path) if is_kind(path, "openvino") else \
                read_onnx_metadata(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read calibnet metadata: {exc}") from None
        core = ov.Core()
        try:
            model, self.msda = read_model(core, path, self.metadata, msda)
        except BackendUnavailable:
            raise
        except RuntimeError as exc:
            raise ValueError(f"{path}: OpenVINO cannot read this model: {_first_line(exc)}") from None
        int8 = is_int8_model(model)
        if self.metadata.precision == "int8" and not int8:
            raise PrecisionMismatch(f"{path}: metadata says int8 but the graph has no FakeQuantize nodes")
        caps = list(capabilities) if capabilities is not None else cpu_capabilities(core)
        choice = choose_precision(precision, caps, int8)
        self.precision, self.precision_reason = choice.precision, choice.reason
        self.float_precision = choice.float_precision
        self.capabilities = caps
        self.path = path
        cache = default_openvino_cache_dir() if cache_dir is None else (Path(cache_dir) if cache_dir else None)
        ledger = HashLedger(cache) if cache is not None else None  # the user's own folder (0700)
        if ledger is not None:
            ledger.prune()  # a blob OpenVINO did not write here (or changed since) is compiled again
        self.config = compile_config(choice, threads, ledger.folder if ledger is not None else None, profile)
        with signal_stack.guard():  # loads this Core's CPU plugin unless cpu_capabilities did
            self.compiled: Any = core.compile_model(model, device, self.config)
        if ledger is not None:
            ledger.record()
        self.request: Any = self.compiled.create_infer_request()
        self._outputs = [_port_name(o, self.metadata.output_names) for o in self.compiled.outputs]
        self._inputs = [_port_name(i, self.metadata.input_names) for i in self.compiled.inputs]
        self._fused = set(fused_node_names(model))
        log.info("OpenVINO %s on %s: %s (%s); MSDA %s (%s)", ov.__version__, device, self.precision,
                 self.precision_reason, self.msda.mode, self.msda.reason)

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def actual_precision(self) -> str:
        """``INFERENCE_PRECISION_HINT`` as the compiled model reports it (``f32``, ``bf16``)."""
        value = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return str(value.get_type_name()) if hasattr(value, "get_type_name") else str(value)

    def describe(self) -> str:
        """One line: library, precision and why, and how the deformable attention runs."""
        import openvino as ov

        return (f"OpenVINO {ov.__version__} CPU {self.precision} ({self.precision_reason}); MSDA {self.msda.mode} "
                f"({self.msda.reason})")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.request is None:
            raise RuntimeError("the OpenVINO backend is closed")
        try:
            res = self.request.infer({k: np.ascontiguousarray(feeds[k]) for k in self._inputs})
        except RuntimeError as exc:  # e.g. the fused kernel refusing inconsistent inputs: its message, one line
            raise RuntimeError(f"OpenVINO inference failed: {_first_line(exc)}") from None
        return {name: np.array(res[out]) for name, out in zip(self._outputs, self.compiled.outputs)}

    def perf_counters(self) -> list[dict[str, Any]]:
        """OpenVINO's performance counters of the last inference (needs ``profile=True``): one entry per executed
        node, ``{"name", "type", "exec_type", "ms"}``. The fused MSDA nodes have the type
        ``MultiscaleDeformableAttnPlugin_TRT`` (OpenVINO reports its extension nodes as ``Reference``)."""
        import openvino as ov

        if not self.config.get("PERF_COUNT"):
            raise RuntimeError("performance counters are off: open the backend with profile=True")
        return [{"name": p.node_name, "type": PLUGIN_NAME if p.node_name in self._fused else p.node_type,
                 "exec_type": p.exec_type, "ms": p.real_time.total_seconds() * 1e3}
                for p in self.request.profiling_info if p.status == ov.ProfilingInfo.Status.EXECUTED]

    def close(self) -> None:
        self.request = None
        self.compiled = None
