"""The import direction, read from the source (not trusted from a comment): the runtime is the bottom layer.

Nothing under runtime/ imports engines/ or export/ (relative or absolute, at module level or inside a
function, or by name through importlib), nor calibnet's torch code or torch; the one exception is the torch
backend, which may import torch and the model lazily (inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: never, anywhere under runtime/
FORBIDDEN = ("calibnet.engines", "calibnet.export", "engines", "export")
#: only lazily, and only in runtime/backends/torch_backend.py
TORCH_SIDE = ("torch", "calibnet.modeling", "calibnet.builder", "calibnet.checkpoint", "calibnet.config",
              "calibnet.training", "calibnet.data", "calibnet.evaluation", "calibnet.benchmarks")
LAZY_TORCH_ALLOWED = {"backends/torch_backend.py"}


def _imports(source: str, module: str) -> list[tuple[str, bool]]:
    """(absolute module name, at module level?) of every import in ``source`` (the module ``module``),
    including ``importlib.import_module("...")`` calls with a constant name."""
    tree = ast.parse(source)
    package = module.rsplit(".", 1)[0]
    top_level = set(map(id, tree.body))
    found: list[tuple[str, bool]] = []

    def absolute(level: int, name: str | None) -> str:
        if not level:
            return name or ""
        base = package.split(".")[: len(package.split(".")) - (level - 1)]
        return ".".join([*base, *([name] if name else [])])

    for node in ast.walk(tree):
        at_top = id(node) in top_level
        if isinstance(node, ast.Import):
            found += [(a.name, at_top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = absolute(node.level, node.module)
            found.append((mod, at_top))
            found += [(f"{mod}.{a.name}", at_top) for a in node.names]  # from calibnet import engines
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, False))
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(source: str, rel: str) -> list[str]:
    """The imports of runtime file ``rel`` (path below runtime/) that break the layering."""
    module = "calibnet.runtime." + rel[:-3].replace("/", ".")
    bad = []
    for name, at_top in _imports(source, module):
        if _under(name, FORBIDDEN):
            bad.append(f"{rel}: imports {name}")
        elif _under(name, TORCH_SIDE) and (at_top or rel not in LAZY_TORCH_ALLOWED):
            bad.append(f"{rel}: imports {name}" + (" at module level" if at_top else ""))
    return bad


def test_runtime_imports_nothing_above_it():
    files = sorted((REPO / "runtime").rglob("*.py"))
    assert len(files) > 15
    bad = [v for f in files for v in violations(f.read_text(), f.relative_to(REPO / "runtime").as_posix())]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source, rel", [
    ("from ...engines.sidecar import read_sidecar\n", "backends/tensorrt.py"),
    ("def f():\n    from ..export import verify\n", "feeds.py"),
    ("import calibnet.engines.cache\n", "runtime.py"),
    ("from calibnet import export\n", "runtime.py"),
    ("import importlib\nm = importlib.import_module('calibnet.engines')\n", "runtime.py"),
    ("import torch\n", "backends/torch_backend.py"),
    ("def f():\n    import torch\n", "postprocess.py"),
])
def test_the_check_catches_upward_imports(source, rel):
    assert violations(source, rel)


def test_the_check_allows_the_lazy_torch_backend():
    src = "from ..contract import ModelMetadata\ndef f():\n    import torch\n    from calibnet.builder import x\n"
    assert violations(src, "backends/torch_backend.py") == []
