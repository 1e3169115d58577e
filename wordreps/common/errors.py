"""One kind of error for bad input, and the wrapper that turns it into one clear line.

Every stage script runs its ``main`` through :func:`run_cli`: a :class:`UserError` prints
``error: <what>, <where>; <what to do>`` on stderr and exits with status 2, never a traceback.
"""
from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input or environment that the user can fix. The message is one line: what, where, what to do."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


EXIT_USER_ERROR = 2


def run_cli(main: Callable[[], int | None]) -> NoReturn:
    """Run a stage's ``main`` and exit; bad input becomes one line on stderr and exit status 2."""
    try:
        code = main()
    except UserError as err:
        message = " ".join(str(err).split())  # one line, whatever the message was built from
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def one_line(detail: object, limit: int = 200) -> str:
    """``detail`` (an exception or any text) on one line and cut at ``limit`` characters, to quote a library's
    message inside a :class:`UserError` without letting its tracebacks or advice run on."""
    text = " ".join(str(detail).split()) or type(detail).__name__
    return text if len(text) <= limit else text[:limit] + "..."
