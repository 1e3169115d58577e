"""GloVe's missing contractions: --oov compose (GloVe's own tokenizer's split) against --oov missing, on the real
MFA TextGrid acoustic_corpus (which holds i'm, there's, we're, here's), and text models refused phone units."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.corpora import (MFA, SR, align_in_process, copy_mfa, noise, parse_textgrid, textgrid_seconds,
                                   textgrid_text, write_audio)
from tests.helpers.faults import assert_refused
from tests.helpers.scripts import run_script
from tests.helpers.text import items, utterances
from wordreps.embeddings.backends.glove_oov import compose, stanford_split
from wordreps.pipeline.summary import glove_oov_losses

GLOVE = "embeddings/glove_embedding.py"

# The Stanford tokenizer's (PTBLexer) rules, one example each, written out by hand.
SPLITS = {
    "i'm": ["i", "'m"], "there's": ["there", "'s"], "we're": ["we", "'re"], "here's": ["here", "'s"],
    "you've": ["you", "'ve"], "she'll": ["she", "'ll"], "he'd": ["he", "'d"], "i'd've": ["i", "'d", "'ve"],
    "don't": ["do", "n't"], "can't": ["ca", "n't"], "won't": ["wo", "n't"], "shouldn't've": ["should", "n't", "'ve"],
    "cannot": ["can", "not"], "gonna": ["gon", "na"], "wanna": ["wan", "na"], "'tis": ["'t", "is"],
    "students'": ["students", "'"], "I\u2019M": ["i", "'m"],
    "o'clock": ["o'clock"], "yknow": ["yknow"], "'em": ["'em"], "rock'n'roll": ["rock'n'roll"], "n't": ["n't"],
}


@pytest.mark.parametrize("word", list(SPLITS))
def test_stanford_split(word):
    assert stanford_split(word) == SPLITS[word]


def test_compose_is_the_mean_of_the_pieces():
    table = {"do": np.array([1.0, 2.0], np.float32), "n't": np.array([3.0, -2.0], np.float32)}
    np.testing.assert_array_equal(compose("don't", table.get), [2.0, 0.0])
    assert compose("can't", table.get) is None     # "ca" has no vector
    assert compose("table", table.get) is None     # not split: nothing to compose


def test_a_corpus_word_is_split_once_at_load_not_at_each_occurrence(tmp_path, monkeypatch):
    from wordreps.embeddings.backends import glove_oov
    from wordreps.embeddings.backends.glove import load_glove_backend

    vectors = _glove_file(tmp_path / "vectors.txt", ["i", "'m", "do", "n't", "the"])
    spec = {"u1": ["I'm", "the", "don't", "can't", "i'm"]}
    backend = load_glove_backend(tmp_path / "vectors.txt", utterances=utterances(spec), cache_dir=tmp_path / "cache",
                                 oov="compose")
    monkeypatch.setattr(glove_oov, "stanford_split", lambda w: pytest.fail(f"{w!r} split again at lookup"))
    (out,) = backend.embed(items(utterances(spec)))

    def mean(*words):
        return np.mean([vectors[w].astype(np.float64) for w in words], axis=0).astype(np.float32)

    expected = [mean("i", "'m"), vectors["the"], mean("do", "n't"), None, mean("i", "'m")]
    for i, want in enumerate(expected):
        if want is None:  # "ca" has no vector: can't stays missing
            assert np.isnan(out[0, i]).all()
        else:
            np.testing.assert_array_equal(out[0, i], want)


def _corpus(tmp_path: Path, tier: str = "words") -> Path:
    copy_mfa("acoustic_corpus", tmp_path / "corpus", ".TextGrid", ".lab")
    write_audio(tmp_path / "corpus" / "acoustic_corpus.wav", noise(round(textgrid_seconds("acoustic_corpus") * SR)))
    out = tmp_path / f"al_{tier}.json"
    assert align_in_process("--model", "wav2vec2", "--path", tmp_path / "corpus", "--tier", tier, "--output",
                            out) == 0
    return out


def _glove_file(path: Path, words: list[str], seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = {w: rng.standard_normal(6).round(4).astype(np.float32) for w in words}
    path.write_text("".join(w + " " + " ".join(f"{x:.4f}" for x in v) + "\n" for w, v in vectors.items()))
    return vectors


def test_oov_compose_and_missing_on_real_contractions(tmp_path):
    al = _corpus(tmp_path)
    spoken = [lab for _, _, lab in parse_textgrid(textgrid_text(MFA / "acoustic_corpus.TextGrid"))["words"]
              if lab.strip()]
    contractions = {"i'm", "there's", "we're", "here's"}
    assert contractions <= set(spoken)
    # a GloVe file like the real one: no contraction, but its pieces, except "'re" (so "we're" stays missing)
    vocab = sorted(set(spoken) - contractions) + ["i", "'m", "there", "'s", "we", "here"]
    vectors = _glove_file(tmp_path / "g.txt", sorted(set(vocab)))
    folders = {}
    for choice in ("missing", "compose"):
        proc = run_script(GLOVE, "--glove", tmp_path / "g.txt", "--path", al, "--oov", choice,
                          "--out_dir", tmp_path / "emb", "--name", choice, "--glove_cache", tmp_path / "cache",
                          "--no_progress")
        assert proc.returncode == 0, proc.stderr
        folders[choice] = tmp_path / "emb" / choice
    manifest = {c: json.loads((f / "manifest.json").read_text()) for c, f in folders.items()}
    (utt_id,) = manifest["compose"]["utterances"]
    arrays = {c: np.load(f / "utts" / f"{utt_id}.npy").astype(np.float32) for c, f in folders.items()}
    assert manifest["compose"]["utterances"][utt_id]["words"] == spoken  # no marker in this words tier
    for pos, word in enumerate(spoken):
        if word in ("i'm", "there's", "here's"):
            head, clitic = SPLITS[word]
            expected = ((vectors[head].astype(np.float64) + vectors[clitic]) / 2).astype(np.float16)
            np.testing.assert_array_equal(arrays["compose"][0, pos], expected)
            assert np.isnan(arrays["missing"][0, pos]).all()
        elif word == "we're":
            assert np.isnan(arrays["compose"][0, pos]).all() and np.isnan(arrays["missing"][0, pos]).all()
        else:
            np.testing.assert_array_equal(arrays["compose"][0, pos], vectors[word].astype(np.float16))
            np.testing.assert_array_equal(arrays["missing"][0, pos], arrays["compose"][0, pos])
    # the manifest records the choice and what composes; the summary's counts follow from the word lists
    for choice in ("missing", "compose"):
        d = manifest[choice]["describe"]
        assert d["oov"] == choice and sorted(d["oov_words"]) == sorted(contractions)
        assert d["composable_oov_words"] == {w: SPLITS[w] for w in ("i'm", "there's", "here's")}
        counts = Counter(spoken)
        assert glove_oov_losses(manifest[choice]) == {
            "total": len(spoken), "missing": sum(counts[w] for w in contractions), "compose": counts["we're"]}


def test_text_models_refuse_phone_units(tmp_path):
    al = _corpus(tmp_path, "phones")
    assert json.loads(al.read_text())["unit"] == "phones"
    # refused before the vector file is even looked at (this one does not exist)
    proc = run_script(GLOVE, "--glove", tmp_path / "no-such.txt", "--path", al, "--out_dir", tmp_path / "emb",
                      "--no_progress")
    assert_refused(proc, [str(al), "holds phones", "text model", "--tier words"], absent=[tmp_path / "emb"])
    # the extraction core refuses any text backend (needs_audio False) given phone units
    from types import SimpleNamespace

    from wordreps.common.errors import UserError
    from wordreps.embeddings.extract import prepare_run

    backend = SimpleNamespace(needs_audio=False, model_name="bert-base-uncased", geometry=None, sample_rate_hz=None)
    with pytest.raises(UserError, match="bert-base-uncased is a text model, which reads words"):
        prepare_run(backend, SimpleNamespace(path=str(al), out_dir=str(tmp_path / "emb2")))
    assert not (tmp_path / "emb2").exists()
