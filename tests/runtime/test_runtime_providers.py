"""ONNX Runtime provider wiring: with onnxruntime-gpu present, Runtime.open asks for TensorRT > CUDA > CPU with
FP16, engine-cache and profile-shape options; checked on CPU with a faked provider list."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from calibnet.runtime import ModelMetadata, Runtime  # noqa: E402
from calibnet.runtime.backends import onnxruntime as ort_backend  # noqa: E402
from calibnet.runtime.core.onnx_props import read_metadata_props  # noqa: E402

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
META = ModelMetadata(dynamic_hw=True, min_hw=(320, 320), max_hw=(480, 640), height=320, width=480)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """An identity graph carrying calibnet metadata (dynamic H/W)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("rgb", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, "H", "W"])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["rgb"], ["out"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in META.to_props().items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path_factory.mktemp("prov") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_metadata_props_are_read_without_onnx_or_a_session(tiny_onnx):
    props = read_metadata_props(tiny_onnx)
    assert props == {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    assert ModelMetadata.from_props(props) == META


def test_cpu_only_build_gets_the_cpu_provider(monkeypatch, tiny_onnx):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_backend.default_providers(tiny_onnx) == ["CPUExecutionProvider"]


def test_tensorrt_build_gets_fp16_cache_and_profile_options(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(ALL))
    provs = ort_backend.default_providers(tiny_onnx, cache_dir=tmp_path / "cache")
    assert [p[0] for p in provs] == ALL
    trt = provs[0][1]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_layer_norm_fp32_fallback"] == "True"
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_engine_cache_path"] == str(tmp_path / "cache")
    assert trt["trt_profile_min_shapes"].startswith("rgb:1x3x320x320")
    assert "rgb:1x3x480x640" in trt["trt_profile_max_shapes"]
    assert provs[1][1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    fp32 = ort_backend.default_providers(tiny_onnx, fp16=False, cache_dir=tmp_path)
    assert fp32[0][1]["trt_fp16_enable"] == "False"


def test_cuda_only_build_skips_tensorrt(monkeypatch, tiny_onnx):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert [p[0] for p in ort_backend.default_providers(tiny_onnx)] == ALL[1:]


class _RecordingSession:
    """Stands in for ort.InferenceSession: records the providers it was given."""

    seen: list = []

    def __init__(self, path, sess_options=None, providers=None):
        _RecordingSession.seen.append(providers)
        self._props = read_metadata_props(path)

    def get_modelmeta(self):
        return type("Meta", (), {"custom_metadata_map": self._props})()

    def get_providers(self):
        return [p[0] if isinstance(p, tuple) else p for p in _RecordingSession.seen[-1]]


def test_runtime_open_passes_the_gpu_providers_to_the_session(monkeypatch, tiny_onnx, tmp_path):
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(ALL))
    monkeypatch.setattr(ort, "InferenceSession", _RecordingSession)
    rt = Runtime.open(tiny_onnx, cache_dir=tmp_path / "c")
    given = _RecordingSession.seen[-1]
    assert [p[0] for p in given] == ALL and given[0][1]["trt_engine_cache_path"] == str(tmp_path / "c")
    assert (tmp_path / "c").is_dir() and rt.backend.active_providers == ALL and rt.metadata.dynamic_hw
    Runtime.open(tiny_onnx, providers=["CPUExecutionProvider"])  # an explicit list is used as given
    assert _RecordingSession.seen[-1] == ["CPUExecutionProvider"]


def test_a_real_cpu_session_still_runs(tiny_onnx):
    backend = ort_backend.OnnxRuntimeBackend(tiny_onnx)
    x = np.ones((1, 3, 32, 32), np.float32)
    assert backend.active_providers == ["CPUExecutionProvider"]
    assert np.array_equal(backend.run({"rgb": x})["out"], x)
