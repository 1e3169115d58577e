"""Busy machines and reproducible bytes (issue 9): threads sized from the CPUs the process may use, --num_threads
and --no_progress declared once for every stage script, manifests whose ``versions`` do not depend on what the
process imported before, and no lock file left in an output folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.folders import make_utterances, random_arrays, write_embedding_folder
from tests.helpers.scripts import REPO, script_env
from tests.helpers.scripts import run_script as run
from tests.helpers.text import all_words, write_alignment_json
from wordreps.common.errors import UserError
from wordreps.common.locks import LOCK_NAME, folder_lock
from wordreps.common.threads import (
    _cgroup_cpu_limit,
    available_cpus,
    default_torch_threads,
    io_threads,
)
from wordreps.embeddings.tiny.text import write_glove

STAGES = ["alignments/alignments_and_trans.py", "embeddings/audio_embeddings.py", "embeddings/glove_embedding.py",
          "embeddings/matrix_embeddings.py", "embeddings/nlp_embedding.py", "embeddings/speech_embedding.py",
          "experiments/experiment_ASIF.py", "experiments/experiment_CKA.py", "experiments/experiment_similarity.py",
          "experiments/experiment_probe.py", "experiments/reproduce.py",
          "datasets/download_librispeech.py", "datasets/make_demo_corpus.py", "datasets/resample_corpus.py"]
TORCH_STAGES = {"embeddings/audio_embeddings.py", "embeddings/nlp_embedding.py", "embeddings/speech_embedding.py",
                "experiments/experiment_ASIF.py", "experiments/experiment_CKA.py", "experiments/experiment_similarity.py",
                "experiments/experiment_probe.py", "experiments/reproduce.py"}


def test_cpus_from_affinity_slurm_and_cgroup_quota(tmp_path):
    mask = len(os.sched_getaffinity(0))
    no_quota = str(tmp_path / "none")
    assert available_cpus({}, no_quota) == mask
    assert available_cpus({"SLURM_CPUS_PER_TASK": "1"}, no_quota) == 1
    assert available_cpus({"SLURM_CPUS_PER_TASK": "999"}, no_quota) == mask  # never more than the mask
    assert available_cpus({"SLURM_CPUS_PER_TASK": "junk"}, no_quota) == mask
    quota = tmp_path / "cpu.max"
    quota.write_text("50000 100000\n")  # half a CPU: one thread
    assert _cgroup_cpu_limit(str(quota)) == 1 and available_cpus({}, str(quota)) == 1
    quota.write_text("max 100000\n")
    assert _cgroup_cpu_limit(str(quota)) is None and available_cpus({}, str(quota)) == mask
    assert default_torch_threads({"OMP_NUM_THREADS": "3"}) == 3  # the user's own setting wins
    assert 1 <= io_threads() <= min(4, available_cpus())


def test_affinity_and_num_threads_reach_torch(tmp_path):
    """A process pinned to one CPU sizes torch to 1 thread; --num_threads overrides it; set before torch is
    imported, it still holds (torch reads OMP_NUM_THREADS when imported)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    code = ("import sys; from wordreps.common.cli import add_common_args, apply_common_args; import argparse; "
            "p = argparse.ArgumentParser(); add_common_args(p, torch=True); apply_common_args(p.parse_args(sys.argv[1:])); "
            "import torch; print(torch.get_num_threads())")
    env = script_env()
    env.pop("OMP_NUM_THREADS")
    env.pop("MKL_NUM_THREADS")
    pinned = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert pinned.stdout.strip() == "1", pinned.stderr
    chosen = subprocess.run([sys.executable, "-c", code, "--num_threads", "3"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert chosen.stdout.strip() == "3", chosen.stderr
    slurm = subprocess.run([sys.executable, "-c", code], env={**env, "SLURM_CPUS_PER_TASK": "1"},
                           capture_output=True, text=True, timeout=120)
    assert slurm.stdout.strip() == "1", slurm.stderr


HELP = r"""
import contextlib, io, json, os, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    sys.path.insert(0, os.path.dirname(script))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit:
            pass
    out[script] = buf.getvalue()
print(json.dumps(out))
"""


def test_every_stage_script_accepts_the_common_flags():
    proc = subprocess.run([sys.executable, "-c", HELP, *[str(REPO / s) for s in STAGES]], cwd=REPO,
                          env=script_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    helps = json.loads(proc.stdout.strip().splitlines()[-1])
    for script in STAGES:
        text = helps[str(REPO / script)]
        assert "--no_progress" in text and "--quiet" in text, script
        assert ("--num_threads" in text) == (script in TORCH_STAGES), script
    # declared once: no script declares them itself
    for script in STAGES:
        source = (REPO / script).read_text()
        assert '"--no_progress"' not in source and '"--num_threads"' not in source, script


def test_manifest_versions_do_not_depend_on_earlier_imports(tmp_path):
    """The runner runs stages in one process after other families' libraries were imported: the same command
    gives the same manifest bytes either way."""
    al = write_alignment_json(tmp_path / "al.json")
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    args = ["--glove", str(glove), "--path", str(al), "--glove_cache", str(tmp_path / "cache"), "--no_progress"]
    alone = run("embeddings/glove_embedding.py", *args, "--out_dir", tmp_path / "alone")
    assert alone.returncode == 0, alone.stderr
    code = ("import runpy, sys; import s3prl.upstream.wav2vec2.hubconf, transformers, gensim, torch; "
            f"sys.argv = ['glove_embedding.py', *sys.argv[1:]]; "
            f"runpy.run_path({str(REPO / 'embeddings/glove_embedding.py')!r}, run_name='__main__')")
    after = subprocess.run([sys.executable, "-c", code, *args, "--out_dir", str(tmp_path / "after")], cwd=REPO,
                           env=script_env(), capture_output=True, text=True, timeout=180)
    assert after.returncode == 0, after.stderr
    a = (tmp_path / "alone" / "glove" / "manifest.json").read_bytes()
    b = (tmp_path / "after" / "glove" / "manifest.json").read_bytes()
    assert a == b
    assert set(json.loads(a)["versions"]) == {"python", "numpy"}  # GloVe's numbers depend on no other library


def test_family_versions_are_the_table_s(monkeypatch):
    import torch

    from wordreps.embeddings.extract import library_versions

    speech = library_versions("s3prl")
    assert speech["torch"] == torch.__version__ and set(speech) == {"python", "numpy", "torch", "s3prl"}
    assert set(library_versions("hf-text")) == {"python", "numpy", "torch", "transformers"}
    assert set(library_versions("no-such-family")) == {"python", "numpy"}


# ---------------------------------------------------------------------------------------------- lock files

def test_assembly_leaves_no_lock_file(tmp_path):
    rng = np.random.default_rng(0)
    utts = make_utterances(rng, 5)
    write_embedding_folder(tmp_path / "emb", "m", utts, random_arrays(rng, utts, 2, 4))
    keys = tmp_path / "keys.json"
    common = ["--embeddings_dir", tmp_path / "emb", "--no_progress"]
    assert run("embeddings/matrix_embeddings.py", "--models", "m", "--write_words", keys, *common).returncode == 0
    proc = run("embeddings/matrix_embeddings.py", "--layer", "all", "--model", "m", "--words_path", keys,
               "--out_dir", tmp_path / "mats", *common)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "mats" / "m").iterdir()) == ["layer_0.npy", "layer_1.npy",
                                                                         "matrices.json"]


def test_folder_lock(tmp_path):
    folder = tmp_path / "out"
    with folder_lock(folder, "busy"):
        assert (folder / LOCK_NAME).exists()
        with pytest.raises(UserError, match="busy"):
            with folder_lock(folder, "busy"):
                pass
    assert not (folder / LOCK_NAME).exists()
    # a killed run's lock file (nobody holds it) is taken over, then removed
    (folder / LOCK_NAME).write_text("")
    with folder_lock(folder, "busy"):
        pass
    assert list(folder.iterdir()) == []


def test_a_lock_file_removed_meanwhile_is_not_trusted(tmp_path):
    """Run B opened the lock file just before run A removed it and let go: B must lock the file that is at the
    path now, or two runs would each hold a lock."""
    import fcntl

    from wordreps.common.locks import _same_file

    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / LOCK_NAME
    path.write_text("")
    stale = os.open(path, os.O_RDWR)
    path.unlink()  # A is done
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # B gets the lock of a file that is gone
    assert not _same_file(stale, path)
    with folder_lock(folder, "busy"):  # C: a new file, not blocked by B's stale lock
        assert _same_file(os.open(path, os.O_RDONLY), path)
    os.close(stale)


def test_thread_settings_come_before_torch_is_imported():
    """OpenMP reads its wait policy (and OMP_NUM_THREADS) when torch loads it: no torch stage script imports torch
    before its common flags are applied; the toolkit's passive wait is set then, a user's own policy kept."""
    probe = ("import runpy, sys; runpy.run_path(sys.argv[1], run_name='probe'); "
             "print('torch' in sys.modules)")
    for script in sorted(TORCH_STAGES):
        proc = subprocess.run([sys.executable, "-c", probe, str(REPO / script)], cwd=REPO, env=script_env(),
                              capture_output=True, text=True, timeout=120)
        assert proc.stdout.strip() == "False", (script, proc.stderr[-2000:])
    code = ("import os; from wordreps.common.threads import set_torch_threads; set_torch_threads(None); "
            "import torch; print(os.environ.get('OMP_WAIT_POLICY'))")
    env = script_env()
    env.pop("OMP_WAIT_POLICY", None)
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120).stdout.strip() == "PASSIVE"
    assert subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                          capture_output=True, text=True, timeout=120).stdout.strip() == "ACTIVE"
