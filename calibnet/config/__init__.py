"""CalibNet configuration: the typed schema with the official defaults (:mod:`.schema`) and the one table of
official detectron2 YAML keys that reads and writes it (:mod:`.official_yaml`). No torch.

Typical use::

    from calibnet.config import CalibNetConfig, get_config, write_config_yaml
    cfg = CalibNetConfig.from_yaml("configs/CalibNet_R50_50e_50q_320size.yaml")   # or get_config("r50")
    write_config_yaml(cfg.replace(**{"decoder.num_kernels": 10}), "out/config.yaml")
"""

from __future__ import annotations

from .official_yaml import YAML_KEYS, YamlKey, config_to_yaml, config_tree, write_config_yaml
from .schema import (
    BACKBONE_NAMES,
    DEFAULT_PRESET,
    PRESETS,
    BackboneConfig,
    CalibNetConfig,
    ConfigError,
    DecoderConfig,
    EncoderConfig,
    FusionDecoderConfig,
    InferenceConfig,
    InputConfig,
    LossConfig,
    P2TConfig,
    PVTv2Config,
    SolverConfig,
    SwinConfig,
    get_config,
)

__all__ = [
    "BACKBONE_NAMES", "P2TConfig", "PVTv2Config", "SwinConfig",
    "BackboneConfig", "CalibNetConfig", "ConfigError", "DecoderConfig", "EncoderConfig", "FusionDecoderConfig",
    "InferenceConfig", "InputConfig", "LossConfig", "PRESETS", "DEFAULT_PRESET", "SolverConfig", "YAML_KEYS", "YamlKey",
    "config_to_yaml", "config_tree", "get_config", "write_config_yaml",
]
