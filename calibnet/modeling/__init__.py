"""CalibNet model (PyTorch)."""

from .calibnet import TRAINING_ONLY_MODULES, CalibNet, valid_region_mask

__all__ = ["CalibNet", "TRAINING_ONLY_MODULES", "valid_region_mask"]
