"""Start the ``tritonserver`` bundled with nvidia-pytriton on a model repository (CPU machines, tests).

    proc = start_tritonserver("triton_repo", http_port=8000, grpc_port=8001, metrics_port=8002, workdir="tmp")

The bundle is laid out as PyTriton lays it out for itself (its server tree with the Python-backend stub of
this interpreter's version), and the stub gets the environment of :mod:`calibnet.serving.stub_env`. In the
NGC container, run its own ``tritonserver --model-repository DIR`` instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .stub_env import stub_process_env, stub_python_env

__all__ = ["bundled_tritonserver", "start_tritonserver"]


def bundled_tritonserver(workdir: str | Path) -> Path:
    """A runnable copy of PyTriton's Triton tree in ``workdir/tritonserver`` (made once); returns its folder."""
    from pytriton.utils.distribution import get_root_module_path, get_stub_path

    dst = Path(workdir) / "tritonserver"
    stub = dst / "backends" / "python" / "triton_python_backend_stub"
    if stub.is_file():
        return dst
    src = get_root_module_path() / "tritonserver"
    shutil.copytree(src, dst, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("python_backend_stubs", "triton_python_backend_stub"))
    shutil.copy(get_stub_path(f"{sys.version_info.major}.{sys.version_info.minor}"), stub)
    return dst


def start_tritonserver(repo: str | Path, http_port: int = 8000, grpc_port: int = 8001, metrics_port: int = 8002,
                       workdir: str | Path | None = None, log_file: str | Path | None = None,
                       address: str = "127.0.0.1", extra_args: list[str] | None = None) -> subprocess.Popen:
    """Start the bundled ``tritonserver`` on ``repo`` (explicit ports, bound to ``address``); returns the process
    (its output goes to ``log_file`` or is discarded). Stop it with SIGTERM."""
    from pytriton.utils.distribution import get_libs_path

    server = bundled_tritonserver(workdir or Path(repo).parent / ".tritonserver")
    env = stub_process_env(python_env=stub_python_env())
    env["LD_LIBRARY_PATH"] = f"{env['LD_LIBRARY_PATH']}:{get_libs_path()}"
    cmd = [str(server / "bin" / "tritonserver"), f"--model-repository={Path(repo).resolve()}",
           f"--backend-directory={server / 'backends'}", f"--cache-directory={server / 'caches'}",
           f"--http-address={address}", f"--http-port={http_port}", f"--grpc-address={address}",
           f"--grpc-port={grpc_port}", f"--metrics-address={address}", f"--metrics-port={metrics_port}",
           "--allow-gpu-metrics=false", "--exit-timeout-secs=5", *(extra_args or [])]
    out = open(log_file, "w") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the process
    try:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=os.fspath(server))
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
