"""Held-out evaluation during and after training, through the deployment runtime.

The model is wrapped in ``calibnet.runtime.Runtime.from_model`` (official pre- and post-processing,
the same path an exported engine takes) and scored with ``calibnet.evaluation.run_eval`` /
``calibnet.evaluate_coco`` (mask AP, AP50, AP70 in percent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from calibnet.data import write_synthetic_dataset
from calibnet.evaluation import run_eval
from calibnet.runtime import Runtime

__all__ = ["evaluate_model", "held_out_synthetic_spec"]


def held_out_synthetic_spec(out_dir: str | Path, num_images: int, seed: int = 0, height: int = 320,
                            width: int = 480) -> Any:
    """Write and return a synthetic COCO data set for evaluation (PNG images, like the training stream).

    Scene ``i`` is ``make_scene(seed * 1_000_000 + i)``; the training stream of ``calibnet-train``
    uses data-set seed 1 and up, so with the default ``seed`` 0 no held-out scene is a training scene.
    """

    return write_synthetic_dataset(Path(out_dir), num_images, seed=seed, height=height, width=width,
                                   image_format="png", name="synthetic_heldout")


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
            return run_eval(runtime, spec, out_dir=None if out_dir is None else str(out_dir), progress=progress,
                            limit=limit)
    finally:
        model.train(was_training)
