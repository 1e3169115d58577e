"""Output locations a script cannot use (issue 9): an --output that is a folder, a parent that is a file, a
read-only place, a name too long for the file system, an --out_dir that is a file. Every script: one ``error:``
line, exit 2, no traceback, nothing left behind. The mechanism is one (wordreps.common.atomic: check_output_*,
ensure_dir, atomic_path), so its cases are checked in-process in full and each script once or twice for real.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import assert_refused
from tests.helpers.files import temp_files
from tests.helpers.folders import write_matrix_folder
from tests.helpers.scripts import REPO, script_env
from tests.helpers.scripts import run_script as run
from tests.helpers.text import all_words, write_alignment_json
from wordreps.common.atomic import (
    atomic_path,
    check_output_dir,
    check_output_file,
    ensure_dir,
    write_text_atomic,
)
from wordreps.common.errors import UserError
from wordreps.embeddings.matrices import keys_text
from wordreps.embeddings.tiny.text import write_glove

LONG = "n" * 300  # more than the 255 bytes a file name may have


def read_only_command(folder: Path) -> list[str] | None:
    """A command prefix under which ``folder`` is read-only for the script: chmod for a normal user; for root
    (who ignores permissions) a read-only bind mount in a private mount namespace. None when neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        return None
    # sh -c SCRIPT FOLDER CMD...: $0 is the folder, "$@" the command run with the folder read-only
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", script, str(folder), "sh", "-c",
                            f'! touch "{folder}/probe" 2>/dev/null'], capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "-rm", "sh", "-c", script, str(folder)]


def run_read_only(folder: Path, script: str, *args: object) -> subprocess.CompletedProcess:
    prefix = read_only_command(folder)
    if prefix is None:
        pytest.skip("no way to make a read-only folder here (root without user namespaces)")
    return subprocess.run([*prefix, sys.executable, str(REPO / script), *map(str, args)], cwd=REPO,
                          env=script_env(), capture_output=True, text=True, timeout=180)


# ------------------------------------------------------------------------------------------ the mechanism

