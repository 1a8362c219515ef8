"""Training checkpoints: detectron2-compatible files that also carry the whole training state.

A file is ``{"model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ..., "iteration": n,
"rng": {...}, "config": {...}}`` saved with ``torch.save``: ``calibnet.load_checkpoint``,
``calibnet-export`` and ``calibnet-demo --weights`` read its ``model`` entry like any detectron2
``model_final.pth``, and everything in it loads with ``weights_only=True`` (no pickled objects).
``iteration`` counts the optimizer steps done; a resumed run continues with that iteration index.
An ``last_checkpoint`` text file in the output folder names the newest file (as detectron2 does).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["LAST_CHECKPOINT", "capture_rng", "find_resume_file", "load_training_file", "restore_rng",
           "write_last_checkpoint"]

LAST_CHECKPOINT = "last_checkpoint"


def capture_rng() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python random states as tensors / plain values."""
    np_state: Any = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": _to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_plain(obj: Any) -> Any:
    return [_to_plain(o) for o in obj] if isinstance(obj, tuple) else obj


def _to_tuple(obj: Any) -> Any:
    return tuple(_to_tuple(o) for o in obj) if isinstance(obj, list) else obj


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured (CUDA states only where CUDA is available)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
    if "python" in state:
        random.setstate(_to_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_last_checkpoint(out_dir: Path, name: str) -> None:
    """Record ``name`` as the newest checkpoint of ``out_dir``."""
    (out_dir / LAST_CHECKPOINT).write_text(name + "\n")


def find_resume_file(resume: str | Path, out_dir: Path | None) -> Path:
    """The file to resume from: ``resume`` itself if it is a file, else the newest checkpoint named by
    ``last_checkpoint`` in ``resume`` (a folder) or in ``out_dir``."""
    p = Path(resume)
    if p.is_file():
        return p
    folder = p if p.is_dir() else out_dir
    if folder is None:
        raise FileNotFoundError(f"nothing to resume from: {resume}")
    marker = folder / LAST_CHECKPOINT
    if not marker.is_file():
        raise FileNotFoundError(f"no {LAST_CHECKPOINT} file in {folder}: nothing to resume from")
    target = folder / marker.read_text().strip()
    if not target.is_file():
        raise FileNotFoundError(f"{marker} names {target.name}, which does not exist")
    return target


def load_training_file(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint (:func:`calibnet.checkpoint.load_weights_file`: ``weights_only=True``); raises if
    it lacks a training state."""
    from ..checkpoint import load_weights_file

    obj = load_weights_file(path)
    if not isinstance(obj, dict) or "model" not in obj:
        raise RuntimeError(f"{path}: not a calibnet training checkpoint (no 'model' entry)")
    if "optimizer" not in obj or "iteration" not in obj:
        raise RuntimeError(f"{path}: holds model weights only (no optimizer/iteration): use --weights to "
                           "start from it, --resume needs a checkpoint written by calibnet-train")
    return obj
