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

from ..runtime.backends.cuda_buffers import query_gpu
from ..runtime.backends.tensorrt import dims_tuple, dtype_name, load_plugins
from ..runtime.backends.tensorrt_deps import TensorRTUnavailable, require_tensorrt, tensorrt_major
from ..runtime.core.cachedir import file_sha256
from ..runtime.core.contract import PLUGIN_NAME, ModelMetadata
from ..runtime.core.profiles import Profile, profiles_from_json, profiles_from_metadata, profiles_to_json
from ..runtime.core.sidecar import EngineSidecar, GpuInfo, IOTensor, write_sidecar
from ..runtime.core.targets import read_metadata
from .fp16 import (
    Pattern,
    compile_patterns,
    convert_to_fp16,
    fp32_patterns,
    matching_nodes,
    node_matches,
    pattern_strings,
)

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["build_engine", "parse_network", "builder_config", "build_serialized", "engine_sidecar",
           "choose_fp16_path", "read_onnx_metadata", "EngineBuildError", "current_gpu", "onnx_node_for_layer"]

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
    info = query_gpu()
    return GpuInfo(*info) if info else GpuInfo("unknown", "unknown")


def _check_plugins(model: Any) -> None:
    import tensorrt as trt

    node = next((n for n in model.graph.node if n.op_type == PLUGIN_NAME), None)
    if node is None:
        return
    version = next((a.s.decode() if isinstance(a.s, bytes) else str(a.s) for a in node.attribute
                    if a.name == "plugin_version"), "1")
    registry = trt.get_plugin_registry()
    # TensorRT >= 10: get_creator (V2 and V3 creators)
    find = registry.get_creator if hasattr(registry, "get_creator") else registry.get_plugin_creator
    if find(PLUGIN_NAME, version, "") is None:
        raise EngineBuildError(
            f"the ONNX graph uses the TensorRT plugin {PLUGIN_NAME} version {version}, which is not "
            "registered: use TensorRT >= 8.6 (version 2 needs >= 10.11) or pass plugin_libraries=[path "
            "to libnvinfer_plugin.so / your plugin build]")


def _parse(parser: trt.OnnxParser, data: bytes, onnx_path: Path) -> None:
    if parser.parse(data, str(onnx_path)):
        return
    errors = [f"  - node {e.node_name()!r} ({e.node_operator()}): {e.desc()}"
              for e in (parser.get_error(i) for i in range(parser.num_errors))]
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


def parse_network(builder: trt.Builder, trt_logger: trt.ILogger, model: Any, onnx_path: Path, fp16_path: str,
                  patterns: Sequence[Pattern]) -> tuple[trt.INetworkDefinition, list[str]]:
    """Step 1: the network, parsed from the ONNX file, or (``onnx-fp16-pass``) from its FP16 conversion in
    memory (the source path is given for external-data lookups); on the builder-flag path the FP32 islands
    are pinned. Returns the network and the names of the FP32 nodes/layers."""
    import tensorrt as trt

    strongly_typed = fp16_path == "onnx-fp16-pass" or (tensorrt_major(trt.__version__) or 0) >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if fp16_path == "onnx-fp16-pass":
        converted, report = convert_to_fp16(model, patterns)
        _parse(parser, converted.SerializeToString(), onnx_path)
        return network, report.fp32_nodes
    _parse(parser, onnx_path.read_bytes(), onnx_path)
    return network, _mark_fp32_layers(network, model, patterns) if fp16_path == "builder-flag-fp16" else []


def builder_config(builder: trt.Builder, network: trt.INetworkDefinition, profiles: Sequence[Profile],
                   fp16_path: str, pinned: bool, workspace: int | None = None,
                   builder_optimization_level: int | None = None,
                   timing_cache: Path | None = None) -> trt.IBuilderConfig:
    """Step 2: the builder config: memory limit, optimization level, FP16 flags (builder-flag path, with
    ``OBEY_PRECISION_CONSTRAINTS`` when layers were ``pinned``), one optimization profile per entry, the
    timing cache (read from ``timing_cache`` when it exists)."""
    import tensorrt as trt

    config = builder.create_builder_config()
    if workspace:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if builder_optimization_level is not None:
        config.builder_optimization_level = int(builder_optimization_level)
    if fp16_path == "builder-flag-fp16":
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; the FP16 engine may be slow")
        config.set_flag(trt.BuilderFlag.FP16)
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    net_inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    for prof in profiles:
        if missing := net_inputs - set(prof):
            raise EngineBuildError(f"profile lacks network inputs {sorted(missing)} (has {sorted(prof)})")
        op = builder.create_optimization_profile()
        for name, r in prof.items():
            if name in net_inputs:
                op.set_shape(name, trt.Dims(list(r.min)), trt.Dims(list(r.opt)), trt.Dims(list(r.max)))
        config.add_optimization_profile(op)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    if not config.set_timing_cache(config.create_timing_cache(cache_bytes), False):
        log.warning("timing cache %s does not match this TensorRT/GPU; starting a fresh one", timing_cache)
        config.set_timing_cache(config.create_timing_cache(b""), False)
    return config


