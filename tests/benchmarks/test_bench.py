"""calibnet-bench pieces: the official-style baseline path, the timing harness, the report arithmetic,
output validation, and the CLI end to end on a tiny R18 configuration (no timed assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import calibnet  # noqa: E402
from calibnet.benchmarks.latency import interleave  # noqa: E402
from calibnet.benchmarks.official_path import OfficialStylePath, forward_normalized, official_preprocess  # noqa: E402
from calibnet.benchmarks.report import backend_entry  # noqa: E402
from calibnet.cli.bench import main  # noqa: E402
from calibnet.data.synthetic import make_scene  # noqa: E402
from calibnet.runtime import ModelMetadata  # noqa: E402
from calibnet.runtime.core.compare import compare_outputs  # noqa: E402
from calibnet.runtime.core.stats import percentiles  # noqa: E402

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


@pytest.fixture(scope="module")
def tiny_model():
    cfg = calibnet.get_config("r18").replace(**{"input.min_size_test": 64, "input.max_size_test": 96})
    return calibnet.build_model(cfg, quiet=True)


def test_official_preprocess_resizes_normalizes_and_pads():
    scene = make_scene(seed=1, height=90, width=120)  # 4:3 -> 64x85, padded to 64x96
    f = official_preprocess([scene.rgb], [scene.depth], 64, 96, MEAN, STD)
    assert f.image_sizes == [(64, 85)] and f.original_sizes == [(90, 120)]
    assert f.images.shape == (1, 3, 64, 96) and f.depths.shape == (1, 3, 64, 96)
    assert torch.count_nonzero(f.images[..., 85:]) == 0 and torch.count_nonzero(f.depths[..., 85:]) == 0
    from PIL import Image

    ref = np.asarray(Image.fromarray(scene.rgb).resize((85, 64), Image.BILINEAR)).astype(np.float32)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(f.images[0, :, :, :85], (torch.from_numpy(ref).permute(2, 0, 1) - mean) / std)
    raw_depth = f.depths[0, :, :, :85] * std + mean  # depth enters as a 3-channel gray image
    torch.testing.assert_close(raw_depth[0], raw_depth[2], atol=1e-4, rtol=0)
    assert raw_depth.round().min() >= 0 and raw_depth.round().max() <= 255


def test_forward_normalized_equals_the_model_forward(tiny_model):
    scene = make_scene(seed=2, height=96, width=144)
    f = official_preprocess([scene.rgb], [scene.depth], 64, 96, MEAN, STD)
    raw_rgb = f.images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    raw_depth = (f.depths * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1))[:, :1]
    with torch.no_grad():
        a = forward_normalized(tiny_model, f.images, f.depths)
        b = tiny_model(raw_rgb, raw_depth, image_sizes=f.image_sizes)
    for k in ("pred_logits", "pred_scores", "pred_masks"):
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)


def test_official_path_runs_all_stages(tiny_model):
    scene = make_scene(seed=3, height=96, width=144)
    path = OfficialStylePath(tiny_model, [scene.rgb], [scene.depth])
    times = path.run_once()
    assert set(times) == {"pre", "infer", "post", "e2e"} and times["e2e"] >= times["infer"] > 0
    res = path.last_results[0]
    assert res["masks"].shape[1:] == (96, 144) and res["masks"].dtype == torch.bool
    assert len(res["scores"]) == len(res["masks"]) <= 50


class _Fake:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def run_once(self):
        self.log.append(self.name)
        return {"pre": 0.001, "infer": 0.002, "post": 0.003, "e2e": 0.006}


def test_interleave_alternates_paths_and_counts_rounds():
    log: list[str] = []
    times = interleave([_Fake("a", log), _Fake("b", log), _Fake("c", log)], warmup=1, iters=3)
    assert log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, then rotating starts
    assert len(times["a"].samples["e2e"]) == 3
    assert times["b"].summary_ms()["post"]["p50"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        interleave([_Fake("a", log)], warmup=0, iters=0)


def test_percentiles_in_ms():
    p = percentiles([0.001 * i for i in range(1, 101)])
    assert p["p50"] == pytest.approx(50.5) and p["p90"] == pytest.approx(90.1) and p["p99"] == pytest.approx(99.01)


def test_backend_entry_arithmetic():
    summary = {"pre": {"p50": 5.0}, "infer": {"p50": 80.0}, "post": {"p50": 15.0}, "e2e": {"p50": 100.0}}
    e = backend_entry("passed", summary, baseline_e2e_p50=250.0, batch=2, network_gmacs=10.0, sgemm_gflops=1000.0)
    assert e["fps"] == pytest.approx(20.0)  # 2 frames per 100 ms
    assert e["speedup_vs_official"] == pytest.approx(2.5)
    assert e["host_share"] == pytest.approx(0.2)
    assert e["achieved_gflops"] == pytest.approx(2 * 10.0 * 2 / 0.080)
    assert e["fraction_of_sgemm_peak"] == pytest.approx(0.5)
    missing = backend_entry("unavailable: no GPU", None, 250.0, 1, None, 1000.0)
    assert missing["fps"] is None and missing["e2e_ms"] is None
    for precision, share in (("f32", 0.5), ("fp32", 0.5), ("bf16", None), ("int8", None), ("fp16", None)):
        row = backend_entry("passed", summary, 250.0, 2, 10.0, 1000.0, extra={"precision": precision})
        assert row["fraction_of_sgemm_peak"] == (None if share is None else pytest.approx(share)), precision
        assert row["achieved_gflops"] == pytest.approx(500.0)  # GFLOP/s is shown for every row


def test_validation_flags_disagreement():
    """The bench validates with the one comparator (calibnet.runtime.core.compare)."""
    meta = ModelMetadata(mask_threshold=0.45)
    rng = np.random.default_rng(0)
    ref = {"pred_logits": rng.normal(size=(1, 5, 1)), "pred_scores": rng.normal(size=(1, 5, 1)),
           "pred_masks": rng.normal(size=(1, 5, 8, 8))}
    same = {k: v + 1e-4 for k, v in ref.items()}
    assert compare_outputs(ref, same, meta).passed
    flipped = dict(same, pred_masks=-ref["pred_masks"])
    report = compare_outputs(ref, flipped, meta)
    assert not report.passed and report.outputs["pred_masks"].mask_agreement < 0.9


@pytest.mark.parametrize("argv, message", [
    (["--height", "100"], "multiple of 32"),
    (["--backends", "torch,openvino"], "unknown backend"),
    (["--iters", "0"], "--iters must be >= 1"),
    (["--weights", "/nonexistent.pth"], "weights file not found"),
    (["--accuracy", "/nonexistent.json"], "no such file or registered data set"),
])
def test_cli_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("calibnet-bench: error:")


@pytest.mark.slow
def test_cli_end_to_end_tiny(tmp_path, capsys):
    from calibnet.data import write_synthetic_dataset

    spec = write_synthetic_dataset(tmp_path / "syn", 2, seed=3, height=96, width=144)
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    rc = main(["--config", "r18", "--height", "64", "--width", "96", "--iters", "1", "--warmup", "0",
               "--threads", "1", "--backends", "torch,onnxruntime,tensorrt", "--sgemm-size", "128",
               "--json", str(out_json), "--plot", str(out_png), "--compare-paper", "--quiet",
               "--accuracy", str(spec.json_file)])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    assert isinstance(doc["params"]["total"], int) and isinstance(doc["params"]["without_aux"], int)
    assert doc["params"]["total"] > doc["params"]["without_aux"] > 0
    assert isinstance(doc["gmacs"], float) and doc["gmacs"] > 0
    assert doc["gflops_2x_macs"] == pytest.approx(2 * doc["gmacs"])
    assert isinstance(doc["sgemm_gflops"], float) and doc["sgemm_gflops"] > 0
    for name in ("torch", "onnxruntime"):
        b = doc["backends"][name]
        assert b["status"] == "passed", b
        assert set(b["e2e_ms"]) >= {"p50", "p90", "p99"}
        assert set(b["stages_ms"]) == {"pre", "infer", "post"}
        assert all(isinstance(b["stages_ms"][s]["p50"], float) for s in ("pre", "infer", "post"))
        assert isinstance(b["fps"], float) and b["fps"] > 0
        assert isinstance(b["speedup_vs_official"], float) and b["speedup_vs_official"] > 0
        assert b["network_hw"] == [64, 96]
    assert doc["backends"]["onnxruntime"]["validation"]["ok"]
    from calibnet.runtime.backends.tensorrt_deps import tensorrt_available

    if not tensorrt_available():
        trt = doc["backends"]["tensorrt"]
        assert trt["status"].startswith("unavailable: ") and trt["fps"] is None
    assert doc["baseline"]["speedup_vs_official"] == pytest.approx(1.0)
    acc = doc["accuracy"]["backends"]
    assert set(acc) == {"torch", "onnxruntime"} and all(acc[b]["images"] == 2 for b in acc)
    assert acc["torch"]["AP"] == pytest.approx(acc["onnxruntime"]["AP"], abs=1.0)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "official (baseline)" in printed and "paper vs this run" in printed and "RTX 3090" in printed


def test_eager_msda_default_is_the_grid_sample_reference():
    """The baseline's eager model runs the pure-PyTorch deformable attention (the official CPU fallback's
    computation) unless an exporter swaps it in a context."""
    from calibnet.modeling.msda import ms_deform_attn_core, msda_dispatch

    g = torch.Generator().manual_seed(0)
    shapes = [(4, 6), (2, 3)]
    value = torch.randn(1, 30, 2, 4, generator=g)
    loc = torch.rand(1, 5, 2, 2, 3, 2, generator=g)
    w = torch.rand(1, 5, 2, 2, 3, generator=g)
    start = torch.tensor([0, 24])
    got = msda_dispatch(value, shapes, start, loc, w, torch.tensor(shapes))
    assert torch.equal(got, ms_deform_attn_core(value, shapes, loc, w))
