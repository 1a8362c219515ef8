"""calibnet's fused multi-scale deformable attention (MSDA) for OpenVINO's CPU: its build, its loading, and the
one decision "fused or decomposed" for a model file.

The kernel (C++, ``msda_cpu/``: AVX-512 with a portable fallback chosen at run time, FP32 and BF16 tensors,
parallel over queries with OpenVINO's threading) is an OpenVINO extension library: the operation
``MultiscaleDeformableAttnPlugin_TRT`` and the ONNX frontend's conversion rule for the TensorRT plugin node of
the same name (domain ``TRT``), so ``core.add_extension(library)`` lets OpenVINO read the TensorRT-flavoured
export (and INT8 IRs quantized from it) with one fused node per attention call.

- :func:`build_extension` builds it with cmake and the C++ compiler against the installed openvino wheel's
  CMake package into :func:`build_dir` (``msda_cpu/build`` in the package, or ``$CALIBNET_MSDA_BUILD_DIR``), a
  private folder (:func:`calibnet.runtime.core.cachedir.private_dir`: this user's, mode 0700, since a library
  loaded from it is code); nothing is rebuilt when the library there was built from the same sources for the same
  OpenVINO (a stamp file, which also records the library's sha256). ``./run`` calls it
  (``python -m calibnet.runtime.backends.openvino_msda``).
- :func:`extension_status`: whether the library is there, in a private folder, unchanged since it was built, and
  matches these sources and this OpenVINO; and why not.
- :func:`read_model`: the ``openvino.Model`` of a file and its :class:`MsdaRoute` (fused or decomposed, and
  why). A TensorRT-flavoured ONNX runs fused when the extension is available; otherwise the backend says why
  in one warning line and runs the graph's embedded reference body (GridSample, the same as the portable
  flavour). A portable ONNX has no plugin nodes: it runs decomposed. An IR runs as it was written (one holding
  the fused op needs the extension).

``$CALIBNET_OPENVINO_MSDA=decomposed`` makes every model that can run decomposed do so (for comparisons).
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.cachedir import file_sha256, private_dir
from ..core.contract import PLUGIN_NAME, ModelMetadata
from ..core.targets import install_hint, is_kind
from .base import BackendUnavailable
from .msda_inline import embedded_body, inline_plugin_nodes

__all__ = ["ExtensionStatus", "MsdaRoute", "MSDA_MODES", "SOURCE_DIR", "build_dir", "build_extension",
           "extension_status", "library_path", "read_model", "fused_node_names"]

log = logging.getLogger(__name__)

#: the kernel's sources (CMakeLists.txt, *.cpp, *.hpp), shipped in the package
SOURCE_DIR = Path(__file__).with_name("msda_cpu")
#: what ``msda=`` of the backend accepts: "auto" (fused when the extension is available), "fused" (required),
#: "decomposed" (the reference body even when the extension is available)
MSDA_MODES = ("auto", "fused", "decomposed")
_LIBRARY = "libcalibnet_msda.so"
_STAMP = "calibnet_msda.json"
_BUILD_HINT = "build it with: python -m calibnet.runtime.backends.openvino_msda (./run does)"
_BUILD_ENV = "CALIBNET_MSDA_BUILD_DIR"
_WARNED: set[str] = set()


@dataclass(frozen=True)
class ExtensionStatus:
    """Whether the fused-kernel library can be loaded here, and why (one line)."""

    available: bool
    reason: str
    library: Path | None = None


@dataclass(frozen=True)
class MsdaRoute:
    """How a model's deformable attention runs on OpenVINO: ``fused`` (calibnet's kernel, ``nodes`` of them) or
    decomposed (GridSample and its reduction), and why."""

    fused: bool
    reason: str
    nodes: int = 0

    @property
    def mode(self) -> str:
        """``"fused"`` or ``"decomposed"``."""
        return "fused" if self.fused else "decomposed"


def build_dir() -> Path:
    """Where the library is built and looked for: ``$CALIBNET_MSDA_BUILD_DIR`` or ``msda_cpu/build``."""
    return Path(os.environ.get(_BUILD_ENV) or SOURCE_DIR / "build")


def library_path() -> Path:
    """The library's path in :func:`build_dir` (it may not exist)."""
    return build_dir() / _LIBRARY


def _sources_digest() -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in SOURCE_DIR.iterdir() if p.suffix in (".cpp", ".hpp") or p.name == "CMakeLists.txt"):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        return None
    return ov


def _stamp(ov: Any) -> dict[str, str]:
    return {"openvino": ov.__version__, "sources": _sources_digest()}