def _cases(tmp_path: Path) -> dict[str, tuple[Path, Path, str]]:
    """case -> (a file to write, a folder to make, what the message must say)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    folder = tmp_path / "existing"
    folder.mkdir()
    return {
        "output_is_a_folder": (folder, None, "is a folder, not a file"),
        "parent_is_a_file": (afile / "sub" / "out.json", afile / "sub", f"{afile} is a file, not a folder"),
        "out_dir_is_a_file": (None, afile, "is a file, not a folder"),
        "name_too_long": (tmp_path / f"{LONG}.json", tmp_path / LONG, "too long for the file system"),
        "component_too_long": (tmp_path / LONG / "out.json", tmp_path / LONG / "x", "too long for the file system"),
    }


@pytest.mark.parametrize("case", ["output_is_a_folder", "parent_is_a_file", "out_dir_is_a_file", "name_too_long",
                                  "component_too_long"])
def test_every_writer_refuses_the_same_way(tmp_path, case):
    path, folder, says = _cases(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    if path is not None:
        for attempt in (lambda: check_output_file(path), lambda: write_text_atomic(path, "x")):
            with pytest.raises(UserError, match=says) as info:
                attempt()
            assert str(path.name if case == "name_too_long" else path)[:40] in str(info.value)
    if folder is not None:
        for attempt in (lambda: check_output_dir(folder), lambda: ensure_dir(folder)):
            with pytest.raises(UserError, match=says):
                attempt()
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, no temporary file


def test_a_name_that_fits_only_without_the_temporary_affixes(tmp_path):
    """A 250-byte name is legal, but its temporary name (.<name>.<random>.tmp) is not: refused up front."""
    path = tmp_path / ("n" * 250)
    with pytest.raises(UserError, match="too long"):
        write_text_atomic(path, "x")
    assert list(tmp_path.iterdir()) == []
    fits = tmp_path / ("n" * 200)
    write_text_atomic(fits, "x")
    assert fits.read_text() == "x" and temp_files(tmp_path) == []


def test_an_error_inside_the_block_is_not_disguised(tmp_path):
    """Only location errors become UserError; a bug inside the block stays what it is (and leaves no temp)."""
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.json"):
            raise KeyError("bug")
    assert list(tmp_path.iterdir()) == []


def test_read_only_place_in_process(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    prefix = read_only_command(ro)
    if prefix is None:
        pytest.skip("no way to make a read-only folder here")
    code = ("import sys; from wordreps.common.atomic import write_text_atomic; from wordreps.common.errors import "
            "run_cli; run_cli(lambda: write_text_atomic(sys.argv[1], 'x'))")
    proc = subprocess.run([*prefix, sys.executable, "-c", code, str(ro / "sub" / "x.json")], capture_output=True,
                          text=True, env=script_env(), timeout=60)
    assert_refused(proc, [str(ro), "not writable"], absent=[ro / "sub"])


# ------------------------------------------------------------------------------------------ every script

@pytest.fixture
def text_inputs(tmp_path):
    al = write_alignment_json(tmp_path / "al.json")
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    return al, glove


DEMO = REPO / "datasets" / "demo"


def test_alignment_stage(tmp_path):
    args = ["--model", "wav2vec2", "--path", DEMO / "alignments", "--audio_root", DEMO / "librispeech-clean-16k",
            "--quiet"]
    folder = tmp_path / "existing.json"
    folder.mkdir()
    proc = run("alignments/alignments_and_trans.py", *args, "--output", folder)
    assert_refused(proc, [str(folder), "is a folder, not a file"], no_temps_in=[tmp_path])
    assert list(folder.iterdir()) == []
    proc = run("alignments/alignments_and_trans.py", *args, "--output", tmp_path / f"{LONG}.json")
    assert_refused(proc, ["too long for the file system"], no_temps_in=[tmp_path])
    assert [p.name for p in tmp_path.iterdir()] == ["existing.json"]


def test_embedding_stage(tmp_path, text_inputs):
    al, glove = text_inputs
    afile = tmp_path / "afile"
    afile.write_text("x")
    common = ["--glove", glove, "--path", al, "--glove_cache", tmp_path / "cache", "--no_progress"]
    proc = run("embeddings/glove_embedding.py", *common, "--out_dir", afile)
    assert_refused(proc, [str(afile), "is a file, not a folder"], absent=[tmp_path / "cache"])
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = run_read_only(ro, "embeddings/glove_embedding.py", *common, "--out_dir", ro / "emb")
    assert_refused(proc, [str(ro), "not writable"], absent=[ro / "emb", tmp_path / "cache"])


def test_speech_stage_out_dir_is_a_file(tmp_path):
    from tests.helpers.speech import random_corpus, tiny_model

    al = random_corpus(tmp_path / "corpus", [1.0])
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run("embeddings/speech_embedding.py", "--model", tiny_model("tiny-s3prl-wav2vec2.pt"), "--path", al,
               "--out_dir", afile / "sub", "--device", "cpu", "--no_progress")
    assert_refused(proc, [str(afile), "is a file, not a folder"], no_temps_in=[tmp_path])


@pytest.fixture
def matrices(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(f"1-1-{i // 5:04d}", i % 5, f"w{i % 7}") for i in range(40)]
    text = keys_text(["a", "b"], rows)
    (tmp_path / "keys.json").write_text(text)
    import hashlib

    sha = hashlib.sha256(text.encode()).hexdigest()
    for slug in ("a", "b"):
        write_matrix_folder(tmp_path / "mats", slug, [rng.normal(size=(40, 4)) for _ in range(2)], keys_sha256=sha)
    return tmp_path / "mats", tmp_path / "keys.json"


def test_matrices_stage(tmp_path):
    from tests.helpers.folders import (
        make_utterances,
        random_arrays,
        write_embedding_folder,
    )

    rng = np.random.default_rng(1)
    utts = make_utterances(rng, 4)
    write_embedding_folder(tmp_path / "emb", "m", utts, random_arrays(rng, utts, 2, 4))
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run("embeddings/matrix_embeddings.py", "--models", "m", "--write_words", afile / "keys.json",
               "--embeddings_dir", tmp_path / "emb")
    assert_refused(proc, [str(afile), "is a file, not a folder"], no_temps_in=[tmp_path])


def test_experiment_stages(tmp_path, matrices):
    mats, keys = matrices
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run("experiments/experiment_CKA.py", "--model1", "a", "--layer1", 1, "--model2", "b", "--layer2", 1,
               "--matrices_dir", mats, "--out_dir", afile, "--device", "cpu")
    assert_refused(proc, [str(afile), "is a file, not a folder"])
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = run_read_only(ro, "experiments/experiment_ASIF.py", "--path_layer1", mats / "a" / "layer_1.npy",
                         "--path_layer2", mats / "b" / "layer_1.npy", "--keys", keys, "--k", 4, "--out_dir", ro,
                         "--device", "cpu", "--no_progress")
    assert_refused(proc, [str(ro), "not writable"])
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("script, flag", [("datasets/download_librispeech.py", "--root"),
                                          ("datasets/make_demo_corpus.py", "--out"),
                                          ("experiments/reproduce.py", "--out_root")])
def test_folder_flags_that_are_files(tmp_path, script, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    extra = ["--demo", "--dry_run"] if script.endswith("reproduce.py") else []
    proc = run(script, flag, afile, *extra, timeout=180)
    assert_refused(proc, [str(afile), "is a file, not a folder"])
    assert afile.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_resample_dst_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run("datasets/resample_corpus.py", "--src", DEMO / "librispeech-clean-16k", "--dst", afile)
    assert_refused(proc, [str(afile), "is a file, not a folder"])


def test_an_os_error_about_another_file_is_not_called_an_output_problem(tmp_path):
    """A read inside the block that fails (here: a folder opened as a file) is the caller's error, unchanged;
    the same kind of error about the temporary file is still an output location the user must change."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        with atomic_path(tmp_path / "x.json"):
            folder.read_bytes()
    assert info.value.filename == str(folder)
    with pytest.raises(UserError, match=r"cannot write .*x\.json.*choose another output location"):
        with atomic_path(tmp_path / "x.json") as tmp:
            raise OSError(errno.EROFS, "Read-only file system", str(tmp))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no temporary file, no output
