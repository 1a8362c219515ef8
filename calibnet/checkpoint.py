"""Load official (detectron2-format) and calibnet checkpoints with strict key matching."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["CheckpointMismatchError", "load_checkpoint", "read_state_dict", "save_checkpoint"]


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not match the model: lists missing, unexpected and wrong-shape keys."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str],
                 wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape

        def show(items: list[str]) -> str:
            head = ", ".join(items[:20])
            return head + (f", ... ({len(items) - 20} more)" if len(items) > 20 else "")

        lines = [f"checkpoint {path} does not match the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if wrong_shape:
            shown = [f"{k} (checkpoint {list(c)} vs model {list(m)})" for k, c, m in wrong_shape]
            lines.append(f"  wrong-shape keys ({len(wrong_shape)}): {show(shown)}")
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
    state dict, or a detectron2 ``.pkl`` (pickled dict of numpy arrays, key ``model``).

    torch files are loaded with ``weights_only=True``; a file that needs arbitrary unpickling is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".pkl":
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="latin1")  # detectron2 model-zoo format (numpy arrays)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise RuntimeError(
                f"{path}: not loadable with weights_only=True (it contains non-tensor objects): {exc}"
            ) from exc
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    elif isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise RuntimeError(f"{path}: expected a state dict or a dict with key 'model', got {type(obj).__name__}")
    sd = {}
    for k, v in obj.items():
        key = k[len("module."):] if k.startswith("module.") else k  # DDP-wrapped checkpoints
        sd[key] = _to_tensor(v)
    return sd


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
    if wrong:
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
