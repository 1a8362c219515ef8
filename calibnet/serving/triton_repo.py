"""A Triton model repository for an exported CalibNet (``calibnet-export ... --triton-repo DIR``).

Three variants (``variant``), each serving the model ``calibnet`` with the inputs and outputs of
:mod:`calibnet.serving.protocol` (the same as ``calibnet-serve``):

- ``onnxruntime``: ``calibnet_net`` on Triton's ONNX Runtime backend (the portable ONNX file; on a GPU the
  TensorRT execution accelerator in FP16 with an engine cache) and ``calibnet``, a Python-backend model that
  runs calibnet's pre/post-processing and calls ``calibnet_net`` through BLS;
- ``tensorrt``: the same with ``calibnet_net`` a ``tensorrt_plan`` (the engine of ``calibnet-export
  --engine``, built on the serving GPU with the container's TensorRT; the README says how the
  deformable-attention plugin is found);
- ``python``: one Python-backend model ``calibnet`` running the whole calibnet runtime (ONNX Runtime inside
  the Python backend; no other backend needed). This is the variant a CPU machine can load.

Every ``config.pbtxt`` is checked by :func:`validate_triton_repo`: parsed with
``tritonclient.grpc.model_config_pb2`` and its inputs/outputs compared with the ONNX file (names, data types,
dims) and with the serving protocol. Names from the ONNX file are escaped as protobuf text strings. The model
``calibnet`` refuses oversized inputs (``max_pixels``, ``max_input_bytes``) and requests that wait longer than
``timeout_s``; the TensorRT execution accelerator caches its engines inside the repository
(``calibnet_net/trt_cache`` under ``mount``, where the container sees the repository), never in a shared /tmp.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from ..runtime.core.contract import PLUGIN_NAME, ModelMetadata
from ..runtime.core.limits import REQUEST_TIMEOUT_S, InputLimits, default_limits
from ..runtime.core.targets import read_metadata
from .protocol import INPUTS, MODEL_NAME, OUTPUTS, TensorSpec, queue_size
from .triton_python import METADATA_FILE

__all__ = ["VARIANTS", "NETWORK_MODEL", "write_triton_repo", "validate_triton_repo", "pbtxt_string", "RepoError"]

VARIANTS = ("onnxruntime", "tensorrt", "python")
#: the network model of the onnxruntime / tensorrt variants
NETWORK_MODEL = "calibnet_net"
#: where the container sees the repository (the README's ``docker run -v $PWD:/models``)
DEFAULT_MOUNT = "/models"
#: the folder of the TensorRT execution accelerator's engine cache, inside the network model's folder
TRT_CACHE = "trt_cache"

_ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 7: "TYPE_INT64", 6: "TYPE_INT32",
                   9: "TYPE_BOOL", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16"}
_NUMPY_TO_TRITON = {"u1": "UINT8", "u2": "UINT16", "f4": "FP32", "i8": "INT64", "i4": "INT32", "b1": "BOOL"}

_MODEL_PY = '''\
"""Triton Python-backend entry point of calibnet: the implementation is calibnet's own
(calibnet.serving.triton_python); install calibnet in the container's Python from its checkout."""

