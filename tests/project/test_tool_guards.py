"""The tools refuse dangerous or wrong input before doing anything.

What could fail: tools/mutation_check.py deletes and rewrites its --work folder, so a --work naming the
repository (``--work .``), a folder inside it, or any folder it did not make would be deleted; and
tools/make_tiny_speech.py reported an unknown --only name only after building the models named before it.
"""
from __future__ import annotations

import runpy

from tests.helpers.scripts import REPO, error_lines, run_script

MUTATION = "tools/mutation_check.py"


def test_mutation_check_refuses_the_repository_in_one_line():
    for work in (".", "outputs/mutation-work"):
        proc = run_script(MUTATION, "--work", work, "--only", "frames", timeout=60)
        assert proc.returncode == 2, proc.stderr[-2000:]
        errors = error_lines(proc)
        assert len(errors) == 1 and "inside it" in errors[0], proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not proc.stdout
    assert (REPO / "pyproject.toml").is_file() and not (REPO / "outputs" / "mutation-work").exists()


def test_mutation_check_deletes_only_a_folder_it_made(tmp_path):
    tool = runpy.run_path(str(REPO / MUTATION))
    module = tool["_copy_repo"].__globals__  # the functions' own globals: point REPO at a small fake repository
    fake = tmp_path / "repo"
    (fake / "pkg").mkdir(parents=True)
    (fake / "pkg" / "a.py").write_text("x = 1\n")
    module["REPO"] = fake
    check = tool["check_work"]
    assert check(fake) and check(fake / "pkg") and check(fake / "new")  # the repository and anything inside it
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("a user's file\n")
    assert "not made by this tool" in check(mine)
    assert check(tmp_path) and check(mine / "keep.txt")  # an ancestor of the repository; a file
    work = tmp_path / "scratch"
    assert check(work) is None  # a new folder
    module["_copy_repo"](work)
    assert (work / "pkg" / "a.py").is_file() and (work / tool["MARKER"]).is_file()
    assert check(work) is None  # made by the tool: may be deleted and rewritten by the next run
    assert (mine / "keep.txt").is_file()


def test_make_tiny_speech_checks_every_only_name_before_building(tmp_path):
    out = tmp_path / "models"
    proc = run_script("tools/make_tiny_speech.py", "--out", out, "--only", "tiny-wav2vec2-layer", "no-such-model",
                      timeout=120)
    assert proc.returncode == 2
    assert "invalid choice: 'no-such-model'" in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()
