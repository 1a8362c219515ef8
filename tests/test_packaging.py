"""Packaging: the namespace mapping, and that the runtime side never imports torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_without_torch

REPO = Path(__file__).resolve().parents[1]


def test_import_calibnet_and_runtime_without_torch(tmp_path):
    res = run_without_torch(
        "import calibnet, calibnet.runtime, calibnet.engines\n"
        "cfg = calibnet.CalibNetConfig()\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    calibnet.CalibNet\n"
        "except ImportError as e:\n"
        "    print('lazy-ok', e)\n",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "lazy-ok" in res.stdout


@pytest.mark.slow
def test_wheel_maps_top_level_folders_into_namespace(tmp_path):
    """``pip install .`` (a wheel) holds calibnet.export/engines/runtime/benchmarks and imports from
    another directory."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("calibnet-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in ("calibnet/__init__.py", "calibnet/runtime/__init__.py", "calibnet/export/__init__.py",
                "calibnet/engines/__init__.py", "calibnet/benchmarks/__init__.py"):
        assert pkg in names, pkg
    assert not any(n.startswith(("runtime/", "export/", "engines/", "tests/")) for n in names)
    # the fused MSDA kernel's sources ship (python -m calibnet.runtime.backends.openvino_msda builds them), its
    # build output does not
    kernel = "calibnet/runtime/backends/msda_cpu/"
    assert {kernel + f for f in ("CMakeLists.txt", "extension.cpp", "msda_kernel.cpp", "msda_op.hpp")} <= set(names)
    assert not any(n.startswith(kernel + "build/") for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=600)
    res = subprocess.run(
        [sys.executable, "-S", "-c",
         f"import sys; sys.path[:0] = [{str(target)!r}] + {[p for p in sys.path if 'site-packages' in p]!r};"
         "import calibnet, calibnet.runtime, calibnet.export, calibnet.engines, calibnet.benchmarks;"
         f"assert calibnet.__file__.startswith({str(target)!r}), calibnet.__file__; print('ok')"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr
