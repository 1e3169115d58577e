"""GloVe backend: file rows, out-of-vocabulary NaN rows, the vocabulary cache, formats and bad files."""
from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import assert_refused
from tests.helpers.scripts import REPO, error_lines, run_script, script_env
from tests.helpers.text import UTTERANCES, all_words, items, utterances, write_alignment_json
from wordreps.common.errors import UserError
from wordreps.embeddings.backends.glove import load_glove_backend, load_vocab_vectors, read_vector_file
from wordreps.embeddings.tiny.text import write_glove

GLOVE = "embeddings/glove_embedding.py"
DIM = 50


def parse_glove(path: Path) -> dict[str, np.ndarray]:
    """The test's own reader: one 'word v1 ... vD' per line."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(" ")
        out[parts[0]] = np.array([float(x) for x in parts[1:]], dtype=np.float32)
    return out


@pytest.fixture()
def glove(tmp_path) -> tuple[Path, set[str]]:
    """A GloVe file with every 4th corpus word left out, plus words that are not in the corpus."""
    words = all_words()
    kept = [w for i, w in enumerate(words) if i % 4 != 1]
    path = tmp_path / "vectors" / "glove.tiny.50d.txt"
    path.parent.mkdir()
    write_glove(path, ["zebra"] + kept + ["xylophone", "quartz"], DIM, seed=3)
    return path, set(words) - set(kept)


def test_vectors_equal_file_rows_and_oov_is_nan(glove, tmp_path):
    path, oov = glove
    assert oov and any(w in oov for ws in UTTERANCES.values() for w in ws)
    rows = parse_glove(path)
    backend = load_glove_backend(path, vocab=all_words(), cache_dir=tmp_path / "cache")
    assert (backend.num_layers, backend.dim, backend.layer_names, backend.family) == (1, DIM, ["glove"], "glove")
    for u, out in zip(utterances(), backend.embed(items(utterances()))):
        assert out.shape == (1, len(u.words), DIM) and out.dtype == np.float32
        assert backend.cost(u) == len(u.words)
        for i, w in enumerate(u.words):
            if w.word in oov:
                assert np.isnan(out[0, i]).all()
            else:
                np.testing.assert_array_equal(out[0, i], rows[w.word])
    assert backend.describe()["oov_words"] == sorted(oov)
    # only the corpus vocabulary was kept
    assert "zebra" not in backend.kv.key_to_index and len(backend.kv) == len(all_words()) - len(oov)


def test_alignment_vocabulary_is_lower_cased(glove, tmp_path):
    path, oov = glove
    a, b = sorted(set(all_words()) - oov)[:2]
    spec = {"1-1-0000": [a.capitalize(), b.upper()]}
    alignment = write_alignment_json(tmp_path / "al.json", spec)
    backend = load_glove_backend(path, alignment=alignment, cache_dir=tmp_path / "cache")
    rows = parse_glove(path)
    out = backend.embed(items(utterances(spec)))[0]
    np.testing.assert_array_equal(out[0], np.stack([rows[a], rows[b]]))


def test_cache_is_used_instead_of_the_file(glove, tmp_path):
    path, oov = glove
    cache_dir = tmp_path / "cache"
    rows = parse_glove(path)
    kv, info = load_vocab_vectors(path, all_words(), cache_dir=cache_dir)
    cached = list(cache_dir.glob("glove.tiny.50d-*.npz"))
    assert len(cached) == 1 and info["cache_path"] == str(cached[0]) and not info["from_cache"]
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp")]

    # replace the file's content by garbage of the same size and mtime: only a run that reads the file notices
    st = path.stat()
    original = path.read_bytes()
    path.write_bytes(b"#" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    kv2, info2 = load_vocab_vectors(path, all_words(), cache_dir=cache_dir)
    assert info2["from_cache"] and info2["cache_path"] == str(cached[0])
    for w in all_words():
        if w in oov:
            assert w not in kv2.key_to_index
        else:
            np.testing.assert_array_equal(kv2[w], rows[w])

    # the manifest's description is the same whether the vectors came from the file or from the cache
    st2 = path.stat()
    path.write_bytes(original)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    # (the backend also keeps the pieces GloVe's tokenizer makes of the words, so its cache is its own)
    first = load_glove_backend(path, vocab=all_words(), cache_dir=tmp_path / "other-cache")
    second = load_glove_backend(path, vocab=all_words(), cache_dir=tmp_path / "other-cache")
    assert not first.info["from_cache"] and second.info["from_cache"]
    assert first.describe() == second.describe()
    path.write_bytes(b"#" * st.st_size)
    os.utime(path, ns=(st2.st_atime_ns, st2.st_mtime_ns))

    # a changed file (new mtime) is read again, and this one is not a vector file
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(UserError, match="not a word-vector file"):
        load_vocab_vectors(path, all_words(), cache_dir=cache_dir)


def test_cache_for_another_vocabulary_is_another_file(glove, tmp_path):
    path, _ = glove
    load_vocab_vectors(path, ["mister"], cache_dir=tmp_path / "cache")
    load_vocab_vectors(path, ["mister", "quilter"], cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_damaged_cache_is_rebuilt(glove, tmp_path):
    path, _ = glove
    _, info = load_vocab_vectors(path, all_words(), cache_dir=tmp_path / "cache")
    Path(info["cache_path"]).write_bytes(b"not a pickle")
    kv, info2 = load_vocab_vectors(path, all_words(), cache_dir=tmp_path / "cache")
    word = kv.index_to_key[0]
    assert not info2["from_cache"] and np.array_equal(kv[word], parse_glove(path)[word])


# ------------------------------------------------------------------------------------------------ formats

def _same(result, rows: dict[str, np.ndarray], vocab: set[str]) -> None:
    got = dict(zip(result.words, result.vectors))
    assert set(got) == vocab & set(rows)
    for w, v in got.items():
        np.testing.assert_array_equal(v, rows[w])


def test_compressed_and_word2vec_files(glove, tmp_path):
    from gensim.models import KeyedVectors

    path, _ = glove
    rows = parse_glove(path)
    vocab = set(all_words())
    gz = tmp_path / "glove.tiny.50d.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    bz = tmp_path / "glove.tiny.50d.txt.bz2"
    bz.write_bytes(bz2.compress(path.read_bytes()))
    # word2vec files written by gensim itself (an independent writer)
    kv = KeyedVectors(DIM)
    kv.add_vectors(list(rows), np.stack(list(rows.values())))
    w2v_txt, w2v_bin, w2v_bin_gz = tmp_path / "w2v.txt", tmp_path / "w2v.bin", tmp_path / "w2v.bin.gz"
    kv.save_word2vec_format(str(w2v_txt), binary=False)
    kv.save_word2vec_format(str(w2v_bin), binary=True)
    w2v_bin_gz.write_bytes(gzip.compress(w2v_bin.read_bytes()))
    kv_file = tmp_path / "vectors.kv"
    kv.save(str(kv_file))
    assert w2v_txt.read_text().split("\n")[0] == f"{len(rows)} {DIM}"
    expected = {gz: "glove", bz: "glove", w2v_txt: "word2vec", w2v_bin: "word2vec-bin", w2v_bin_gz: "word2vec-bin",
                kv_file: "kv"}
    for f, fmt in expected.items():
        result = read_vector_file(f, vocab)
        assert result.fmt == fmt and result.dim == DIM and result.lines_read == len(rows), f
        _same(result, rows, vocab)
    # and the backend over a .gz file, with the cache named after the file without its suffixes
    backend = load_glove_backend(gz, vocab=vocab, cache_dir=tmp_path / "cache")
    assert Path(backend.info["cache_path"]).name.startswith("glove.tiny.50d-")


def test_words_with_spaces_and_duplicates(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("the 1 2 3\nnew york 4 5 6\nthe 7 8 9\n. . . 1 1 1\n\n", encoding="utf-8")
    result = read_vector_file(f, None)
    got = dict(zip(result.words, result.vectors.tolist()))
    assert got == {"the": [1, 2, 3], "new york": [4, 5, 6], ". . .": [1, 1, 1]}


# ----------------------------------------------------------------------------------------------- bad files

def _bad_files(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    text = good.read_text(encoding="utf-8")
    lines = text.splitlines()
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, content: bytes | str, pattern: str) -> None:
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        out[name] = (p, pattern)

    put("cut.txt", text[: len(text) - 40], rf"truncated: its last line {len(lines)} has \d+ of {DIM} values")
    wrong = list(lines)
    wrong[2] = " ".join(wrong[2].split(" ")[:-1])
    put("wrong_width.txt", "\n".join(wrong) + "\n", rf"line 3 has {DIM - 1} values, expected {DIM}")
    extra = list(lines)
    extra[4] = extra[4] + " 0.5"
    put("extra_value.txt", "\n".join(extra) + "\n", rf"line 5 has {DIM + 1} values, expected {DIM}")
    put("short_header.txt", f"{len(lines) + 3} {DIM}\n" + text,
        rf"header declares {len(lines) + 3} vectors but it ends after {len(lines)}")
    put("bad_number.txt", "\n".join([lines[0], lines[1].replace(lines[1].split(' ')[3], 'abc')]) + "\n",
        "line 2: a value is not a number")
    put("page.html", "<html><body>404 Not Found</body></html>\n", "not a word-vector file")
    put("empty.txt", "", "not a word-vector file .it is empty")
    put("cut.txt.gz", gzip.compress(text.encode())[:-200], "truncated")
    put("text.kv", text, "not a word-vector file .gensim cannot load it")
    zpath = tmp_path / "glove.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("glove.txt", text)
    out["glove.zip"] = (zpath, "zip archive; unzip it first")
    out["missing.txt"] = (tmp_path / "missing.txt", r"does not exist; download glove.42B.300d.zip from "
                          r"https://nlp.stanford.edu/data/glove.42B.300d.zip")
    return out


def test_bad_vector_files_are_one_clear_error(glove, tmp_path):
    path, _ = glove
    vocab = set(all_words())
    for name, (bad, pattern) in _bad_files(tmp_path, path).items():
        with pytest.raises(UserError, match=pattern) as info:
            load_vocab_vectors(bad, vocab, cache_dir=tmp_path / "cache")
        assert str(bad) in str(info.value), name
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_truncated_word2vec_binary(glove, tmp_path):
    from gensim.models import KeyedVectors

    path, _ = glove
    rows = parse_glove(path)
    kv = KeyedVectors(DIM)
    kv.add_vectors(list(rows), np.stack(list(rows.values())))
    f = tmp_path / "w2v.bin"
    kv.save_word2vec_format(str(f), binary=True)
    f.write_bytes(f.read_bytes()[:-30])
    with pytest.raises(UserError, match=rf"truncated: record {len(rows)} of {len(rows)}"):
        read_vector_file(f, None)


# -------------------------------------------------------------------------------------------- the script

def test_script_writes_vectors_and_records_missing_words(glove, tmp_path):
    from wordreps.embeddings.store import EmbeddingSet

    path, oov = glove
    alignment = write_alignment_json(tmp_path / "al.json")
    out_dir, cache = tmp_path / "emb", tmp_path / "cache"
    args = ("--glove", str(path), "--path", str(alignment), "--out_dir", str(out_dir), "--glove_cache", str(cache),
            "--dtype", "float32", "--no_progress")
    proc = run_script(GLOVE, *args)
    assert proc.returncode == 0, proc.stderr
    emb = EmbeddingSet.open(out_dir / "glove")
    rows = parse_glove(path)
    for u in utterances():
        got = emb.load(u.utt_id)
        expected_missing = [i for i, w in enumerate(u.words) if w.word in oov]
        assert list(emb.missing(u.utt_id)) == expected_missing
        for i, w in enumerate(u.words):
            if i in expected_missing:
                assert np.isnan(got[0, i]).all()
            else:
                np.testing.assert_array_equal(got[0, i], rows[w.word])
    assert len(list(cache.glob("*.npz"))) == 1


def test_script_runs_without_importing_torch(glove, tmp_path):
    """GloVe is a table lookup: its script (no --precision, no --num_threads) must not pay for loading torch, and
    its manifest records the CPU and float32 as it did when torch was imported for that."""
    path, _ = glove
    alignment = write_alignment_json(tmp_path / "al.json")
    out_dir = tmp_path / "emb"
    argv = [GLOVE, "--glove", str(path), "--path", str(alignment), "--out_dir", str(out_dir), "--glove_cache",
            str(tmp_path / "cache"), "--no_progress"]
    # the script run as __main__ in a fresh interpreter, which then says whether torch was loaded
    driver = ("import runpy, sys\n"
              f"sys.argv = {argv!r}\n"
              "try:\n"
              f"    runpy.run_path({str(REPO / GLOVE)!r}, run_name='__main__')\n"
              "except SystemExit as exc:\n"
              "    assert exc.code in (0, None), exc.code\n"
              "print('torch imported:', 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", driver], cwd=REPO, env=script_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "torch imported: False", proc.stdout
    manifest = json.loads((out_dir / "glove" / "manifest.json").read_text())
    assert manifest["compute"] == {"device_type": "cpu", "precision": "float32", "pooling": "float32"}
    assert len(list((out_dir / "glove" / "utts").glob("*.npy"))) == len(utterances())


@pytest.mark.parametrize("case", ["wrong_width", "default_missing"])
def test_script_bad_vector_file(glove, tmp_path, case):
    path, _ = glove
    alignment = write_alignment_json(tmp_path / "al.json")
    out_dir, cache = tmp_path / "emb", tmp_path / "cache"
    args = ["--path", str(alignment), "--out_dir", str(out_dir), "--glove_cache", str(cache)]
    if case == "wrong_width":
        lines = path.read_text().splitlines()
        lines[6] = lines[6].rsplit(" ", 2)[0]
        bad = tmp_path / "bad.txt"
        bad.write_text("\n".join(lines) + "\n")
        proc = run_script(GLOVE, "--glove", str(bad), *args, cwd=tmp_path)
        expected = [str(bad), f"line 7 has {DIM - 2} values, expected {DIM}"]
    else:  # no --glove and no datasets/glove/ in the working directory
        proc = run_script(GLOVE, *args, cwd=tmp_path)
        expected = ["datasets/glove/glove.42B.300d.txt does not exist",
                    "https://nlp.stanford.edu/data/glove.42B.300d.zip"]
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0]
    assert not out_dir.exists() and not cache.exists()


@pytest.mark.parametrize("kind", ["text_cut_mid_line", "gzip_cut"])
def test_truncated_glove_download_is_one_line_and_no_cache(kind, tmp_path):
    dim = 20
    full = tmp_path / "full.txt"
    write_glove(full, all_words(), dim, seed=1)
    data = full.read_bytes()
    num_lines = data.count(b"\n")
    if kind == "text_cut_mid_line":
        # the download stopped 30 bytes into the last line: a few of its dim values are there
        vectors = tmp_path / "glove.txt"
        vectors.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1 + 30])
        says = [f"is truncated: its last line {num_lines} has", f"of {dim} values", "re-download it"]
    else:
        vectors = tmp_path / "glove.txt.gz"
        vectors.write_bytes(gzip.compress(data)[:-100])
        says = ["is truncated", "re-download it"]
    al = write_alignment_json(tmp_path / "al.json")
    out, cache = tmp_path / "emb", tmp_path / "cache"
    proc = run_script(GLOVE, "--glove", vectors, "--path", al, "--out_dir", out, "--glove_cache", cache,
                      "--no_progress")
    assert_refused(proc, [str(vectors), *says], absent=[out, cache], no_temps_in=[tmp_path])
