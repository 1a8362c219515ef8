"""Folders whose files calibnet later loads (TensorRT engines, OpenVINO compiled blobs, the fused MSDA kernel's
build): the user's own.

A cached engine or blob is code-like (a deserializer trusts it), so:

- :func:`private_dir` makes a cache folder with mode 0700 and refuses one owned by another user or writable by
  other users (never a fixed name in a world-writable folder such as /tmp);
- :func:`default_cache_dir` is ``$CALIBNET_ENGINE_CACHE`` or ``~/.cache/calibnet/engines``;
- :class:`HashLedger` records the sha256 of every file a library (OpenVINO) writes into a cache folder, and
  :meth:`HashLedger.prune` deletes, before the library looks, every file whose hash is not the recorded one (a
  missing record means rebuild). Engines record their hash in their own sidecar
  (:mod:`calibnet.runtime.core.sidecar`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "HashLedger", "default_cache_dir", "file_sha256", "private_dir"]

#: the environment variable naming the engine cache folder
CACHE_ENV = "CALIBNET_ENGINE_CACHE"


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """The engine cache: ``$CALIBNET_ENGINE_CACHE`` or ``~/.cache/calibnet/engines``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "calibnet" / "engines"


def private_dir(path: str | os.PathLike[str], env: str = CACHE_ENV) -> Path:
    """``path`` as a cache folder of this user: created with mode 0700 (its missing parents too); an existing
    folder owned by another user or writable by group or others is refused with a one-line
    :class:`PermissionError` (choose another folder, or ``chmod go-w`` your own). ``env``: the environment
    variable the message names for choosing another folder."""
    path = Path(path)
    if not path.is_dir():
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir(mode=0o700, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    if not hasattr(os, "getuid"):  # (Windows: ACLs, not modes)
        return path
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path}: cache folder owned by another user (uid {st.st_uid}); files in it could be "
                              f"planted: use a folder of your own (${env})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path}: cache folder writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                              f"files in it could be planted: chmod go-w it or use another folder (${env})")
    return path


class HashLedger:
    """The recorded sha256 of each file of a cache folder (``.calibnet-hashes.json`` in it)."""

    NAME = ".calibnet-hashes.json"

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = private_dir(folder)
        self.path = self.folder / self.NAME

    def recorded(self) -> dict[str, str]:
        """File name -> sha256 as recorded (empty when there is no readable record)."""
        try:
            data = json.loads(self.path.read_text())
            return {str(k): str(v) for k, v in data.get("files", {}).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _files(self) -> list[Path]:
        return [p for p in self.folder.iterdir() if p.name != self.NAME and not p.name.startswith(".tmp")
                and p.is_file()]

    def prune(self) -> list[str]:
        """Delete every file whose sha256 is not the recorded one (unrecorded files too); returns their names."""
        known = self.recorded()
        removed = []
        for p in self._files():
            if known.get(p.name) != file_sha256(p):
                p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    def record(self) -> None:
        """Record the sha256 of every file now in the folder (written atomically)."""
        files = {p.name: file_sha256(p) for p in self._files()}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"format": "calibnet-cache-hashes/1", "files": files}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
