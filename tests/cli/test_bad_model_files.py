"""Every command, given a model or checkpoint that is empty, truncated, random bytes or of a foreign kind, ends in
one line that names the file and what is wrong, exit code 2, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from calibnet.cli import analyze, bench, demo, engines, eval, export, infer, serve, train

KINDS = ("empty", "truncated", "random", "foreign")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``{(kind, suffix): path}`` of broken model files: ONNX graphs, checkpoints, engines and annotation files."""
    pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from onnx import TensorProto, helper

    d = tmp_path_factory.mktemp("bad")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [4096], [0.5] * 4096)])
    good = {".onnx": helper.make_model(graph).SerializeToString()}
    torch.save({"model": {"not.a.calibnet.key": torch.zeros(4096)}}, d / "foreign.pth")
    good[".pth"] = (d / "foreign.pth").read_bytes()
    good[".engine"] = os.urandom(4096)  # an engine is TensorRT's own format: a big file of bytes without a sidecar
    good[".json"] = json.dumps({"not": "a COCO file"}).encode()
    out = {}
    for suffix, data in good.items():
        for kind in KINDS:
            path = d / f"{kind}{suffix}"
            path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "random": os.urandom(len(data)),
                              "foreign": data}[kind])
            out[kind, suffix] = path
    from calibnet.data import write_synthetic_dataset

    return out, d, write_synthetic_dataset(d / "S", 1, seed=0, height=64, width=96).json_file


def _commands(bad: dict, d: Path, data: Path, kind: str) -> dict:
    model, ckpt, engine, ann = bad[kind, ".onnx"], bad[kind, ".pth"], bad[kind, ".engine"], bad[kind, ".json"]
    out = str(d / "out")
    return {
        "demo": (demo.main, ["--config", "r18", "--weights", str(ckpt), "--out", out], ckpt),
        "train": (train.main, ["--synthetic", "stream", "--config", "r18", "--weights", str(ckpt), "--iters", "1",
                               "--out", out, "--no-progress"], ckpt),
        "export": (export.main, ["--config", "r18", "--weights", str(ckpt), "--onnx", str(d / "x.onnx")], ckpt),
        "infer": (infer.main, [str(model), "--rgb", "a.jpg", "--depth", "a.png", "--out", out], model),
        "eval": (eval.main, [str(model), "--json", str(data), "--out", out, "--no-progress"], model),
        "bench": (bench.main, ["--config", "r18", "--weights", str(ckpt), "--quiet"], ckpt),
        "analyze": (analyze.main, ["--json", str(ann), "--out", out, "--no-progress"], ann),
        "serve": (serve.main, [str(model)], model),
        "engines": (engines.main, ["info", str(engine)], engine),
    }


@pytest.mark.parametrize("command", ["demo", "train", "export", "infer", "eval", "bench", "analyze", "serve",
                                     "engines"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_model_file_is_one_line(files, command, kind, capsys):
    bad, d, data = files
    main, argv, culprit = _commands(bad, d, data, kind)[command]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert "Traceback" not in err
    assert not out or out.endswith("\n"), out  # a status line the error cut short is ended: never glued to it
    assert len(lines) == 1, lines
    assert lines[0].startswith("calibnet-" if command != "engines" else "python -m calibnet.engines"), lines
    assert str(culprit) in lines[0], lines
