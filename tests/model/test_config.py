"""Typed config with the official defaults and the official YAML reader (no torch needed)."""

from __future__ import annotations

import pytest

from calibnet import CalibNetConfig, ConfigError, get_config


def test_defaults_are_official():
    cfg = CalibNetConfig()
    assert cfg.decoder.num_kernels == 50
    assert (cfg.encoder.num_layers, cfg.encoder_depth.num_layers) == (3, 3)
    assert cfg.encoder.num_heads == 8 and cfg.encoder.dim_feedforward == 1024 and cfg.encoder.activation == "gelu"
    inf = cfg.inference
    assert (inf.cls_threshold, inf.mask_threshold, inf.max_detections) == (0.005, 0.45, 50)
    assert cfg.pixel_mean == (123.675, 116.280, 103.530) and cfg.pixel_std == (58.395, 57.120, 57.375)


def test_reads_official_yaml_with_base(official_dir):
    cfg = CalibNetConfig.from_yaml(official_dir / "configs" / "CalibNet_R101_50e_50q_320size.yaml")
    assert cfg.backbone.depth == 101
    assert cfg.decoder.num_kernels == 50 and cfg.inference.max_detections == 50
    assert cfg.solver.base_lr == 2.5e-5 and cfg.solver.steps == (70000, 90000)
    assert cfg.input.crop_size == (384, 600) and cfg.input.min_size_train == (320,)
    assert cfg.fusion_decoder.two_scale


def test_unsupported_backbone_config_is_clear(tmp_path):
    path = tmp_path / "mobile.yaml"
    path.write_text('MODEL:\n  BACKBONE:\n    NAME: "build_mobilenet_backbone"\n')
    with pytest.raises(ConfigError, match="mobile.yaml.*MODEL.BACKBONE.NAME.*unsupported.*D2SwinTransformer"):
        CalibNetConfig.from_yaml(path)


def test_unknown_key_names_key_and_file(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("MODEL:\n  RESNETS:\n    DEPTH: 50\n")
    child = tmp_path / "child.yaml"
    child.write_text('_BASE_: "base.yaml"\nMODEL:\n  CALIBNET:\n    DECODER:\n      NUM_KERNELZ: 10\n')
    with pytest.raises(ConfigError) as info:
        CalibNetConfig.from_yaml(child)
    assert "MODEL.CALIBNET.DECODER.NUM_KERNELZ" in str(info.value) and "child.yaml" in str(info.value)


def test_base_values_are_overridden_by_child(tmp_path):
    (tmp_path / "base.yaml").write_text("MODEL:\n  CALIBNET:\n    DECODER:\n      NUM_KERNELS: 10\n")
    (tmp_path / "c.yaml").write_text('_BASE_: "base.yaml"\nMODEL:\n  CALIBNET:\n    DECODER:\n      NUM_KERNELS: 20\n')
    assert CalibNetConfig.from_yaml(tmp_path / "c.yaml").decoder.num_kernels == 20
    assert CalibNetConfig.from_yaml(tmp_path / "base.yaml").decoder.num_kernels == 10


def test_bad_value_and_missing_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("MODEL:\n  RESNETS:\n    DEPTH: 77\n")
    with pytest.raises(ConfigError, match="depth 77"):
        CalibNetConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        get_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config"):
        get_config("r999")


def test_presets():
    assert get_config("r101").backbone.depth == 101
    assert get_config("R18").backbone.depth == 18
    assert get_config("r50").replace(**{"decoder.num_kernels": 10}).decoder.num_kernels == 10
