"""Parameter counting with the conventions of the paper and of deployment."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

__all__ = ["ParameterCount", "count_parameters"]


@dataclass
class ParameterCount:
    """``total`` counts every parameter of the training model (the paper's convention, aux heads
    included); ``without_aux`` drops the training-only coarse predictors (what a deployed model holds).
    Frozen-BN statistics are buffers and are not counted."""

    total: int
    without_aux: int
    by_module: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "without_aux": self.without_aux, "by_module": dict(self.by_module)}


def count_parameters(model: nn.Module) -> ParameterCount:
    """Total, by top-level module, and without the training-only heads."""
    from .modeling.calibnet import TRAINING_ONLY_MODULES

    by_module = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    direct = sum(p.numel() for p in model.parameters(recurse=False))
    if direct:
        by_module["<self>"] = direct
    total = sum(by_module.values())
    aux = sum(v for k, v in by_module.items() if k in TRAINING_ONLY_MODULES)
    return ParameterCount(total=total, without_aux=total - aux, by_module=by_module)
