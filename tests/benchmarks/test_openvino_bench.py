"""calibnet-bench's OpenVINO rows: CPU ISA facts, speed-ups vs ONNX Runtime, and one tiny interleaved run."""

from __future__ import annotations

import json

import pytest

from calibnet.benchmarks.cpu_facts import cpu_isa
from calibnet.benchmarks.report import add_speedups_vs

SAPPHIRE = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n")
GENOA = "model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n"


def test_cpu_isa_reads_amx_vnni_bf16_flags():
    isa = cpu_isa(SAPPHIRE)
    assert isa["model_name"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert isa["amx"] and isa["vnni"] and isa["bf16"] and isa["flags"]["amx_int8"]
    isa = cpu_isa(GENOA)
    assert not isa["amx"] and isa["vnni"] and isa["bf16"] and not isa["flags"]["amx_tile"]
    assert cpu_isa("flags\t: sse2 avx2\n")["bf16"] is False


def test_speedups_vs_onnxruntime_per_timed_row():
    def row(e2e, infer):
        return {"e2e_ms": {"p50": e2e}, "stages_ms": {"infer": {"p50": infer}}}

    rows = {"onnxruntime": row(1000.0, 900.0), "openvino-bf16": row(400.0, 300.0), "tensorrt": {"e2e_ms": None}}
    add_speedups_vs(rows)
    assert rows["openvino-bf16"]["speedup_vs_onnxruntime"] == pytest.approx(2.5)
    assert rows["openvino-bf16"]["infer_speedup_vs_onnxruntime"] == pytest.approx(3.0)
    assert rows["onnxruntime"]["speedup_vs_onnxruntime"] == pytest.approx(1.0)
    assert "speedup_vs_onnxruntime" not in rows["tensorrt"]


@pytest.mark.slow
def test_bench_openvino_rows_tiny(tmp_path, capsys):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from calibnet.cli.bench import main
    from calibnet.runtime.backends.openvino import cpu_capabilities
    from calibnet.runtime.backends.openvino_msda import extension_status

    out_json = tmp_path / "b.json"
    rc = main(["--config", "r18", "--height", "64", "--width", "96", "--iters", "1", "--warmup", "0",
               "--threads", "1", "--backends", "onnxruntime,openvino-f32,openvino-bf16,openvino-int8",
               "--int8-calib", "2", "--sgemm-size", "128", "--no-dataset-sizes", "--quiet", "--json", str(out_json),
               "--plot", str(tmp_path / "b.png"), "--profile"])
    assert rc == 0
    doc = json.loads(out_json.read_text())
    rows = doc["backends"]
    f32 = rows["openvino-f32"]
    assert f32["status"] == "passed" and f32["precision"] == "fp32", f32
    assert f32["validation"]["outputs"]["pred_masks"]["mask_agreement"] > 0.999
    assert f32["speedup_vs_onnxruntime"] > 0 and set(f32["stages_ms"]) == {"pre", "infer", "post"}
    int8 = rows["openvino-int8"]
    assert int8["e2e_ms"] is not None and int8["precision"] == "int8" and int8["artifact"].endswith("_int8.xml")
    assert "NNCF PTQ on 2 synthetic scenes" in int8["detail"], int8["detail"]
    bf16 = rows["openvino-bf16"]
    if "BF16" in cpu_capabilities():
        assert bf16["e2e_ms"] is not None and bf16["precision"] == "bf16"
    else:
        assert bf16["status"].startswith("unavailable: ") and "BF16" in bf16["status"]
    setup = doc["setup"]
    assert setup["openvino"] and setup["nncf"] and "amx" in setup["cpu_isa"]
    # --profile: each OpenVINO row's top operation types and the deformable attention's share; fused where built
    fused = extension_status().available
    for row in (f32, int8):
        prof = row["profile"]
        shares = [t["share"] for t in prof["top"]]
        assert prof["runs"] >= 1 and shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
        assert 0 < prof["msda"]["share"] < 1 and prof["msda"]["fused_kernel_ran"] is fused
        assert ("MSDA fused" if fused else "MSDA decomposed") in row["detail"]
    assert "profile" not in rows["onnxruntime"]
    # the table's openvino row names the TensorRT flavour (Target.flavor); onnxruntime's stays portable
    assert "_tensorrt" in f32["artifact"] and "tensorrt ONNX export" in f32["detail"]
    assert "_tensorrt" in int8["artifact"] and "_tensorrt" not in rows["onnxruntime"]["artifact"]
    out = capsys.readouterr().out
    assert "vs ORT" in out and "where the time goes" in out and "openvino-f32: profiled" in out
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_profile_summarizes_types_and_the_attention_share():
    from calibnet.benchmarks.openvino_profile import format_profile, summarize

    def c(name, type_, ms):
        return {"name": name, "type": type_, "exec_type": "x", "ms": ms}

    fused = [c("/enc/conv1", "Convolution", 60.0), c("/enc/l0/self_attn/MultiscaleDeformableAttnPlugin_TRT",
                                                       "MultiscaleDeformableAttnPlugin_TRT", 6.0),
             c("/enc/l0/self_attn/value_proj/Add_bf16_f32_/enc/l0/self_attn/MultiscaleDeformableAttnPlugin_TRT",
               "Reorder", 2.0), c("/enc/conv1_reorder", "Reorder", 12.0), c("/dec/ReduceSum", "ReduceSum", 20.0)]
    prof = summarize([fused, [{**x, "ms": 2 * x["ms"]} for x in fused]], top=3)
    assert prof["runs"] == 2 and prof["total_ms"] == pytest.approx(150.0)
    assert [(t["type"], round(t["ms"], 3)) for t in prof["top"]] == [("Convolution", 90.0), ("ReduceSum", 30.0),
                                                                     ("Reorder", 21.0)]
    assert prof["top"][0]["share"] == pytest.approx(0.6)
    m = prof["msda"]
    assert m["fused_kernel_ran"] and m["ms"] == pytest.approx(12.0) and m["share"] == pytest.approx(0.08)
    decomposed = [c("/enc/conv1", "Convolution", 60.0), c("/enc/l0/self_attn/msda_GridSample_s0", "GridSample", 9.0),
                  c("/enc/l0/self_attn/msda_ReduceSum_o0", "ReduceSum", 6.0), c("/dec/ReduceSum", "ReduceSum", 5.0)]
    m = summarize([decomposed])["msda"]
    assert not m["fused_kernel_ran"] and m["ms"] == pytest.approx(15.0) and "GridSample" in m["what"]
    lines = format_profile("openvino-bf16", prof)
    assert "deformable attention 8.0%" in lines[0] and "fused kernel" in lines[0] and "Convolution" in lines[1]
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.slow
def test_openvino_ab_rows_tiny(tmp_path):
    """The main-vs-branch tool: main's rows decomposed with FP32 INT8 islands, the branch's fused (where the kernel
    is built) with BF16 islands where the CPU has them; every row timed and compared with ONNX Runtime."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    import calibnet
    from calibnet.benchmarks.openvino_ab import run_ab
    from calibnet.runtime.backends.openvino import cpu_capabilities
    from calibnet.runtime.backends.openvino_msda import extension_status

    tiny = calibnet.get_config("r18").replace(**{"input.min_size_test": 64, "input.max_size_test": 96,
                                                 "encoder.num_layers": 1, "encoder_depth.num_layers": 1})
    doc = run_ab(calibnet.build_model(tiny, quiet=True), 64, 96, tmp_path, threads=1, iters=1, warmup=0, calib=2,
                 say=lambda _: None)
    rows, bf16 = doc["rows"], "BF16" in cpu_capabilities()
    assert rows["main openvino-int8"]["msda"] == "decomposed" and rows["main openvino-int8"]["float_precision"] == "f32"
    branch = rows["branch openvino-int8"]
    assert branch["msda"] == ("fused" if extension_status().available else "decomposed")
    assert branch["float_precision"] == ("bf16" if bf16 else "f32")
    for name in ("onnxruntime", "main openvino-f32", "branch openvino-f32"):
        assert rows[name]["mask_agreement_vs_onnxruntime"] > 0.999 and rows[name]["e2e_ms"]["p50"] > 0
    assert rows["onnxruntime"]["speedup_vs_onnxruntime"] == 1.0
    assert all(r["infer_speedup_vs_onnxruntime"] > 0 for r in rows.values() if "e2e_ms" in r)
