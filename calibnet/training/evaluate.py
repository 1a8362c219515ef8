"""Held-out evaluation during and after training, through the deployment runtime.

The model is wrapped in ``calibnet.runtime.Runtime.from_model`` (official pre- and post-processing,
the same path an exported engine takes) and scored with ``calibnet.evaluation.run_eval`` /
``calibnet.evaluate_coco`` (mask AP, AP50, AP70 in percent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from calibnet.evaluation import run_eval
from calibnet.runtime import Runtime

__all__ = ["evaluate_model"]


def evaluate_model(model: nn.Module, spec: Any, out_dir: str | Path | None = None, progress: bool = True,
                   limit: int | None = None) -> dict[str, Any]:
    """Mask AP/AP50/AP70 (percent) of ``model`` on the data set ``spec`` through the torch runtime.

    The model is put in eval mode for the evaluation and returned to its previous mode afterwards.
    """

    was_training = model.training
    model.eval()
    try:
        # keep the model where it trains (TorchBackend moves the model to the device it is given)
        device = str(next(model.parameters()).device)
        with Runtime.from_model(model, device=device) as runtime:
            return run_eval(runtime, spec, out_dir=out_dir, progress=progress, limit=limit)
    finally:
        model.train(was_training)
