"""The post-processing benchmark's correctness part: the runtime and the official torch post-processing give
the same instances on small cases (no timing is asserted)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibnet.benchmarks.official_postprocess import official_inference  # noqa: E402
from calibnet.benchmarks.postprocess_bench import (  # noqa: E402
    blob_case,
    compare,
    forward_case,
    run_case,
    runtime_post,
)
from calibnet.cli.postprocess_bench import main as postprocess_main  # noqa: E402
from calibnet.runtime.core.contract import ModelMetadata  # noqa: E402


@pytest.mark.parametrize("kept,hw", [(12, (90, 120)), (3, (140, 100)), (0, (64, 64))])
def test_runtime_equals_official_on_synthetic_outputs(kept, hw):
    case = blob_case("b", *hw, kept, kernels=16, seed=kept)
    res = run_case(case, iters=1, warmup=0)
    assert res.check["identical"], res.check
    assert res.kept == res.check["kept_official"] == kept
    assert res.runtime_ms > 0 and res.official_ms > 0


@pytest.mark.slow
def test_runtime_equals_official_on_a_real_forward():
    case = forward_case("r18", 70, 100)
    pred = runtime_post(case, ModelMetadata())
    assert pred.masks.shape[1:] == (70, 100)
    res = run_case(case, iters=1, warmup=0)
    assert res.check["identical"], res.check
    assert res.pre_ms is not None and res.pre_ms > 0


def test_compare_reports_a_real_difference():
    case = blob_case("b", 80, 100, 5, kernels=8, seed=3)
    meta = ModelMetadata()
    tensors = [torch.from_numpy(case.outputs[k]) for k in ("pred_logits", "pred_scores", "pred_masks")]
    official = official_inference(*tensors, [case.resized_hw], [case.original_hw], case.padded_hw)[0]
    pred = runtime_post(case, meta)
    assert compare(pred, official)["identical"]
    pred.masks[0, :10] = ~pred.masks[0, :10]  # 10 flipped rows of one mask: far above 0.1% of the pixels
    bad = compare(pred, official)
    assert not bad["identical"] and bad["mask_pixel_diff"] > 1e-3
    fewer = dataclasses.replace(pred, masks=pred.masks[1:], scores=pred.scores[1:], kernel_index=pred.kernel_index[1:])
    assert not compare(fewer, official)["identical"]


def test_official_baseline_applies_max_detections_only_beyond_it():
    case = blob_case("b", 64, 96, 10, kernels=10, seed=4)
    tensors = [torch.from_numpy(case.outputs[k]) for k in ("pred_logits", "pred_scores", "pred_masks")]
    full = official_inference(*tensors, [case.resized_hw], [case.original_hw], case.padded_hw)[0]
    top = official_inference(*tensors, [case.resized_hw], [case.original_hw], case.padded_hw, max_detections=4)[0]
    assert len(full["scores"]) == 10 and len(top["scores"]) == 4
    pre = torch.sqrt(torch.sigmoid(tensors[0][0, :, 0]) * torch.sigmoid(tensors[1][0, :, 0]))
    assert set(np.nonzero(np.isin(full["scores"].numpy(), top["scores"].numpy()))[0]) == set(
        torch.topk(pre, 4).indices.tolist())


def test_cli_runs_the_synthetic_cases(tmp_path, capsys):
    assert postprocess_main(["--no-forward", "--height", "64", "--width", "80", "--iters", "1", "--warmup", "0",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "blobs-50" in out and "identical" in out and (tmp_path / "r.json").is_file()
