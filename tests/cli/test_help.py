"""Every command's --help: no docstring markup, and the lists it gives (presets, backends, file types, bench rows)
equal the code's own tables."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re

import pytest

import calibnet.cli
from calibnet.config import PRESETS
from calibnet.runtime.core.targets import TARGETS, bench_rows, suffixes_help

COMMANDS = sorted(m.name for m in pkgutil.iter_modules(calibnet.cli.__path__)
                  if hasattr(importlib.import_module(f"calibnet.cli.{m.name}"), "build_parser"))
MARKUP = re.compile(r"``|:(mod|meth|func|class|data|attr|obj|exc):`")


def _parsers(name: str) -> list[argparse.ArgumentParser]:
    """The command's parser and its sub-commands' parsers."""
    top = importlib.import_module(f"calibnet.cli.{name}").build_parser()
    subs = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return [top, *(p for s in subs for p in s.choices.values())]


def _actions(name: str) -> dict[str, argparse.Action]:
    return {a.option_strings[0] if a.option_strings else a.dest: a for p in _parsers(name) for a in p._actions}


def test_the_commands_are_found():
    assert {"demo", "infer", "export", "eval", "bench", "serve", "train", "analyze", "engines"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_has_no_docstring_markup(name):
    for p in _parsers(name):
        text = p.format_help()
        assert not MARKUP.search(text), f"{p.prog}: {MARKUP.search(text).group(0)!r} in --help"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_equal_the_tables(name):
    actions = _actions(name)
    if "--config" in actions:
        assert f"({', '.join(PRESETS)})" in actions["--config"].help, actions["--config"].help
    if "--backend" in actions:
        assert list(actions["--backend"].choices) == list(TARGETS)
    for dest in ("model", "models"):
        if dest in actions:
            assert suffixes_help() in actions[dest].help
    if "--backends" in actions and name == "bench":
        assert ", ".join(bench_rows()) in " ".join(actions["--backends"].help.split())
