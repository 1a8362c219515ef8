"""Write a mypy-usable copy of the ``tensorrt-stubs`` package (10.13) into a folder for ``mypy_path``.

The published stubs cannot be used as installed: they sit in ``site-packages/tensorrt`` without a
``py.typed`` marker (mypy skips them) and contain Python syntax errors (parameters named ``in``, a
parameter without default after defaulted ones, ``...`` used as a type, the undefined name ``capsule``).
A test helper (not product code): it copies them and repairs exactly those problems, and
``tests/engines/test_typecheck.py`` runs mypy over the engine code with the result on ``MYPYPATH``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

__all__ = ["find_stub_root", "repair_stub_text", "write_stubs", "write_package_view"]

_PACKAGES = ("tensorrt", "tensorrt_bindings")


def find_stub_root() -> Path:
    """The site-packages folder holding ``tensorrt/__init__.pyi`` from tensorrt-stubs."""
    for entry in sys.path:
        p = Path(entry) / "tensorrt" / "__init__.pyi"
        if p.is_file():
            return p.parent.parent
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec and spec.origin:
        return Path(spec.origin).parent.parent
    raise FileNotFoundError("tensorrt-stubs is not installed: pip install --no-deps tensorrt-stubs")


def _split_params(params: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in params:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*(?:->.*)?:\s*)$")


def _fix_defaults(line: str) -> str:
    m = _DEF.match(line)
    if not m:
        return line
    params = _split_params(m.group(2))
    seen_default, fixed = False, []
    for p in params:
        s = p.strip()
        if s == "*":  # keyword-only parameters may go without defaults
            seen_default = False
        elif "=" in s:
            seen_default = True
        elif seen_default and not s.startswith("*"):
            p = p + " = ..."
        fixed.append(p)
    return m.group(1) + ",".join(fixed) + m.group(3)


def repair_stub_text(text: str) -> str:
    """Repair one .pyi file's text (see the module docstring); the result parses with ``ast``."""
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("def "):
            line = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", line)
            line = re.sub(r"\bbool\b", "builtins.bool", line)  # tensorrt.bool (a DataType) shadows the builtin
            line = re.sub(r"->\s*\.\.\.\s*:", "-> typing.Any:", line)
            line = re.sub(r":\s*\.\.\.(\s*[,)=])", r": typing.Any\1", line)
            line = _fix_defaults(line)
        elif re.match(r"^\s+\w+: \.\.\.\s*$", line):
            line = line.replace(": ...", ": typing.Any")
        elif re.match(r"^\s+\w+: .*\bbool\b", line):
            line = re.sub(r"\bbool\b", "builtins.bool", line)
        line = line.replace("import tensorrt_libs as tensorrt_libs", "tensorrt_libs: typing.Any")
        lines.append(line)
    header = ["import builtins", "import typing", "capsule: typing.TypeAlias = typing.Any"]
    at = 1 if lines and lines[0].startswith("from __future__") else 0  # after a __future__ import
    out = "\n".join([*lines[:at], *header, *lines[at:]]) + "\n"
    ast.parse(out)
    return out


def write_stubs(dest: str | Path, root: Path | None = None) -> list[Path]:
    """Copy and repair the stubs of ``tensorrt`` and ``tensorrt_bindings`` into ``dest``; returns the files."""
    root = root or find_stub_root()
    dest = Path(dest)
    written = []
    for pkg in _PACKAGES:
        for src in sorted((root / pkg).rglob("*.pyi")):
            target = dest / src.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(repair_stub_text(src.read_text()))
            written.append(target)
    if not written:
        raise FileNotFoundError(f"no .pyi files under {root}/tensorrt*")
    return written


def write_package_view(dest: str | Path, repo: Path | None = None) -> Path:
    """Make ``dest/calibnet`` a package view of the repository's mapped folders for mypy.

    pyproject maps ``engines/`` and ``runtime/`` into ``calibnet.*`` (setuptools ``package-dir``), which mypy
    cannot follow through the editable-install finder; symlinks ``dest/calibnet/{engines,runtime}`` give
    mypy the installed layout, so ``mypy -p calibnet.engines`` resolves the relative imports."""
    repo = repo or Path(__file__).resolve().parents[2]
    pkg = Path(dest) / "calibnet"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.pyi").write_text("")
    for name in ("engines", "runtime"):
        link = pkg / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(repo / name, target_is_directory=True)
    return pkg
