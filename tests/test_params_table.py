"""Parameter counts of the paper's ablation variants equal the official model's (params_table.json)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

import calibnet  # noqa: E402

VARIANTS = {
    "N=10": {"decoder.num_kernels": 10},
    "N=20": {"decoder.num_kernels": 20},
    "N=50": {},
    "N=100": {"decoder.num_kernels": 100},
    "layers=3/1": {"encoder_depth.num_layers": 1},
    "layers=6/3": {"encoder.num_layers": 6},
    "layers=6/6": {"encoder.num_layers": 6, "encoder_depth.num_layers": 6},
    "layers=3/0": {"encoder_depth.num_layers": 0},
    "single_scale_T3": {"fusion_decoder.two_scale": False},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_parameter_counts(official_dir, name):
    table = json.loads((official_dir / "params_table.json").read_text())
    model = calibnet.CalibNet(calibnet.get_config("r50").replace(**VARIANTS[name]))
    counts = calibnet.count_parameters(model)
    assert counts.total == table[name]["total"]
    assert counts.without_aux == table[name]["without_aux_heads"]
