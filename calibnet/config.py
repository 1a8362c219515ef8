"""Typed CalibNet configuration with the official defaults, and a reader for the official YAML files.

The official implementation is configured with detectron2 YAML files (``Base-CalibNet.yaml`` plus a
variant that names it in ``_BASE_``). :meth:`CalibNetConfig.from_yaml` reads those files into the
dataclasses below. Every key the official files use is known; a key this reader does not know, or a
value it cannot honour (another backbone, another decoder), is an error that names the key and the file.

This module does not import torch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BackboneConfig",
    "CalibNetConfig",
    "ConfigError",
    "DecoderConfig",
    "EncoderConfig",
    "FusionDecoderConfig",
    "InferenceConfig",
    "InputConfig",
    "LossConfig",
    "SolverConfig",
    "PRESETS",
    "get_config",
]


class ConfigError(ValueError):
    """A configuration file or value that calibnet cannot use."""


@dataclass
class BackboneConfig:
    """detectron2 ResNet with frozen batch norm (``MODEL.RESNETS``)."""

    depth: int = 50
    norm: str = "FrozenBN"
    stride_in_1x1: bool = False
    freeze_at: int = 0
    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    num_groups: int = 1
    width_per_group: int = 64
    stem_out_channels: int = 64

    @property
    def res2_out_channels(self) -> int:
        """detectron2 requires 64 for BasicBlock networks (R18/R34) and uses 256 for R50/R101."""
        return 64 if self.depth in (18, 34) else 256


@dataclass
class EncoderConfig:
    """One deformable-transformer encoder (``MODEL.CALIBNET.ENCODER`` / ``ENCODER_DEPTH``)."""

    num_layers: int = 3
    num_channels: int = 256
    num_heads: int = 8
    dim_feedforward: int = 1024
    activation: str = "gelu"
    dropout: float = 0.0
    in_features: tuple[str, ...] = ("res3", "res4", "res5")
    num_points: int = 4


@dataclass
class DecoderConfig:
    """Kernel branch (``MODEL.CALIBNET.DECODER``): DSA + dynamic interactive kernels."""

    num_kernels: int = 50
    input_channels: int = 256
    conv_dim: int = 256
    scale_factor: int = 2
    num_groups: int = 4


@dataclass
class FusionDecoderConfig:
    """Mask branch (``MODEL.CALIBNET.FUSION_DECODER``): WSF modules and mask features."""

    two_scale: bool = True
    input_dim: int = 256
    mask_dim: int = 256


@dataclass
class InferenceConfig:
    """NMS-free post-processing thresholds of the official ``CalibNet.inference``."""

    cls_threshold: float = 0.005
    mask_threshold: float = 0.45
    max_detections: int = 50


@dataclass
class InputConfig:
    """Image sizes and augmentation (``INPUT``)."""

    min_size_train: tuple[int, ...] = (320,)
    max_size_train: int = 480
    min_size_test: int = 320
    max_size_test: int = 480
    crop_enabled: bool = True
    crop_type: str = "absolute_range"
    crop_size: tuple[int, int] = (384, 600)
    format: str = "RGB"
    mask_format: str = "polygon"
    size_divisibility: int = 32


@dataclass
class LossConfig:
    """Loss weights and matcher exponents as in the official code (not the paper)."""

    class_weight: float = 2.0
    mask_pixel_weight: float = 5.0
    mask_dice_weight: float = 2.0
    objectness_weight: float = 1.0
    aux_t3_weight: float = 0.5
    aux_d3_weight: float = 0.5
    aux_r2_weight: float = 0.5
    aux_d2_weight: float = 0.2
    matcher_alpha: float = 0.8
    matcher_beta: float = 0.2


@dataclass
class SolverConfig:
    """Optimizer schedule (``SOLVER``)."""

    optimizer: str = "ADAMW"
    ims_per_batch: int = 4
    base_lr: float = 2.5e-5
    weight_decay: float = 1e-4
    steps: tuple[int, ...] = (70000, 90000)
    gamma: float = 0.1
    max_iter: int = 100000
    checkpoint_period: int = 20000
    clip_gradients: float = 0.0
    amsgrad: bool = False
    backbone_multiplier: float = 1.0


@dataclass
class CalibNetConfig:
    """Everything needed to build, train and deploy one CalibNet variant."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    encoder_depth: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    fusion_decoder: FusionDecoderConfig = field(default_factory=FusionDecoderConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    input: InputConfig = field(default_factory=InputConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    num_classes: int = 1
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)
    pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375)
    weights: str = ""
    datasets_train: tuple[str, ...] = ("come15k_train",)
    datasets_test: tuple[str, ...] = ("come15k_test_e", "come15k_test_h", "dsis_test", "sip_test")
    num_workers: int = 6
    eval_period: int = 20000
    source: str = "defaults"

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> CalibNetConfig:
        """Read an official CalibNet YAML file (following ``_BASE_``) into a config.

        Raises :class:`ConfigError` naming the key and the file for an unknown key or an
        unsupported value.
        """
        path = Path(path)
        cfg = cls()
        cfg.source = str(path)
        for file, flat in _load_yaml_chain(path):
            for key, value in flat.items():
                _apply_key(cfg, key, value, file)
        cfg.validate()
        return cfg

    @classmethod
    def from_name(cls, name: str) -> CalibNetConfig:
        """A preset (``r50``, ``r101``, ``r18``, ``r34``) or a path to an official YAML file."""
        return get_config(name)

    def replace(self, **changes: Any) -> CalibNetConfig:
        """A deep copy with dotted-path overrides, e.g. ``replace(**{"decoder.num_kernels": 10})``."""
        new = copy.deepcopy(self)
        for dotted, value in changes.items():
            obj: Any = new
            parts = dotted.split(".")
            for part in parts[:-1]:
                obj = getattr(obj, part)
            if not hasattr(obj, parts[-1]):
                raise ConfigError(f"unknown config field {dotted!r}")
            setattr(obj, parts[-1], value)
        new.validate()
        return new

    def validate(self) -> None:
        """Check values that the model cannot honour."""
        if self.backbone.depth not in (18, 34, 50, 101, 152):
            raise ConfigError(f"unsupported ResNet depth {self.backbone.depth} (18, 34, 50, 101, 152)")
        if self.backbone.norm != "FrozenBN":
            raise ConfigError(f"unsupported backbone norm {self.backbone.norm!r}: only FrozenBN")
        for enc in (self.encoder, self.encoder_depth):
            if enc.num_channels % enc.num_heads:
                raise ConfigError("encoder NUM_CHANNELS must be divisible by NUM_HEADS")
            if enc.activation not in ("relu", "gelu"):
                raise ConfigError(f"unsupported encoder activation {enc.activation!r}")
        if (self.decoder.num_kernels * self.decoder.num_groups * 2) % self.decoder.num_groups:
            raise ConfigError("NUM_KERNELS incompatible with the kernel groups")
        if self.num_classes != 1:
            raise ConfigError("CalibNet is class-agnostic: NUM_CLASSES must be 1")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- presets

