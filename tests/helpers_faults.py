"""Helpers for tests/test_faults_*.py: run a stage script for real and check the one-line refusal.

Every bad-input case must end the same way: exit status 2, exactly one stderr line starting with ``error:`` that
names the offending file or row, no traceback, and neither the output nor a temporary file left behind.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent


def script_env(**extra: str) -> dict[str, str]:
    """One BLAS thread per process (tests run two workers on two cores); no shard variables leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE") and not k.startswith("SLURM_ARRAY")}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
                "TOKENIZERS_PARALLELISM": "false"})
    env.update(extra)
    return env


def run(script: str, *args: object, cwd: Path | None = None, timeout: float = 120,
        preexec_fn: Callable[[], None] | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """``python3 <script> args...`` from the repository root (or ``cwd``), output captured as text."""
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd or REPO,
                          env=env or script_env(), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec_fn)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def temp_files(*folders: Path) -> list[Path]:
    """Temporary files the atomic writers use (``.<name>.<random>.tmp``) or a download's ``.part``."""
    found: list[Path] = []
    for folder in folders:
        if folder.exists():
            found += [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".part"))]
    return found


def visible_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


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
