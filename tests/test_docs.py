"""README and docs/: every relative link resolves (file and heading), every ``calibnet-*`` command line shown uses
an existing console script and only options its ``--help`` lists, and README stays a front page."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"^(calibnet-[a-z]+)\s")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    body = FENCE.sub("", page.read_text())
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", body, re.M)}


def _scripts() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data["project"]["scripts"])


def _command_lines(text: str) -> list[str]:
    """The calibnet-* command lines of a page: in fenced blocks (continuations joined, comments cut) and in
    inline code spans."""
    lines: list[str] = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if COMMAND.match(line + " "):
                lines.append(line)
    for span in SPAN.findall(FENCE.sub("", text)):
        if COMMAND.match(span + " "):
            lines.append(span)
    return lines


def _help_options(target: str) -> set[str]:
    module = importlib.import_module(target.split(":")[0])
    return set(OPTION.findall(module.build_parser().format_help()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    bad = []
    for link in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", link):
            continue  # http(s), mailto
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            bad.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            bad.append(f"{link}: no such heading")
    assert not bad, f"{page.name}: {bad}"


def test_every_command_line_uses_a_script_and_its_options():
    scripts = _scripts()
    helps: dict[str, set[str]] = {}
    bad, seen = [], 0
    for page in PAGES:
        for line in _command_lines(page.read_text()):
            name = COMMAND.match(line + " ").group(1)
            seen += 1
            if name not in scripts:
                bad.append(f"{page.name}: {name} is no console script: {line}")
                continue
            known = helps.setdefault(name, _help_options(scripts[name]))
            unknown = [o for o in OPTION.findall(line) if o not in known]
            if unknown:
                bad.append(f"{page.name}: {name} has no {', '.join(unknown)}: {line}")
    assert seen > 20 and not bad, "\n".join(bad)


def test_readme_is_a_front_page_that_starts_with_quick_start():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert re.findall(r"^## (.+)$", text, re.M)[0] == "Quick start"
    assert "./run demo" in text and "./run test" in text
