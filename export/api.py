"""One call that makes every deployment artifact of a model: :func:`export`.

``export(model, "m.onnx", targets=["onnx", "engine", "openvino-int8", "triton"], options)`` writes the ONNX
graph, then each artifact built from it, each by its one maker:

- ``onnx``: the ONNX graph, always made first (:func:`.onnx_export.export_onnx`);
- ``engine``: a TensorRT engine and its JSON sidecar, on a GPU (:func:`calibnet.engines.build_engine`);
- ``openvino-ir``: an OpenVINO IR, FP32 weights; BF16 is chosen when it is opened (``_openvino_ir`` here);
- ``openvino-int8``: an INT8 OpenVINO IR guarded by the comparator (:func:`.openvino_int8.make_int8_ir`);
- ``triton``: a Triton model repository (:func:`calibnet.serving.triton_repo.write_triton_repo`).

Checks ride along as options: ``verify`` (ONNX Runtime vs PyTorch; with an engine also the engine vs ONNX
Runtime), ``check_fp16`` (FP16 readiness: its layer list feeds the engine's FP32 islands), ``check_bf16``
(OpenVINO BF16 vs FP32). Each step's outcome is a :class:`Step` in the returned :class:`ExportResult`: a step
that cannot run here (no TensorRT, no OpenVINO) is ``unavailable`` and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from calibnet.engines import build_engine
from calibnet.engines import verify as engine_verify
from calibnet.runtime.backends.base import BackendUnavailable
from calibnet.runtime.backends.openvino import write_ir_metadata
from calibnet.runtime.backends.tensorrt_deps import TensorRTUnavailable
from calibnet.runtime.core.contract import ModelMetadata
from calibnet.runtime.core.errors import InputError
from calibnet.runtime.core.feeds import random_feeds
from calibnet.runtime.core.targets import ENGINE_SUFFIX, IR_SUFFIX, install_hint, read_metadata
from calibnet.serving.triton_repo import VARIANTS, write_triton_repo

from .fp16_check import fp16_readiness
from .msda_onnx import load_runnable
from .onnx_export import export_onnx
from .openvino_int8 import Int8Options, QuantizationRefused, check_bf16, make_int8_ir
from .verify import verify_onnx

__all__ = ["TARGETS", "GRAPH_FLAVOR", "GraphOptions", "ExportOptions", "Step", "ExportResult", "export",
           "make_artifact", "default_paths"]

#: what :func:`export` makes, in the order it makes them
TARGETS = ("onnx", "engine", "openvino-ir", "openvino-int8", "triton")
#: the graph flavour an artifact is built from (others: the portable graph)
GRAPH_FLAVOR = {"engine": "tensorrt"}


@dataclass(frozen=True)
class GraphOptions:
    """The ONNX graph: flavour, sizes, batch, in-graph top-k, opset (:func:`.onnx_export.export_onnx`'s arguments)."""

    flavor: str = "portable"
    height: int = 320
    width: int = 480
    dynamic: bool = False
    dynamic_batch: bool | None = None
    batch: int = 1
    min_hw: tuple[int, int] = (320, 320)
    max_hw: tuple[int, int] = (480, 480)
    max_batch: int | None = None
    topk: int = 0
    opset: int = 17
    simplify: bool = True
    plugin_version: str = "1"
    reference_body: bool = True
    metadata: ModelMetadata | None = None  # provenance (config, checkpoint and its hash)


@dataclass(frozen=True)
class ExportOptions:
    """What :func:`export` makes besides the graph and which checks it runs."""

    graph: GraphOptions = field(default_factory=GraphOptions)
    verify: bool = False
    verify_sizes: tuple[tuple[int, int], ...] = ()  # more sizes to verify (dynamic graphs)
    check_fp16: Path | None = None  # FP16 readiness report path
    fp16: bool = False  # the engine in FP16 with FP32 islands
    int8: Int8Options = field(default_factory=Int8Options)
    check_bf16: bool = False
    triton_variant: str | None = None  # default: tensorrt for a TensorRT-flavoured graph, else onnxruntime


@dataclass
class Step:
    """The outcome of one step: ``done``, ``failed`` (a check disagreed, a build or quantization failed, or the
    input was bad) or ``unavailable`` (a library or a GPU is missing here)."""

    name: str
    status: str
    path: Path | None = None
    message: str = ""


@dataclass
class ExportResult:
    """Every step of an :func:`export` call, in order."""

    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if s.status == "failed"]

    @property
    def unavailable(self) -> list[Step]:
        return [s for s in self.steps if s.status == "unavailable"]


