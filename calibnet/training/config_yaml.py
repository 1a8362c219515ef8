"""Write a :class:`~calibnet.config.CalibNetConfig` as an official-style detectron2 YAML file.

The training run saves its config as ``config.yaml`` beside the checkpoints, in the keys the
official ``Base-CalibNet.yaml`` uses, so every calibnet tool that takes ``--config`` (demo, export,
eval, infer) rebuilds the same network: ``CalibNetConfig.from_yaml`` reads it back unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import CalibNetConfig

__all__ = ["config_to_yaml", "write_config_yaml"]


def _encoder(enc: Any) -> dict[str, Any]:
    return {
        "NAME": "TransformerEncoder",
        "NUM_LAYERS": enc.num_layers,
        "NUM_CHANNELS": enc.num_channels,
        "NUM_HEADS": enc.num_heads,
        "DIM_FEEDFORWARD": enc.dim_feedforward,
        "ACTIVATION": enc.activation,
        "DROPOUT": enc.dropout,
        "IN_FEATURES": list(enc.in_features),
    }


def config_tree(cfg: CalibNetConfig) -> dict[str, Any]:
    """The nested YAML mapping of ``cfg`` (official key names)."""
    b, d, f, i, lo, s, inp = (cfg.backbone, cfg.decoder, cfg.fusion_decoder, cfg.inference, cfg.loss,
                              cfg.solver, cfg.input)
    return {
        "MODEL": {
            "META_ARCHITECTURE": "CalibNet",
            "WEIGHTS": cfg.weights,
            "PIXEL_MEAN": list(cfg.pixel_mean),
            "PIXEL_STD": list(cfg.pixel_std),
            "MASK_ON": True,
            "BACKBONE": {"NAME": "build_resnet_backbone", "FREEZE_AT": b.freeze_at},
            "RESNETS": {"NORM": b.norm, "DEPTH": b.depth, "STRIDE_IN_1X1": b.stride_in_1x1,
                        "OUT_FEATURES": list(b.out_features), "NUM_GROUPS": b.num_groups,
                        "WIDTH_PER_GROUP": b.width_per_group},
            "CALIBNET": {
                "NUM_CLASSES": cfg.num_classes,
                "CLS_THRESHOLD": i.cls_threshold,
                "MASK_THRESHOLD": i.mask_threshold,
                "MAX_DETECTIONS": i.max_detections,
                "DATASET_MAPPER": "RGBDSISDatasetMapper",
                "ENCODER": _encoder(cfg.encoder),
                "ENCODER_DEPTH": _encoder(cfg.encoder_depth),
                "DECODER": {"NAME": "CalibNetDecoder", "NUM_KERNELS": d.num_kernels,
                            "INPUT_CHANNELS": d.input_channels, "CONV_DIM": d.conv_dim,
                            "SCALE_FACTOR": d.scale_factor},
                "FUSION_DECODER": {"NAME": "TwoScaleCalibNetFusionDecoder" if f.two_scale
                                   else "CalibNetFusionDecoder",
                                   "INPUT_DIM": f.input_dim, "MASK_DIM": f.mask_dim},
                "LOSS": {"CLASS_WEIGHT": lo.class_weight, "MASK_PIXEL_WEIGHT": lo.mask_pixel_weight,
                         "MASK_DICE_WEIGHT": lo.mask_dice_weight, "OBJECTNESS_WEIGHT": lo.objectness_weight},
                "MATCHER": {"ALPHA": lo.matcher_alpha, "BETA": lo.matcher_beta},
            },
        },
        "DATASETS": {"TRAIN": list(cfg.datasets_train), "TEST": list(cfg.datasets_test)},
        "SOLVER": {"OPTIMIZER": s.optimizer, "IMS_PER_BATCH": s.ims_per_batch, "BASE_LR": s.base_lr,
                   "STEPS": list(s.steps), "GAMMA": s.gamma, "MAX_ITER": s.max_iter,
                   "WEIGHT_DECAY": s.weight_decay, "CHECKPOINT_PERIOD": s.checkpoint_period,
                   "AMSGRAD": s.amsgrad, "BACKBONE_MULTIPLIER": s.backbone_multiplier},
        "INPUT": {"CROP": {"ENABLED": inp.crop_enabled, "TYPE": inp.crop_type, "SIZE": list(inp.crop_size)},
                  "MASK_FORMAT": inp.mask_format, "MIN_SIZE_TRAIN": list(inp.min_size_train),
                  "MAX_SIZE_TRAIN": inp.max_size_train, "MIN_SIZE_TEST": inp.min_size_test,
                  "MAX_SIZE_TEST": inp.max_size_test, "FORMAT": inp.format},
        "TEST": {"EVAL_PERIOD": cfg.eval_period, "DETECTIONS_PER_IMAGE": i.max_detections},
        "DATALOADER": {"NUM_WORKERS": cfg.num_workers},
        "VERSION": 2,
    }


def config_to_yaml(cfg: CalibNetConfig, header: str = "") -> str:
    """YAML text of ``cfg`` that ``CalibNetConfig.from_yaml`` reads back to an equal config."""
    import yaml

    text = yaml.safe_dump(config_tree(cfg), sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return text


def write_config_yaml(cfg: CalibNetConfig, path: str | Path, header: str = "") -> Path:
    """Write :func:`config_to_yaml` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_to_yaml(cfg, header))
    return path
