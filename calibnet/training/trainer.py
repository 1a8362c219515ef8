"""The training loop: CalibNet + criterion + AdamW/step schedule, AMP on CUDA, DDP, checkpoints, logs.

One :class:`Trainer` per process. Under ``torchrun`` every rank builds the same model (same seed),
wraps it in DistributedDataParallel and trains on its own batches; rank 0 alone writes the CSV log,
TensorBoard events and checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from calibnet.runtime.core.targets import CHECKPOINT_SUFFIX

from .batches import BatchSource
from .checkpointing import capture_rng, load_training_file, restore_rng, write_last_checkpoint
from .distributed import DistInfo, barrier
from .losses import CalibNetCriterion
from .solver import SolverOptions, build_optimizer, build_scheduler, clip_gradients

__all__ = ["TrainOptions", "Trainer"]

LOSS_KEYS = tuple(CalibNetCriterion.WEIGHT_FIELDS)


@dataclass
class TrainOptions:
    """Loop settings. ``max_iter`` counts optimizer steps; ``checkpoint_period`` 0 = only at the end."""

    max_iter: int = 100
    solver: SolverOptions = field(default_factory=SolverOptions)
    out_dir: Path | None = None
    checkpoint_period: int = 0
    log_period: int = 1
    amp: bool = True  # honoured on CUDA only
    progress: bool = True
    tensorboard: bool = True
    eval_period: int = 0
    config: dict[str, Any] | None = None  # stored in checkpoints (CalibNetConfig.to_dict())


class Trainer:
    """Trains ``model`` on ``source`` batches; see :meth:`train` and :meth:`step`."""

    def __init__(self, model: nn.Module, source: BatchSource, opts: TrainOptions,
                 criterion: CalibNetCriterion | None = None, dist_info: DistInfo | None = None,
                 eval_fn: Callable[[nn.Module, int], dict[str, float]] | None = None) -> None:
        self.info = dist_info or DistInfo()
        self.device = self.info.device
        self.model = model.to(self.device).train()
        self.source = source
        self.opts = opts
        self.criterion = criterion or CalibNetCriterion(getattr(getattr(model, "cfg", None), "loss", None))
        self.eval_fn = eval_fn
        self.net: nn.Module = self.model
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # the official fusion decoder owns a BatchNorm (bn2) that its forward never uses
            self.net = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model, opts.solver)
        self.scheduler = build_scheduler(self.optimizer, opts.solver)
        self.amp = bool(opts.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self._csv: Any = None
        self._tb: Any = None

    @property
    def is_main(self) -> bool:
        return self.info.rank == 0

    # ------------------------------------------------------------------ one step
    def step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Forward, loss, backward and one optimizer + schedule step on ``batch``; returns the loss terms."""
        rgb = batch["rgb"].to(self.device, non_blocking=True)
        depth = batch["depth"].to(self.device, non_blocking=True)
        sizes = batch["image_sizes"].to(self.device)
        masks = [m.to(self.device, non_blocking=True) for m in batch["masks"]]
        with torch.autocast(device_type=self.device.type, enabled=self.amp):
            outputs = self.net(rgb, depth, sizes)
            losses = self.criterion(outputs, masks, rgb.shape[-2:])
        total = CalibNetCriterion.total(losses)
        if not torch.isfinite(total):
            raise FloatingPointError(f"loss became {float(total)} at iteration {self.iteration}: "
                                     + ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items()))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.opts.solver.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = clip_gradients(self.model.parameters(), self.opts.solver.clip_grad_norm)
        lr = self.current_lr()  # the rate this step uses
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        record = {k: float(v.detach()) for k, v in losses.items()}
        record["total_loss"] = float(total.detach())
        record["lr"] = lr
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        return record

    def current_lr(self) -> float:
        """The largest learning rate of the parameter groups (the base rate times the schedule factor)."""
        return float(max(g["lr"] for g in self.optimizer.param_groups))

    # ------------------------------------------------------------------ loop
    def train(self, max_iter: int | None = None) -> list[dict[str, float]]:
        """Run from the current iteration to ``max_iter`` (default ``opts.max_iter``); returns the logged
        records (rank 0: every iteration; other ranks: their own losses)."""
        end = self.opts.max_iter if max_iter is None else max_iter
        start = self.iteration
        bar = None
        if self.opts.progress and self.is_main:
            bar = tqdm(total=end, initial=start, desc="train", unit="it", file=sys.stderr, dynamic_ncols=True)
        self._open_logs()
        t_start = time.perf_counter()
        try:
            while self.iteration < end:
                t0 = time.perf_counter()
                batch = self.source.batch(self.iteration)
                t_data = time.perf_counter() - t0
                record = self.step(batch)
                record.update(iteration=self.iteration, data_s=t_data,
                              step_s=time.perf_counter() - t0, elapsed_s=time.perf_counter() - t_start)
                self.history.append(record)
                if self.is_main:
                    self._log(record)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['total_loss']:.3f}", lr=f"{record['lr']:.2e}")
                period = self.opts.checkpoint_period
                if period and self.iteration % period == 0 and self.iteration < end:
                    self.save(f"model_{self.iteration:07d}{CHECKPOINT_SUFFIX}")
                if self.opts.eval_period and self.iteration % self.opts.eval_period == 0 and self.iteration < end:
                    self._evaluate()
        finally:
            if bar is not None:
                bar.close()
        self.save("model_final.pth")
        self._close_logs()
        return self.history

    def _evaluate(self) -> None:
        """Run ``eval_fn`` on rank 0 (the others wait); ``eval_period`` must be equal on every rank."""
        if self.is_main and self.eval_fn is not None:
            self.model.eval()
            try:
                metrics = self.eval_fn(self.model, self.iteration)
            finally:
                self.model.train()
            line = ", ".join(f"{k} {metrics[k]:.2f}" for k in ("AP", "AP50", "AP70") if k in metrics)
            print(f"[iter {self.iteration}] eval: {line}", file=sys.stderr)
            if self.opts.out_dir is not None:
                row = {k: None if isinstance(v, float) and not math.isfinite(v) else v
                       for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None}
                with (Path(self.opts.out_dir) / "eval.jsonl").open("a") as f:
                    f.write(json.dumps({"iteration": self.iteration, **row}) + "\n")
            if self._tb is not None:
                for k, v in metrics.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        self._tb.add_scalar(f"eval/{k}", v, self.iteration)
        barrier()

    # ------------------------------------------------------------------ logs
    def _open_logs(self) -> None:
        if not self.is_main or self.opts.out_dir is None:
            return
        out = Path(self.opts.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.csv"
        fields = ["iteration", "total_loss", *LOSS_KEYS, "lr", "data_s", "step_s", "elapsed_s"]
        new = not path.is_file() or self.iteration == 0
        f = path.open("w" if new else "a", newline="")
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        self._csv = (f, writer)
        if self.opts.tensorboard:
            with contextlib.suppress(ImportError):  # tensorboard is optional
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(out / "tensorboard"))

    def _log(self, record: dict[str, float]) -> None:
        it = int(record["iteration"])
        if self._csv is not None and (it % max(self.opts.log_period, 1) == 0 or it == self.opts.max_iter):
            f, writer = self._csv
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in record.items()})
            f.flush()
        if self._tb is not None:
            for k, v in record.items():
                if k != "iteration":
                    self._tb.add_scalar(f"train/{k}", v, it)

    def _close_logs(self) -> None:
        if self._csv is not None:
            self._csv[0].close()
            self._csv = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: model, optimizer, scheduler, scaler, iteration, RNG states."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "rng": capture_rng(),
        }
        if self.opts.config is not None:
            state["config"] = self.opts.config
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (strict on the model's keys)."""
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        if "rng" in state:
            restore_rng(state["rng"])

    def save(self, name: str) -> Path | None:
        """Write ``out_dir/name`` on rank 0 and record it in ``last_checkpoint``; all ranks synchronize."""
        path = None
        if self.is_main and self.opts.out_dir is not None:
            out = Path(self.opts.out_dir)
            out.mkdir(parents=True, exist_ok=True)
            path = out / name
            tmp = path.with_suffix(".tmp")
            torch.save(self.state_dict(), tmp)
            tmp.replace(path)
            write_last_checkpoint(out, name)
        barrier()
        return path

    def resume(self, path: str | Path) -> int:
        """Load a training checkpoint; returns the iteration training continues from."""
        self.load_state_dict(load_training_file(path))
        return self.iteration