def default_paths(onnx: str | Path) -> dict[str, Path]:
    """Where each artifact goes when not told: beside the ONNX file, named after it."""
    onnx = Path(onnx)
    return {"onnx": onnx, "engine": onnx.with_suffix(ENGINE_SUFFIX), "openvino-ir": onnx.with_suffix(IR_SUFFIX),
            "openvino-int8": onnx.with_name(onnx.stem + "_int8" + IR_SUFFIX),
            "triton": onnx.with_name(onnx.stem + "_triton")}


def export(model: Any, onnx: str | Path, targets: Sequence[str] = ("onnx",), options: ExportOptions | None = None,
           paths: dict[str, str | Path] | None = None, say: Callable[[str], None] = print) -> ExportResult:
    """Make the ONNX graph of ``model`` (a ``calibnet.CalibNet``) at ``onnx`` and the other ``targets``
    (:data:`TARGETS`; ``paths`` overrides :func:`default_paths`), running the checks ``options`` ask for;
    ``say`` gets one line per result. A bad option is a ``ValueError`` before anything is written."""
    opts = options or ExportOptions()
    if unknown := [t for t in targets if t not in TARGETS]:
        raise ValueError(f"unknown export target(s) {', '.join(unknown)}: choose from {', '.join(TARGETS)}")
    if opts.triton_variant is not None and opts.triton_variant not in VARIANTS:
        raise ValueError(f"Triton variant must be one of {', '.join(VARIANTS)}, not {opts.triton_variant!r}")
    where = {**default_paths(onnx), **{k: Path(v) for k, v in (paths or {}).items()}}
    g = opts.graph
    path = export_onnx(model, where["onnx"], **{f.name: getattr(g, f.name) for f in fields(g)})
    result = ExportResult([Step("onnx", "done", path, f"{path.stat().st_size / 1e6:.1f} MB, {g.flavor} flavour")])
    say(f"wrote {path} ({result.steps[0].message})")
    if opts.verify:
        result.steps.append(_verify(model, path, g, opts.verify_sizes, say))
    if opts.check_fp16 is not None:
        result.steps.append(_fp16_check(model, g, opts.check_fp16, say))
    for target in TARGETS[1:]:
        if target in targets:
            result.steps += _MAKERS[target](path, where[target], opts, say)
    if opts.check_bf16:
        result.steps.append(_bf16_check(path, opts.int8.check_frames, say))
    return result


def make_artifact(onnx: str | Path, target: str, out: str | Path | None = None, options: ExportOptions | None = None,
                  say: Callable[[str], None] = print) -> Step:
    """One artifact (a :data:`TARGETS` entry other than ``onnx``) from an exported ONNX file, by its maker; the
    :class:`Step` says whether it was made (``out``: default :func:`default_paths`)."""
    if target not in _MAKERS:
        raise ValueError(f"unknown artifact {target!r}: choose from {', '.join(_MAKERS)}")
    onnx = Path(onnx)
    return _MAKERS[target](onnx, Path(out) if out is not None else default_paths(onnx)[target],
                           options or ExportOptions(), say)[0]


def _verify(model: Any, path: Path, g: GraphOptions, sizes: Sequence[tuple[int, int]],
            say: Callable[[str], None]) -> Step:
    passed = True
    for i, (h, w) in enumerate([(g.height, g.width), *sizes]):
        report = verify_onnx(path, model, random_feeds(g.batch, h, w, (h - 7, w - 11) if i else None))
        report.save(str(path) + (".verify.json" if i == 0 else f".verify_{h}x{w}.json"))
        say(report.table())
        passed = passed and report.passed
    return Step("verify", "done" if passed else "failed", Path(str(path) + ".verify.json"))


def _fp16_check(model: Any, g: GraphOptions, out: Path, say: Callable[[str], None]) -> Step:
    rep = fp16_readiness(model, random_feeds(1, g.height, g.width), out_path=out)
    drift = ", ".join(f"{k} {v['max_abs_diff']:.3g}" for k, v in rep["outputs"].items())
    say(f"FP16 readiness -> {out}: output drift under FP16 rounding: {drift}; {len(rep['fp32_layers'])} layer(s) to "
        "keep in FP32")
    return Step("fp16-check", "done", out)


