"""How every calibnet command runs: one error class, one error path.

:func:`run_cli` parses the arguments and calls the command. Whatever the command raises ends in ONE line
``PROG: error: ...`` on stderr, never a traceback (``CALIBNET_TRACEBACK=1`` shows it):

- exit code 2 for a user error: :class:`CliError`, any ``ValueError`` (the libraries' bad-input errors:
  ``InputError``, ``DatasetError``, ``ConfigError``, ...), a missing or unreadable file, a backend or an optional
  package that is not installed, or an input file that :func:`~calibnet.runtime.core.filecheck.file_problem`
  finds wrong (random bytes, truncated, empty...: that file is named with what is wrong with it);
- 1 for anything else; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from calibnet.runtime import BackendUnavailable
from calibnet.runtime.apps.optional import MissingDependency
from calibnet.runtime.core.filecheck import MAX_LEN, file_problem, one_line

__all__ = ["CliError", "CommandParser", "run_cli", "USER_ERRORS", "plain", "parser"]


class CliError(Exception):
    """A user error of a command (bad arguments, a file it cannot use): printed as one line, exit code 2."""


#: what counts as the user's mistake (exit code 2) rather than a failure (1)
USER_ERRORS: tuple[type[BaseException], ...] = (CliError, ValueError, FileNotFoundError, PermissionError,
                                                IsADirectoryError, NotADirectoryError, BackendUnavailable,
                                                MissingDependency)


def run_cli(prog: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
            argv: list[str] | None = None,
            files: Callable[[argparse.Namespace], Iterable[str | Path | None]] | None = None) -> int:
    """Parse ``argv`` and return ``run(args)``'s exit code, every error as one line (see the module doc); a usage
    error is one line too (exit code 2) with :class:`CommandParser`, ``--help`` returns 0.
    ``files(args)``: the command's input files (model, weights, config, data...); when a message does not name
    the file at fault, the first one found wrong is named with what is wrong with it."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0), or a usage error argparse has printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return run(args)
    except KeyboardInterrupt:
        _end_open_lines()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place where every command error becomes one line
        if os.environ.get("CALIBNET_TRACEBACK"):
            raise
        msg, code = one_line(exc), 2 if isinstance(exc, USER_ERRORS) else 1
        candidates = [Path(f) for f in (files(args) if files is not None else ()) if f]
        blamed = next(((f, prob) for f in candidates if (prob := file_problem(f)) is not None), None)
        if blamed is not None:
            f, prob = blamed
            if prob not in msg:
                msg = f"{f}: {prob}"  # the file's damage is the cause; what the loader said about it is not
            code = 2
        elif len(candidates) == 1 and code == 1 and str(candidates[0]) not in msg:
            msg = f"{candidates[0]}: {msg}"
        _end_open_lines()
        print(f"{prog}: error: {msg}"[:MAX_LEN + 100], file=sys.stderr)
        return code


_open_line = False  # a status line on stdout waits for its end


class Steps:
    """Numbered status lines on stdout, one per step: ``NAME [k/total] what ...`` ended by its time when done; an
    error's message ends an open one (:func:`run_cli`)."""

    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.k, self.t = name, total, 0, time.perf_counter()

    def start(self, what: str) -> None:
        global _open_line
        self.k += 1
        self.t = time.perf_counter()
        print(f"{self.name} [{self.k}/{self.total}] {what} ...", end="", flush=True)
        _open_line = True

    def done(self, note: str = "") -> None:
        """End the step's line with the time it took (and ``note``)."""
        global _open_line
        print(f" {time.perf_counter() - self.t:.1f} s{note}", flush=True)
        _open_line = False


def _end_open_lines() -> None:
    """Close the progress bars and the status line an error interrupted, so that its message starts on a line of
    its own."""
    global _open_line
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    if _open_line:
        print(flush=True)
        _open_line = False


_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def _role(m: re.Match[str]) -> str:
    name = m.group(2).split("<")[0].strip()
    return name.rsplit(".", 1)[-1] if m.group(1) else name


def plain(doc: str | None) -> str:
    """A docstring as terminal text: Sphinx roles (``:func:`x```, ``:class:`~a.B```) and double backticks become the
    plain names, so no ``--help`` shows markup."""
    return _ROLE.sub(_role, doc or "").replace("``", "")


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line too: ``PROG: error: ... (see PROG --help)``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser(prog: str, doc: str | None, **kwargs: Any) -> CommandParser:
    """A command's argument parser: its module docstring (as plain text) is the description, kept as written."""
    return CommandParser(prog=prog, description=plain(doc), formatter_class=argparse.RawDescriptionHelpFormatter,
                         **kwargs)
