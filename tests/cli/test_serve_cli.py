"""calibnet-serve's command line: the input limits (shared with calibnet-infer) and the per-request timeout reach
the server as typed options, with their defaults and help texts from calibnet.runtime.core.limits. (The server
itself, with these options, is run in tests/serving/test_serving.py.)"""

from __future__ import annotations

import pytest

from calibnet.cli import infer
from calibnet.cli import serve as serve_cli
from calibnet.runtime.core.limits import (
    BYTES_ENV,
    MAX_INPUT_BYTES,
    MAX_PIXELS,
    PIXELS_ENV,
    REQUEST_TIMEOUT_S,
    InputLimits,
)


@pytest.fixture
def served(monkeypatch, tmp_path):
    """What ``serve`` is called with, from a well-formed ONNX file ``m.onnx`` in the working folder (the server
    itself is not started: the options are checked)."""
    pytest.importorskip("pytriton")
    helper = pytest.importorskip("onnx.helper")
    x = helper.make_tensor_value_info("x", 1, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", 1, [1])])
    (tmp_path / "m.onnx").write_bytes(helper.make_model(graph).SerializeToString())
    monkeypatch.chdir(tmp_path)
    calls: list[dict] = []
    monkeypatch.delenv(PIXELS_ENV, raising=False)
    monkeypatch.delenv(BYTES_ENV, raising=False)
    monkeypatch.setattr(serve_cli, "serve", lambda model, **kw: calls.append(kw) or 0)
    return calls


def test_the_limits_and_the_timeout_reach_the_server(served, monkeypatch):
    assert serve_cli.main(["m.onnx", "--max-pixels", "100000", "--max-input-mb", "2.5", "--timeout-s", "1.5",
                           "--max-queue", "7"]) == 0
    assert served[-1]["limits"] == InputLimits(100_000, int(2.5 * 2**20))
    assert served[-1]["timeout_s"] == 1.5 and served[-1]["max_queue"] == 7
    assert serve_cli.main(["m.onnx"]) == 0  # the defaults of calibnet.runtime.core.limits
    assert served[-1]["limits"] == InputLimits(MAX_PIXELS, MAX_INPUT_BYTES)
    assert served[-1]["timeout_s"] == REQUEST_TIMEOUT_S and served[-1]["max_queue"] == 0
    monkeypatch.setenv(PIXELS_ENV, "2000000")  # the environment changes the default; an option wins over it
    assert serve_cli.main(["m.onnx"]) == 0 and served[-1]["limits"].max_pixels == 2_000_000
    assert serve_cli.main(["m.onnx", "--max-pixels", "0"]) == 0 and served[-1]["limits"].max_pixels == 0


@pytest.mark.parametrize("argv, named", [(["--max-pixels", "-1"], "--max-pixels"),
                                          (["--max-input-mb", "lots"], "--max-input-mb"),
                                          (["--timeout-s", "nan"], "--timeout-s"),
                                          (["--timeout-s", "-2"], "--timeout-s"),
                                          (["--max-queue", "1.5"], "--max-queue")])
def test_bad_values_are_one_line_usage_errors(served, capsys, argv, named):
    assert serve_cli.main(["m.onnx", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument {named}" in err, err
    assert served == []


def test_a_bad_environment_value_is_named(served, capsys, monkeypatch):
    monkeypatch.setenv(BYTES_ENV, "a lot")
    assert serve_cli.main(["m.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and BYTES_ENV in err and served == []


@pytest.mark.parametrize("command", [serve_cli, infer])
def test_help_gives_the_defaults_of_the_one_owner(command, capsys):
    assert command.main(["--help"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert f"default {MAX_PIXELS:,} or ${PIXELS_ENV}" in flat, flat
    assert f"default {MAX_INPUT_BYTES / 2**20:g} MiB or ${BYTES_ENV}" in flat, flat
    assert (f"default {REQUEST_TIMEOUT_S:g}; 0: no timeout" in flat) is (command is serve_cli), flat
