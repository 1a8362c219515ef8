"""The table of targets: every backend the runtime can run a model on, in one place.

One :class:`Target` row per backend says which model files it opens (their suffixes: this module is the only
place in calibnet that spells them), which precisions it runs, the pip extra that installs it, how a model is
opened on it, how the metadata of its files is read and written, how a file of its kind is checked from its
bytes, and which artifact :func:`calibnet.export.export` makes for it. Everything that lists or picks a backend
reads this table: :meth:`Runtime.open <calibnet.runtime.core.runtime.Runtime.open>`, :func:`read_metadata`,
:func:`calibnet.runtime.core.filecheck.file_problem`, the bench's ``--backends``, eval's and serve's
``--backend`` and every help text.

Adding a backend is one module (a class with ``name``, ``metadata``, ``input_names``, ``output_names``,
``run(feeds)`` and ``close()``: :class:`~calibnet.runtime.backends.base.Backend`) plus one row here (or
:func:`register` at run time). Functions are named ``"module:attribute"`` and imported when first used, so the
table itself imports no backend library.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import Backend, BackendUnavailable
from .contract import ModelMetadata

__all__ = ["Target", "TARGETS", "register", "get_target", "target_for_file", "resolve_target", "open_backend",
           "read_metadata", "bench_rows", "suffixes_help", "kind_of", "is_kind", "install_hint", "CHECKPOINT_SUFFIX",
           "ONNX_SUFFIX", "IR_SUFFIX", "ENGINE_SUFFIX"]


@dataclass(frozen=True)
class Target:
    """One backend and the model files it runs."""

    name: str
    #: ``"module:callable"``: ``callable(path, **options)`` returns the :class:`Backend` for a model file
    opener: str
    #: file types that select this backend (the first is the one calibnet writes for it)
    suffixes: tuple[str, ...] = ()
    #: further file types it opens when named (``backend=``), e.g. OpenVINO reads ONNX files too
    also_opens: tuple[str, ...] = ()
    #: what ``precision=`` accepts (the first is the default); the bench makes one row per entry of ``bench``
    precisions: tuple[str, ...] = ("fp32",)
    bench: tuple[str, ...] = ("fp32",)
    #: the pip extra that installs it (``""``: the base install)
    extra: str = ""
    #: keyword options the opener accepts besides the path (the command line passes only these)
    options: tuple[str, ...] = ()
    summary: str = ""
    #: ``"module:callable"`` reading :class:`ModelMetadata` from a file of this kind (``""``: it carries none)
    metadata_reader: str = ""
    #: ``"module:callable"`` storing metadata in an artifact of this kind (used by the exporter that makes it)
    metadata_writer: str = ""
    #: ``"module:callable"``: ``check(path) -> str | None``, what is wrong with a file of this kind from its bytes
    file_check: str = ""
    #: the :func:`calibnet.export.export` target that makes its file, per precision (``""``: the in-memory model)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    #: the ONNX graph flavour its files are made from (``portable`` or ``tensorrt``; an artifact that needs a
    #: flavour of its own, ``calibnet.export.api.GRAPH_FLAVOR``, is made from that one)
    flavor: str = "portable"

    def artifact(self, precision: str | None = None) -> str:
        """The export target that makes this backend's model file at ``precision``."""
        return self.artifacts.get(precision or self.precisions[0], self.artifacts.get("*", ""))


ONNX_SUFFIX, ENGINE_SUFFIX, IR_SUFFIX, CHECKPOINT_SUFFIX = ".onnx", ".engine", ".xml", ".pth"
_RUNTIME = "calibnet.runtime"

#: the rows, by backend name (the order of help texts and the bench)
TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("onnxruntime", f"{_RUNTIME}.backends.onnxruntime:OnnxRuntimeBackend", (ONNX_SUFFIX,),
           options=("threads", "providers", "fp16", "cache_dir", "session_options", "device"),
           summary="ONNX Runtime (CPU; CUDA / TensorRT providers with onnxruntime-gpu)",
           metadata_reader=f"{_RUNTIME}.core.contract:read_onnx_metadata",
           metadata_writer=f"{_RUNTIME}.core.contract:set_onnx_metadata",
           file_check=f"{_RUNTIME}.core.filecheck:onnx_problem", artifacts={"*": "onnx"}),
    Target("openvino", f"{_RUNTIME}.backends.openvino:OpenVinoBackend", (IR_SUFFIX,), also_opens=(ONNX_SUFFIX,),
           precisions=("auto", "f32", "bf16", "int8"), bench=("f32", "bf16", "int8"), extra="openvino",
           options=("precision", "threads", "cache_dir", "msda", "profile"),
           summary="OpenVINO CPU: FP32, BF16, INT8 IR",
           metadata_reader=f"{_RUNTIME}.backends.openvino:read_ir_metadata",
           metadata_writer=f"{_RUNTIME}.backends.openvino:write_ir_metadata",
           # the TensorRT flavour: its plugin nodes run calibnet's fused MSDA kernel where it is built, their
           # reference body elsewhere (backends/openvino_msda.py decides)
           artifacts={"*": "onnx", "int8": "openvino-int8"}, flavor="tensorrt"),
    Target("tensorrt", f"{_RUNTIME}.backends.tensorrt:TensorRTBackend", (ENGINE_SUFFIX, ".plan"),
           precisions=("fp16", "fp32"), bench=("fp16",), extra="tensorrt",
           summary="TensorRT engine (NVIDIA GPU)",
           metadata_reader=f"{_RUNTIME}.core.sidecar:read_engine_metadata",
           metadata_writer=f"{_RUNTIME}.core.sidecar:write_sidecar",
           file_check=f"{_RUNTIME}.core.filecheck:engine_problem", artifacts={"*": "engine"}),
    Target("torch", f"{_RUNTIME}.backends.torch_backend:open_checkpoint", (CHECKPOINT_SUFFIX, ".pt", ".pkl"),
           extra="torch", options=("config", "device", "threads"),
           summary="PyTorch reference: a checkpoint, eager model",
           file_check=f"{_RUNTIME}.core.filecheck:checkpoint_problem", artifacts={"*": ""}),
)}


