"""ONNX -> serialized TensorRT engine (FP16 by default) plus its JSON sidecar.

Two FP16 paths, recorded in the sidecar as ``fp16_path``:

* ``builder-flag-fp16`` (TensorRT 10.x, weakly typed network): ``BuilderFlag.FP16`` plus
  ``layer.precision = float32`` for the FP32 islands and ``OBEY_PRECISION_CONSTRAINTS``.
* ``onnx-fp16-pass`` (TensorRT 11, where weak typing is gone, or on request): the ONNX graph is converted
  to FP16 with explicit Casts around the FP32 islands (:mod:`calibnet.engines.fp16`) and parsed into a
  strongly typed network.

Needs ``tensorrt`` and ``onnx`` (and a GPU) only when :func:`build_engine` is called.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime.backends.tensorrt_deps import TensorRTUnavailable, require_tensorrt, tensorrt_major
from ..runtime.contract import PLUGIN_NAME, ModelMetadata, read_metadata
from ..runtime.profiles import Profile, profiles_from_json, profiles_from_metadata, profiles_to_json
from ..runtime.sidecar import EngineSidecar, GpuInfo, IOTensor, file_sha256, write_sidecar
from .fp16 import DEFAULT_FP32_PATTERNS, Pattern, compile_patterns, convert_to_fp16, load_fp32_patterns, node_matches

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["build_engine", "choose_fp16_path", "read_onnx_metadata", "EngineBuildError", "PLUGIN_NAME",
           "current_gpu", "onnx_node_for_layer"]

log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """Parsing or building failed; the message lists the parser errors or the reason."""


def read_onnx_metadata(onnx_path: str | os.PathLike[str]) -> tuple[Any, ModelMetadata | None]:
    """Load an ONNX model (without external weights) and its calibnet metadata (None if it has none)."""
    try:
        import onnx
    except ImportError:
        raise TensorRTUnavailable("reading ONNX files needs the `onnx` package: pip install onnx") from None
    model = onnx.load(str(onnx_path), load_external_data=False)
    try:
        return model, read_metadata(onnx_path)
    except ValueError:
        return model, None


def choose_fp16_path(trt_version: str, fp16: bool, requested: str = "auto") -> str:
    """Which FP16 path runs: "none" (FP32 build), "builder-flag-fp16" or "onnx-fp16-pass".

    ``requested``: "auto" (flags on TensorRT < 11, ONNX pass on >= 11), "flags" or "onnx". Asking for
    "flags" on TensorRT >= 11 is an error (weak typing was removed there)."""
    if not fp16:
        return "none"
    major = tensorrt_major(trt_version) or 0
    if requested not in ("auto", "flags", "onnx"):
        raise ValueError(f"fp16_path must be 'auto', 'flags' or 'onnx', not {requested!r}")
    if requested == "flags" and major >= 11:
        raise ValueError(f"TensorRT {trt_version} has no FP16 builder flag (strongly typed only): use fp16_path='onnx'")
    if requested == "onnx" or (requested == "auto" and major >= 11):
        return "onnx-fp16-pass"
    return "builder-flag-fp16"


def current_gpu() -> GpuInfo:
    """The GPU this process builds on (name, compute capability); "unknown" fields without a query tool."""
    from ..runtime.backends.cuda_buffers import query_gpu

    info = query_gpu()
    return GpuInfo(*info) if info else GpuInfo("unknown", "unknown")


def _load_plugins(trt_logger: trt.ILogger, plugin_libraries: Iterable[str | os.PathLike[str]]) -> None:
    import tensorrt as trt

    trt.init_libnvinfer_plugins(trt_logger, "")
    registry = trt.get_plugin_registry()
    for lib in plugin_libraries:
        if not Path(lib).is_file():
            raise EngineBuildError(f"plugin library {lib} does not exist")
        registry.load_library(str(lib))


def _plugin_registered(name: str, version: str) -> bool:
    import tensorrt as trt

    registry = trt.get_plugin_registry()
    if hasattr(registry, "get_creator"):  # TensorRT >= 10 (V2 and V3 creators)
        return registry.get_creator(name, version, "") is not None
    return registry.get_plugin_creator(name, version, "") is not None


def _check_plugins(model: Any) -> None:
    for node in model.graph.node:
        if node.op_type == PLUGIN_NAME:
            version = "1"
            for a in node.attribute:
                if a.name == "plugin_version":
                    version = a.s.decode() if isinstance(a.s, bytes) else str(a.s)
            if not _plugin_registered(PLUGIN_NAME, version):
                raise EngineBuildError(
                    f"the ONNX graph uses the TensorRT plugin {PLUGIN_NAME} version {version}, which is not "
                    "registered: use TensorRT >= 8.6 (version 2 needs >= 10.11) or pass plugin_libraries=[path "
                    "to libnvinfer_plugin.so / your plugin build]")
            return


def _parse(parser: trt.OnnxParser, data: bytes, onnx_path: Path) -> None:
    if parser.parse(data, str(onnx_path)):
        return
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        errors.append(f"  - node {e.node_name()!r} ({e.node_operator()}): {e.desc()}")
    raise EngineBuildError(f"TensorRT could not parse {onnx_path}:\n" + "\n".join(errors or ["  (no details)"]))


def onnx_node_for_layer(layer_name: str, node_names: set[str]) -> str | None:
    """The ONNX node a TensorRT layer came from: the layer name itself, else its longest prefix (cut at
    ``_``, space, ``[`` or ``(``) that is a node name (the parser names extra layers ``<node>_<suffix>``)."""
    if layer_name in node_names:
        return layer_name
    for i in range(len(layer_name) - 1, 0, -1):
        if layer_name[i] in "_ [(" and layer_name[:i] in node_names:
            return layer_name[:i]
    return None


def _mark_fp32_layers(network: trt.INetworkDefinition, model: Any, patterns: Sequence[Pattern]) -> list[str]:
    """Pin the layers of FP32-island ONNX nodes (and LayerNorm/softmax layer types) to FP32 (TensorRT 10
    weak typing); returns their names."""
    import tensorrt as trt

    from .fp16 import matching_nodes

    compiled = compile_patterns(patterns)
    by_type = {"LayerNormalization": trt.LayerType.NORMALIZATION, "GroupNormalization": trt.LayerType.NORMALIZATION,
               "InstanceNormalization": trt.LayerType.NORMALIZATION, "Softmax": trt.LayerType.SOFTMAX}
    types = {by_type[o] for o in compiled[0] if o in by_type}
    islands = set(matching_nodes(model, patterns))
    all_names = {n.name for n in model.graph.node if n.name}
    marked = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        origin = onnx_node_for_layer(layer.name, all_names)
        hit = layer.type in types or (origin in islands if origin else node_matches(layer.name, "", compiled))
        if not hit:
            continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            if layer.get_output_type(j) in (trt.float16, trt.float32):
                layer.set_output_type(j, trt.float32)
        marked.append(layer.name)
    return marked


def _shape(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


def build_engine(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], fp16: bool = True,
                 profiles: Sequence[Profile] | Any | None = None, workspace: int | None = None,
                 timing_cache: str | os.PathLike[str] | None = None, builder_optimization_level: int | None = None,
                 fp32_layers: Sequence[Pattern] | str | os.PathLike[str] | None = None,
                 plugin_libraries: Iterable[str | os.PathLike[str]] = (), fp16_path: str = "auto",
                 verbose: bool = False) -> Path:
    """Build a TensorRT engine from ``onnx_path`` and write ``engine_path`` plus ``<engine>.json``.

    Args:
        fp16: build FP16 (with FP32 islands) instead of FP32.
        profiles: optimization profiles (list of ``{input: ShapeRange}`` or their JSON form); default:
            derived from the ONNX calibnet metadata (:func:`profiles_from_metadata`).
        workspace: workspace memory pool limit in bytes.
        timing_cache: file to load the timing cache from (if it exists) and save it to after the build.
        builder_optimization_level: 0..5 (TensorRT default 3).
        fp32_layers: FP32 island patterns (``op:Type`` or node-name regexes), or an FP16-readiness JSON
            path; default :data:`~calibnet.engines.fp16.DEFAULT_FP32_PATTERNS`.
        plugin_libraries: extra plugin .so files to load (the built-in plugins are always initialized).
        fp16_path: "auto" | "flags" | "onnx" (see :func:`choose_fp16_path`).

    Returns the engine path. Raises :class:`TensorRTUnavailable` without TensorRT and
    :class:`EngineBuildError` when parsing or building fails.
    """
    require_tensorrt("building an engine")
    import tensorrt as trt

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    plugin_libraries = [str(p) for p in plugin_libraries]
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file {onnx_path} does not exist")
    model, meta = read_onnx_metadata(onnx_path)
    if profiles is None:
        if meta is None:
            raise EngineBuildError(f"{onnx_path} has no calibnet metadata: pass profiles= explicitly")
        profs = profiles_from_metadata(meta)
    else:
        profs = profiles_from_json(profiles)
    if fp32_layers is None:
        patterns: list[Pattern] = list(DEFAULT_FP32_PATTERNS)
    elif isinstance(fp32_layers, (str, os.PathLike)):
        patterns = list(load_fp32_patterns(fp32_layers))
    else:
        patterns = list(fp32_layers)
    path = choose_fp16_path(trt.__version__, fp16, fp16_path)

    trt_logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    _load_plugins(trt_logger, plugin_libraries)
    _check_plugins(model)
    builder = trt.Builder(trt_logger)
    strongly_typed = path == "onnx-fp16-pass" or (tensorrt_major(trt.__version__) or 0) >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)

    fp32_names: list[str] = []
    if path == "onnx-fp16-pass":
        converted, report = convert_to_fp16(model, patterns)
        fp32_names = report.fp32_nodes
        tmp = engine_path.with_name(engine_path.name + ".fp16.onnx")
        tmp.write_bytes(converted.SerializeToString())  # beside the source for external-data lookups
        try:
            _parse(parser, tmp.read_bytes(), onnx_path)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        _parse(parser, onnx_path.read_bytes(), onnx_path)

    config = builder.create_builder_config()
    if workspace:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if builder_optimization_level is not None:
        config.builder_optimization_level = int(builder_optimization_level)
    if path == "builder-flag-fp16":
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; the FP16 engine may be slow")
        config.set_flag(trt.BuilderFlag.FP16)
        fp32_names = _mark_fp32_layers(network, model, patterns)
        if fp32_names:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)

    net_inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    for prof in profs:
        missing = net_inputs - set(prof)
        if missing:
            raise EngineBuildError(f"profile lacks network inputs {sorted(missing)} (has {sorted(prof)})")
        op = builder.create_optimization_profile()
        for name, r in prof.items():
            if name in net_inputs:
                op.set_shape(name, trt.Dims(list(r.min)), trt.Dims(list(r.opt)), trt.Dims(list(r.max)))
        config.add_optimization_profile(op)

    cache_file = Path(timing_cache) if timing_cache else None
    cache_bytes = cache_file.read_bytes() if cache_file and cache_file.is_file() else b""
    tcache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(tcache, False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting a fresh one", cache_file)
        config.set_timing_cache(config.create_timing_cache(b""), False)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise EngineBuildError("TensorRT failed to build the engine (see the TensorRT log above; "
                               "verbose=True gives details)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(memoryview(serialized))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_bytes(memoryview(config.get_timing_cache().serialize()))

    io: list[IOTensor] = []
    for mode, count, get in (("input", network.num_inputs, network.get_input),
                             ("output", network.num_outputs, network.get_output)):
        for i in range(count):
            t = get(i)
            io.append(IOTensor(t.name, mode, _np_dtype_name(t.dtype), _shape(t.shape)))
    sidecar = EngineSidecar(
        onnx_sha256=file_sha256(onnx_path), tensorrt_version=str(trt.__version__), gpu=current_gpu(),
        precision="fp16" if fp16 else "fp32", fp16_path=path, profiles=profiles_to_json(profs), io=io,
        fp32_layers=fp32_names, model={**meta.to_dict(), "precision": "fp16" if fp16 else "fp32"} if meta else {},
        onnx_path=str(onnx_path),
        engine_sha256=file_sha256(engine_path),
        builder={"workspace": workspace, "builder_optimization_level": builder_optimization_level,
                 "timing_cache": str(cache_file) if cache_file else None,
                 "plugin_libraries": [str(p) for p in plugin_libraries],
                 "fp32_patterns": [p if isinstance(p, str) else p.pattern for p in patterns],
                 "strongly_typed": strongly_typed},
        build_seconds=round(seconds, 3), created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_sidecar(engine_path, sidecar)
    return engine_path


def _np_dtype_name(dtype: trt.DataType) -> str:
    import numpy as np
    import tensorrt as trt

    return str(np.dtype(trt.nptype(dtype)).name)

