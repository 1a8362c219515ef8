"""The environment Triton's Python-backend stub needs on this kind of machine (PyTriton's bundled server and
``tritonserver`` started on a generated repository).

Two facts, both found by running the bundled Triton 2.51 here:

1. The stub embeds libpython. It must load the library of the interpreter that runs calibnet (a pyenv
   build, say), not another ``libpython3.X.so`` on the system path; with the wrong one every model fails to
   load with ``'_thread.RLock' object has no attribute '_recursion_count'``. :func:`stub_process_env` puts
   ``sysconfig``'s LIBDIR first in ``LD_LIBRARY_PATH``.
2. The stub of nvidia-pytriton 0.7.0 is built with a pybind11 that predates NumPy 2: under NumPy 2 every
   output tensor it creates is empty (0 bytes), silently. (That is why the package pins ``numpy<2``.)
   Only the stub process needs the old NumPy: :func:`stub_python_env` makes a small virtual environment
   whose own site-packages hold :data:`STUB_NUMPY` (an exact release, wheels only: nothing is built or run at
   install time) and which then sees every package of the calling environment (``site.addsitedir`` in a site
   path-configuration file), so the server process itself keeps NumPy 2. The stub finds
   that environment through ``PATH``. Under NumPy 1.x the calling environment is used as is.

The NGC Triton containers ship a stub that matches their own Python and NumPy; neither fix is needed there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np

from ..runtime.core.cachedir import private_dir

__all__ = ["STUB_NUMPY", "stub_process_env", "stub_python_env", "libpython_dir"]

#: the NumPy the stub's environment installs (the last 1.x release; pinned, wheels only)
STUB_NUMPY = "numpy==1.26.4"


def libpython_dir() -> str:
    """The folder of this interpreter's shared libpython (``sysconfig`` LIBDIR)."""
    return str(sysconfig.get_config_var("LIBDIR") or Path(sys.base_prefix) / "lib")


def _default_env_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "calibnet"
    tag = hashlib.sha256(sys.prefix.encode()).hexdigest()[:10]
    return base / f"triton-stub-py{sys.version_info.major}{sys.version_info.minor}-{tag}"


def stub_python_env(path: str | os.PathLike[str] | None = None) -> Path:
    """A Python environment the Python-backend stub can run calibnet in (see the module docs): this
    interpreter's own (``sys.exec_prefix``) under NumPy 1.x, else a cached virtual environment with
    :data:`STUB_NUMPY` in front of this environment's packages (``$CALIBNET_TRITON_STUB_ENV``, default
    ``~/.cache/calibnet/triton-stub-pyXY-<hash>`` in a folder of this user's own; made once, in about 10 s, with
    this interpreter's pip)."""
    if int(np.__version__.split(".")[0]) < 2 and path is None:
        return Path(sys.exec_prefix)
    env = Path(path or os.environ.get("CALIBNET_TRITON_STUB_ENV") or _default_env_dir())
    private_dir(env.parent)  # the stub runs this environment's Python: it must be the user's own
    ready = env / ".calibnet-ready"
    if ready.is_file():
        return env
    with open(env.parent / (env.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file():
            return env
        venv.EnvBuilder(clear=True, symlinks=True, with_pip=False).create(env)
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "--target", str(purelib), STUB_NUMPY], check=True)
        parents = [p for p in dict.fromkeys(site.getsitepackages() + [sysconfig.get_path("purelib")])
                   if Path(p).is_dir()]
        (purelib / "zz_calibnet_parent_env.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
        ready.write_text(sys.prefix + "\n")
    return env


def stub_process_env(base: dict[str, str] | None = None, python_env: Path | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with this interpreter's LIBDIR first in ``LD_LIBRARY_PATH`` and, when
    ``python_env`` is given, its ``bin`` first in ``PATH`` (where the stub looks for its Python)."""
    env = dict(os.environ if base is None else base)
    lib = libpython_dir()
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and p != lib]
    env["LD_LIBRARY_PATH"] = ":".join([lib, *parts])
    if python_env is not None:
        env["PATH"] = f"{Path(python_env) / 'bin'}:{env.get('PATH', '')}"
    return env
