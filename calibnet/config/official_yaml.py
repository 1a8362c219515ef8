"""The official detectron2 YAML keys of CalibNet: ONE table that drives reading and writing.

The official implementation is configured with detectron2 YAML files (``Base-CalibNet.yaml`` plus a
variant that names it in ``_BASE_``). Each row of :data:`YAML_KEYS` says where one official key lives
in :class:`~calibnet.config.CalibNetConfig` and which values calibnet honours:

- ``YamlKey(key, field, conv)``: the key's value, converted by ``conv``, is the dotted ``field``;
- ``YamlKey(key, field, choices={yaml_value: field_value})``: one of a few names, mapped to a field;
- ``YamlKey(key, choices={value: None})``: a fixed value (another value is an error naming the key);
- ``YamlKey(key, written=False)``: accepted and ignored (not written back).

:func:`read_yaml` (used by ``CalibNetConfig.from_yaml``) applies a file and its ``_BASE_`` chain; a key
missing from the table, or a value it does not honour, is a :class:`ConfigError` naming the key and the
file. :func:`config_tree` / :func:`config_to_yaml` / :func:`write_config_yaml` write every row back (the
``config.yaml`` of a training run), so a written file reads back to an equal config. Adding a key is one
row. This module does not import torch.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from .schema import CalibNetConfig

__all__ = ["BACKBONE_NAMES", "ConfigError", "YAML_KEYS", "YamlKey", "config_to_yaml", "config_tree", "read_yaml",
           "write_config_yaml"]

#: ``MODEL.BACKBONE.NAME`` values calibnet builds (the official registry names): ResNet, Swin, PVTv2, P2T.
BACKBONE_NAMES = ("build_resnet_backbone", "D2SwinTransformer", "build_pyramid_vision_transformer",
                  "build_p2t_backbone")


class ConfigError(ValueError):
    """A configuration file or value that calibnet cannot use."""


def _same(value: Any) -> Any:
    return value


def _tuple(v: Any) -> tuple[Any, ...]:
    if isinstance(v, str):  # detectron2 accepts python-literal tuples written as strings, e.g. "(320,)"
        v = ast.literal_eval(v)
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in _tuple(v))


@dataclass(frozen=True)
class YamlKey:
    """One official YAML key: the config field it sets (if any) and the values calibnet honours."""

    key: str
    field: str = ""  # dotted CalibNetConfig field; "" for a fixed or ignored key
    conv: Callable[[Any], Any] = _same  # YAML value -> field value
    choices: Mapping[Any, Any] | None = None  # YAML value -> field value (None: any value, through conv)
    written: bool = True

    def apply(self, cfg: CalibNetConfig, value: Any) -> None:
        """Set the field of ``cfg`` from the YAML ``value``; ConfigError for a value calibnet cannot honour."""
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"unsupported value {value!r} (calibnet supports "
                                  f"{', '.join(repr(c) for c in self.choices)})")
            value = self.choices[value]
        if self.field:
            cfg.set(self.field, self.conv(value))

    def value(self, cfg: CalibNetConfig) -> Any:
        """The YAML value of this key for ``cfg`` (lists for tuples)."""
        if not self.field:
            return next(iter(self.choices or {None: None}))
        v = cfg.get(self.field)
        if self.choices is not None:
            v = next(k for k, fv in self.choices.items() if fv == v)
        return list(v) if isinstance(v, tuple) else v


def _group(prefix: str, target: str, rows: list[tuple[str, Callable[[Any], Any]]]) -> list[YamlKey]:
    """One row per ``(KEY, conv)``: ``<prefix>.<KEY>`` sets ``<target>.<key>`` (lower case, ``.`` -> ``_``)."""
    return [YamlKey(f"{prefix}.{key}", f"{target}.{key.lower().replace('.', '_')}", conv) for key, conv in rows]


def _encoder_keys(prefix: str, target: str) -> list[YamlKey]:
    return [YamlKey(f"{prefix}.NAME", choices={"TransformerEncoder": None}),
            *_group(prefix, target, [("NUM_LAYERS", int), ("NUM_CHANNELS", int), ("NUM_HEADS", int),
                                     ("DIM_FEEDFORWARD", int), ("ACTIVATION", str), ("DROPOUT", float),
                                     ("IN_FEATURES", _tuple)])]


def _optional_float(v: Any) -> float | None:
    return None if v is None else float(v)


#: Every official key calibnet reads and writes, in the order of the official Base-CalibNet.yaml.
YAML_KEYS: tuple[YamlKey, ...] = (
    YamlKey("MODEL.META_ARCHITECTURE", choices={"CalibNet": None}),
    YamlKey("MODEL.WEIGHTS", "weights", str),
    YamlKey("MODEL.PIXEL_MEAN", "pixel_mean", _tuple),
    YamlKey("MODEL.PIXEL_STD", "pixel_std", _tuple),
    YamlKey("MODEL.DEVICE", written=False),
    YamlKey("MODEL.MASK_ON", choices={True: None}),
    YamlKey("MODEL.BACKBONE.NAME", "backbone.name", choices={n: n for n in BACKBONE_NAMES}),
    YamlKey("MODEL.BACKBONE.FREEZE_AT", "backbone.freeze_at", int),
    *_group("MODEL.RESNETS", "backbone", [("NORM", str), ("DEPTH", int), ("STRIDE_IN_1X1", bool),
                                          ("OUT_FEATURES", _tuple), ("NUM_GROUPS", int), ("WIDTH_PER_GROUP", int)]),
    # MODEL.SWIN.*: the official add_calibnet_config defaults are SwinConfig's
    *_group("MODEL.SWIN", "swin", [("PRETRAIN_IMG_SIZE", int), ("PATCH_SIZE", int), ("EMBED_DIM", int),
                                   ("DEPTHS", _ints), ("NUM_HEADS", _ints), ("WINDOW_SIZE", int), ("MLP_RATIO", float),
                                   ("QKV_BIAS", bool), ("QK_SCALE", _optional_float), ("DROP_RATE", float),
                                   ("ATTN_DROP_RATE", float), ("DROP_PATH_RATE", float), ("APE", bool),
                                   ("PATCH_NORM", bool), ("OUT_FEATURES", _tuple), ("USE_CHECKPOINT", bool)]),
    *_group("MODEL.PVTV2", "pvtv2", [("NAME", str), ("LINEAR", bool), ("OUT_FEATURES", _tuple)]),
    *_group("MODEL.P2T", "p2t", [("NAME", str), ("OUT_FEATURES", _tuple)]),
    YamlKey("MODEL.CALIBNET.NUM_CLASSES", "num_classes", int),
    *_group("MODEL.CALIBNET", "inference", [("CLS_THRESHOLD", float), ("MASK_THRESHOLD", float),
                                            ("MAX_DETECTIONS", int)]),
    YamlKey("MODEL.CALIBNET.DATASET_MAPPER", choices={"RGBDSISDatasetMapper": None}),
    *_encoder_keys("MODEL.CALIBNET.ENCODER", "encoder"),
    *_encoder_keys("MODEL.CALIBNET.ENCODER_DEPTH", "encoder_depth"),
    YamlKey("MODEL.CALIBNET.DECODER.NAME", choices={"CalibNetDecoder": None}),
    *_group("MODEL.CALIBNET.DECODER", "decoder", [("NUM_KERNELS", int), ("INPUT_CHANNELS", int), ("CONV_DIM", int),
                                                  ("SCALE_FACTOR", int)]),
    YamlKey("MODEL.CALIBNET.FUSION_DECODER.NAME", "fusion_decoder.two_scale",
            choices={"TwoScaleCalibNetFusionDecoder": True, "CalibNetFusionDecoder": False}),
    *_group("MODEL.CALIBNET.FUSION_DECODER", "fusion_decoder", [("INPUT_DIM", int), ("MASK_DIM", int)]),
    *_group("MODEL.CALIBNET.LOSS", "loss", [("CLASS_WEIGHT", float), ("MASK_PIXEL_WEIGHT", float),
                                            ("MASK_DICE_WEIGHT", float), ("OBJECTNESS_WEIGHT", float)]),
    YamlKey("MODEL.CALIBNET.MATCHER.ALPHA", "loss.matcher_alpha", float),
    YamlKey("MODEL.CALIBNET.MATCHER.BETA", "loss.matcher_beta", float),
    YamlKey("DATASETS.TRAIN", "datasets_train", _tuple),
    YamlKey("DATASETS.TEST", "datasets_test", _tuple),
    *_group("SOLVER", "solver", [("OPTIMIZER", str), ("IMS_PER_BATCH", int), ("BASE_LR", float), ("STEPS", _ints),
                                 ("GAMMA", float), ("MAX_ITER", int), ("WEIGHT_DECAY", float),
                                 ("CHECKPOINT_PERIOD", int), ("AMSGRAD", bool), ("BACKBONE_MULTIPLIER", float)]),
    *_group("INPUT", "input", [("CROP.ENABLED", bool), ("CROP.TYPE", str), ("CROP.SIZE", _ints), ("MASK_FORMAT", str),
                               ("MIN_SIZE_TRAIN", _ints), ("MAX_SIZE_TRAIN", int), ("MIN_SIZE_TEST", int),
                               ("MAX_SIZE_TEST", int), ("FORMAT", str)]),
    YamlKey("TEST.EVAL_PERIOD", "eval_period", int),
    YamlKey("TEST.DETECTIONS_PER_IMAGE", "inference.max_detections", int),
    YamlKey("DATALOADER.NUM_WORKERS", "num_workers", int),
    YamlKey("VERSION", choices={2: None}),
)

_BY_KEY = {k.key: k for k in YAML_KEYS}


# ---------------------------------------------------------------------- reading


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _load_yaml_chain(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """[(file, flat key->value)] from the deepest ``_BASE_`` to ``path`` itself."""

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
    base = data.pop("_BASE_", None)
    chain = _load_yaml_chain(path.parent / str(base), _seen + (path,)) if base is not None else []
    return [*chain, (path, _flatten(data))]


def read_yaml(cfg: CalibNetConfig, path: Path) -> CalibNetConfig:
    """Apply an official YAML file (after its ``_BASE_`` chain) to ``cfg`` in place; returns ``cfg`` (not
    validated). :class:`ConfigError` naming the file and the key for an unknown key or a bad value."""
    cfg.source = str(path)
    for file, flat in _load_yaml_chain(path):
        for key, value in flat.items():
            row = _BY_KEY.get(key)
            if row is None:
                raise ConfigError(f"{file}: unknown or unsupported config key {key!r}")
            try:
                row.apply(cfg, value)
            except ConfigError as exc:
                raise ConfigError(f"{file}: key {key!r}: {exc}") from None
            except (TypeError, ValueError, SyntaxError) as exc:
                raise ConfigError(f"{file}: key {key!r}: bad value {value!r}: {exc}") from None
    return cfg


# ---------------------------------------------------------------------- writing


def config_tree(cfg: CalibNetConfig) -> dict[str, Any]:
    """The nested YAML mapping of ``cfg`` (official key names, every written row of :data:`YAML_KEYS`)."""
    tree: dict[str, Any] = {}
    for row in YAML_KEYS:
        if row.written:
            *parents, name = row.key.split(".")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[name] = row.value(cfg)
    return tree


def config_to_yaml(cfg: CalibNetConfig, header: str = "") -> str:
    """YAML text of ``cfg`` that ``CalibNetConfig.from_yaml`` reads back to an equal config."""

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