PRESETS: dict[str, dict[str, Any]] = {
    "r50": {},
    "r101": {"backbone.depth": 101},
    "r34": {"backbone.depth": 34},
    "r18": {"backbone.depth": 18},
}


def get_config(name_or_path: str | Path) -> CalibNetConfig:
    """Resolve a preset name (``r50``, ``r101``, ``r34``, ``r18``) or an official YAML path."""
    key = str(name_or_path).lower()
    if key in PRESETS:
        cfg = CalibNetConfig().replace(**PRESETS[key])
        cfg.source = f"preset:{key}"
        return cfg
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return CalibNetConfig.from_yaml(path)
    raise ConfigError(
        f"unknown config {name_or_path!r}: give a preset ({', '.join(PRESETS)}) or an official YAML file"
    )


# ---------------------------------------------------------------------- YAML reading


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _load_yaml_chain(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """[(file, flat key->value)] from the deepest ``_BASE_`` to ``path`` itself."""
    import yaml

    path = path.resolve()
    if path in _seen:
        raise ConfigError(f"{path}: _BASE_ cycle through {[str(p) for p in _seen]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    chain: list[tuple[Path, dict[str, Any]]] = []
    base = data.pop("_BASE_", None)
    if base is not None:
        chain.extend(_load_yaml_chain((path.parent / str(base)), _seen + (path,)))
    chain.append((path, _flatten(data)))
    return chain


def _tuple(v: Any) -> tuple[Any, ...]:
    if isinstance(v, str):
        # detectron2 accepts python-literal tuples written as strings, e.g. "(320,)"
        import ast

        v = ast.literal_eval(v)
    if isinstance(v, (list, tuple)):
        return tuple(v)
    return (v,)


def _require(expected: Any) -> Callable[[CalibNetConfig, Any], None]:
    def check(_cfg: CalibNetConfig, value: Any) -> None:
        if value != expected:
            raise ConfigError(f"unsupported value {value!r} (calibnet supports {expected!r})")

    return check


def _setter(dotted: str, conv: Callable[[Any], Any] = lambda v: v) -> Callable[[CalibNetConfig, Any], None]:
    def setv(cfg: CalibNetConfig, value: Any) -> None:
        obj: Any = cfg
        parts = dotted.split(".")
        for part in parts[:-1]:
            obj = getattr(obj, part)
        setattr(obj, parts[-1], conv(value))

    return setv


def _ignore(_cfg: CalibNetConfig, _value: Any) -> None:
    return None


def _backbone_name(_cfg: CalibNetConfig, value: Any) -> None:
    if value != "build_resnet_backbone":
        raise ConfigError(
            f"unsupported backbone {value!r}: calibnet builds the ResNet backbones "
            "(build_resnet_backbone); Swin/PVT/P2T variants are not implemented"
        )


def _fusion_name(cfg: CalibNetConfig, value: Any) -> None:
    names = {"TwoScaleCalibNetFusionDecoder": True, "CalibNetFusionDecoder": False}
    if value not in names:
        raise ConfigError(f"unsupported fusion decoder {value!r} (one of {sorted(names)})")
    cfg.fusion_decoder.two_scale = names[value]


def _encoder_keys(prefix: str, target: str) -> dict[str, Callable[[CalibNetConfig, Any], None]]:
    return {
        f"{prefix}.NAME": _require("TransformerEncoder"),
        f"{prefix}.NUM_LAYERS": _setter(f"{target}.num_layers", int),
        f"{prefix}.NUM_CHANNELS": _setter(f"{target}.num_channels", int),
        f"{prefix}.NUM_HEADS": _setter(f"{target}.num_heads", int),
        f"{prefix}.DIM_FEEDFORWARD": _setter(f"{target}.dim_feedforward", int),
        f"{prefix}.ACTIVATION": _setter(f"{target}.activation", str),
        f"{prefix}.DROPOUT": _setter(f"{target}.dropout", float),
        f"{prefix}.IN_FEATURES": _setter(f"{target}.in_features", _tuple),
    }


_KEYS: dict[str, Callable[[CalibNetConfig, Any], None]] = {
    "MODEL.META_ARCHITECTURE": _require("CalibNet"),
    "MODEL.WEIGHTS": _setter("weights", str),
    "MODEL.PIXEL_MEAN": _setter("pixel_mean", _tuple),
    "MODEL.PIXEL_STD": _setter("pixel_std", _tuple),
    "MODEL.DEVICE": _ignore,
    "MODEL.MASK_ON": _require(True),
    "MODEL.BACKBONE.NAME": _backbone_name,
    "MODEL.BACKBONE.FREEZE_AT": _setter("backbone.freeze_at", int),
    "MODEL.RESNETS.NORM": _setter("backbone.norm", str),
    "MODEL.RESNETS.DEPTH": _setter("backbone.depth", int),
    "MODEL.RESNETS.STRIDE_IN_1X1": _setter("backbone.stride_in_1x1", bool),
    "MODEL.RESNETS.OUT_FEATURES": _setter("backbone.out_features", _tuple),
    "MODEL.RESNETS.NUM_GROUPS": _setter("backbone.num_groups", int),
    "MODEL.RESNETS.WIDTH_PER_GROUP": _setter("backbone.width_per_group", int),
    "MODEL.CALIBNET.NUM_CLASSES": _setter("num_classes", int),
    "MODEL.CALIBNET.CLS_THRESHOLD": _setter("inference.cls_threshold", float),
    "MODEL.CALIBNET.MASK_THRESHOLD": _setter("inference.mask_threshold", float),
    "MODEL.CALIBNET.MAX_DETECTIONS": _setter("inference.max_detections", int),
    "MODEL.CALIBNET.DATASET_MAPPER": _require("RGBDSISDatasetMapper"),
    **_encoder_keys("MODEL.CALIBNET.ENCODER", "encoder"),
    **_encoder_keys("MODEL.CALIBNET.ENCODER_DEPTH", "encoder_depth"),
    "MODEL.CALIBNET.DECODER.NAME": _require("CalibNetDecoder"),
    "MODEL.CALIBNET.DECODER.NUM_KERNELS": _setter("decoder.num_kernels", int),
    "MODEL.CALIBNET.DECODER.INPUT_CHANNELS": _setter("decoder.input_channels", int),
    "MODEL.CALIBNET.DECODER.CONV_DIM": _setter("decoder.conv_dim", int),
    "MODEL.CALIBNET.DECODER.SCALE_FACTOR": _setter("decoder.scale_factor", int),
    "MODEL.CALIBNET.FUSION_DECODER.NAME": _fusion_name,
    "MODEL.CALIBNET.FUSION_DECODER.INPUT_DIM": _setter("fusion_decoder.input_dim", int),
    "MODEL.CALIBNET.FUSION_DECODER.MASK_DIM": _setter("fusion_decoder.mask_dim", int),
    "MODEL.CALIBNET.LOSS.CLASS_WEIGHT": _setter("loss.class_weight", float),
    "MODEL.CALIBNET.LOSS.MASK_PIXEL_WEIGHT": _setter("loss.mask_pixel_weight", float),
    "MODEL.CALIBNET.LOSS.MASK_DICE_WEIGHT": _setter("loss.mask_dice_weight", float),
    "MODEL.CALIBNET.LOSS.OBJECTNESS_WEIGHT": _setter("loss.objectness_weight", float),
    "MODEL.CALIBNET.MATCHER.ALPHA": _setter("loss.matcher_alpha", float),
    "MODEL.CALIBNET.MATCHER.BETA": _setter("loss.matcher_beta", float),
    "DATASETS.TRAIN": _setter("datasets_train", _tuple),
    "DATASETS.TEST": _setter("datasets_test", _tuple),
    "SOLVER.OPTIMIZER": _setter("solver.optimizer", str),
    "SOLVER.IMS_PER_BATCH": _setter("solver.ims_per_batch", int),
    "SOLVER.BASE_LR": _setter("solver.base_lr", float),
    "SOLVER.STEPS": _setter("solver.steps", lambda v: tuple(int(x) for x in _tuple(v))),
    "SOLVER.GAMMA": _setter("solver.gamma", float),
    "SOLVER.MAX_ITER": _setter("solver.max_iter", int),
    "SOLVER.WEIGHT_DECAY": _setter("solver.weight_decay", float),
    "SOLVER.CHECKPOINT_PERIOD": _setter("solver.checkpoint_period", int),
    "SOLVER.AMSGRAD": _setter("solver.amsgrad", bool),
    "SOLVER.BACKBONE_MULTIPLIER": _setter("solver.backbone_multiplier", float),
    "INPUT.CROP.ENABLED": _setter("input.crop_enabled", bool),
    "INPUT.CROP.TYPE": _setter("input.crop_type", str),
    "INPUT.CROP.SIZE": _setter("input.crop_size", lambda v: tuple(int(x) for x in _tuple(v))),
    "INPUT.MASK_FORMAT": _setter("input.mask_format", str),
    "INPUT.MIN_SIZE_TRAIN": _setter("input.min_size_train", lambda v: tuple(int(x) for x in _tuple(v))),
    "INPUT.MAX_SIZE_TRAIN": _setter("input.max_size_train", int),
    "INPUT.MIN_SIZE_TEST": _setter("input.min_size_test", int),
    "INPUT.MAX_SIZE_TEST": _setter("input.max_size_test", int),
    "INPUT.FORMAT": _setter("input.format", str),
    "TEST.EVAL_PERIOD": _setter("eval_period", int),
    "TEST.DETECTIONS_PER_IMAGE": _setter("inference.max_detections", int),
    "DATALOADER.NUM_WORKERS": _setter("num_workers", int),
    "VERSION": _require(2),
}


def _apply_key(cfg: CalibNetConfig, key: str, value: Any, file: Path) -> None:
    handler = _KEYS.get(key)
    if handler is None:
        raise ConfigError(f"{file}: unknown or unsupported config key {key!r}")
    try:
        handler(cfg, value)
    except ConfigError as exc:
        raise ConfigError(f"{file}: key {key!r}: {exc}") from None
    except (TypeError, ValueError, SyntaxError) as exc:
        raise ConfigError(f"{file}: key {key!r}: bad value {value!r}: {exc}") from None
