"""The typed CalibNet configuration: dataclasses with the official defaults, presets, validation.

The official YAML keys that map onto these fields are in :mod:`calibnet.config.official_yaml` (one
table, used for reading and writing). This module does not import torch.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .official_yaml import BACKBONE_NAMES, ConfigError, read_yaml

__all__ = [
    "BACKBONE_NAMES",
    "BackboneConfig",
    "CalibNetConfig",
    "ConfigError",
    "DecoderConfig",
    "EncoderConfig",
    "FusionDecoderConfig",
    "InferenceConfig",
    "InputConfig",
    "LossConfig",
    "P2TConfig",
    "PVTv2Config",
    "SolverConfig",
    "SwinConfig",
    "PRESETS",
    "DEFAULT_PRESET",
    "get_config",
]


@dataclass
class BackboneConfig:
    """The backbone (``MODEL.BACKBONE.NAME``) and the detectron2 ResNet with frozen batch norm
    (``MODEL.RESNETS``; the transformer backbones' settings are :class:`SwinConfig`, :class:`PVTv2Config`,
    :class:`P2TConfig`)."""

    name: str = "build_resnet_backbone"  # one of BACKBONE_NAMES
    depth: int = 50  # 18/34 basic blocks, 50/101/152 bottlenecks
    norm: str = "FrozenBN"  # the only norm the official checkpoints use
    stride_in_1x1: bool = False  # False: the stride sits in the 3x3 conv (detectron2's MSRA-style default)
    freeze_at: int = 0  # stages frozen in training (0: none, 1: the stem, 2: stem + res2, ...)
    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    num_groups: int = 1  # ResNeXt cardinality (1 = ResNet)
    width_per_group: int = 64  # bottleneck width = num_groups x width_per_group
    stem_out_channels: int = 64  # not an official YAML key here: detectron2's default

    @property
    def res2_out_channels(self) -> int:
        """detectron2 requires 64 for BasicBlock networks (R18/R34) and uses 256 for R50/R101."""
        return 64 if self.depth in (18, 34) else 256


@dataclass
class SwinConfig:
    """Swin Transformer (``MODEL.SWIN``; used when ``backbone.name`` is ``D2SwinTransformer``)."""

    pretrain_img_size: int = 224  # only sizes the absolute position embedding (APE)
    patch_size: int = 4
    embed_dim: int = 96  # channels of res2; doubled per stage
    depths: tuple[int, ...] = (2, 2, 6, 2)  # blocks per stage, alternating plain / shifted windows
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: float | None = None  # None: head_dim ** -0.5
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.3  # stochastic depth (training only)
    ape: bool = False  # absolute position embedding
    patch_norm: bool = True  # LayerNorm after the patch embedding
    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    use_checkpoint: bool = False  # activation checkpointing (not supported by calibnet)


@dataclass
class PVTv2Config:
    """PVTv2 (``MODEL.PVTV2``; ``build_pyramid_vision_transformer``). ``linear`` means b2-Li whatever
    ``name`` says (the official builder's rule)."""

    name: str = "b2"  # b0..b5
    linear: bool = True  # "Li": keys/values pooled to 7x7
    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    drop_path_rate: float = 0.1  # the official builder's constant (no YAML key)


@dataclass
class P2TConfig:
    """P2T (``MODEL.P2T``; ``build_p2t_backbone``)."""

    name: str = "large"  # base or large
    out_features: tuple[str, ...] = ("res2", "res3", "res4", "res5")
    drop_path_rate: float = 0.3  # the official builder's constant (no YAML key)


@dataclass
class EncoderConfig:
    """One deformable-transformer encoder (``MODEL.CALIBNET.ENCODER`` / ``ENCODER_DEPTH``)."""

    num_layers: int = 3
    num_channels: int = 256  # d_model; divisible by num_heads
    num_heads: int = 8
    dim_feedforward: int = 1024  # the feed-forward width of each layer
    activation: str = "gelu"  # relu or gelu
    dropout: float = 0.0
    in_features: tuple[str, ...] = ("res3", "res4", "res5")  # the levels the deformable attention samples
    num_points: int = 4  # sampling points per head and level (the official code's constant)


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

    min_size_train: tuple[int, ...] = (320,)  # ResizeShortestEdge choices in training
    max_size_train: int = 480
    min_size_test: int = 320  # the test resize: short side 320, long side at most 480
    max_size_test: int = 480
    crop_enabled: bool = True  # the random crop of the official train augmentation
    crop_type: str = "absolute_range"
    crop_size: tuple[int, int] = (384, 600)  # (min, max) crop side in pixels for absolute_range
    format: str = "RGB"  # channel order of the network input
    mask_format: str = "polygon"  # how the annotations store masks (polygons or RLE)
    size_divisibility: int = 32  # pad H and W to a multiple of this (the backbone's total stride)


@dataclass
class LossConfig:
    """Loss weights and matcher exponents as in the official code (not the paper)."""

    class_weight: float = 2.0  # focal loss of the class logits
    mask_pixel_weight: float = 5.0  # per-pixel BCE of the matched masks
    mask_dice_weight: float = 2.0  # dice loss of the matched masks
    objectness_weight: float = 1.0  # BCE of the objectness logit against the mask IoU
    aux_t3_weight: float = 0.5  # aux saliency head on the RGB T3 features
    aux_d3_weight: float = 0.5  # aux saliency head on the depth T3 features
    aux_r2_weight: float = 0.5  # aux saliency head on the RGB res2 features
    aux_d2_weight: float = 0.2  # aux saliency head on the depth res2 features
    matcher_alpha: float = 0.8  # matching score = dice ** alpha * class probability ** beta
    matcher_beta: float = 0.2


@dataclass
class SolverConfig:
    """Optimizer schedule (``SOLVER``)."""

    optimizer: str = "ADAMW"
    ims_per_batch: int = 4  # images per optimizer step (all processes together in the official runs)
    base_lr: float = 2.5e-5
    weight_decay: float = 1e-4  # 0 for norm parameters (the official rule)
    steps: tuple[int, ...] = (70000, 90000)  # iterations where the rate is multiplied by gamma
    gamma: float = 0.1
    max_iter: int = 100000
    checkpoint_period: int = 20000  # iterations between periodic checkpoints
    clip_gradients: float = 0.0  # max global gradient norm (0: off); not an official YAML key
    amsgrad: bool = False
    backbone_multiplier: float = 1.0  # learning-rate factor of the backbone parameters


@dataclass
class CalibNetConfig:
    """Everything needed to build, train and deploy one CalibNet variant."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)  # MODEL.BACKBONE, MODEL.RESNETS
    swin: SwinConfig = field(default_factory=SwinConfig)  # MODEL.SWIN (used when the backbone is Swin)
    pvtv2: PVTv2Config = field(default_factory=PVTv2Config)  # MODEL.PVTV2
    p2t: P2TConfig = field(default_factory=P2TConfig)  # MODEL.P2T
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # MODEL.CALIBNET.ENCODER (RGB)
    encoder_depth: EncoderConfig = field(default_factory=EncoderConfig)  # MODEL.CALIBNET.ENCODER_DEPTH
    decoder: DecoderConfig = field(default_factory=DecoderConfig)  # MODEL.CALIBNET.DECODER (kernel branch)
    fusion_decoder: FusionDecoderConfig = field(default_factory=FusionDecoderConfig)  # mask branch
    inference: InferenceConfig = field(default_factory=InferenceConfig)  # MODEL.CALIBNET thresholds
    input: InputConfig = field(default_factory=InputConfig)  # INPUT
    loss: LossConfig = field(default_factory=LossConfig)  # MODEL.CALIBNET.LOSS / MATCHER
    solver: SolverConfig = field(default_factory=SolverConfig)  # SOLVER
    num_classes: int = 1  # class-agnostic salient instances
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)  # RGB order, 0..255; used for depth too
    pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375)
    weights: str = ""  # the checkpoint named in the YAML (informational; tools take --weights)
    datasets_train: tuple[str, ...] = ("come15k_train",)  # names of calibnet.data's registry
    datasets_test: tuple[str, ...] = ("come15k_test_e", "come15k_test_h", "dsis_test", "sip_test")
    num_workers: int = 6  # DataLoader workers
    eval_period: int = 20000
    source: str = "defaults"  # where this config came from: "defaults", "preset:r50" or a YAML path

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_yaml(cls, path: str | Path) -> CalibNetConfig:
        """Read an official CalibNet YAML file (following ``_BASE_``) into a config.

        Raises :class:`ConfigError` naming the key and the file for an unknown key or an
        unsupported value.
        """

        cfg = read_yaml(cls(), Path(path))
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> CalibNetConfig:
        """A deep copy with dotted-path overrides, e.g. ``replace(**{"decoder.num_kernels": 10})``."""
        new = copy.deepcopy(self)
        for dotted, value in changes.items():
            new.set(dotted, value)
        new.validate()
        return new

    def get(self, dotted: str) -> Any:
        """The value of a dotted field, e.g. ``get("decoder.num_kernels")``."""
        obj: Any = self
        for part in dotted.split("."):
            obj = getattr(obj, part)
        return obj

    def set(self, dotted: str, value: Any) -> None:
        """Set a dotted field in place (no validation); :class:`ConfigError` for an unknown field."""
        head, _, name = dotted.rpartition(".")
        obj = self.get(head) if head else self
        if not hasattr(obj, name):
            raise ConfigError(f"unknown config field {dotted!r}")
        setattr(obj, name, value)

    def validate(self) -> None:
        """Check values that the model cannot honour."""
        if self.backbone.name not in BACKBONE_NAMES:
            raise ConfigError(f"unsupported backbone {self.backbone.name!r} (one of {', '.join(BACKBONE_NAMES)})")
        if self.pvtv2.name not in ("b0", "b1", "b2", "b3", "b4", "b5"):
            raise ConfigError(f"unknown PVTv2 variant {self.pvtv2.name!r} (b0..b5)")
        if self.p2t.name not in ("base", "large"):
            raise ConfigError(f"unknown P2T variant {self.p2t.name!r} (base, large)")
        if len(self.swin.depths) != len(self.swin.num_heads):
            raise ConfigError("MODEL.SWIN.DEPTHS and NUM_HEADS differ in length")
        if self.swin.use_checkpoint:
            raise ConfigError("MODEL.SWIN.USE_CHECKPOINT (activation checkpointing) is not supported")
        if self.backbone.depth not in (18, 34, 50, 101, 152):
            raise ConfigError(f"unsupported ResNet depth {self.backbone.depth} (18, 34, 50, 101, 152)")
        if self.backbone.norm != "FrozenBN":
            raise ConfigError(f"unsupported backbone norm {self.backbone.norm!r}: only FrozenBN")
        for enc in (self.encoder, self.encoder_depth):
            if enc.num_channels % enc.num_heads:
                raise ConfigError("encoder NUM_CHANNELS must be divisible by NUM_HEADS")
            if enc.activation not in ("relu", "gelu"):
                raise ConfigError(f"unsupported encoder activation {enc.activation!r}")
        if self.num_classes != 1:
            raise ConfigError("CalibNet is class-agnostic: NUM_CLASSES must be 1")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- presets

#: the preset every tool uses when none is given
DEFAULT_PRESET = "r50"
#: model presets by name: config overrides of the R50 defaults
PRESETS: dict[str, dict[str, Any]] = {
    "r50": {},
    "r101": {"backbone.depth": 101},
    "r34": {"backbone.depth": 34},
    "r18": {"backbone.depth": 18},
    # the official transformer variants (their YAMLs set only the backbone name; Swin's MODEL.SWIN values
    # are the defaults of SwinConfig)
    "swint": {"backbone.name": "D2SwinTransformer"},
    "pvt": {"backbone.name": "build_pyramid_vision_transformer"},
    "p2t": {"backbone.name": "build_p2t_backbone"},
}


def get_config(name_or_path: str | Path) -> CalibNetConfig:
    """Resolve a preset name (:data:`PRESETS`) or an official YAML path."""
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
