"""What one ``calibnet-train`` run does: a recipe's defaults and the command line merged into a typed plan.

:func:`resolve_plan` applies the rules once: the command line wins over the recipe, the recipe over the
config; the recipe's rate drops move with a changed ``--iters``; the config that is trained (and saved as
``config.yaml``) carries the resolved schedule. A user error is a :class:`TrainError`. No torch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CalibNetConfig, ConfigError, get_config
from .recipes import RECIPES, Recipe

__all__ = ["TrainError", "TrainPlan", "TrainRequest", "resolve_plan"]


class TrainError(ValueError):
    """A calibnet-train user error (a command line, data set or checkpoint it cannot use); the message says why."""


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked for (``calibnet-train``'s options; None: not given, the recipe's or config's value)."""

    recipe: str | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()  # "KEY=VALUE" config overrides by dotted field
    synthetic: str | None = None  # "stream" or a number of scenes
    dataset: bool = False  # a registered or json data set was named
    iters: int | None = None
    batch: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    steps: tuple[int, ...] | None = None
    gamma: float | None = None
    warmup_iters: int | None = None
    clip_grad: float | None = None
    out: str | None = None
    checkpoint_period: int | None = None
    eval_scenes: int | None = None
    workers: int | None = None
    depth_augment: float | None = None  # probability of a depth corruption per training image (None, 0: off)


@dataclass(frozen=True)
class TrainPlan:
    """One training run: the config to train, the data, the schedule, the output and the evaluation."""

    cfg: CalibNetConfig  # cfg.solver is the schedule (iterations, images per step and process, rate, steps...)
    out: Path
    synthetic: str | None  # "stream", a number of scenes to write, or None (a data set from the options)
    warmup_iters: int
    workers: int  # DataLoader workers
    checkpoint_period: int  # 0: only the final checkpoint
    eval_scenes: int  # held-out synthetic scenes evaluated at the end (synthetic runs only)
    eval_seed: int
    scene_hw: tuple[int, int]  # size of the generated synthetic scenes
    recipe: Recipe | None = None
    notes: tuple[str, ...] = ()  # what the plan changed in what was asked, for the user
    depth_augment: float = 0.0  # probability of a depth-sensor failure per training image (0: off)


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _config(args: TrainRequest, recipe: Recipe | None) -> CalibNetConfig:
    """The config preset / YAML with the recipe's overrides (unless --config replaces the recipe's) and --set."""
    try:
        cfg = get_config(args.config or (recipe.config if recipe else "r50"))
        overrides = dict(recipe.overrides) if recipe and not args.config else {}
        for item in args.overrides:
            if "=" not in item:
                raise TrainError(f"--set wants KEY=VALUE, got {item!r}")
            k, v = item.split("=", 1)
            overrides[k.strip()] = _parse_value(v.strip())
        return cfg.replace(**overrides) if overrides else cfg
    except ConfigError as exc:
        raise TrainError(str(exc)) from None


def _synthetic(args: TrainRequest, recipe: Recipe | None) -> str | None:
    given = {"--synthetic": args.synthetic, "--dataset / --train-json": args.dataset}
    modes = [flag for flag, value in given.items() if value]
    if len(modes) > 1:
        raise TrainError(f"give one data source, not {', '.join(modes)}")
    synthetic = args.synthetic or (recipe.synthetic if recipe and not modes else None)
    if not modes and synthetic is None:
        raise TrainError("no training data: give --synthetic, --dataset (with --data-root), --train-json or a --recipe")
    if synthetic is not None and synthetic != "stream" and not (synthetic.isdigit() and int(synthetic) > 0):
        raise TrainError(f"--synthetic wants 'stream' or a positive number of scenes, got {synthetic!r}")
    return synthetic


def _pick(given: Any, default: Any) -> Any:
    return given if given is not None else default


def resolve_plan(args: TrainRequest) -> TrainPlan:
    """The :class:`TrainPlan` of a request (``calibnet-train``'s options); :class:`TrainError` for a user error."""
    recipe = RECIPES[args.recipe] if args.recipe else None
    cfg = _config(args, recipe)
    synthetic = _synthetic(args, recipe)
    s = cfg.solver
    iters = args.iters or (recipe.iters if recipe else s.max_iter)
    if args.steps is not None:
        steps = tuple(args.steps)
    elif recipe and args.iters is None:
        steps = recipe.steps
    elif recipe:  # the recipe's drop at the same fraction of a changed length
        steps = tuple(int(round(x * iters / recipe.iters)) for x in recipe.steps)
    else:
        steps = s.steps
    batch = args.batch or (recipe.batch if recipe else s.ims_per_batch)
    lr = _pick(args.lr, recipe.lr if recipe else s.base_lr)
    if iters <= 0 or batch <= 0:
        raise TrainError(f"--{'iters' if iters <= 0 else 'batch'} must be positive")
    if lr <= 0:
        raise TrainError("--lr must be positive")
    trained = cfg.replace(**{"solver.max_iter": iters, "solver.ims_per_batch": batch, "solver.base_lr": lr,
                             "solver.steps": steps, "solver.gamma": _pick(args.gamma, s.gamma),
                             "solver.weight_decay": _pick(args.weight_decay, s.weight_decay),
                             "solver.clip_gradients": _pick(args.clip_grad, s.clip_gradients)})
    depth_augment = float(args.depth_augment or 0.0)
    if not 0.0 <= depth_augment <= 1.0:
        raise TrainError(f"--depth-augment wants a probability in [0, 1], got {depth_augment}")
    eval_scenes, notes = _pick(args.eval_scenes, recipe.eval_scenes if recipe else 0), ()
    if eval_scenes and synthetic is None:
        eval_scenes, notes = 0, ("--eval-scenes applies to synthetic training; evaluate on your data set with "
                                 "calibnet-eval OUT/model_final.pth --config OUT/config.yaml --dataset ...",)
    return TrainPlan(
        cfg=trained, out=Path(args.out or (recipe.out if recipe else "out/train")), synthetic=synthetic,
        warmup_iters=_pick(args.warmup_iters, recipe.warmup_iters if recipe else 1000),
        workers=_pick(args.workers, cfg.num_workers), checkpoint_period=_pick(args.checkpoint_period,
                                                                             s.checkpoint_period),
        eval_scenes=eval_scenes, eval_seed=recipe.eval_seed if recipe else 0,
        scene_hw=recipe.scene_hw if recipe else (320, 480), recipe=recipe, notes=notes, depth_augment=depth_augment)
