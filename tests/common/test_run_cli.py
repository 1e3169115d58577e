"""run_cli inside run_cli: the reproduction runner's main runs under run_cli and runs each stage script, itself
under run_cli, in the same process. A step's warnings must reach stderr when that step ends."""
from __future__ import annotations

import io
import sys
import warnings
from contextlib import redirect_stderr

import pytest

from wordreps.common.errors import UserError, run_cli


def _step(message: str):
    def main() -> int:
        warnings.warn(message, UserWarning)
        return 0
    return main


def _run_step(main) -> int:
    """What the runner does for an in-process step: the script's run_cli exits, the runner goes on."""
    try:
        run_cli(main)
    except SystemExit as stop:
        return stop.code
    return 0


def _outer(steps, fail_after: bool):
    def main() -> int:
        for step in steps:
            print(f"--- step ended: exit {_run_step(step)}", file=sys.stderr)
        if fail_after:
            raise UserError("step 'later' failed")
        return 0
    return main


@pytest.mark.parametrize("fail_after", [True, False])
def test_inner_warnings_are_shown_when_the_step_ends(fail_after):
    err = io.StringIO()
    with redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as info:
            run_cli(_outer([_step("first step's notice"), _step("second step's notice")], fail_after))
    assert info.value.code == (2 if fail_after else 0)
    lines = err.getvalue().splitlines()
    first = next(i for i, line in enumerate(lines) if "UserWarning: first step's notice" in line)
    second = next(i for i, line in enumerate(lines) if "UserWarning: second step's notice" in line)
    ends = [i for i, line in enumerate(lines) if line == "--- step ended: exit 0"]
    # each step's warning comes before the line printed after that step, not at the end of the run
    assert first < ends[0] < second < ends[1]
    if fail_after:
        assert lines[-1] == "error: step 'later' failed"


def test_a_failing_inner_step_drops_its_own_warnings():
    """Bad input in a step: its warnings only echo the error, as for a script run alone."""
    def bad() -> int:
        warnings.warn("overflow encountered in cast", RuntimeWarning)
        raise UserError("the file is damaged")

    err = io.StringIO()
    with redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("always")
        with pytest.raises(SystemExit):
            run_cli(_outer([bad], fail_after=False))
    assert err.getvalue().splitlines() == ["error: the file is damaged", "--- step ended: exit 2"]
    assert "RuntimeWarning" not in err.getvalue()