def extension_status() -> ExtensionStatus:
    """Whether the built library exists in a private folder (this user's, not writable by others), unchanged since it
    was built (its recorded sha256), from these sources for this OpenVINO."""
    ov = _openvino()
    if ov is None:
        return ExtensionStatus(False, "OpenVINO is not installed")
    lib, stamp = library_path(), build_dir() / _STAMP
    if not lib.is_file() or not stamp.is_file():
        return ExtensionStatus(False, f"it is not built ({lib} is missing): {_BUILD_HINT}")
    try:
        private_dir(build_dir(), env=_BUILD_ENV)
    except PermissionError as exc:
        return ExtensionStatus(False, f"it is not loaded from there: {exc}")
    try:
        built = json.loads(stamp.read_text())
    except (OSError, ValueError):
        built = {}
    want = _stamp(ov)
    if built.get("openvino") != want["openvino"]:
        return ExtensionStatus(False, f"it was built for OpenVINO {built.get('openvino')}, this is {want['openvino']}: "
                                      f"rebuild it ({_BUILD_HINT})")
    if built.get("sources") != want["sources"]:
        return ExtensionStatus(False, f"it was built from other sources than {SOURCE_DIR}: rebuild it ({_BUILD_HINT})")
    if built.get("library_sha256") != file_sha256(lib):
        return ExtensionStatus(False, f"{lib} changed since it was built (its sha256 is not the recorded one): rebuild "
                                      f"it ({_BUILD_HINT})")
    return ExtensionStatus(True, f"{lib} (OpenVINO {want['openvino']})", lib)


