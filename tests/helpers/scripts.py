"""Running the stage scripts as a user would: one environment, one subprocess runner, one in-process loader.

Scripts are files, not importable modules: in-process tests load a script's ``main`` with runpy, subprocess
tests run ``python3 <script>`` from the repository root (or ``cwd``).
"""
from __future__ import annotations

import contextlib
import io
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parents[2]
# The easyaudio stand-in (easyaudio cannot be installed here); put on the path only where a test asks for it.
FAKE_EASYAUDIO = REPO / "tests" / "fake_easyaudio"

# Shard variables a developer's shell (torchrun, a Slurm array) may hold: a script would take its shard from them.
_SHARD_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def script_env(*, easyaudio: bool = False, **extra: str) -> dict[str, str]:
    """The environment every test subprocess gets.

    One BLAS/OpenMP thread (the test data are tiny, and two threads per process on a busy two-core machine
    running pytest -n 2 spin-wait far longer than they compute); Hugging Face offline (nothing can be
    downloaded here); no progress bars, warnings or tokenizer threads; no shard variables leaking in; the
    easyaudio stand-in on PYTHONPATH only when ``easyaudio`` is true. ``extra`` is added last.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in _SHARD_VARIABLES and not k.startswith("SLURM_ARRAY")}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and "fake_easyaudio" not in p]
    if easyaudio:
        paths.insert(0, str(FAKE_EASYAUDIO))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore",
                "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def script_cmd(script: str | Path, *args: object) -> list[str]:
    """``python3 <script> args...``; ``script`` relative to the repository root (or absolute)."""
    return [sys.executable, str(REPO / script), *map(str, args)]


def run_script(script: str | Path, *args: object, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 180, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run a script to completion from the repository root (or ``cwd``), output captured as text.

    ``env`` replaces the default ``script_env()`` (build it with ``script_env(...)`` to add variables).
    """
    return subprocess.run(script_cmd(script, *args), cwd=cwd or REPO, env=env or script_env(), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def error_lines(out: str | subprocess.CompletedProcess) -> list[str]:
    """The ``error:`` lines of a run's stderr (or of a stderr string)."""
    stderr = out.stderr if isinstance(out, subprocess.CompletedProcess) else out
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def help_text(script: str | Path) -> str:
    """What ``python3 <script> --help`` prints, read in-process (the script run as ``__main__``)."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [str(script), "--help"]
    try:
        with contextlib.redirect_stdout(out):
            try:
                runpy.run_path(str(REPO / script), run_name="__main__")
            except SystemExit as exc:
                assert exc.code in (0, None), f"{script} --help exited with {exc.code}"
            else:
                raise AssertionError(f"{script} --help did not exit")
    finally:
        sys.argv = saved
    return out.getvalue()


def script_main(script: str | Path) -> Callable:
    """A script's ``main``, loaded in-process (its ``__main__`` block does not run)."""
    return runpy.run_path(str(REPO / script))["main"]


@contextlib.contextmanager
def standin_easyaudio() -> Iterator[object]:
    """Import the stand-in as ``easyaudio`` for the duration of a test, then forget it."""
    sys.path.insert(0, str(FAKE_EASYAUDIO))
    try:
        import easyaudio.hub as hub
        assert "fake_easyaudio" in hub.__file__
        yield hub
    finally:
        sys.path.remove(str(FAKE_EASYAUDIO))
        for name in [m for m in sys.modules if m == "easyaudio" or m.startswith("easyaudio.")]:
            del sys.modules[name]