def build_serialized(builder: trt.Builder, network: trt.INetworkDefinition, config: trt.IBuilderConfig,
                     timing_cache: Path | None = None) -> tuple[memoryview, float]:
    """Step 3: build; saves the timing cache when a file is given. Returns the engine bytes and seconds."""
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise EngineBuildError("TensorRT failed to build the engine (see the TensorRT log above; "
                               "verbose=True gives details)")
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return memoryview(serialized), seconds


def engine_sidecar(network: trt.INetworkDefinition, onnx_path: Path, engine_path: Path, meta: ModelMetadata | None,
                   precision: str, fp16_path: str, profiles: Sequence[Profile], fp32_names: list[str],
                   build_seconds: float, builder_facts: dict[str, Any]) -> EngineSidecar:
    """Step 4: the sidecar of a written engine (IO tensors from the network, hashes, GPU, versions)."""
    import tensorrt as trt

    io = [IOTensor(t.name, mode, dtype_name(t.dtype), dims_tuple(t.shape))
          for mode, count, get in (("input", network.num_inputs, network.get_input),
                                   ("output", network.num_outputs, network.get_output))
          for t in (get(i) for i in range(count))]
    return EngineSidecar(
        onnx_sha256=file_sha256(onnx_path), tensorrt_version=str(trt.__version__), gpu=current_gpu(),
        precision=precision, fp16_path=fp16_path, profiles=profiles_to_json(profiles), io=io,
        fp32_layers=fp32_names, model={**meta.to_dict(), "precision": precision} if meta else {},
        onnx_path=str(onnx_path), engine_sha256=file_sha256(engine_path), builder=builder_facts,
        build_seconds=round(build_seconds, 3),
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def build_engine(onnx_path: str | os.PathLike[str], engine_path: str | os.PathLike[str], fp16: bool = True,
                 profiles: Sequence[Profile] | Any | None = None, workspace: int | None = None,
                 timing_cache: str | os.PathLike[str] | None = None, builder_optimization_level: int | None = None,
                 fp32_layers: Sequence[Pattern | os.PathLike[str]] | str | os.PathLike[str] | None = None,
                 plugin_libraries: Iterable[str | os.PathLike[str]] = (), fp16_path: str = "auto",
                 verbose: bool = False) -> Path:
    """Build a TensorRT engine from ``onnx_path`` and write ``engine_path`` plus ``<engine>.json``: parse
    (:func:`parse_network`), configure (:func:`builder_config`), build (:func:`build_serialized`), sidecar
    (:func:`engine_sidecar`).

    Args:
        fp16: build FP16 (with FP32 islands) instead of FP32.
        profiles: optimization profiles (list of ``{input: ShapeRange}`` or their JSON form); default:
            derived from the ONNX calibnet metadata (:func:`profiles_from_metadata`).
        workspace: workspace memory pool limit in bytes.
        timing_cache: file to load the timing cache from (if it exists) and save it to after the build.
        builder_optimization_level: 0..5 (TensorRT default 3).
        fp32_layers: FP32 islands (:func:`~calibnet.engines.fp16.fp32_patterns`: patterns replace the
            defaults, an FP16-readiness JSON adds to them; default
            :data:`~calibnet.engines.fp16.DEFAULT_FP32_PATTERNS`).
        plugin_libraries: extra plugin .so files to load (the built-in plugins are always initialized).
        fp16_path: "auto" | "flags" | "onnx" (see :func:`choose_fp16_path`).

    Returns the engine path. Raises :class:`TensorRTUnavailable` without TensorRT and
    :class:`EngineBuildError` when parsing or building fails.
    """
    require_tensorrt("building an engine")
    import tensorrt as trt

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    libraries = [str(p) for p in plugin_libraries]
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file {onnx_path} does not exist")
    model, meta = read_onnx_metadata(onnx_path)
    if profiles is None and meta is None:
        raise EngineBuildError(f"{onnx_path} has no calibnet metadata: pass profiles= explicitly")
    profs = profiles_from_metadata(meta) if profiles is None else profiles_from_json(profiles)  # type: ignore[arg-type]
    patterns = fp32_patterns(fp32_layers)
    path = choose_fp16_path(trt.__version__, fp16, fp16_path)
    cache_file = Path(timing_cache) if timing_cache else None

    trt_logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    for lib in libraries:
        if not Path(lib).is_file():
            raise EngineBuildError(f"plugin library {lib} does not exist")
    load_plugins(trt_logger, libraries)
    _check_plugins(model)
    builder = trt.Builder(trt_logger)
    network, fp32_names = parse_network(builder, trt_logger, model, onnx_path, path, patterns)
    config = builder_config(builder, network, profs, path, bool(fp32_names), workspace, builder_optimization_level,
                            cache_file)
    serialized, seconds = build_serialized(builder, network, config, cache_file)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(serialized)
    facts = {"workspace": workspace, "builder_optimization_level": builder_optimization_level,
             "timing_cache": str(cache_file) if cache_file else None, "plugin_libraries": libraries,
             "fp32_patterns": pattern_strings(patterns),
             "strongly_typed": path == "onnx-fp16-pass" or (tensorrt_major(trt.__version__) or 0) >= 11}
    write_sidecar(engine_path, engine_sidecar(network, onnx_path, engine_path, meta, "fp16" if fp16 else "fp32", path,
                                              profs, fp32_names, seconds, facts))
    return engine_path
