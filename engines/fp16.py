"""FP16 for strongly typed TensorRT (11.x, and 10.x with STRONGLY_TYPED): an ONNX-level conversion pass.

TensorRT 11 removed weak typing (no FP16 builder flag, no per-layer precision), so FP16 means an ONNX graph
whose tensors are already FP16, with explicit ``Cast`` nodes around the islands that must stay FP32
(LayerNorm, softmax of attention weights, sampling-location arithmetic). This module does that with the
``onnx`` package only, so it is tested on CPU with ONNX Runtime. The same pattern matcher selects the
FP32 layers for the TensorRT 10 builder-flag path (see builder.py).

Patterns (strings or compiled regexes): ``"op:Softmax"`` matches an op type exactly; anything else is a
regular expression searched in the node name (``re.search``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.core.contract import PLUGIN_NAME

__all__ = ["DEFAULT_FP32_PATTERNS", "FP16Report", "compile_patterns", "node_matches", "matching_nodes", "sampling_cone",
           "load_fp32_patterns", "fp32_patterns", "pattern_strings", "convert_to_fp16"]

DEFAULT_FP32_PATTERNS: tuple[str, ...] = (
    "op:LayerNormalization",
    "op:GroupNormalization",
    "op:InstanceNormalization",
    "op:Softmax",  # attention-weight softmax (and any other softmax)
    "op:" + PLUGIN_NAME,  # keep the deformable sampling itself in FP32
    "op:GridSample",  # portable MSDA: its grid (sampling locations) is FP32, TensorRT wants one dtype
    r"sampling_offsets",  # sampling-location arithmetic (offsets / normalizer + reference points)
    r"sampling_loc",
    r"reference_points",
    r"attention_weights",
)

# inputs that ONNX types as float32-only, whatever the precision of the node's data inputs
_FP32_ONLY_INPUTS: dict[str, set[int]] = {"Resize": {1, 2}, "Upsample": {1}}
# ops with subgraphs are left entirely in FP32
_SUBGRAPH_OPS = {"If", "Loop", "Scan"}
_FLOAT, _FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
_FP16_MAX = 65504.0

Pattern = str | re.Pattern[str]


@dataclass
class FP16Report:
    """What :func:`convert_to_fp16` did."""

    fp16_nodes: int = 0
    fp32_nodes: list[str] = field(default_factory=list)
    casts_inserted: int = 0
    initializers_converted: int = 0
    clipped_values: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def compile_patterns(patterns: Iterable[Pattern]) -> tuple[set[str], list[re.Pattern[str]]]:
    """Split patterns into exact op types (``op:X``) and compiled name regexes."""
    ops: set[str] = set()
    regexes: list[re.Pattern[str]] = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            regexes.append(p)
        elif p.startswith("op:"):
            ops.add(p[3:])
        else:
            try:
                regexes.append(re.compile(p))
            except re.error as e:
                raise ValueError(f"bad FP32 layer pattern {p!r}: {e}") from None
    return ops, regexes


def node_matches(name: str, op_type: str, compiled: tuple[set[str], list[re.Pattern[str]]]) -> bool:
    """True when a node (name, op type) matches compiled patterns."""
    ops, regexes = compiled
    return op_type in ops or any(r.search(name) for r in regexes)


# sampling-location inputs of deformable sampling: GridSample's grid, the plugin's sampling_locations
_SAMPLING_INPUTS = {"GridSample": 1, PLUGIN_NAME: 3}


def sampling_cone(model: Any) -> set[str]:
    """Names of the nodes computing the sampling locations of every deformable-sampling node.

    Walks back from GridSample's ``grid`` / the plugin's ``sampling_locations`` input through producers in
    the same module scope (node-name prefix up to the last ``/``, e.g. ``.../layers.0/self_attn``): the
    offsets projection, ``reference_points + offsets / normalizer`` and the reshapes, without entering the
    rest of the encoder. ``Shape`` nodes end the walk (they only read dimensions)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    cone: set[str] = set()
    for node in model.graph.node:
        idx = _SAMPLING_INPUTS.get(node.op_type)
        if idx is None or len(node.input) <= idx or "/" not in node.name:
            continue
        scope = node.name.rsplit("/", 1)[0] + "/"
        stack = [node.input[idx]]
        while stack:
            p = producer.get(stack.pop())
            if p is None or not p.name.startswith(scope) or p.name in cone:
                continue
            cone.add(p.name)
            if p.op_type != "Shape":
                stack.extend(i for i in p.input if i)
    return cone


