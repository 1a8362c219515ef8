"""The import direction of the whole tree, read from the source (not trusted from a comment).

The layers of README's Architecture table, bottom first; each package may import only the layers its row names
(module-level and in-function imports alike, also ``importlib.import_module`` with a constant name):

- runtime (``calibnet.runtime``): nothing above it; torch and the model side only lazily, in the torch backend;
- engines: the runtime;
- model side (config, modeling, data, training, evaluation, checkpoint, builder...), analysis, serving: the
  runtime; analysis also the data-set registry and config;
- export: the runtime, engines, the model side and serving (the Triton repository writer);
- benchmarks: everything below it;
- the command-line layer (``calibnet.cli``, and every ``__main__``): everything.

In-function imports are allowed only where they defer an optional dependency: an optional package (torch, onnx,
openvino, ...) or a calibnet module that imports one when it is loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"calibnet": "calibnet", "export": "calibnet.export", "engines": "calibnet.engines",
           "runtime": "calibnet.runtime", "benchmarks": "calibnet.benchmarks"}

RUNTIME = ("calibnet.runtime",)
ENGINES = ("calibnet.engines",)
ROOT = "calibnet!"  # the package itself (``import calibnet``), not its sub-packages
UTIL = ("calibnet.lazy",)  # PEP 562 lazy attributes, for every package's __init__
MODEL = ("calibnet.config", "calibnet.modeling", "calibnet.data", "calibnet.training", "calibnet.evaluation",
         "calibnet.checkpoint", "calibnet.builder", "calibnet.params", ROOT) + UTIL
ANALYSIS = ("calibnet.analysis",)
SERVING = ("calibnet.serving",)
EXPORT = ("calibnet.export",)
BENCHMARKS = ("calibnet.benchmarks",)
CLI = ("calibnet.cli",)
#: layer -> (its packages, the packages it may import besides its own)
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runtime": (RUNTIME, ()),
    "engines": (ENGINES, RUNTIME),
    "model side": (MODEL, RUNTIME),
    "analysis": (ANALYSIS, RUNTIME + UTIL + ("calibnet.data", "calibnet.config", "calibnet.evaluation", ROOT)),
    "serving": (SERVING, RUNTIME + UTIL),
    "export": (EXPORT, RUNTIME + ENGINES + MODEL + SERVING),
    "benchmarks": (BENCHMARKS, RUNTIME + ENGINES + MODEL + ANALYSIS + SERVING + EXPORT),
    "command line": (CLI, RUNTIME + ENGINES + MODEL + ANALYSIS + SERVING + EXPORT + BENCHMARKS),
}
#: the torch backend may reach the model side (lazily: the test below checks it stays lazy)
RUNTIME_TORCH_BACKEND = "calibnet.runtime.backends.torch_backend"
#: optional dependencies: importing one inside a function is how a module stays importable without it
OPTIONAL = ("torch", "onnx", "onnxslim", "onnxruntime", "openvino", "nncf", "tensorrt", "tensorrt_bindings", "cuda",
            "pycuda", "ray", "pytriton", "tritonclient", "matplotlib", "scipy", "fvcore", "tensorboard",
            "rosbags", "pyrealsense2", "rerun", "triton_python_backend_utils")


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or inside one (a prefix ending in ``!``: that module only)."""
    return any(name == p[:-1] if p.endswith("!") else name == p or name.startswith(p + ".") for p in prefixes)


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).parts)
    mod = FOLDERS[parts[0]].split(".") + parts[1:]
    mod[-1] = mod[-1][:-3]
    return ".".join(mod[:-1] if mod[-1] == "__init__" else mod)


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, str]]:
    """``(absolute module, where)`` of every import of ``source``; ``where`` is ``top`` (module level, also under a
    module-level ``if``/``try``), ``typing`` (under ``if TYPE_CHECKING``), ``main`` (under ``if __name__ ==
    "__main__"``) or ``function``."""
    tree = ast.parse(source)
    package = module if is_package else module.rsplit(".", 1)[0]
    found: list[tuple[str, str]] = []

    def absolute(level: int, name: str | None) -> str:
        if not level:
            return name or ""
        base = package.split(".")[: len(package.split(".")) - (level - 1)]
        return ".".join([*base, *([name] if name else [])])

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and where != "main":
                here = "function"
            elif isinstance(child, ast.If) and where == "top":
                test = ast.unparse(child.test)
                here = "typing" if "TYPE_CHECKING" in test else "main" if "__main__" in test else where
            if isinstance(child, ast.Import):
                found.extend((a.name, here) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                mod = absolute(child.level, child.module)
                found.append((mod, here))
                found.extend((f"{mod}.{a.name}", here) for a in child.names)  # from calibnet import engines
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", ""))
                  == "import_module" and child.args and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)):
                found.append((child.args[0].value, "function"))
            visit(child, here)

    visit(tree, "top")
    return found


