"""Every command the README shows names a script that exists and flags that script accepts.

The thesis's commands are quoted in the README and must keep working as written; this catches a renamed script
or flag before a user does. Each script's --help is read in-process (runpy), once per script.
"""
from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys

import pytest

from tests.helpers.scripts import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            match = re.search(r"python3 (\S+\.py)(.*)", line)
            if match:
                commands.append(f"{match.group(1)}{match.group(2)}".strip())
    return commands


COMMANDS = _readme_commands()


def _help_text(script: str) -> str:
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [script, "--help"]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            runpy.run_path(str(REPO / script), run_name="__main__")
    finally:
        sys.argv = saved
    return out.getvalue()


def test_the_readme_shows_the_thesis_commands():
    scripts = {c.split()[0] for c in COMMANDS}
    for script in ("alignments/alignments_and_trans.py", "embeddings/glove_embedding.py", "embeddings/nlp_embedding.py",
                   "embeddings/speech_embedding.py", "embeddings/audio_embeddings.py",
                   "embeddings/matrix_embeddings.py", "experiments/experiment_CKA.py",
                   "experiments/experiment_ASIF.py", "datasets/download_librispeech.py",
                   "datasets/resample_corpus.py", "experiments/reproduce.py"):
        assert script in scripts, script


@pytest.mark.parametrize("script", sorted({c.split()[0] for c in COMMANDS}))
def test_readme_flags_exist(script):
    assert (REPO / script).is_file(), f"README names {script}, which does not exist"
    help_text = _help_text(script)
    for command in (c for c in COMMANDS if c.split()[0] == script):
        for flag in re.findall(r"(?<!\S)(--[a-z_0-9]+)", command):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), f"{command}: {flag} not in --help"