def matching_nodes(model: Any, patterns: Iterable[Pattern] = DEFAULT_FP32_PATTERNS) -> list[str]:
    """Names (or ``op_type#index`` for unnamed nodes) of the top-level ONNX nodes that stay FP32: those
    matching ``patterns`` plus the :func:`sampling_cone`."""
    compiled = compile_patterns(patterns)
    cone = sampling_cone(model)
    return [n.name or f"{n.op_type}#{i}" for i, n in enumerate(model.graph.node)
            if node_matches(n.name, n.op_type, compiled) or n.name in cone]


def load_fp32_patterns(source: str | os.PathLike[str] | Sequence[Any]) -> list[str]:
    """Patterns from a list, or from an FP16-readiness JSON file: a list of strings / ``{"name"|"pattern": s}``,
    or an object with one of the keys ``fp32_layers``, ``fp32_nodes``, ``keep_fp32``, ``patterns``."""
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix == ".json":
        data: Any = json.loads(Path(source).read_text())
    elif isinstance(source, (str, os.PathLike)):
        return [str(source)]
    else:
        data = list(source)
    if isinstance(data, dict):
        key = next((k for k in ("fp32_layers", "fp32_nodes", "keep_fp32", "patterns") if k in data), None)
        if key is None:
            raise ValueError("FP16 readiness JSON has none of the keys fp32_layers/fp32_nodes/keep_fp32/patterns")
        data = data[key]
    out: list[str] = []
    for item in data:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and ("pattern" in item or "name" in item):
            s = str(item.get("pattern") or item["name"])
            out.append(s if "pattern" in item else "^" + re.escape(s) + "$")
        else:
            raise ValueError(f"cannot read an FP32 layer pattern from {item!r}")
    return out


def fp32_patterns(fp32_layers: Sequence[Pattern | os.PathLike[str]] | str | os.PathLike[str] | None = None,
                  ) -> list[Pattern]:
    """The FP32 islands of an FP16 engine, the one rule for every caller (library and CLIs):

    ``None``: :data:`DEFAULT_FP32_PATTERNS`. Patterns (``op:Type`` or node-name regexes) replace the defaults.
    An FP16-readiness JSON (a ``.json`` path, what ``calibnet-export --check-fp16`` writes) always ADDS its
    flagged layers to the defaults (and to any patterns given with it)."""
    if fp32_layers is None:
        return list(DEFAULT_FP32_PATTERNS)
    items = [fp32_layers] if isinstance(fp32_layers, (str, os.PathLike)) else list(fp32_layers)
    out: list[Pattern] = []
    for it in items:
        if isinstance(it, (str, os.PathLike)) and Path(it).suffix == ".json":
            out = [*DEFAULT_FP32_PATTERNS, *out, *load_fp32_patterns(it)]
        else:
            out.append(it if isinstance(it, re.Pattern) else str(it))
    return list(dict.fromkeys(out))


def pattern_strings(patterns: Iterable[Pattern]) -> list[str]:
    """Patterns as strings (compiled regexes by their source), e.g. for a cache key or a sidecar."""
    return [p if isinstance(p, str) else p.pattern for p in patterns]


def _to_fp16_array(a: np.ndarray) -> tuple[np.ndarray, int]:
    clipped = int(np.count_nonzero(np.abs(a) > _FP16_MAX))
    return np.clip(a, -_FP16_MAX, _FP16_MAX).astype(np.float16), clipped


