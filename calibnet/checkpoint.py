"""Load official (detectron2-format) and calibnet checkpoints with strict key matching.

Checkpoints come from other people, and unpickling runs whatever a pickle names. :func:`load_weights_file` is the
one loader of model files (``--weights``, ``--init-backbone``, training resume): torch files go through
``torch.load(weights_only=True)``, detectron2 ``.pkl`` files through :class:`WeightsUnpickler`, which builds only
what weight files hold (dicts, lists, tuples, numbers, strings, numpy arrays and dtypes). Anything else is refused
with :class:`UnsafeCheckpointError`, one line naming the file and the global it asked for, before that global is
imported, let alone called.
"""

from __future__ import annotations

import codecs
import collections
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "UnsafeCheckpointError", "WeightsUnpickler", "load_checkpoint",
           "load_weights_file", "read_state_dict", "save_checkpoint"]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A model file that asks the unpickler for something a weights file never holds (possible code execution)."""


def _safe_globals() -> dict[tuple[str, str], Any]:
    """The only globals a weights pickle may name: numpy's array (protocols 2 and 5), scalar and dtype
    reconstructors (found through the objects themselves, under both numpy 1.x names, ``numpy.core.*``, and
    numpy 2 names, ``numpy._core.*``), OrderedDict, and the bytes codec with which protocol-2 pickles carry raw
    array data (``codecs.encode`` is ``_codecs.encode``)."""
    found: dict[tuple[str, str], Any] = {("_codecs", "encode"): codecs.encode, ("numpy", "ndarray"): np.ndarray,
                                         ("numpy", "dtype"): np.dtype}
    array = np.zeros(1)
    for obj in (np.ndarray, np.dtype, collections.OrderedDict, array.__reduce__()[0], array.__reduce_ex__(5)[0],
                np.float32(0).__reduce__()[0]):
        for module in {obj.__module__, obj.__module__.replace("numpy._core", "numpy.core"),
                       obj.__module__.replace("numpy.core", "numpy._core")}:
            found[(module, obj.__name__)] = obj
    return found


_SAFE_GLOBALS = _safe_globals()


class WeightsUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of weight files (see the module docs); ``find_class`` refuses
    every other one with :class:`UnsafeCheckpointError` (``path`` names the file in the message)."""

    def __init__(self, file: Any, path: str | Path) -> None:
        super().__init__(file, encoding="latin1")  # detectron2 model-zoo files were pickled by Python 2
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name``; :class:`UnsafeCheckpointError` for anything else."""
        obj = _SAFE_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafeCheckpointError(f"{self.path}: refused: the file asks for {module}.{name}, which a weights "
                                        "file never holds (only dicts, lists, numbers, strings and numpy arrays are "
                                        "loaded; it may run code if unpickled)")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        """Weights pickles have no persistent ids."""
        raise UnsafeCheckpointError(f"{self.path}: refused: persistent id {str(pid)[:80]!r} in a weights pickle")


def load_weights_file(path: str | Path) -> Any:
    """The object in a model file without running code from it: a torch file (zip or legacy) with
    ``torch.load(weights_only=True)``, any other pickle (detectron2 ``.pkl``) with :class:`WeightsUnpickler`.
    :class:`UnsafeCheckpointError` (one line naming the file and the offending global) for anything else;
    FileNotFoundError for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".pkl" and not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            try:
                return WeightsUnpickler(f, path).load()
            except UnsafeCheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - truncated, corrupt ...: one line naming the file
                raise pickle.UnpicklingError(f"{path}: not a readable weights pickle ({type(exc).__name__}: "
                                             f"{' '.join(str(exc).split())[:200]})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"asks for {found.group(1)}" if found else "holds objects other than tensors"
        raise UnsafeCheckpointError(f"{path}: refused: the file {what}, which torch.load(weights_only=True) does not "
                                    "load (it may run code if unpickled)") from None


def first_items(items: list[str], limit: int = 20) -> str:
    """``a, b, ... (k more)``: the first ``limit`` of ``items``, for a message."""
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not match the model: lists missing, unexpected and wrong-shape keys."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str],
                 wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape
        lines = [f"checkpoint {path} does not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {first_items(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {first_items(unexpected)}")
        if wrong_shape:
            shown = [f"{k} (checkpoint {list(c)} vs model {list(m)})" for k, c, m in wrong_shape]
            lines.append(f"  wrong-shape keys ({len(wrong_shape)}): {first_items(shown)}")
        lines.append("  (is the config the one the checkpoint was trained with? e.g. R50 vs R101, NUM_KERNELS)")
        super().__init__("\n".join(lines))


def _to_tensor(v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    raise TypeError(f"unsupported tensor type {type(v).__name__}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict inside ``path``: a torch.save'd dict with key ``model`` (detectron2 format), a bare
    state dict, or a detectron2 ``.pkl`` (pickled dict of numpy arrays, key ``model``), read by
    :func:`load_weights_file` (a file that needs arbitrary unpickling is refused)."""
    obj = load_weights_file(path)
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    elif isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise RuntimeError(f"{path}: expected a state dict or a dict with key 'model', got {type(obj).__name__}")
    return {k.removeprefix("module."): _to_tensor(v) for k, v in obj.items()}  # DDP-wrapped checkpoints


def load_checkpoint(model: nn.Module, path: str | Path, strict: bool = True) -> dict[str, torch.Tensor]:
    """Load ``path`` into ``model``. With ``strict`` (default) any missing, unexpected or wrong-shape key
    raises :class:`CheckpointMismatchError` listing all of them. Returns the state dict read."""
    sd = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own if k in sd and sd[k].shape != own[k].shape]
    if strict and (missing or unexpected or wrong):
        raise CheckpointMismatchError(str(path), missing, unexpected, wrong)
    bad = {k for k, _, _ in wrong}
    sd = {k: v for k, v in sd.items() if k not in bad}
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return sd


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> Path:
    """Save in detectron2 format (``{"model": state_dict, **extra}``), loadable with weights_only=True."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), **extra}, path)
    return path
