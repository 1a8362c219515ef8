"""mypy over the TensorRT code against tensorrt-stubs (part of the test command, so CI runs it)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
from tensorrt_stubs import write_package_view, write_stubs


def _have(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not (_have("mypy") and _have("tensorrt-stubs")),
    reason="mypy or tensorrt-stubs not installed (./run installs both: pip install --no-deps tensorrt-stubs)",
)

MODULES = ["-p", "calibnet.engines", "-p", "calibnet.runtime.backends.tensorrt",
           "-p", "calibnet.runtime.backends.cuda_buffers", "-p", "calibnet.runtime.backends.tensorrt_deps",
           "-p", "calibnet.runtime.core.sidecar", "-p", "calibnet.runtime.core.profiles"]


def _mypy(typings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MYPYPATH": str(typings)}
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", *args], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def typings(tmp_path_factory):
    out = tmp_path_factory.mktemp("typings")
    write_stubs(out)
    write_package_view(out)
    return out


@pytest.mark.slow
def test_engines_typecheck_against_tensorrt_stubs(typings):
    res = _mypy(typings, *MODULES)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_mypy_catches_a_misspelled_tensorrt_attribute(typings, tmp_path):
    bad = tmp_path / "bad_trt.py"
    bad.write_text(
        "import tensorrt as trt\n\n\n"
        "def run(ctx: trt.IExecutionContext, stream: int) -> bool:\n"
        "    return ctx.execute_async_v2([], stream)\n"
    )
    res = _mypy(typings, str(bad))
    assert res.returncode != 0
    assert "execute_async_v2" in res.stdout