def register(target: Target) -> Target:
    """Add (or replace) a row of the table at run time; returns it."""
    TARGETS[target.name] = target
    return target


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_target(name: str) -> Target:
    """The row named ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return TARGETS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}: choose from {', '.join(TARGETS)}") from None


def kind_of(path: str | os.PathLike[str]) -> Target | None:
    """The backend whose own file type ``path`` has (None for another suffix)."""
    ext = Path(path).suffix.lower()
    return next((t for t in TARGETS.values() if ext in t.suffixes), None)


def is_kind(path: str | os.PathLike[str], name: str) -> bool:
    """Whether ``path`` is a file of backend ``name``'s own type (e.g. an OpenVINO IR for ``"openvino"``)."""
    target = kind_of(path)
    return target is not None and target.name == name


def target_for_file(path: str | os.PathLike[str]) -> Target:
    """The backend a model file's type selects; ``ValueError`` for a type no row opens (no guessing)."""
    target = kind_of(path)
    if target is None:
        ext = Path(path).suffix.lower()
        raise ValueError(f"{path}: unknown model type {ext or '(no suffix)'!r}: use {suffixes_help()} or name the "
                         "backend")
    return target


def resolve_target(path: str | os.PathLike[str], backend: str | None = None) -> Target:
    """``backend``'s row if given, else the one the file type selects."""
    return get_target(backend) if backend else target_for_file(path)


def install_hint(extra: str = "") -> str:
    """The command that installs calibnet's optional ``extra`` (``""``: the base install): from the checkout, since
    calibnet is on no package index (a ``calibnet[extra]`` there would be someone else's package)."""
    spec = f".[{extra}]" if extra else "."
    return f'pip install "{spec}" (in the calibnet checkout)'


def open_backend(path: str | os.PathLike[str], backend: str | None = None, **options: Any) -> Backend:
    """The :class:`Backend` running model file ``path`` (see :func:`resolve_target`). A backend whose library is
    not installed raises :class:`BackendUnavailable` with the install hint."""
    target = resolve_target(path, backend)
    try:
        opener: Callable[..., Backend] = _load(target.opener)
    except ImportError as exc:
        hint = install_hint(target.extra)
        raise BackendUnavailable(f"the {target.name} backend is unavailable ({exc}): {hint}") from exc
    return opener(Path(path), **options)


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The calibnet metadata of an exported model file, read by its kind's reader (an ONNX file's
    ``metadata_props``, an engine's JSON sidecar, an IR's ``rt_info``); ``ValueError`` when the file carries
    none or no backend reads its type."""
    target = target_for_file(path)
    if not target.metadata_reader:
        raise ValueError(f"{path}: a {target.name} file carries no exported-model metadata")
    reader: Callable[[str | os.PathLike[str]], ModelMetadata] = _load(target.metadata_reader)
    return reader(path)


def check_file(path: Path) -> str | None:
    """What the file's kind check finds wrong with ``path`` (None: nothing, or no check for its kind)."""
    target = kind_of(path)
    return _load(target.file_check)(path) if target is not None and target.file_check else None


def bench_rows(names: Iterable[str] | None = None) -> dict[str, tuple[Target, str]]:
    """``{row name: (target, precision)}`` of the bench rows, in table order (``names``: only these); a row is
    named after its backend, with the precision when the backend has several rows."""
    rows = {t.name if len(t.bench) <= 1 else f"{t.name}-{p}": (t, p) for t in TARGETS.values() for p in t.bench}
    return rows if names is None else {n: rows[n] for n in names}


def suffixes_help(backends: Iterable[str] | None = None) -> str:
    """``".onnx (onnxruntime), .xml (openvino), ..."``: the file types and the backend each selects."""
    rows = [TARGETS[n] for n in backends] if backends is not None else TARGETS.values()
    return ", ".join(f"{'/'.join(t.suffixes)} ({t.name})" for t in rows if t.suffixes)