from calibnet.serving.triton_python import TritonPythonModel  # noqa: F401
'''


class RepoError(ValueError):
    """A generated repository that does not match its ONNX file or the serving protocol."""


def pbtxt_string(text: str) -> str:
    """``text`` as a quoted protobuf text-format string (backslash, quotes, control and non-ASCII bytes
    escaped), so that a name from a model file cannot end the string or add fields to a config."""
    escaped = ("\\" + chr(b) if chr(b) in "\\\"'" else chr(b) if 32 <= b < 127 else f"\\{b:03o}"
               for b in text.encode("utf-8"))
    return '"' + "".join(escaped) + '"'


def _tensor_block(name: str, dtype: str, dims: Sequence[int], optional: bool = False) -> str:
    opt = "\n    optional: true" if optional else ""
    shape = "[ " + ", ".join(str(int(x)) for x in dims) + " ]"
    return f"  {{\n    name: {pbtxt_string(name)}\n    data_type: {dtype}\n    dims: {shape}{opt}\n  }}"


def _io(kind: str, blocks: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(blocks) + "\n]"


def _spec_type(s: TensorSpec) -> str:
    return "TYPE_STRING" if s.dtype is object else "TYPE_" + _NUMPY_TO_TRITON[np.dtype(s.dtype).str[1:]]


def _onnx_io(onnx_path: Path) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(inputs, outputs) of an ONNX file as (name, Triton type, dims with -1 for symbolic) lists."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)

    def rows(values: Any) -> list[tuple[str, str, list[int]]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim]
            out.append((v.name, _ONNX_TO_TRITON.get(t.elem_type, f"onnx-type-{t.elem_type}"), dims))
        return out

    init = {i.name for i in model.graph.initializer}
    return rows([v for v in model.graph.input if v.name not in init]), rows(model.graph.output)


def _network_config(onnx_path: Path, meta: ModelMetadata, platform: str, instances: int,
                    fp16: bool, cache_path: str) -> str:
    inputs, outputs = _onnx_io(onnx_path)
    batched = meta.dynamic_batch
    max_batch = int(meta.max_batch) if batched else 0
    cut = 1 if batched else 0  # a batched model's first dimension is Triton's batch, not in its dims
    lines = [f'name: "{NETWORK_MODEL}"', f'platform: "{platform}"', f"max_batch_size: {max_batch}",
             _io("input", [_tensor_block(n, t, d[cut:]) for n, t, d in inputs]),
             _io("output", [_tensor_block(n, t, d[cut:]) for n, t, d in outputs]),
             f"instance_group [ {{ kind: KIND_GPU count: {instances} }} ]"]
    if batched:
        lines.append("dynamic_batching { max_queue_delay_microseconds: 1000 }")
    if platform == "onnxruntime_onnx":
        precision = "FP16" if fp16 else "FP32"
        lines.append(
            "optimization { execution_accelerators {\n"
            "  gpu_execution_accelerator : [ {\n"
            '    name : "tensorrt"\n'
            f'    parameters {{ key: "precision_mode" value: "{precision}" }}\n'
            '    parameters { key: "max_workspace_size_bytes" value: "4294967296" }\n'
            '    parameters { key: "trt_engine_cache_enable" value: "1" }\n'
            f'    parameters {{ key: "trt_engine_cache_path" value: {pbtxt_string(cache_path)} }}\n'
            "  } ]\n"
            "} }")
    return "\n".join(lines) + "\n"


def _calibnet_config(max_batch: int, instances: int, params: dict[str, str], batch_delay_us: int,
                     timeout_s: float) -> str:
    lines = [f'name: "{MODEL_NAME}"', 'backend: "python"', f"max_batch_size: {max_batch}",
             _io("input", [_tensor_block(s.name, _spec_type(s), s.dims, s.optional) for s in INPUTS]),
             _io("output", [_tensor_block(s.name, _spec_type(s), s.dims) for s in OUTPUTS]),
             f"instance_group [ {{ kind: KIND_CPU count: {instances} }} ]"]
    if max_batch > 1:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {batch_delay_us} default_queue_policy {{ "
                     f"timeout_action: REJECT default_timeout_microseconds: {int(timeout_s * 1e6)} "
                     f"allow_timeout_override: true max_queue_size: {queue_size(max_batch, instances)} }} }}")
    lines += [f"parameters {{ key: {pbtxt_string(k)} value {{ string_value: {pbtxt_string(v)} }} }}"
              for k, v in params.items()]
    return "\n".join(lines) + "\n"


def _readme(variant: str, meta: ModelMetadata, onnx_name: str, engine: bool) -> str:
    net = {"onnxruntime": f"`{NETWORK_MODEL}/1/model.onnx` on Triton's ONNX Runtime backend (TensorRT execution "
                          f"accelerator in FP16 on a GPU, engines cached in `{NETWORK_MODEL}/{TRT_CACHE}/` of this "
                          "repository, as mounted at `/models`: mount it there, or write the repository again with "
                          "another `mount`)",
           "tensorrt": f"`{NETWORK_MODEL}/1/model.plan`, a TensorRT engine",
           "python": "inside the Python backend: `calibnet/1/model.onnx` run by calibnet's runtime on ONNX Runtime"}
    text = f"""# calibnet Triton model repository ({variant})

Generated by `calibnet-export --triton-repo` from `{onnx_name}` (config {meta.config}, {meta.flavor} graph,
{'dynamic' if meta.dynamic_hw else 'static'} H/W {meta.height}x{meta.width}, batch
{'dynamic up to ' + str(meta.max_batch) if meta.dynamic_batch else str(meta.batch)}).

- `calibnet`: the model clients call (inputs `rgb` or `rgb_encoded`, `depth`, `depth_u16` or
  `depth_encoded`; outputs `scores`, `boxes`, `masks_rle` (COCO RLE JSON), `depth_trust`, `instance_depth`,
  `depth_health` (JSON), `error` (a refused request's reason); see `calibnet.serving.protocol`). Python
  backend; its `model.py` imports calibnet's own implementation.
- the network: {net[variant]}.

## Run it in the NGC container

```bash
docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v $PWD:/models \\
    -v /path/to/calibnet:/calibnet nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
    bash -c "pip install /calibnet && tritonserver --model-repository /models"
```

`/path/to/calibnet` is your calibnet checkout: calibnet is on no package index, and a `pip install calibnet` would
fetch whatever package holds that name there. (`pip install "/calibnet[gpu]"` gives the runtime ONNX Runtime's
CUDA/TensorRT providers in the `python` variant.)
Then `calibnet.serving.client.CalibnetClient("localhost:8000").predict(rgb, depth)`.
"""
    if variant == "tensorrt":
        text += f"""
## The TensorRT engine and the deformable-attention plugin

{'`model.plan` was written by `calibnet-export --engine`.' if engine else
 '`model.plan` is NOT in this repository yet: build the engine on the serving GPU with the container`s TensorRT.'}
Build (or rebuild) it inside the container that will serve it, so that the TensorRT versions match:

```bash
python -m calibnet.engines build {onnx_name} -o {NETWORK_MODEL}/1/model.plan --fp16
```

A `tensorrt`-flavour graph has one `{PLUGIN_NAME}` node per encoder layer. That plugin is
part of TensorRT's own plugin library (libnvinfer_plugin, TensorRT >= 8.6; plugin version 2 needs >= 10.11),
which Triton's TensorRT backend initializes, so the stock container needs nothing more. A plugin built
separately (your own build of the TensorRT OSS plugins) must be loaded by the server before the plan is
deserialized:

```bash
tritonserver --model-repository /models --backend-config=tensorrt,plugins="/plugins/libnvinfer_plugin.so"
# or: LD_PRELOAD=/plugins/libnvinfer_plugin.so tritonserver --model-repository /models
```

"plugin not found" / `getPluginCreator could not find plugin` at load time means the library was not loaded.
"""
    return text


def write_triton_repo(onnx_path: str | Path, out_dir: str | Path, variant: str = "onnxruntime",
                      engine: str | Path | None = None, max_batch: int = 8, instances: int = 1,
                      fp16: bool = True, threads: int = 0, batch_delay_us: int = 2000,
                      overwrite: bool = True, limits: InputLimits | None = None, timeout_s: float = REQUEST_TIMEOUT_S,
                      mount: str = DEFAULT_MOUNT) -> Path:
    """Write a Triton model repository for ``onnx_path`` into ``out_dir`` (see the module docs) and validate it;
    returns ``out_dir``. ``engine``: the TensorRT plan for the ``tensorrt`` variant; ``max_batch``: dynamic
    batching of ``calibnet``; ``threads``: ONNX Runtime threads of the ``python`` variant; ``limits`` (default
    :func:`~calibnet.runtime.core.limits.default_limits`) and ``timeout_s``: what ``calibnet`` refuses;
    ``mount``: where the server sees ``out_dir`` (the engine cache of the ``onnxruntime`` variant is under it)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    onnx_path, out = Path(onnx_path), Path(out_dir)
    meta = read_metadata(onnx_path)
    if variant == "onnxruntime" and meta.flavor != "portable":
        raise ValueError(f"{onnx_path} is a {meta.flavor!r} graph: the onnxruntime variant needs a portable export "
                         "(calibnet-export --flavor portable)")
    if out.exists() and overwrite:
        for name in (MODEL_NAME, NETWORK_MODEL):
            shutil.rmtree(out / name, ignore_errors=True)
    cal = out / MODEL_NAME / "1"
    cal.mkdir(parents=True, exist_ok=True)
    (cal / "model.py").write_text(_MODEL_PY)
    if variant == "python":
        shutil.copyfile(onnx_path, cal / "model.onnx")
        params = {"mode": "runtime", "model_file": "model.onnx", "threads": str(threads)}
    else:
        net = out / NETWORK_MODEL / "1"
        net.mkdir(parents=True, exist_ok=True)
        platform = "onnxruntime_onnx" if variant == "onnxruntime" else "tensorrt_plan"
        if variant == "onnxruntime":
            shutil.copyfile(onnx_path, net / "model.onnx")
        elif engine is not None:
            shutil.copyfile(engine, net / "model.plan")
        cache = f"{mount.rstrip('/')}/{NETWORK_MODEL}/{TRT_CACHE}"
        (out / NETWORK_MODEL / "config.pbtxt").write_text(_network_config(onnx_path, meta, platform, instances, fp16,
                                                                          cache))
        (cal / METADATA_FILE).write_text(json.dumps(meta.to_dict(), indent=1))
        outputs = json.dumps([name for name, _, _ in _onnx_io(onnx_path)[1]])
        params = {"mode": "bls", "network": NETWORK_MODEL, "network_outputs": outputs}
    limits = limits or default_limits()
    params.update(max_pixels=str(limits.max_pixels), max_input_bytes=str(limits.max_bytes))
    (out / MODEL_NAME / "config.pbtxt").write_text(_calibnet_config(max_batch, instances, params, batch_delay_us,
                                                                    timeout_s))
    (out / "README.md").write_text(_readme(variant, meta, onnx_path.name, engine is not None))
    validate_triton_repo(out, onnx_path)
    return out


def _parse(path: Path) -> Any:
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise RepoError(f"{path}: not a valid Triton model config: {exc}") from None


def _type_name(t: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return str(model_config_pb2.DataType.Name(t))


def validate_triton_repo(repo: str | Path, onnx_path: str | Path | None = None) -> list[str]:
    """Check every ``config.pbtxt`` of a generated repository; returns notes (e.g. a TensorRT plan still to be
    built), raises :class:`RepoError` listing every mismatch. Each config must parse as a Triton
    ``ModelConfig``, be named as its folder, and: ``calibnet`` has exactly the serving protocol's inputs and
    outputs (names, data types, dims, optional inputs); ``calibnet_net`` has the ONNX file's inputs and outputs
    (``onnx_path``, default its own ``1/model.onnx``) with the batch dimension split off when
    ``max_batch_size`` > 0, and the network file its platform loads."""
    repo = Path(repo)
    problems: list[str] = []
    notes: list[str] = []
    configs = sorted(repo.glob("*/config.pbtxt"))
    if not any(c.parent.name == MODEL_NAME for c in configs):
        raise RepoError(f"{repo}: no {MODEL_NAME}/config.pbtxt")
    for path in configs:
        cfg = _parse(path)
        if cfg.name != path.parent.name:
            problems.append(f"{path}: name {cfg.name!r} is not its folder's {path.parent.name!r}")
        if cfg.name == MODEL_NAME:
            want_in = [(s.name, _spec_type(s), list(s.dims), s.optional) for s in INPUTS]
            got_in = [(t.name, _type_name(t.data_type), list(t.dims), bool(t.optional)) for t in cfg.input]
            want_out = [(s.name, _spec_type(s), list(s.dims)) for s in OUTPUTS]
            got_out = [(t.name, _type_name(t.data_type), list(t.dims)) for t in cfg.output]
            if got_in != want_in:
                problems.append(f"{path}: inputs {got_in} differ from the serving protocol {want_in}")
            if got_out != want_out:
                problems.append(f"{path}: outputs {got_out} differ from the serving protocol {want_out}")
            if cfg.backend != "python" or not (path.parent / "1" / "model.py").is_file():
                problems.append(f"{path}: must be a Python-backend model with 1/model.py")
            mode = cfg.parameters["mode"].string_value if "mode" in cfg.parameters else ""
            if mode == "runtime" and not (path.parent / "1" / cfg.parameters["model_file"].string_value).is_file():
                problems.append(f"{path}: runtime mode without its ONNX file")
            if mode == "bls" and cfg.parameters["network"].string_value not in {c.parent.name for c in configs}:
                problems.append(f"{path}: BLS network {cfg.parameters['network'].string_value!r} not in the repo")
        elif cfg.name == NETWORK_MODEL:
            version = path.parent / "1"
            src = Path(onnx_path) if onnx_path is not None else version / "model.onnx"
            if cfg.platform == "onnxruntime_onnx" and not (version / "model.onnx").is_file():
                problems.append(f"{path}: onnxruntime_onnx without 1/model.onnx")
            if cfg.platform == "tensorrt_plan" and not (version / "model.plan").is_file():
                notes.append(f"{version / 'model.plan'} is not built yet (see README.md)")
            if cfg.platform not in ("onnxruntime_onnx", "tensorrt_plan"):
                problems.append(f"{path}: unexpected platform {cfg.platform!r}")
            if not src.is_file():
                problems.append(f"{path}: no ONNX file to check against ({src}; pass the ONNX file the plan was "
                                "built from)")
                continue
            onnx_in, onnx_out = _onnx_io(src)
            cut = 1 if cfg.max_batch_size > 0 else 0
            for kind, tensors, ref in (("input", cfg.input, onnx_in), ("output", cfg.output, onnx_out)):
                want = [(n, t, d[cut:]) for n, t, d in ref]
                got = [(t.name, _type_name(t.data_type), list(t.dims)) for t in tensors]
                if got != want:
                    problems.append(f"{path}: {kind}s {got} differ from {src.name}'s {want}")
                if cut:
                    fixed = [(n, d[0]) for n, _, d in ref if d and d[0] != -1]
                    if fixed:
                        problems.append(f"{path}: max_batch_size {cfg.max_batch_size} but {src.name} has a fixed "
                                        f"batch dimension on {fixed}")
        else:
            problems.append(f"{path}: unexpected model {cfg.name!r}")
    if problems:
        raise RepoError("; ".join(problems))
    return notes
