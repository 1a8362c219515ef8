"""The table of targets: one module plus one row make a backend that Runtime.open, read_metadata, the bench and
eval accept with no other edit; the backend file types are spelled only in the table."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

from calibnet.runtime import Runtime
from calibnet.runtime.core import targets

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(monkeypatch):
    """The fake backend registered for one test (the table is restored afterwards)."""
    import fake_backend

    monkeypatch.setitem(targets.TARGETS, "fake", fake_backend.ROW)
    fake_backend.CALLS.clear()
    return fake_backend


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An R18 export at 64x96 and 2 labelled synthetic scenes."""
    pytest.importorskip("torch")
    import calibnet
    from calibnet.data import write_synthetic_dataset
    from calibnet.export import export_onnx

    d = tmp_path_factory.mktemp("targets")
    cfg = calibnet.get_config("r18").replace(**{"input.min_size_test": 64, "input.max_size_test": 96})
    export_onnx(calibnet.build_model(cfg, quiet=True), d / "m.onnx", height=64, width=96, simplify=False)
    return d, write_synthetic_dataset(d / "S", 2, seed=3, height=64, width=96)


def test_runtime_open_and_metadata_take_a_registered_backend(fake, tiny):
    d, _ = tiny
    model = d / "m.fake"
    model.write_bytes((d / "m.onnx").read_bytes())
    assert targets.read_metadata(model) == targets.read_metadata(d / "m.onnx")
    with Runtime.open(model, threads=1) as rt:
        assert isinstance(rt.backend, fake.FakeBackend)
        rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
        pred = rt.predict(rgb, rgb[..., 0])
    with Runtime.open(d / "m.onnx") as reference:
        expected = reference.predict(rgb, rgb[..., 0])
    assert fake.CALLS == ["open m.fake", "run"]
    assert np.array_equal(pred.scores, expected.scores) and np.array_equal(pred.masks, expected.masks)
    assert "fake" in targets.suffixes_help()


def test_eval_takes_a_registered_backend(fake, tiny, tmp_path, capsys):
    from calibnet.cli.eval import main

    d, spec = tiny
    rc = main([str(d / "m.onnx"), "--backend", "fake", "--json", str(spec.json_file), "--out", str(tmp_path),
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["results"][0]["backend"] == "fake" and "run" in fake.CALLS


@pytest.mark.slow
def test_bench_takes_a_registered_backend(fake, tmp_path, capsys):
    from calibnet.cli.bench import main

    out = tmp_path / "b.json"
    rc = main(["--config", "r18", "--backends", "onnxruntime,fake", "--height", "64", "--width", "96", "--iters", "1",
               "--warmup", "0", "--threads", "1", "--sgemm-size", "64", "--no-dataset-sizes", "--quiet",
               "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    row = json.loads(out.read_text())["backends"]["fake"]
    assert row["status"] == "passed" and row["e2e_ms"]["p50"] > 0 and row["artifact"].endswith(".onnx")
    assert fake.CALLS[0].startswith("open ")


def test_help_texts_list_the_table(fake, capsys):
    from calibnet.cli import bench, eval, infer, serve

    for module in (infer, eval, serve):
        assert module.main(["--help"]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert "{onnxruntime,openvino,tensorrt,torch,fake}" in out and ".fake (fake)" in out
    assert bench.main(["--help"]) == 0
    assert "openvino-int8, tensorrt, torch, fake" in " ".join(capsys.readouterr().out.split())


SUFFIXES = re.compile(r"(?<![\w/~-])\.(onnx|engine|plan|xml|pth)\b")


def suffix_literals(root: Path) -> list[str]:
    """``file:line: text`` of every string constant in product code that spells a backend file type (a suffix not
    glued to a file stem, e.g. ``".onnx"`` or ``"(.xml)"``; ``model.onnx`` in an example is a file name)."""
    found = []
    for folder in ("calibnet", "export", "engines", "runtime", "benchmarks"):
        for f in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SUFFIXES.search(node.value):
                    found.append(f"{f.relative_to(root)}:{node.lineno}: {node.value.strip()[:80]}")
    return found


def test_file_types_are_spelled_only_in_the_table():
    found = [f for f in suffix_literals(REPO) if not f.startswith("runtime/core/targets.py:")]
    assert not found, "\n".join(found)
    assert len(suffix_literals(REPO)) >= 5  # the table itself is seen


def test_the_scan_sees_a_suffix(tmp_path):
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "x.py").write_text('A = "model.onnx"\nB = p.suffix == ".engine"\nC = f"{stem}.xml"\n')
    assert [line.split(": ", 1)[1] for line in suffix_literals(tmp_path)] == [".engine", ".xml"]
