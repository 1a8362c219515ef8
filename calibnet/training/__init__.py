"""Training: Hungarian matcher, the official losses, AdamW + warm-up/step schedule, DDP, checkpoints.

Importing ``calibnet.training`` does not import torch; the names below load on first use::

    from calibnet import build_model, get_config
    from calibnet.training import SyntheticBatches, Trainer, TrainOptions, SolverOptions

    cfg = get_config("r18").replace(**{"decoder.num_kernels": 10})
    model = build_model(cfg, eval_mode=False, quiet=True)
    trainer = Trainer(model, SyntheticBatches(batch_size=4), TrainOptions(max_iter=100, out_dir="out/t",
                      solver=SolverOptions(base_lr=2e-4, warmup_iters=50)))
    trainer.train()

The command line is ``calibnet-train`` (:mod:`calibnet.cli.train`).
"""

from __future__ import annotations

from ..lazy import lazy_attributes, lazy_names

_LAZY = {
    "calibnet.training.losses": ("CalibNetCriterion",),
    "calibnet.training.matcher": ("HungarianMatcher",),
    "calibnet.training.solver": ("SolverOptions", "build_optimizer", "build_scheduler"),
    "calibnet.training.trainer": ("Trainer", "TrainOptions"),
    "calibnet.training.batches": ("SyntheticBatches", "LoaderBatches"),
    "calibnet.training.backbone_init": ("init_backbones",),
    "calibnet.training.evaluate": ("evaluate_model",),
    "calibnet.config": ("write_config_yaml",),
    "calibnet.training.recipes": ("RECIPES",),
}

__all__ = sorted(lazy_names(_LAZY))

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals(), __all__)
