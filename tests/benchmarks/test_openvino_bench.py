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

    out_json = tmp_path / "b.json"
    rc = main(["--config", "r18", "--height", "64", "--width", "96", "--iters", "1", "--warmup", "0",
               "--threads", "1", "--backends", "onnxruntime,openvino-f32,openvino-bf16,openvino-int8",
               "--int8-calib", "2", "--sgemm-size", "128", "--no-dataset-sizes", "--quiet", "--json", str(out_json),
               "--plot", str(tmp_path / "b.png")])
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
    assert "vs ORT" in capsys.readouterr().out
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
