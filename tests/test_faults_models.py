"""Model-loading gaps, through the real scripts: a truncated GloVe download, an audio folder that is not a model.

(Unknown names, easyaudio absent, a GloVe file missing or of the wrong width, and speech folders that are not
models are tested by test_audio_errors.py, test_text_glove.py, test_text_hf.py and test_embeddings_core_faults.py.)
"""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from helpers_faults import assert_refused, run
from helpers_text import all_words, write_alignment_json
from wordreps.embeddings.tiny.text import write_glove

DIM = 20


def _glove_run(tmp_path: Path, vectors: Path):
    al = write_alignment_json(tmp_path / "al.json")
    out, cache = tmp_path / "emb", tmp_path / "cache"
    proc = run("embeddings/glove_embedding.py", "--glove", vectors, "--path", al, "--out_dir", out,
               "--glove_cache", cache, "--no_progress")
    return proc, [out, cache]


@pytest.mark.parametrize("kind", ["text_cut_mid_line", "gzip_cut"])
def test_truncated_glove_download_is_one_line_and_no_cache(kind, tmp_path):
    full = tmp_path / "full.txt"
    write_glove(full, all_words(), DIM, seed=1)
    data = full.read_bytes()
    num_lines = data.count(b"\n")
    if kind == "text_cut_mid_line":
        # the download stopped 30 bytes into the last line: a few of its DIM values are there
        vectors = tmp_path / "glove.txt"
        vectors.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1 + 30])
        says = [f"is truncated: its last line {num_lines} has", f"of {DIM} values", "re-download it"]
    else:
        vectors = tmp_path / "glove.txt.gz"
        vectors.write_bytes(gzip.compress(data)[:-100])
        says = ["is truncated", "re-download it"]
    proc, outputs = _glove_run(tmp_path, vectors)
    assert_refused(proc, [str(vectors), *says], absent=outputs, no_temps_in=[tmp_path])


def test_audio_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 64)
    al = write_alignment_json(tmp_path / "al.json")
    out = tmp_path / "emb"
    proc = run("embeddings/audio_embeddings.py", "--model", folder, "--path", al, "--out_dir", out, "--device", "cpu")
    assert_refused(proc, [str(folder), "is not a model folder (no config.json", "BEATs_iter3"], absent=[out],
                   no_temps_in=[tmp_path])
