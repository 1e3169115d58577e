"""The docs' own code: the fenced blocks of a page, and docs/python.md's example run on a demo run's outputs."""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np

from tests.helpers.scripts import REPO


def code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), flags=re.S)


def run_python_page(demo_root: Path) -> dict:
    """Run docs/python.md's example with ``outputs/demo`` pointing at ``demo_root``; returns its namespace."""
    code = "\n".join(code_blocks(REPO / "docs" / "python.md", "python"))
    assert 'root = Path("outputs/demo")' in code
    namespace: dict = {"__name__": "docs_python_example"}
    saved = os.getcwd()
    os.chdir(demo_root.parent)
    try:
        link = demo_root.parent / "outputs"
        link.mkdir(exist_ok=True)
        if not (link / "demo").exists():
            (link / "demo").symlink_to(demo_root)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "docs/python.md", "exec"), namespace)
    finally:
        os.chdir(saved)
    return namespace


def check_python_page(namespace: dict) -> None:
    """The example's two routes to the same number agree, and its arrays have the shapes the files say."""
    from wordreps.analysis import cka

    X, Y, grid = namespace["X"], namespace["Y"], namespace["grid"]
    assert X.shape[0] == Y.shape[0] == len(namespace["keys"].rows)
    assert grid["linear"].shape == (len(namespace["text"].layers), len(namespace["speech"].layers))
    assert np.isclose(grid["linear"][3, 1], namespace["one_pair"], atol=1e-6)
    assert np.isclose(grid["debiased"][3, 1], cka.debiased_linear_cka(X, Y), atol=1e-6)
    assert namespace["vectors"].shape[1] == len(namespace["emb"].words(namespace["utt"]))
