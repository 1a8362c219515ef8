"""Errors and warnings about the frames a user feeds the runtime, and the one way a CLI reports a user error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["InputError", "InputWarning", "run_cli"]


class InputError(ValueError):
    """A frame the runtime cannot use; the message says what is wrong."""


class InputWarning(UserWarning):
    """A frame the runtime could use only after a repair (e.g. a depth map resized to the RGB size)."""


def run_cli(prog: str, parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
            argv: list[str] | None, user_errors: tuple[type[Exception], ...]) -> int:
    """Parse ``argv`` and call ``run``; a user error (one of ``user_errors``) is one line ``PROG: error: ...`` on
    stderr and exit code 2, without a traceback."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except user_errors as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
