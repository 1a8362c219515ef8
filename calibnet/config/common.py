"""What the config schema and the official YAML table share: the error type and the backbone names."""

from __future__ import annotations

__all__ = ["ConfigError", "BACKBONE_NAMES"]


class ConfigError(ValueError):
    """A configuration file or value that calibnet cannot use."""


#: ``MODEL.BACKBONE.NAME`` values calibnet builds (the official registry names): ResNet, Swin, PVTv2, P2T.
BACKBONE_NAMES = ("build_resnet_backbone", "D2SwinTransformer", "build_pyramid_vision_transformer",
                  "build_p2t_backbone")
