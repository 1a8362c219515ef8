"""The command-line layer: shared option groups, one-line usage errors, help texts from the code's own tables and
free of docstring markup."""

from __future__ import annotations

import importlib
import re

import pytest

from calibnet.cli.app import parser, plain, run_cli
from calibnet.cli.options import add_checkpoint, add_dataset, add_model, dataset_specs, open_options
from calibnet.config import PRESETS
from calibnet.data import DatasetError, write_synthetic_dataset
from calibnet.runtime.core.targets import TARGETS

COMMANDS = ["infer", "export", "demo", "train", "eval", "bench", "analyze", "serve", "engines", "loadgen",
            "postprocess_bench", "int8_splits", "analysis_bench", "bag_bench", "openvino_ab"]


def test_the_data_set_group(tmp_path):
    spec = write_synthetic_dataset(tmp_path / "S", 1, seed=0, height=48, width=64)
    p = add_dataset(parser("t", ""))
    (got,) = dataset_specs(p.parse_args(["--json", str(spec.json_file), "--name", "syn"]))
    assert got.name == "syn" and got.depth_root == spec.depth_root
    with pytest.raises(DatasetError, match="--dataset"):
        dataset_specs(p.parse_args([]))


def test_open_options_give_each_backend_what_it_takes():
    p = add_checkpoint(add_model(parser("t", "")))
    opts = open_options(p.parse_args(["m.xml", "--precision", "bf16", "--threads", "2", "--config", "r18"]))
    assert opts.for_target(TARGETS["openvino"]) == {"precision": "bf16", "threads": 2}
    assert opts.for_target(TARGETS["torch"]) == {"config": "r18", "threads": 2}
    assert opts.for_target(TARGETS["tensorrt"]) == {}


def test_usage_errors_and_failures_are_one_line(capsys):
    def boom(args):
        raise RuntimeError("disk on fire\nsecond line")

    p = add_model(parser("prog", ""))
    assert run_cli("prog", p, boom, ["--threads", "x", "m.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prog: error: argument --threads") and "--help" in err
    assert run_cli("prog", p, boom, ["m.onnx"]) == 1
    assert capsys.readouterr().err == "prog: error: disk on fire second line\n"


def test_plain_strips_docstring_markup():
    text = plain("see :func:`calibnet.x.y`, :class:`~a.b.C`, :meth:`Runtime.open <calibnet.r.X>` and ``code``")
    assert text == "see calibnet.x.y, C, Runtime.open and code"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_markup_and_the_tables(command, capsys):
    module = importlib.import_module(f"calibnet.cli.{command}")
    assert module.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"``|:(mod|meth|func|class|data|attr):", out), out
    flat = " ".join(out.split())
    if "--config" in out:
        assert all(name in flat for name in PRESETS), flat
    if "--backend " in out or "--backend {" in out:
        assert "{" + ",".join(TARGETS) + "}" in flat.replace(" ", "") and all(
            "/".join(t.suffixes) in flat for t in TARGETS.values())


def test_an_error_never_shares_a_line_with_a_progress_bar(capsys):
    import sys

    from tqdm import tqdm

    def fails(_args):
        bar = tqdm(total=3, desc="work", file=sys.stderr)
        bar.update(1)
        raise ValueError("bad value")

    assert run_cli("prog", parser("prog", "doc"), fails, []) == 2
    err = capsys.readouterr().err
    assert "work" in err and "\nprog: error: bad value" in err, err
