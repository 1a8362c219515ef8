"""Optimizer and learning-rate schedule as the official ``Trainer.build_optimizer`` + detectron2 defaults.

- AdamW over every trainable parameter, one group each: learning rate ``base_lr`` (times
  ``backbone_multiplier`` for names containing "backbone"), weight decay 0 for names containing
  "norm" (the official rule), ``amsgrad`` from the config.
- detectron2's ``WarmupMultiStepLR``: linear warm-up from ``warmup_factor`` (1/1000) over
  ``warmup_iters`` (1000; the official configs keep detectron2's defaults), then the rate is
  multiplied by ``gamma`` at each of ``steps``.
- Optional full-model gradient-norm clipping (the official code's "full_model" clip type).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SolverOptions", "build_optimizer", "build_scheduler", "clip_gradients", "lr_factor"]


@dataclass
class SolverOptions:
    """What the trainer needs to build the optimizer and schedule (defaults: official + detectron2)."""

    base_lr: float = 2.5e-5
    weight_decay: float = 1e-4
    steps: tuple[int, ...] = (70000, 90000)
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 1.0 / 1000
    clip_grad_norm: float = 0.0
    amsgrad: bool = False
    backbone_multiplier: float = 1.0


def build_optimizer(model: nn.Module, opts: SolverOptions) -> torch.optim.AdamW:
    """AdamW with the official per-parameter learning rate and weight decay rules."""
    groups = []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        lr = opts.base_lr * (opts.backbone_multiplier if "backbone" in name else 1.0)
        wd = 0.0 if "norm" in name else opts.weight_decay
        groups.append({"params": [p], "lr": lr, "weight_decay": wd, "name": name})
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=opts.base_lr, amsgrad=opts.amsgrad)


def lr_factor(iteration: int, steps: Sequence[int], gamma: float, warmup_iters: int,
              warmup_factor: float) -> float:
    """Multiplier of the base rate at ``iteration`` (detectron2 WarmupMultiStepLR, linear warm-up)."""
    factor = gamma ** bisect.bisect_right(sorted(steps), iteration)
    if iteration < warmup_iters:
        alpha = iteration / warmup_iters
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, opts: SolverOptions) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration schedule: call ``scheduler.step()`` once after every optimizer step."""
    steps, gamma, warm_iters, warm_factor = tuple(opts.steps), opts.gamma, opts.warmup_iters, opts.warmup_factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, steps, gamma, warm_iters, warm_factor))


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float) -> float | None:
    """Clip the global gradient L2 norm to ``max_norm`` (no-op for ``max_norm <= 0``); returns the norm."""
    if max_norm <= 0:
        return None
    params = [p for p in parameters if p.grad is not None]
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
