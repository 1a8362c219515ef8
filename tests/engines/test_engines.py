"""CPU tests for calibnet.engines and the TensorRT backend's pure logic (no TensorRT, no GPU needed)."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calibnet.engines import CacheKey, build_engine, cache_mismatches, choose_fp16_path, find_cached, get_or_build
from calibnet.engines.fp16 import fp32_patterns, pattern_strings
from calibnet.runtime.backends import tensorrt_deps as _deps
from calibnet.runtime.backends.base import BackendUnavailable
from calibnet.runtime.backends.cuda_buffers import HostBuffer, get_cuda_api
from calibnet.runtime.backends.onnxruntime import gpu_providers, tensorrt_provider_options
from calibnet.runtime.backends.tensorrt import (
    TensorRTBackend,
    TensorSpec,
    buffer_nbytes,
    buffers_to_grow,
    check_engine_compat,
    resolve_input_shapes,
)
from calibnet.runtime.backends.tensorrt_deps import TensorRTUnavailable
from calibnet.runtime.core.cachedir import HashLedger, file_sha256, private_dir
from calibnet.runtime.core.contract import ModelMetadata
from calibnet.runtime.core.feeds import random_feeds
from calibnet.runtime.core.profiles import (
    ShapeRange,
    parse_profile_spec,
    profiles_from_json,
    profiles_from_metadata,
    profiles_to_json,
)
from calibnet.runtime.core.sidecar import (
    EngineSidecar,
    GpuInfo,
    IOTensor,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

# ---------------------------------------------------------------- profiles


def test_static_profile_from_metadata():
    meta = ModelMetadata(height=320, width=480, batch=2)
    (p,) = profiles_from_metadata(meta)
    assert set(p) == {"rgb", "depth", "valid_hw"}
    assert p["rgb"].is_static and p["rgb"].opt == (2, 3, 320, 480)
    assert p["depth"].opt == (2, 1, 320, 480) and p["valid_hw"].opt == (2, 2)


def test_dynamic_profile_from_metadata():
    meta = ModelMetadata(height=320, width=480, batch=2, dynamic_batch=True, max_batch=8, dynamic_hw=True,
                         min_hw=(256, 256), max_hw=(640, 640))
    (p,) = profiles_from_metadata(meta)
    assert p["rgb"] == ShapeRange((1, 3, 256, 256), (2, 3, 320, 480), (8, 3, 640, 640))
    assert p["depth"].max == (8, 1, 640, 640)
    assert p["valid_hw"] == ShapeRange((1, 2), (2, 2), (8, 2))
    assert p["rgb"].contains((4, 3, 320, 512)) and not p["rgb"].contains((9, 3, 320, 480))


@pytest.mark.parametrize("kwargs, msg", [
    (dict(dynamic_hw=True, min_hw=(250, 256), max_hw=(640, 640)), "multiples of 32"),
    (dict(dynamic_hw=True, min_hw=(352, 256), max_hw=(640, 640)), "min <= opt <= max"),
    (dict(height=330), "multiples of 32"),
])
def test_bad_profile_metadata_is_rejected(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        profiles_from_metadata(ModelMetadata(**kwargs))


def test_profile_json_and_spec_roundtrip():
    meta = ModelMetadata(dynamic_batch=True, max_batch=4)
    profs = profiles_from_metadata(meta)
    js = json.loads(json.dumps(profiles_to_json(profs)))
    assert profiles_from_json(js) == profs
    spec = parse_profile_spec(["rgb:1x3x320x320,1x3x320x480,2x3x480x480", "valid_hw:1x2,1x2,2x2"])
    assert spec["rgb"].max == (2, 3, 480, 480) and spec["valid_hw"].min == (1, 2)
    with pytest.raises(ValueError, match="bad profile spec"):
        parse_profile_spec(["rgb:1x3x320"])


# ---------------------------------------------------------------- sidecar and cache

def _sidecar(**kw) -> EngineSidecar:
    profs = profiles_to_json(profiles_from_metadata(ModelMetadata()))
    base = dict(onnx_sha256="a" * 64, tensorrt_version="10.13.0.35", gpu=GpuInfo("NVIDIA H100", "9.0"),
                precision="fp16", fp16_path="builder-flag-fp16", profiles=profs,
                io=[IOTensor("rgb", "input", "float32", (1, 3, 320, 480))], fp32_layers=["/ln"],
                model=ModelMetadata(flavor="tensorrt").to_dict(), builder={"fp32_patterns": ["op:Softmax"]})
    base.update(kw)
    return EngineSidecar(**base)


def test_sidecar_roundtrip(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    sc = _sidecar(engine_sha256=file_sha256(engine))
    path = write_sidecar(engine, sc)
    assert path == sidecar_path(engine) == tmp_path / "m.engine.json"
    back = read_sidecar(engine)
    assert back.to_dict() == json.loads(json.dumps(sc.to_dict()))
    assert back.gpu == sc.gpu and back.io == sc.io and back.metadata == ModelMetadata(flavor="tensorrt")
    assert back.metadata.flavor == "tensorrt" and back.io[0].shape == (1, 3, 320, 480)


def test_sidecar_errors(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(FileNotFoundError, match="no sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a calibnet engine sidecar"):
        read_sidecar(engine)


def _key(sc: EngineSidecar, **kw) -> CacheKey:
    args = dict(onnx_sha256=sc.onnx_sha256, tensorrt_version=sc.tensorrt_version, gpu=sc.gpu,
                precision=sc.precision, profiles=sc.profiles, fp32_patterns=["op:Softmax"])
    args.update(kw)
    return CacheKey.make(**args)


def test_cache_rules():
    sc = _sidecar()
    assert cache_mismatches(sc, _key(sc)) == []
    dyn = profiles_from_metadata(ModelMetadata(dynamic_batch=True, max_batch=4))
    cases = {
        "ONNX file changed": _key(sc, onnx_sha256="b" * 64),
        "TensorRT version": _key(sc, tensorrt_version="10.14.1"),
        "GPU": _key(sc, gpu=GpuInfo("NVIDIA A100", "8.0")),
        "precision": _key(sc, precision="fp32"),
        "profiles differ": _key(sc, profiles=dyn),
        "FP32 layer patterns": _key(sc, fp32_patterns=["op:LayerNormalization"]),
    }
    for reason, key in cases.items():
        got = cache_mismatches(sc, key)
        assert len(got) == 1 and reason in got[0], (reason, got)


def _fake_builder(calls):
    def build(onnx_path, engine_path, fp16=True, profiles=None, fp32_layers=None, **kw):
        calls.append(engine_path)
        engine_path.write_bytes(b"engine-" + str(len(calls)).encode())
        sc = _sidecar(onnx_sha256=file_sha256(onnx_path), precision="fp16" if fp16 else "fp32",
                      profiles=profiles_to_json(profiles_from_json(profiles)),
                      builder={"fp32_patterns": list(fp32_layers)}, engine_sha256=file_sha256(engine_path))
        write_sidecar(engine_path, sc)
        return engine_path
    return build


def _cache_case(tmp_path, graph: bytes):
    """An ONNX file of ``graph``, its default profiles, the fake builder's calls and get_or_build's arguments."""
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(graph)
    profs = profiles_from_metadata(ModelMetadata())
    calls: list = []
    kw = dict(cache_dir=tmp_path / "cache", profiles=profs, tensorrt_version="10.13.0.35",
              gpu=GpuInfo("NVIDIA H100", "9.0"), builder=_fake_builder(calls))
    return onnx, profs, calls, kw


def test_get_or_build_hit_and_miss(tmp_path):
    onnx, profs, calls, kw = _cache_case(tmp_path, b"graph v1")
    e1 = get_or_build(onnx, **kw)
    assert len(calls) == 1 and e1.is_file() and e1.suffix == ".engine"
    assert get_or_build(onnx, **kw) == e1 and len(calls) == 1  # hit
    get_or_build(onnx, fp16=False, **kw)  # other precision: miss
    assert len(calls) == 2
    onnx.write_bytes(b"graph v2")  # model changed: miss
    e3 = get_or_build(onnx, **kw)
    assert len(calls) == 3 and e3 != e1
    e3.write_bytes(b"corrupted")  # engine bytes no longer match the sidecar: rebuilt
    get_or_build(onnx, **kw)
    assert len(calls) == 4
    assert find_cached(tmp_path / "cache", CacheKey.make("0" * 64, "10.13.0.35", GpuInfo("x", "1.0"), "fp16",
                                                         profs)) is None


def test_a_planted_engine_without_a_matching_hash_is_not_loaded(tmp_path):
    """An engine is deserialized (code-like): one whose sidecar records no sha256, or another one, is rebuilt."""
    onnx, profs, calls, kw = _cache_case(tmp_path, b"graph")
    key = CacheKey.make(file_sha256(onnx), "10.13.0.35", GpuInfo("NVIDIA H100", "9.0"), "fp16", profs,
                        pattern_strings(fp32_patterns(None)))
    cache = private_dir(tmp_path / "cache")
    planted = cache / "m.fp16.planted.engine"
    planted.write_bytes(b"a plan that runs the attacker's plugin")
    sc = _sidecar(onnx_sha256=key.onnx_sha256, profiles=list(profiles_to_json(profs)),
                  builder={"fp32_patterns": list(key.fp32_patterns)})  # every field matches, no engine_sha256
    assert cache_mismatches(sc, key) == []
    write_sidecar(planted, sc)
    assert find_cached(cache, key) is None
    write_sidecar(planted, dataclasses.replace(sc, engine_sha256="0" * 64))  # a hash of other bytes
    assert find_cached(cache, key) is None
    built = get_or_build(onnx, **kw)
    assert len(calls) == 1 and built != planted and find_cached(cache, key) == built


def test_cache_folders_are_the_users_own(tmp_path):
    d = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700 and stat.S_IMODE(d.parent.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="writable by other users"):
        private_dir(shared)
    with pytest.raises(PermissionError, match="writable by other users"):
        find_cached(shared, CacheKey.make("0" * 64, "10", GpuInfo("x", "1.0"), "fp16", profiles_from_metadata(
            ModelMetadata())))
    foreign = Path("/")  # owned by root: another user's folder unless the tests run as root
    if os.getuid() != 0:
        with pytest.raises(PermissionError, match="owned by another user"):
            private_dir(foreign)


def test_hash_ledger_prunes_what_it_did_not_record(tmp_path):
    """OpenVINO blobs / ONNX Runtime TensorRT engines: kept only when their sha256 is the one recorded."""
    ledger = HashLedger(tmp_path / "ov")
    (ledger.folder / "1234.blob").write_bytes(b"compiled by OpenVINO")
    ledger.record()
    assert ledger.prune() == [] and (ledger.folder / "1234.blob").is_file()
    (ledger.folder / "1234.blob").write_bytes(b"swapped afterwards")
    (ledger.folder / "5678.blob").write_bytes(b"planted")
    assert sorted(ledger.prune()) == ["1234.blob", "5678.blob"]
    assert sorted(p.name for p in ledger.folder.iterdir()) == [HashLedger.NAME]


def test_write_sidecar_uses_a_temp_file_of_its_own(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    trap = tmp_path / "elsewhere"
    (tmp_path / "m.engine.json.tmp").symlink_to(trap)  # the old fixed temp name, planted as a link
    write_sidecar(engine, _sidecar())
    assert not trap.exists() and read_sidecar(engine).precision == "fp16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json", "m.engine.json.tmp"]


# ---------------------------------------------------------------- missing TensorRT / GPU

def test_import_has_no_heavy_deps():
    code = ("import sys, calibnet.engines, calibnet.runtime.backends.tensorrt, calibnet.runtime.backends.onnxruntime;"
            "print(sorted(m for m in ('torch', 'tensorrt', 'onnxruntime', 'pycuda', 'cuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(_deps.tensorrt_available(), reason="TensorRT is installed here")
def test_build_without_tensorrt_raises_one_clear_error(tmp_path):
    with pytest.raises(TensorRTUnavailable) as ei:
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine")
    msg = str(ei.value)
    assert 'pip install ".[tensorrt]" (in the calibnet checkout)' in msg and "pypi.nvidia.com" in msg
    assert isinstance(ei.value, BackendUnavailable)
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(TensorRTUnavailable, match=r"pip install \"\.\[tensorrt\]\""):
        TensorRTBackend(tmp_path / "m.engine")
    with pytest.raises(TensorRTUnavailable):
        get_or_build(tmp_path / "m.engine", cache_dir=tmp_path)


def test_missing_tensorrt_reasons(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail as if not installed
    with pytest.raises(TensorRTUnavailable, match="is not installed"):
        _deps.require_tensorrt("x")
    assert _deps.tensorrt_version() is None and _deps.tensorrt_major("11.4.0") == 11


def test_missing_cuda_api_error(monkeypatch):
    from calibnet.runtime.backends import cuda_buffers

    monkeypatch.setattr(cuda_buffers, "available_cuda_apis", lambda: [])
    with pytest.raises(BackendUnavailable, match="cuda-python"):
        get_cuda_api()
    with pytest.raises(ValueError, match="unknown CUDA API"):
        get_cuda_api("numba")


def test_fp16_path_choice():
    assert choose_fp16_path("10.13.0.35", True) == "builder-flag-fp16"
    assert choose_fp16_path("11.4.0", True) == "onnx-fp16-pass"
    assert choose_fp16_path("10.13.0.35", True, "onnx") == "onnx-fp16-pass"
    assert choose_fp16_path("11.4.0", False) == "none"
    with pytest.raises(ValueError, match="strongly typed"):
        choose_fp16_path("11.0.0", True, "flags")


# ---------------------------------------------------------------- buffer-shape logic

SPECS = [TensorSpec("rgb", True, "float32", (-1, 3, -1, -1), (1, 3, 256, 256), (4, 3, 640, 640)),
         TensorSpec("depth", True, "float32", (-1, 1, -1, -1), (1, 1, 256, 256), (4, 1, 640, 640)),
         TensorSpec("valid_hw", True, "int64", (-1, 2), (1, 2), (4, 2)),
         TensorSpec("pred_masks", False, "float32", (-1, 50, -1, -1))]


def test_resolve_input_shapes():
    shapes = resolve_input_shapes(SPECS, random_feeds(2, 320, 480))
    assert shapes == {"rgb": (2, 3, 320, 480), "depth": (2, 1, 320, 480), "valid_hw": (2, 2)}
    bad = [(dict(random_feeds(1, 320, 480), extra=np.zeros(1)), "unexpected \\['extra'\\]"),
           ({k: v for k, v in random_feeds(1, 320, 480).items() if k != "depth"}, "missing \\['depth'\\]"),
           (dict(random_feeds(1, 320, 480), rgb=np.zeros((1, 4, 320, 480))), "dimension 1 must be 3"),
           (random_feeds(1, 672, 480), "outside the engine's optimization profile"),
           (dict(random_feeds(1, 320, 480), valid_hw=np.zeros((2, 2))), "disagree on the batch"),
           (dict(random_feeds(1, 320, 480), valid_hw=np.zeros(2)), "expected rank 2")]
    for feeds, msg in bad:
        with pytest.raises(ValueError, match=msg):
            resolve_input_shapes(SPECS, feeds)


def test_buffer_sizes_and_growth():
    shapes = {"rgb": (2, 3, 320, 480), "valid_hw": (2, 2), "pred_masks": (2, 50, 160, 240)}
    dtypes = {"rgb": "float32", "valid_hw": "int64", "pred_masks": "float16"}
    nb = buffer_nbytes(shapes, dtypes)
    assert nb == {"rgb": 2 * 3 * 320 * 480 * 4, "valid_hw": 32, "pred_masks": 2 * 50 * 160 * 240 * 2}
    assert buffers_to_grow({}, nb) == set(nb)
    assert buffers_to_grow(nb, nb) == set()
    smaller = buffer_nbytes({k: (1, *v[1:]) for k, v in shapes.items()}, dtypes)
    assert buffers_to_grow(nb, smaller) == set()  # reuse larger allocations
    assert buffers_to_grow(smaller, nb) == set(nb)
    with pytest.raises(ValueError, match="not fully resolved"):
        buffer_nbytes({"rgb": (-1, 3, 320, 480)}, dtypes)


def test_host_buffer_views():
    hb = HostBuffer(np.zeros(64, np.uint8), 64)
    v = hb.view((2, 4), "float32")
    v[:] = 1.5
    assert v.shape == (2, 4) and hb.array[:32].view(np.float32).sum() == 12.0
    with pytest.raises(ValueError, match="cannot hold"):
        hb.view((3, 8), "float32")


def test_engine_compat_messages():
    assert check_engine_compat("10.13.0.35", "10.13.0.35", "9.0", "9.0") == []
    p = check_engine_compat("10.13.0.35", "10.14.1", "9.0", "8.9", "H100", "L4")
    assert len(p) == 2 and "TensorRT 10.13.0.35" in p[0] and "compute capability 9.0" in p[1]


# ---------------------------------------------------------------- ONNX Runtime GPU providers

def test_ort_provider_options_from_metadata(tmp_path):
    meta = ModelMetadata(dynamic_batch=True, max_batch=4, dynamic_hw=True, min_hw=(256, 256), max_hw=(640, 640))
    provs = gpu_providers("tensorrt", meta, cache_dir=tmp_path)
    assert [p[0] for p in provs] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    o = provs[0][1]
    assert o["trt_fp16_enable"] == "True" and o["trt_layer_norm_fp32_fallback"] == "True"
    assert o["trt_engine_cache_enable"] == "True" and o["trt_engine_cache_path"] == str(tmp_path)
    assert o["trt_timing_cache_enable"] == "True"
    assert o["trt_profile_min_shapes"] == "rgb:1x3x256x256,depth:1x1x256x256,valid_hw:1x2"
    assert o["trt_profile_max_shapes"] == "rgb:4x3x640x640,depth:4x1x640x640,valid_hw:4x2"
    assert all(isinstance(v, str) for v in o.values())
    static = tensorrt_provider_options(ModelMetadata(), fp16=False)
    assert "trt_profile_min_shapes" not in static and static["trt_fp16_enable"] == "False"
    assert [p[0] for p in gpu_providers("cuda")] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown provider kind"):
        gpu_providers("rocm")


def test_typing_stubs_repair():
    from tensorrt_stubs import repair_stub_text

    src = ("from __future__ import annotations\nclass A:\n"
           "    def f(self, in: list[int], out: int) -> ...:\n        ...\n"
           "    def g(self, a: int = None, b: int) -> bool:\n        ...\n    x: ...\n")
    out = repair_stub_text(src)  # parses (ast) or raises
    assert "in_: list[int]" in out and "b: int = ..." in out and "-> typing.Any" in out
    assert "-> builtins.bool" in out


def test_layer_to_onnx_node_mapping():
    from calibnet.engines.builder import onnx_node_for_layer

    names = {"/attn/Add", "/attn/Add_1", "/attn/Softmax"}
    assert onnx_node_for_layer("/attn/Add_1", names) == "/attn/Add_1"  # a sibling node, not Add's suffix
    assert onnx_node_for_layer("/attn/Add_shuffle", names) == "/attn/Add"
    assert onnx_node_for_layer("/attn/Softmax [reshape]", names) == "/attn/Softmax"
    assert onnx_node_for_layer("(Unnamed Layer* 3) [Shuffle]", names) is None


def test_cli_fp32_layers_json_adds_to_the_defaults(tmp_path):
    """The one FP32-island rule (``fp32_patterns``, used by build_engine, get_or_build and both CLIs): patterns
    replace the default islands; an FP16-readiness JSON adds its flagged layers to them."""
    from calibnet.engines.fp16 import DEFAULT_FP32_PATTERNS, fp32_patterns

    report = tmp_path / "r.fp16.json"
    report.write_text(json.dumps({"fp32_layers": ["/model/decoder/Softmax"]}))
    assert fp32_patterns(None) == list(DEFAULT_FP32_PATTERNS)
    assert fp32_patterns(["op:Softmax"]) == ["op:Softmax"]
    merged = fp32_patterns([str(report), "op:Softmax"])
    assert merged[:len(DEFAULT_FP32_PATTERNS)] == list(DEFAULT_FP32_PATTERNS)
    assert "/model/decoder/Softmax" in merged and "op:Softmax" in merged
    assert len(merged) == len(set(merged))
