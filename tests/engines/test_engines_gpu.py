"""GPU tests: build an FP16 engine from the R50 ONNX, run it, compare with ONNX Runtime, time it.

Skipped (with the reason) without TensorRT, an NVIDIA GPU, a CUDA Python package or calibnet.export.
Never run by the project itself (no GPU was available): run them with ``pytest -m gpu -s``.
"""

from __future__ import annotations

import json

import pytest

from calibnet.runtime.backends import tensorrt_deps as _deps

pytestmark = pytest.mark.gpu


def _gpu_ready() -> str | None:
    if not _deps.tensorrt_available():
        return "TensorRT is not installed (pip install '.[tensorrt]' from the checkout; needs NVIDIA's index and a GPU)"
    from calibnet.runtime.backends.cuda_buffers import available_cuda_apis, query_gpu

    if not available_cuda_apis():
        return "neither cuda-python nor pycuda is installed"
    if query_gpu() is None:
        return "no NVIDIA GPU found"
    try:
        from calibnet.export import export_onnx  # noqa: F401
    except ImportError:
        return "calibnet.export.export_onnx is not available"
    return None


REASON = _gpu_ready()
if REASON:
    pytest.skip(REASON, allow_module_level=True)


@pytest.fixture(scope="module")
def r50_onnx(tmp_path_factory):
    """R50 (deterministic init) exported twice at 320x480: TensorRT flavour (plugin) and portable."""
    import calibnet
    from calibnet.export import export_onnx

    d = tmp_path_factory.mktemp("gpu")
    model = calibnet.build_model("r50", seed=0, quiet=True).eval()
    trt_onnx = export_onnx(model, d / "r50.trt.onnx", flavor="tensorrt", height=320, width=480)
    portable = export_onnx(model, d / "r50.portable.onnx", flavor="portable", height=320, width=480)
    return d, trt_onnx, portable


def test_fp16_engine_matches_onnxruntime_and_is_timed(r50_onnx):
    from calibnet.engines import get_or_build
    from calibnet.engines.verify import verify_engine
    from calibnet.runtime.core.sidecar import read_sidecar

    d, trt_onnx, portable = r50_onnx
    engine = get_or_build(trt_onnx, cache_dir=d / "cache", timing_cache=d / "timing.cache")
    sc = read_sidecar(engine)
    assert sc.precision == "fp16" and sc.fp16_path in ("builder-flag-fp16", "onnx-fp16-pass")
    rep = verify_engine(engine, portable, samples=3, timing_iters=100, report_path=d / "verify.json")
    for sample in rep["samples"]:
        assert sample["outputs"]["pred_masks"]["mask_agreement"] >= 0.99, json.dumps(sample, indent=1)
    assert rep["passed"], json.dumps(rep["samples"], indent=1)
    graph = verify_engine(engine, portable, samples=1, timing_iters=100, use_cuda_graph=True)
    print(f"\nGPU {sc.gpu.name} TensorRT {sc.tensorrt_version} {sc.fp16_path}: host latency "
          f"{rep['timing_host_ms']['median_ms']:.2f} ms ({rep['timing_host_ms']['fps']:.1f} FPS); "
          f"with CUDA graph {graph['timing_host_ms']['median_ms']:.2f} ms")
    assert get_or_build(trt_onnx, cache_dir=d / "cache") == engine  # cache hit


def test_onnxruntime_gpu_providers(r50_onnx):
    ort = pytest.importorskip("onnxruntime")
    from calibnet.runtime.backends.onnxruntime import gpu_providers
    from calibnet.runtime.core.compare import compare_outputs
    from calibnet.runtime.core.contract import ModelMetadata
    from calibnet.runtime.core.feeds import random_feeds

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    d, _, portable = r50_onnx
    meta = ModelMetadata(height=320, width=480)
    feeds = random_feeds(1, 320, 480)
    cpu = ort.InferenceSession(str(portable), providers=["CPUExecutionProvider"])
    names = [o.name for o in cpu.get_outputs()]
    ref = dict(zip(names, cpu.run(None, feeds)))
    for kind in ("cuda", "tensorrt"):
        have = set(ort.get_available_providers())
        provs = [p for p in gpu_providers(kind, meta, cache_dir=d / "ort_cache") if p[0] in have]
        sess = ort.InferenceSession(str(portable), providers=provs)
        got = dict(zip(names, sess.run(None, feeds)))
        assert compare_outputs(ref, got, meta, "fp16").outputs["pred_masks"].mask_agreement >= 0.99, kind