def _engine(onnx: Path, out: Path, opts: ExportOptions, say: Callable[[str], None]) -> list[Step]:
    """The TensorRT engine (a readiness report adds its layers to the default FP32 islands), then its comparison
    with ONNX Runtime when ``verify`` (the plugin graph runs there with its reference body)."""
    islands = [opts.check_fp16] if opts.check_fp16 is not None and opts.fp16 else None
    try:
        engine = Path(build_engine(onnx, out, fp16=opts.fp16, fp32_layers=islands))
    except TensorRTUnavailable as exc:
        return [Step("engine", "unavailable", None, f"{exc}; the ONNX file {onnx} was written: build the engine on "
                     "a machine with TensorRT and an NVIDIA GPU (python -m calibnet.engines build)")]
    except Exception as exc:  # noqa: BLE001 - a parser/builder error is the step's result
        return [Step("engine", "failed", None, f"engine build failed: {type(exc).__name__}: {exc}")]
    say(f"wrote engine {engine}")
    steps = [Step("engine", "done", engine)]
    if opts.verify:
        report_path = Path(str(engine) + ".verify.json")
        rep = engine_verify.verify_engine(engine, load_runnable(onnx).SerializeToString(), report_path=report_path)
        for line in engine_verify.verification_lines(rep):
            say(line)
        steps.append(Step("engine-verify", "done" if rep["passed"] else "failed", report_path))
    return steps


def _openvino_ir(onnx: Path, out: Path, opts: ExportOptions, say: Callable[[str], None]) -> list[Step]:
    """The ONNX graph as an OpenVINO IR (the XML and its ``.bin``) with calibnet's metadata in its ``rt_info``, what
    OpenVINO deployments load without converting the ONNX file at every start; FP32 weights."""
    try:
        import openvino as ov
    except ImportError as exc:
        return [Step("openvino-ir", "unavailable", None,
                     f"the OpenVINO IR needs OpenVINO: {install_hint('openvino')} ({exc})")]
    out.parent.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(str(onnx))
    write_ir_metadata(model, read_metadata(onnx))
    ov.save_model(model, str(out), compress_to_fp16=False)
    say(f"wrote OpenVINO IR {out} (+ its .bin)")
    return [Step("openvino-ir", "done", out)]


def _int8(onnx: Path, out: Path, opts: ExportOptions, say: Callable[[str], None]) -> list[Step]:
    try:
        res = make_int8_ir(onnx, out, opts.int8)
    except BackendUnavailable as exc:
        return [Step("openvino-int8", "unavailable", None, str(exc))]
    except QuantizationRefused as exc:
        say(exc.report.table())
        return [Step("openvino-int8", "failed", None, f"INT8 refused: {exc}")]
    except (InputError, OSError) as exc:
        return [Step("openvino-int8", "failed", None, f"calibration frames: {exc}")]
    how = (f"NNCF PTQ on {res.calibration['source']}, kept in float: {', '.join(res.keep_float) or 'nothing'}"
           f"{' (FORCED: it failed the comparison with FP32)' if res.forced else ''}")
    say(res.report.table())
    say(f"wrote INT8 IR {res.path} (+ .bin; {how}; {res.seconds:.0f} s)")
    return [Step("openvino-int8", "done", res.path, how)]


def _triton(onnx: Path, out: Path, opts: ExportOptions, say: Callable[[str], None]) -> list[Step]:
    variant = opts.triton_variant or ("tensorrt" if opts.graph.flavor == "tensorrt" else "onnxruntime")
    engine = default_paths(onnx)["engine"]
    try:
        repo = write_triton_repo(onnx, out, variant=variant,
                                 engine=engine if variant == "tensorrt" and engine.is_file() else None)
    except (ImportError, ValueError) as exc:
        return [Step("triton", "failed", None, f"cannot write the Triton repository: {exc}")]
    say(f"wrote Triton model repository {repo} ({variant}); how to serve it: {repo / 'README.md'}")
    return [Step("triton", "done", repo)]


def _bf16_check(onnx: Path, frames: int, say: Callable[[str], None]) -> Step:
    try:
        report = check_bf16(onnx, frames)
    except BackendUnavailable as exc:
        return Step("bf16-check", "unavailable", None, str(exc))
    out = Path(str(onnx) + ".bf16.json")
    out.write_text(json.dumps({"frames": frames, "source": "synthetic scenes, seeds 9000..", **report.to_json()},
                              indent=1))
    say(report.table())
    say(f"OpenVINO BF16 vs FP32 -> {out}: {'PASS' if report.passed else 'FAIL'}")
    return Step("bf16-check", "done" if report.passed else "failed", out)


_MAKERS: dict[str, Callable[[Path, Path, ExportOptions, Callable[[str], None]], list[Step]]] = {
    "engine": _engine, "openvino-ir": _openvino_ir, "openvino-int8": _int8, "triton": _triton}