def _tool(env: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((found for n in names if (found := shutil.which(n, path=env.get("PATH", ""))) is not None), None)


def build_extension(force: bool = False, env: dict[str, str] | None = None) -> ExtensionStatus:
    """Build the library into :func:`build_dir` unless it is up to date (``force`` rebuilds). Never raises for
    a missing compiler, cmake or OpenVINO CMake package: the status says what is missing (one line). ``env``:
    the build's environment (default ``os.environ``; ``CXX`` names the compiler)."""
    env = dict(os.environ if env is None else env)
    ov = _openvino()
    if ov is None:
        return ExtensionStatus(False, f"OpenVINO is not installed ({install_hint('openvino')})")
    if not force and (status := extension_status()).available:
        return status
    cmake_dir = Path(ov.__file__).parent / "cmake"
    if not (cmake_dir / "OpenVINOConfig.cmake").is_file():
        return ExtensionStatus(False, f"this OpenVINO install has no CMake package ({cmake_dir}/OpenVINOConfig.cmake "
                                      "is missing): install the openvino wheel from PyPI")
    cmake = _tool(env, ("cmake",))
    cxx = env.get("CXX") if env.get("CXX") and _tool(env, (env["CXX"],)) else _tool(env, ("c++", "g++", "clang++"))
    if cmake is None or cxx is None:
        missing = [what for what, found in (("no C++ compiler (c++, g++ or clang++)", cxx), ("no cmake", cmake))
                   if found is None]
        return ExtensionStatus(False, f"{' and '.join(missing)} on PATH to build it")
    try:
        out = private_dir(build_dir(), env=_BUILD_ENV)
    except PermissionError as exc:
        return ExtensionStatus(False, f"not built there: {exc}")
    tree = out / "cmake"
    tree.mkdir(parents=True, exist_ok=True)
    (out / _STAMP).unlink(missing_ok=True)
    log_file = out / "build.log"
    steps = [[cmake, "-S", str(SOURCE_DIR), "-B", str(tree), f"-DOpenVINO_DIR={cmake_dir}",
              f"-DCMAKE_CXX_COMPILER={cxx}", "-DCMAKE_BUILD_TYPE=Release",
              f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out}"],
             [cmake, "--build", str(tree), "-j", str(max(1, min(4, os.cpu_count() or 1)))]]
    with log_file.open("w") as logf:
        for step in steps:
            res = subprocess.run(step, stdout=logf, stderr=subprocess.STDOUT, env=env, check=False)
            if res.returncode:
                return ExtensionStatus(False, f"the build failed ({Path(step[0]).name} exit {res.returncode}; "
                                              f"log: {log_file})")
    if not library_path().is_file():
        return ExtensionStatus(False, f"the build made no {_LIBRARY} (log: {log_file})")
    (out / _STAMP).write_text(json.dumps({**_stamp(ov), "library_sha256": file_sha256(library_path())}))
    return extension_status()


def _kernel_isa(lib: Path) -> str:
    fn = ctypes.CDLL(str(lib)).calibnet_msda_isa
    fn.restype = ctypes.c_char_p
    return str(fn().decode())


def fused_node_names(model: Any) -> list[str]:
    """Friendly names of the fused MSDA nodes of an ``openvino.Model`` (or compiled runtime model)."""
    return [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == PLUGIN_NAME]


def _ir_has_fused_op(xml: Path) -> bool:
    needle = f'type="{PLUGIN_NAME}"'.encode()
    with xml.open("rb") as f:
        tail = b""
        while chunk := f.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


def _decomposed_onnx(core: Any, path: Path) -> Any:
    """The TensorRT-flavoured graph with its embedded reference body inlined (the portable computation)."""
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable(f"{path}: running its MSDA plugin nodes without calibnet's fused kernel needs the "
                                 "onnx package (pip install onnx) to inline their reference body") from None
    proto = onnx.load(str(path))
    body = embedded_body(proto)
    if body is None:
        raise BackendUnavailable(f"{path}: its {PLUGIN_NAME} nodes have no reference body (exported with "
                                 "--no-reference-body) and calibnet's fused kernel is not available: re-export "
                                 "with the body, or build the kernel")
    data = inline_plugin_nodes(proto, body).SerializeToString()
    del proto
    return core.read_model(io.BytesIO(data))


def read_model(core: Any, path: Path, metadata: ModelMetadata, msda: str = "auto") -> tuple[Any, MsdaRoute]:
    """The ``openvino.Model`` of ``path`` (an ONNX file or IR written by calibnet) read by ``core``, and how its
    deformable attention runs. ``msda``: one of :data:`MSDA_MODES` (default ``$CALIBNET_OPENVINO_MSDA`` or auto).
    Loads the extension into ``core`` when the model runs fused. Raises :class:`BackendUnavailable` (one line)
    when the file cannot run the way asked."""
    msda = (os.environ.get("CALIBNET_OPENVINO_MSDA") or "auto") if msda == "auto" else msda
    if msda not in MSDA_MODES:
        raise ValueError(f"unknown msda mode {msda!r}: choose from {', '.join(MSDA_MODES)}")
    ir = is_kind(path, "openvino")
    has_plugin = _ir_has_fused_op(path) if ir else metadata.flavor == "tensorrt"
    if not has_plugin:
        if msda == "fused":
            raise BackendUnavailable(f"{path}: msda='fused' asked, but the file has no {PLUGIN_NAME} nodes (export "
                                     "the tensorrt flavour: calibnet-export --flavor tensorrt)")
        what = "an IR with" if ir else "the portable ONNX flavour:"
        return core.read_model(str(path)), MsdaRoute(False, f"{what} MSDA as GridSample ops (the fused kernel runs "
                                                            "from the tensorrt flavour: calibnet-export --flavor "
                                                            "tensorrt)")
    if msda == "decomposed":
        return _decomposed_onnx(core, path), MsdaRoute(False, "msda='decomposed' asked: running the graph's "
                                                              "reference body")
    status = extension_status()
    if status.available and status.library is not None:
        core.add_extension(str(status.library))
        model = core.read_model(str(path))
        nodes = len(fused_node_names(model))
        return model, MsdaRoute(True, f"{nodes} {PLUGIN_NAME} nodes run calibnet's fused CPU kernel "
                                      f"({_kernel_isa(status.library)})", nodes)
    if msda == "fused" or ir:
        raise BackendUnavailable(f"{path}: {'it holds' if ir else 'msda=fused asked for'} calibnet's fused MSDA "
                                 f"op, which is not available: {status.reason}")
    reason = f"calibnet's fused MSDA kernel is not available ({status.reason}): running the graph's reference body"
    if (warning := f"OpenVINO: {reason} (decomposed, slower)") not in _WARNED:  # once per reason
        _WARNED.add(warning)
        log.warning(warning)
    return _decomposed_onnx(core, path), MsdaRoute(False, reason)


def main(argv: list[str] | None = None) -> int:
    """``python -m calibnet.runtime.backends.openvino_msda [--force]``: build the library if it is not up to
    date; one line on stdout; exit 0 built or up to date, 1 not built (the line says why)."""
    args = sys.argv[1:] if argv is None else argv
    if set(args) - {"--force"}:
        print("usage: python -m calibnet.runtime.backends.openvino_msda [--force]", file=sys.stderr)
        return 2
    was = extension_status()
    status = build_extension(force="--force" in args)
    if status.available and status.library is not None:
        verb = "up to date" if was.available and "--force" not in args else "built"
        print(f"calibnet fused MSDA kernel for OpenVINO {verb}: {status.library} ({_kernel_isa(status.library)})")
        return 0
    print(f"calibnet fused MSDA kernel not built: {status.reason}; OpenVINO runs the decomposed graph")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
