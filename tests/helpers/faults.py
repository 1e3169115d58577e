"""Checking a refusal: a stage script run for real on bad input, or a full disk simulated for it.

Every bad-input case must end the same way: exit status 2, exactly one stderr line starting with ``error:`` that
names the offending file or row, no traceback, and neither the output nor a temporary file left behind.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Iterable, Sequence

from tests.helpers.files import temp_files
from tests.helpers.scripts import error_lines


def assert_refused(proc: subprocess.CompletedProcess, names: Sequence[str], *, absent: Iterable[Path] = (),
                   no_temps_in: Iterable[Path] = ()) -> str:
    """Exit 2, one ``error:`` line holding every string of ``names``, no traceback; returns that line.

    ``absent``: outputs that must not exist afterwards; ``no_temps_in``: folders that must hold no temporary file.
    """
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr[-4000:]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    for path in absent:
        assert not Path(path).exists(), f"{path} was left behind"
    for folder in no_temps_in:
        assert temp_files(Path(folder)) == [], temp_files(Path(folder))
    return lines[0]


def limit_file_size(limit_bytes: int) -> Callable[[], None]:
    """preexec_fn simulating a full disk: writes past ``limit_bytes`` fail with EFBIG (SIGXFSZ ignored)."""
    def apply() -> None:
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply
