"""OpenVINO backend (FP32 / BF16 / INT8 IR): precision choice, bad input, same Prediction as ONNX Runtime, no torch.

The model is a tiny R18 (1-layer encoders, 10 kernels) exported at 128x192, so the file builds in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import predict_without_torch

ov = pytest.importorskip("openvino")


from calibnet.runtime import Runtime  # noqa: E402
from calibnet.runtime.backends.base import BackendUnavailable  # noqa: E402
from calibnet.runtime.backends.openvino import (  # noqa: E402
    OpenVinoBackend,
    PrecisionMismatch,
    choose_precision,
    compile_config,
    read_ir_metadata,
)

NO_BF16 = ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]  # a CPU without native BF16 (e.g. AVX2-only)
WITH_BF16 = ["BF16", "FP32", "INT8", "BIN"]
TINY = {"decoder.num_kernels": 10, "encoder.num_layers": 1, "encoder_depth.num_layers": 1,
        "input.min_size_test": 128, "input.max_size_test": 192}


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    import calibnet
    from calibnet.export import export_onnx

    cfg = calibnet.get_config("r18").replace(**TINY)
    path = tmp_path_factory.mktemp("ov") / "tiny.onnx"
    return export_onnx(calibnet.build_model(cfg, quiet=True), path, height=128, width=192)


@pytest.fixture(scope="module")
def tiny_ir(tiny_onnx):
    """The FP32 OpenVINO IR of the tiny model, with calibnet's metadata in rt_info, made by the export API's
    ``openvino-ir`` maker."""
    from calibnet.export.api import make_artifact

    lines: list[str] = []
    step = make_artifact(tiny_onnx, "openvino-ir", tiny_onnx.with_name("tiny_fp32.xml"), say=lines.append)
    assert step.status == "done" and step.path.with_suffix(".bin").is_file(), step
    assert lines == [f"wrote OpenVINO IR {step.path} (+ its .bin)"]
    return step.path


def _frame(seed: int = 0):
    from calibnet.data.synthetic import make_scene

    s = make_scene(seed=seed, height=192, width=288)
    return s.rgb, s.depth


def test_auto_picks_f32_without_native_bf16_and_says_so(tiny_onnx, tmp_path):
    be = OpenVinoBackend(tiny_onnx, precision="auto", capabilities=NO_BF16, cache_dir=tmp_path / "cache")
    assert be.precision == "f32"
    assert "does not report native BF16" in be.precision_reason and "FP32" in be.precision_reason
    assert be.config["INFERENCE_PRECISION_HINT"] == "f32"  # always explicit: OpenVINO defaults to BF16 on AMX
    assert be.actual_precision == "f32"
    assert "f32" in be.describe()


def test_auto_picks_bf16_where_the_cpu_reports_it():
    choice = choose_precision("auto", WITH_BF16, int8_model=False)
    assert choice.precision == "bf16" and "BF16" in choice.reason and choice.float_precision == "bf16"
    assert choose_precision("F32", WITH_BF16, int8_model=False).float_precision == "f32"


def test_int8_float_parts_run_in_bf16_where_the_cpu_has_it():
    """INT8 with BF16 islands: the parts kept in float follow the CPU, and the reason says so (as auto's)."""
    for requested in ("int8", "auto"):
        islands = choose_precision(requested, WITH_BF16, int8_model=True)
        assert (islands.precision, islands.float_precision) == ("int8", "bf16")
        assert "float parts run in BF16" in islands.reason and "OPTIMIZATION_CAPABILITIES list BF16" in islands.reason
        plain = choose_precision(requested, NO_BF16, int8_model=True)
        assert (plain.precision, plain.float_precision) == ("int8", "f32")
        assert "float parts run in FP32" in plain.reason and "does not report native BF16" in plain.reason
    config = compile_config(islands, threads=2, cache_dir=None, profile=True)
    assert config == {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                      "INFERENCE_NUM_THREADS": 2, "PERF_COUNT": True}
    assert compile_config(plain)["INFERENCE_PRECISION_HINT"] == "f32"


def test_bad_precisions_are_refused_with_a_reason(tiny_onnx):
    with pytest.raises(ValueError, match="unknown OpenVINO precision 'fp64'.*f32, bf16, int8, auto"):
        OpenVinoBackend(tiny_onnx, precision="fp64")
    with pytest.raises(PrecisionMismatch, match="float model.*calibnet-export .*--int8"):
        OpenVinoBackend(tiny_onnx, precision="int8", capabilities=WITH_BF16)
    with pytest.raises(BackendUnavailable, match="no native BF16"):
        OpenVinoBackend(tiny_onnx, precision="bf16", capabilities=NO_BF16)
    with pytest.raises(PrecisionMismatch, match="INT8-quantized"):
        choose_precision("bf16", WITH_BF16, int8_model=True)


def test_ir_without_its_bin_is_named(tiny_ir, tmp_path):
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(tiny_ir.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"lonely\.bin is missing"):
        Runtime.open(lonely)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        Runtime.open(tmp_path / "absent.xml")


def test_ir_metadata_round_trip_without_openvino(tiny_onnx, tiny_ir):
    from calibnet.runtime.core.targets import read_metadata

    assert read_ir_metadata(tiny_ir) == read_metadata(tiny_onnx)


def test_openvino_f32_gives_the_onnxruntime_prediction(tiny_onnx, tiny_ir, tmp_path):
    rgb, depth = _frame(3)
    ort_pred = Runtime.open(tiny_onnx).predict(rgb, depth)
    cache = tmp_path / "cache"
    with Runtime.open(tiny_ir, precision="f32", threads=1, cache_dir=cache) as rt:  # .xml -> openvino
        assert rt.backend.name == "openvino" and rt.backend.config["INFERENCE_NUM_THREADS"] == 1
        pred = rt.predict(rgb, depth)
    assert any(cache.iterdir())  # CACHE_DIR is used
    assert len(pred) == len(ort_pred) > 0
    np.testing.assert_allclose(pred.scores, ort_pred.scores, atol=1e-4)
    assert (pred.masks == ort_pred.masks).mean() > 0.999
    onnx_ov = Runtime.open(tiny_onnx, backend="openvino", precision="f32", cache_dir="")
    raw = onnx_ov.backend.run({"rgb": np.zeros((1, 3, 128, 192), np.float32),
                               "depth": np.zeros((1, 1, 128, 192), np.float32),
                               "valid_hw": np.array([[128, 192]], np.int64)})
    assert set(raw) == {"pred_logits", "pred_scores", "pred_masks", "depth_trust"}


def test_openvino_loads_only_the_blobs_it_wrote(tiny_ir, tmp_path):
    """CACHE_DIR: a 0700 folder; a blob is kept only while its sha256 is the one recorded when OpenVINO wrote
    it: a swapped blob and a planted file are deleted before OpenVINO looks, and the model is compiled again."""
    import stat

    from calibnet.runtime.core.cachedir import HashLedger, file_sha256

    cache = tmp_path / "ov"
    OpenVinoBackend(tiny_ir, precision="f32", cache_dir=cache, capabilities=NO_BF16).close()
    recorded = HashLedger(cache).recorded()
    blobs = sorted(p for p in cache.iterdir() if p.name != HashLedger.NAME)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700 and blobs and sorted(recorded) == [p.name for p in blobs]
    blobs[0].write_bytes(b"a swapped blob")
    (cache / "planted.blob").write_bytes(b"not OpenVINO's")
    rt = Runtime.open(tiny_ir, precision="f32", cache_dir=cache, capabilities=NO_BF16)
    assert len(rt.predict(*_frame(1))) > 0  # compiled again, not loaded from the swapped blob
    assert not (cache / "planted.blob").exists() and blobs[0].read_bytes() != b"a swapped blob"
    again = HashLedger(cache).recorded()
    assert sorted(again) == sorted(recorded) and again[blobs[0].name] == file_sha256(blobs[0])  # the new blob


def test_openvino_backend_imports_no_torch(tiny_ir):
    res = predict_without_torch(tiny_ir, (100, 150), ", precision='auto', cache_dir=''",
                                "print('ok', rt.backend.precision)\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")


def test_eval_expands_openvino_precisions(tmp_path):
    import argparse

    from calibnet.cli.eval import _model_runs

    def ir(name: str, precision: str):
        xml = tmp_path / name
        xml.write_text(f"<net><rt_info><calibnet><precision value='\"{precision}\"'/></calibnet></rt_info></net>")
        return xml

    onnx, q, f = tmp_path / "m.onnx", ir("m_int8.xml", "int8"), ir("m.xml", "fp32")
    args = argparse.Namespace(backend="openvino", precisions="f32,bf16")
    assert _model_runs([onnx, q, f], args) == [(onnx, "f32"), (onnx, "bf16"), (q, "int8"), (f, "f32"), (f, "bf16")]
    args = argparse.Namespace(backend=None, precisions="f32,bf16")
    assert _model_runs([onnx, q], args) == [(onnx, None), (q, "int8")]
    assert _model_runs([onnx], argparse.Namespace(backend=None, precisions=None)) == [(onnx, None)]


def test_eval_compares_openvino_with_onnxruntime(tiny_onnx, tiny_ir, tmp_path, capsys):
    import json

    from calibnet.cli.eval import main as eval_main
    from calibnet.data import write_synthetic_dataset

    spec = write_synthetic_dataset(tmp_path / "syn", 2, seed=5, height=128, width=192)
    rc = eval_main([str(tiny_onnx), str(tiny_ir), "--precisions", "f32",
                    "--json", str(spec.json_file), "--image-root", str(spec.image_root), "--depth-root",
                    str(spec.depth_root), "--out", str(tmp_path / "eval"), "--max-drop", "0.01",
                    "--drop-metric", "AP50", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "eval" / "summary.json").read_text())["results"]
    assert [r["backend"] for r in rows] == ["onnxruntime", "openvino-f32"]
    assert rows[0]["AP50"] == rows[1]["AP50"]


#: two models compiled in one process and released in creation order (A, B made; A dropped, then B), then a
#: signal with a Python handler (CPython installs it with SA_ONSTACK: it runs on the thread's alternate stack)
_RELEASED_IN_CREATION_ORDER = """
import gc, os, signal, sys
import numpy as np
import openvino as ov
path, second = sys.argv[1], sys.argv[2]
{make}
signal.signal(signal.SIGUSR1, lambda *a: print("handled", flush=True))
a, b = make("f32"), make(second)
del a
gc.collect()
del b
gc.collect()
os.kill(os.getpid(), signal.SIGUSR1)
print("alive", flush=True)
"""


def _released_in_creation_order(make: str, path, second: str):
    import subprocess
    import sys

    code = _RELEASED_IN_CREATION_ORDER.format(make=make)
    return subprocess.run([sys.executable, "-c", code, str(path), second], capture_output=True, text=True,
                          timeout=300)


def test_openvino_alone_leaves_the_thread_on_an_unmapped_signal_stack(tiny_onnx):
    """The upstream bug the guard exists for (runtime/backends/signal_stack.py): plain OpenVINO, two Cores released
    in creation order, then one handled signal: SIGSEGV. If this starts passing, OpenVINO fixed its CPU plugin's
    signal-stack restore and the guard can go."""
    res = _released_in_creation_order(
        'make = lambda p: ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": p})', tiny_onnx, "f32")
    assert res.returncode == -11 and "alive" not in res.stdout, (
        f"OpenVINO {ov.__version__} no longer crashes here (rc {res.returncode}): the signal_stack guard may go")


def test_two_precisions_in_one_process_then_a_signal(tiny_onnx):
    """calibnet's backend, the same sequence: one model compiled and run at two precisions (bf16 where the CPU
    has it, else f32 twice) in one process, released in creation order, then a handled signal: no crash, and
    the thread is on the stack calibnet owns."""
    second = "bf16" if "BF16" in OpenVinoBackend(tiny_onnx, precision="f32", cache_dir="").capabilities else "f32"
    make = """
from calibnet.runtime.backends import signal_stack
from calibnet.runtime.backends.openvino import OpenVinoBackend
feeds = {"rgb": np.full((1, 3, 128, 192), 100, np.float32), "depth": np.full((1, 1, 128, 192), 50, np.float32),
         "valid_hw": np.array([[128, 192]], np.int64)}
def make(p):
    be = OpenVinoBackend(path, precision=p, cache_dir="")
    out = be.run(feeds)
    assert be.precision == p and all(np.isfinite(v).all() for v in out.values()), p
    print("ran", p, sorted(out), flush=True)
    return be
"""
    res = _released_in_creation_order(make + "import atexit\natexit.register(lambda: print('pinned',"
                                      " signal_stack.pinned(), flush=True))\n", tiny_onnx, second)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == ["ran f32 ['depth_trust', 'pred_logits', 'pred_masks', 'pred_scores']",
                                       f"ran {second} ['depth_trust', 'pred_logits', 'pred_masks', 'pred_scores']",
                                       "handled", "alive", "pinned True"]
