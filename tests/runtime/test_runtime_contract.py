"""The graph contract (names, config -> metadata, metadata from a file), graph feeds, the file type -> backend
rule and closing a Runtime. Torch-free except where a config is built."""

from __future__ import annotations

import numpy as np
import pytest

from calibnet.runtime import ModelMetadata, Runtime
from calibnet.runtime.core.contract import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    TOPK_OUTPUT_NAMES,
    metadata_from_config,
)
from calibnet.runtime.core.feeds import random_feeds, stack_frames
from calibnet.runtime.core.preprocess import prepare_frame
from calibnet.runtime.core.sidecar import EngineSidecar, GpuInfo, write_sidecar
from calibnet.runtime.core.targets import read_metadata, resolve_target, target_for_file


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A graph that returns its rgb input as ``pred_logits``, carrying calibnet metadata."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("rgb", TensorProto.FLOAT, ["B", 3, "H", "W"])
    y = helper.make_tensor_value_info("pred_logits", TensorProto.FLOAT, ["B", 3, "H", "W"])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["rgb"], ["pred_logits"])], "g", [x],
                                                [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, ModelMetadata(height=64, width=96, mask_threshold=0.4).to_props())
    path = tmp_path_factory.mktemp("contract") / "tiny.onnx"
    onnx.save(model, str(path))
    return path


def test_names_and_defaults():
    assert INPUT_NAMES == ("rgb", "depth", "valid_hw")
    assert ModelMetadata().input_names == INPUT_NAMES and ModelMetadata().output_names == OUTPUT_NAMES
    assert TOPK_OUTPUT_NAMES[-1] == "keep_index" and "pred_masks" in OUTPUT_NAMES


def test_metadata_from_config_keeps_base_and_sets_facts():
    from calibnet import get_config

    cfg = get_config("r18")
    base = ModelMetadata(config="r18", checkpoint_sha256="abc", extra={"note": 1})
    meta = metadata_from_config(cfg, base, flavor="tensorrt", height=64)
    assert meta.config == "r18" and meta.checkpoint_sha256 == "abc" and meta.extra == {"note": 1}
    assert meta.flavor == "tensorrt" and meta.height == 64
    assert meta.num_kernels == cfg.decoder.num_kernels and meta.mask_threshold == cfg.inference.mask_threshold
    assert meta.pixel_mean == tuple(cfg.pixel_mean) and meta.resize_short == cfg.input.min_size_test
    assert base.flavor == "portable"  # not modified
    with pytest.raises(TypeError):
        metadata_from_config(cfg, no_such_field=1)


def test_read_metadata_from_onnx_and_engine_sidecar(tiny_onnx, tmp_path):
    assert read_metadata(tiny_onnx) == ModelMetadata(height=64, width=96, mask_threshold=0.4)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    write_sidecar(engine, EngineSidecar("0", "10.13", GpuInfo("g", "9.0"), "fp16", "none", [],
                                        model=ModelMetadata(precision="fp16").to_dict()))
    assert read_metadata(engine).precision == "fp16"
    (tmp_path / "plain.onnx").write_bytes(b"")
    with pytest.raises(ValueError):
        read_metadata(tmp_path / "plain.onnx")


def test_stack_frames_and_random_feeds():
    g = np.random.default_rng(0)
    frames = [prepare_frame((g.random((h, w, 3)) * 255).astype(np.uint8), (g.random((h, w)) * 255).astype(np.uint8),
                            pad_hw=(320, 480)) for h, w in ((375, 500), (300, 480))]
    feeds = stack_frames(frames)
    assert list(feeds) == list(INPUT_NAMES)
    assert feeds["rgb"].shape == (2, 3, 320, 480) and feeds["depth"].shape == (2, 1, 320, 480)
    assert feeds["valid_hw"].dtype == np.int64 and feeds["valid_hw"].tolist() == [[320, 427], [300, 480]]
    np.testing.assert_array_equal(feeds["rgb"][1], frames[1].rgb)
    with pytest.raises(ValueError):
        stack_frames([])
    r = random_feeds(2, 64, 96, (50, 80), seed=3)
    assert r["rgb"].shape == (2, 3, 64, 96) and r["valid_hw"].tolist() == [[50, 80]] * 2
    assert np.array_equal(r["depth"], random_feeds(2, 64, 96, (50, 80), seed=3)["depth"])


def test_the_file_type_picks_the_backend():
    picked = {s: target_for_file(f"m{s}").name for s in (".onnx", ".engine", ".plan", ".pth", ".pt", ".xml")}
    assert picked == {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".pth": "torch",
                      ".pt": "torch", ".xml": "openvino"}
    assert target_for_file("m.PLAN").name == "tensorrt" and resolve_target("m.bin", "onnxruntime").name == "onnxruntime"
    with pytest.raises(ValueError, match="unknown model type '.bin'"):
        target_for_file("m.bin")


def test_runtime_closes_its_backend(tiny_onnx, tmp_path):
    pytest.importorskip("onnxruntime")
    with Runtime.open(tiny_onnx, providers=["CPUExecutionProvider"]) as rt:
        x = np.ones((1, 3, 64, 96), np.float32)
        assert np.array_equal(rt.backend.run({"rgb": x})["pred_logits"], x)
    assert rt.backend.session is None
    odd = tmp_path / "model.bin"
    odd.write_bytes(tiny_onnx.read_bytes())
    with pytest.raises(ValueError, match="unknown model type"):
        Runtime.open(odd)
    rt = Runtime.open(odd, backend="onnxruntime", providers=["CPUExecutionProvider"])
    rt.close()
    assert rt.backend.session is None
