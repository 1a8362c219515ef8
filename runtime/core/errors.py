"""Errors and warnings about the frames a user feeds the runtime, and the one way a CLI reports a user error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["InputError", "InputWarning", "run_cli"]


class InputError(ValueError):
    """A frame the runtime cannot use; the message says what is wrong."""


class InputWarning(UserWarning):
    """A frame the runtime could use only after a repair (e.g. a depth map resized to the RGB size)."""


def run_cli(prog: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
            argv: list[str] | None, user_errors: tuple[type[Exception], ...],
            files: Callable[[argparse.Namespace], Iterable[str | Path | None]] | None = None) -> int:
    """Parse ``argv`` and call ``run``. Whatever it raises ends in ONE line ``PROG: error: ...`` on stderr, never
    a traceback: exit code 2 for a user error (one of ``user_errors``, a missing file, or a bad input file),
    1 for anything else, 130 when interrupted (``CALIBNET_TRACEBACK=1`` re-raises, for debugging).
    ``files(args)``: the CLI's input files (model, weights, config...); when the message does not name the
    file at fault, the first one :func:`~calibnet.runtime.core.filecheck.file_problem` finds wrong is named with
    what is wrong with it (random bytes, truncated, empty...)."""
    from .filecheck import MAX_LEN, file_problem, one_line

    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place where every CLI error becomes one line
        if os.environ.get("CALIBNET_TRACEBACK"):
            raise
        msg = one_line(exc)
        code = 2 if isinstance(exc, (*user_errors, InputError, FileNotFoundError, PermissionError)) else 1
        candidates = [Path(f) for f in (files(args) if files is not None else ()) if f]
        blamed = next(((f, prob) for f in candidates if (prob := file_problem(f)) is not None), None)
        if blamed is not None:
            f, prob = blamed
            if prob not in msg:
                msg = f"{f}: {prob}" + (f" ({msg})" if len(msg) <= 120 else "")
            code = 2
        elif len(candidates) == 1 and code == 1 and str(candidates[0]) not in msg:
            msg = f"{candidates[0]}: {msg}"
        print(f"{prog}: error: {msg}"[:MAX_LEN + 100], file=sys.stderr)
        return code
