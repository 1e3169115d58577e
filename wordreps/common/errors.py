"""One kind of error for bad input, and the wrapper that turns it into one clear line.

Every stage script runs its ``main`` through :func:`run_cli`: a :class:`UserError` prints
``error: <what>, <where>; <what to do>`` on stderr and exits with status 2, never a traceback.
"""
from __future__ import annotations

import sys
import warnings
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input or environment that the user can fix. The message is one line: what, where, what to do."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


EXIT_USER_ERROR = 2


# How many run_cli calls are running now: the reproduction runner's main runs under run_cli and so does
# every stage script it runs in-process (runpy), so calls nest.
_depth = 0


def _replay(caught: list, nested: bool) -> None:
    for w in caught:
        if nested:
            # warnings.showwarning would hand the warning to the enclosing run_cli's catch_warnings, which holds it
            # until the whole run ends (and drops it if a later step fails): a step's warnings belong on stderr
            # when that step ends, so write them as the default showwarning does
            (w.file or sys.stderr).write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno,
                                                                w.line))
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def run_cli(main: Callable[[], int | None]) -> NoReturn:
    """Run a stage's ``main`` and exit; bad input becomes one line on stderr and exit status 2.

    Python warnings raised while ``main`` runs (numpy's overflow on a damaged vector file, a library's
    deprecation notice) are held back and shown when ``main`` ends, so that none precedes the ``error:`` line;
    after bad input they are dropped, since they only echo it. A run_cli inside another one's ``main`` (a step
    the runner runs in-process) writes its warnings to stderr when its own ``main`` ends.
    """
    global _depth
    nested = _depth > 0
    caught: list = []
    _depth += 1
    try:
        try:
            with warnings.catch_warnings(record=True) as caught:
                code = main()
        finally:
            _depth -= 1
    except UserError as err:
        message = " ".join(str(err).split())  # one line, whatever the message was built from
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        _replay(caught, nested)
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    except BaseException:
        _replay(caught, nested)
        raise
    _replay(caught, nested)
    sys.exit(code or 0)


def one_line(detail: object, limit: int = 200) -> str:
    """``detail`` (an exception or any text) on one line and cut at ``limit`` characters, to quote a library's
    message inside a :class:`UserError` without letting its tracebacks or advice run on."""
    text = " ".join(str(detail).split()) or type(detail).__name__
    return text if len(text) <= limit else text[:limit] + "..."