def convert_to_fp16(model: Any, fp32_patterns: Iterable[Pattern] = DEFAULT_FP32_PATTERNS,
                    keep_io_types: bool = True, include_sampling_cone: bool = True) -> tuple[Any, FP16Report]:
    """Return an FP16 copy of an ONNX ``ModelProto`` with FP32 islands, and a report.

    Float32 tensors computed by non-matching nodes become float16 (initializers converted, values clipped
    to the FP16 range); nodes matching ``fp32_patterns`` (and nodes with subgraphs) compute in FP32 with
    ``Cast`` nodes inserted on their boundaries. With ``keep_io_types`` graph inputs and outputs stay
    float32 (a Cast follows each input / precedes each output). With ``include_sampling_cone`` the nodes
    computing deformable sampling locations (:func:`sampling_cone`) are FP32 islands too. Custom-domain nodes
    whose output type shape inference cannot tell are assumed to output the precision they compute in.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    try:
        typed = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    except Exception:  # custom ops can make inference fail outright; fall back to declared types
        typed = m
    g = m.graph
    orig_type: dict[str, int] = {vi.name: vi.type.tensor_type.elem_type for vi in
                                 [*typed.graph.input, *typed.graph.value_info, *typed.graph.output]
                                 if vi.type.HasField("tensor_type")}
    inits = {t.name: t for t in g.initializer}
    orig_type.update({n: t.data_type for n, t in inits.items()})
    cur_type: dict[str, int] = {vi.name: orig_type.get(vi.name, 0) for vi in g.input}
    if not keep_io_types:
        for vi in g.input:
            if vi.type.tensor_type.elem_type == _FLOAT:
                vi.type.tensor_type.elem_type = cur_type[vi.name] = _FLOAT16
    cur_type.update({n: t.data_type for n, t in inits.items()})

    compiled = compile_patterns(fp32_patterns)
    cone = sampling_cone(m) if include_sampling_cone else set()
    report = FP16Report()
    new_nodes: list[Any] = []
    cast_cache: dict[tuple[str, int], str] = {}
    new_inits: list[Any] = []
    used_fp32_inits: set[str] = set()
    taken = {o for n in g.node for o in n.output} | {i.name for i in g.input} | set(inits)

    def unique(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    def as_type(tensor: str, want: int) -> str:
        """Name of ``tensor`` converted to ``want`` (cast node or converted initializer, created once)."""
        key = (tensor, want)
        if key in cast_cache:
            return cast_cache[key]
        if tensor in inits and want == _FLOAT16:
            arr, clipped = _to_fp16_array(numpy_helper.to_array(inits[tensor]))
            name = unique(tensor + "_fp16")
            new_inits.append(numpy_helper.from_array(arr, name))
            report.initializers_converted += 1
            report.clipped_values += clipped
        else:
            name = unique(tensor + ("_fp16" if want == _FLOAT16 else "_fp32"))
            new_nodes.append(helper.make_node("Cast", [tensor], [name], to=want, name=unique(f"Cast_{name}")))
            report.casts_inserted += 1
        cast_cache[key] = name
        cur_type[name] = want
        return name

    for idx, node in enumerate(g.node):
        island = node.op_type in _SUBGRAPH_OPS or node.name in cone or node_matches(node.name, node.op_type, compiled)
        target = _FLOAT if island else _FLOAT16
        if island:
            report.fp32_nodes.append(node.name or f"{node.op_type}#{idx}")
        else:
            report.fp16_nodes += 1
        fixed = _FP32_ONLY_INPUTS.get(node.op_type, set()) if node.domain in ("", "ai.onnx") else set()
        for i, inp in enumerate(node.input):
            if not inp:
                continue
            t = cur_type.get(inp, orig_type.get(inp, 0))
            if t not in (_FLOAT, _FLOAT16):
                continue
            want = _FLOAT if i in fixed else target
            if t != want:
                node.input[i] = as_type(inp, want)
            elif inp in inits:
                used_fp32_inits.add(inp)
        if not island:
            for a in node.attribute:
                if node.op_type == "Cast" and a.name == "to" and a.i == _FLOAT:
                    a.i = _FLOAT16
                elif node.op_type in ("Constant", "ConstantOfShape") and a.name == "value" \
                        and a.t.data_type == _FLOAT:
                    arr, clipped = _to_fp16_array(numpy_helper.to_array(a.t))
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
                    report.clipped_values += clipped
        new_nodes.append(node)
        for out in node.output:
            t = orig_type.get(out, 0)
            if t == 0:  # unknown (custom op): follows the node's compute precision if it reads floats
                reads_float = any(cur_type.get(i) in (_FLOAT, _FLOAT16) for i in node.input if i)
                t = target if reads_float else 0
            elif t in (_FLOAT, _FLOAT16):
                t = target
            cur_type[out] = t

    # graph outputs keep float32: rename the fp16 producer and cast back to the public name
    if keep_io_types:
        for out in g.output:
            if orig_type.get(out.name, _FLOAT) == _FLOAT and cur_type.get(out.name) == _FLOAT16:
                inner = unique(out.name + "_fp16out")
                for n in new_nodes:
                    for lst in (n.input, n.output):
                        for j, name in enumerate(lst):
                            if name == out.name:
                                lst[j] = inner
                new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=_FLOAT,
                                                  name=unique(f"Cast_{out.name}_out")))
                report.casts_inserted += 1
    else:
        for vi in g.output:
            if vi.type.tensor_type.elem_type == _FLOAT and cur_type.get(vi.name) == _FLOAT16:
                vi.type.tensor_type.elem_type = _FLOAT16

    del g.node[:]
    g.node.extend(new_nodes)
    converted = {name for name, want in cast_cache if want == _FLOAT16 and name in inits}
    keep_inits = [t for t in g.initializer if t.name in used_fp32_inits or t.name not in converted]
    del g.initializer[:]
    g.initializer.extend(keep_inits + new_inits)
    del g.value_info[:]
    with contextlib.suppress(Exception):
        m = onnx.shape_inference.infer_shapes(m, strict_mode=False)
    return m, report
