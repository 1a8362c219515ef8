"""Build a ready-to-run model from a config name/path and optional weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import DEFAULT_PRESET, CalibNetConfig, get_config
from .modeling import CalibNet

__all__ = ["build_model", "DETERMINISTIC_WEIGHTS_NOTE"]

DETERMINISTIC_WEIGHTS_NOTE = (
    "NOTE: no --weights given: using calibnet's deterministic initialization (seeded). The model runs "
    "end to end, but its masks and scores are MEANINGLESS. Pass your trained checkpoint "
    "(e.g. model_final.pth) to get real predictions."
)


def build_model(config: str | Path | CalibNetConfig | None = None, weights: str | Path | None = None, seed: int = 0,
                eval_mode: bool = True, quiet: bool = False) -> CalibNet:
    """A CalibNet for ``config`` (preset name, official YAML or config object; default :data:`DEFAULT_PRESET`).

    With ``weights`` the checkpoint is loaded strictly; without, the model is initialized
    deterministically from ``seed`` and a loud note is printed to stderr (unless ``quiet``).
    """
    cfg = config if isinstance(config, CalibNetConfig) else get_config(config or DEFAULT_PRESET)
    if weights is None:
        with torch.random.fork_rng(devices=[]):  # the caller's CPU random state is left as it was
            torch.manual_seed(seed)
            model = CalibNet(cfg)
        if not quiet:
            print(DETERMINISTIC_WEIGHTS_NOTE, file=sys.stderr)
    else:
        model = CalibNet(cfg)
        load_checkpoint(model, weights)
    return model.eval() if eval_mode else model
