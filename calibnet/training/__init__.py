"""Training: Hungarian matcher, the official losses, AdamW + warm-up/step schedule, DDP, checkpoints.

Importing ``calibnet.training`` does not import torch; the names below load on first use::

    from calibnet import build_model, get_config
    from calibnet.training import SyntheticBatches, Trainer, TrainOptions, SolverOptions

    cfg = get_config("r18").replace(**{"decoder.num_kernels": 10})
    model = build_model(cfg, eval_mode=False, quiet=True)
    trainer = Trainer(model, SyntheticBatches(batch_size=4), TrainOptions(max_iter=100, out_dir="out/t",
                      solver=SolverOptions(base_lr=2e-4, warmup_iters=50)))
    trainer.train()

The command line is ``calibnet-train`` (:mod:`calibnet.training.cli`).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CalibNetCriterion": "calibnet.training.losses",
    "HungarianMatcher": "calibnet.training.matcher",
    "SolverOptions": "calibnet.training.solver",
    "build_optimizer": "calibnet.training.solver",
    "build_scheduler": "calibnet.training.solver",
    "Trainer": "calibnet.training.trainer",
    "TrainOptions": "calibnet.training.trainer",
    "SyntheticBatches": "calibnet.training.batches",
    "LoaderBatches": "calibnet.training.batches",
    "init_backbones": "calibnet.training.backbone_init",
    "evaluate_model": "calibnet.training.evaluate",
    "write_config_yaml": "calibnet.training.config_yaml",
    "RECIPES": "calibnet.training.recipes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'calibnet.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