def _lazy_table(source: str) -> dict[str, str]:
    """``{attribute: module}`` of a package's ``_LAZY`` table (names loaded on first use, :mod:`calibnet.lazy`)."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_LAZY" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {name: module for module, names in table.items() for name in names}
    return {}


LAZY: dict[str, str] = {}  # "package.attribute" -> the module that defines it


def product_modules(root: Path = REPO) -> dict[str, tuple[Path, list[tuple[str, str]]]]:
    """Every product module under ``root``: its file and its imports."""
    out = {}
    for folder in FOLDERS:
        for f in sorted((root / folder).rglob("*.py")):
            name = module_name(f, root)
            source = f.read_text()
            out[name] = (f, imports(source, name, f.name == "__init__.py"))
            if f.name == "__init__.py":
                LAZY.update({f"{name}.{attr}": mod for attr, mod in _lazy_table(source).items()})
    return out


def _known(name: str, modules: dict) -> str | None:
    """The calibnet module an imported name refers to (``from pkg import name`` may name a module, an attribute
    or a lazy attribute, which loads its module)."""
    name = LAZY.get(name, name)
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _loaded(name: str, modules: dict) -> list[str]:
    """The calibnet modules importing ``name`` loads: the module and its parent packages."""
    known = _known(name, modules)
    parts = known.split(".") if known else []
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in modules]


def heavy_modules(modules: dict) -> set[str]:
    """calibnet modules that import an optional dependency when loaded (directly, through another module or
    through a parent package's ``__init__``)."""
    heavy = {m for m, (_, imps) in modules.items() if any(_under(n, OPTIONAL) for n, w in imps if w == "top")}
    changed = True
    while changed:
        changed = False
        for m, (_, imps) in modules.items():
            loads = {k for n, w in imps if w == "top" for k in _loaded(n, modules)} | set(_loaded(m, modules))
            if m not in heavy and any(k in heavy and k != m for k in loads):
                heavy.add(m)
                changed = True
    return heavy


def layer_of(module: str) -> str | None:
    best = None
    for name, (packages, _) in LAYERS.items():
        for p in packages:
            if _under(module, (p,)) and (best is None or len(p) > best[1]):
                best = (name, len(p))
    return best[0] if best else None


def violations(modules: dict) -> list[str]:
    """Every import that breaks the layering or defers a module that needs no deferring."""
    heavy = heavy_modules(modules)
    bad = []
    for m, (f, imps) in modules.items():
        layer = layer_of(m)
        if layer is None:
            bad.append(f"{m}: in no layer of the table")
            continue
        own, allowed = LAYERS[layer]
        entry = f.name == "__main__.py"
        for name, where in imps:
            if not _under(name, ("calibnet",)):
                if where == "function" and not _under(name, OPTIONAL) and not entry:
                    bad.append(f"{m}: imports {name} inside a function (not an optional dependency)")
                continue
            target = _known(name, modules) or name
            if entry or where == "main":
                continue  # entry points belong to the command-line layer
            if m == RUNTIME_TORCH_BACKEND and _under(target, MODEL):
                if where != "function":
                    bad.append(f"{m}: imports {target} at module level (the model side must stay lazy)")
                continue
            if not (_under(target, own) or _under(target, allowed)) and layer_of(target) != layer:
                bad.append(f"{m} ({layer}): imports {target} ({layer_of(target)})")
            elif where == "function" and not set(_loaded(target, modules)) & heavy and target != m:
                bad.append(f"{m}: imports {target} inside a function, though it needs no optional dependency")
    return bad


def test_the_whole_tree_keeps_its_layers():
    modules = product_modules()
    assert len(modules) > 100 and all(layer_of(m) for m in modules), [m for m in modules if not layer_of(m)]
    bad = violations(modules)
    assert not bad, "\n".join(bad)


def test_the_runtime_never_imports_torch_at_load_time():
    modules = product_modules()
    heavy = heavy_modules(modules)
    assert not {m for m in heavy if _under(m, RUNTIME)}, sorted(m for m in heavy if _under(m, RUNTIME))
    assert "calibnet.builder" in heavy and "calibnet.export.onnx_export" in heavy  # the check sees torch users


def _tree(tmp_path: Path, files: dict[str, str]) -> dict:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(exist_ok=True)
    return product_modules(tmp_path)


@pytest.mark.parametrize("rel, source", [
    ("runtime/apps/infer.py", "def f():\n    from calibnet.serving.ray_batch import ray_batch\n"),  # was runtime/cli.py
    ("calibnet/serving/triton_repo.py", "from calibnet.export.onnx_export import export_onnx\n"),
    ("runtime/core/feeds.py", "def f():\n    from ...export import verify\n"),
    ("runtime/core/runtime.py", "import importlib\nm = importlib.import_module('calibnet.engines')\n"),
    ("runtime/backends/torch_backend.py", "from calibnet.builder import build_model\n"),
    ("calibnet/serving/server.py", "from calibnet.cli.app import run_cli\n"),
    ("calibnet/serving/client.py", "from calibnet.benchmarks.loadgen import run_load\n"),
    ("calibnet/data/registry.py", "def f():\n    import json\n"),
    ("calibnet/evaluation/runner.py", "def f():\n    from calibnet.runtime.core import readers\n"),
])
def test_the_check_catches(tmp_path, rel, source):
    """Upward imports (among them the one issue 20 found in the runtime: its infer command importing the Ray job)
    and needless in-function imports."""
    assert violations(_tree(tmp_path, {rel: source, "export/__init__.py": "", "calibnet/serving/ray_batch.py": "",
                                       "runtime/core/readers.py": ""}))


def test_the_check_allows_what_the_layers_allow(tmp_path):
    files = {"runtime/backends/torch_backend.py": "def f():\n    import torch\n    from calibnet.builder import x\n",
             "calibnet/builder.py": "import torch\n",
             "engines/__main__.py": "from calibnet.cli.engines import main\n",
             "benchmarks/tool.py": "if __name__ == '__main__':\n    from calibnet.cli.tool import main\n",
             "calibnet/cli/engines.py": "def f():\n    from calibnet.builder import x\n",
             "calibnet/cli/tool.py": "", "export/api.py": "from calibnet.serving.triton_repo import w\n",
             "calibnet/serving/triton_repo.py": "from calibnet.runtime.core import targets\n",
             "runtime/core/targets.py": ""}
    assert violations(_tree(tmp_path, files)) == []
