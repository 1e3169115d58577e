"""Hugging Face text backend: one vector per word occurrence, layers, sub-token means, windows, batching."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers.scripts import error_lines, run_script
from tests.helpers.text import UTTERANCES, items, reference_vectors, utterance, utterances, write_alignment_json
from wordreps.common.errors import UserError
from wordreps.embeddings.backends.hf_text import (HFTextBackend, assign_windows, load_hf_text_backend,
                                               plan_windows)
from wordreps.embeddings.tiny.text import minilm_path

NLP = "embeddings/nlp_embedding.py"
LONG_WORDS = ("the apostle of the middle classes mister quilter's manner is less interesting than his matter "
              "he tells us that at this festive season of the year with christmas and roast beef looming before "
              "us similes drawn from eating and its results occur most readily").split()[:40]


def check_against_reference(backend: HFTextBackend, folder, utts, atol: float = 2e-5) -> list[int]:
    """Embed ``utts`` in one batch and compare every word with the independent reference; returns pieces/word."""
    outputs = backend.embed(items(utts))
    all_pieces = []
    for u, out in zip(utts, outputs):
        words = [w.word for w in u.words]
        ref, pieces = reference_vectors(folder, words)
        assert out.shape == (backend.num_layers, len(words), backend.dim)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref, atol=atol, rtol=1e-4)
        all_pieces += pieces
    return all_pieces


def test_bert_word_vectors_are_means_of_their_sub_tokens(tiny_bert):
    backend = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32")
    assert backend.num_layers == 3 and backend.layer_names[0] == "embeddings" and backend.dim == 32
    pieces = check_against_reference(backend, tiny_bert, utterances())
    assert max(pieces) >= 3 and min(pieces) == 1  # whole words and split words both occur
    assert backend.family == "hf-text"
    assert backend.describe()["revision"] == str(tiny_bert.resolve())


def test_roberta_with_prefix_space(tiny_roberta):
    backend = load_hf_text_backend(str(tiny_roberta), "cpu", precision="float32")
    assert backend.num_layers == 3
    # 130 position embeddings, numbered from padding_idx + 1 = 2: 128 tokens, 2 of them special
    assert backend.max_len == 128 and backend.window_tokens == 126
    assert backend.describe()["pre_tokenizer"] == {"type": "ByteLevel", "add_prefix_space": True}
    pieces = check_against_reference(backend, tiny_roberta, utterances())
    assert max(pieces) >= 3


def test_minilm_real_weights():
    folder = minilm_path()
    assert (folder / "config.json").is_file()
    backend = load_hf_text_backend(str(folder), "cpu", precision="float32")
    assert (backend.num_layers, backend.dim) == (7, 384)
    utts = [utterance("u1", UTTERANCES["1272-128104-0001"])]
    check_against_reference(backend, folder, utts, atol=1e-4)


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta"])
def test_batched_equals_one_at_a_time(model, request):
    # padding (with its attention mask) must not change any word: RoBERTa also numbers positions around pads
    backend = load_hf_text_backend(str(request.getfixturevalue(model)), "cpu", precision="float32")
    utts = utterances()
    batched = backend.embed(items(utts))
    for u, b in zip(utts, batched):
        alone = backend.embed(items([u]))[0]
        np.testing.assert_allclose(b, alone, atol=1e-5, rtol=1e-5)


def test_cost_counts_sub_tokens_with_specials(tiny_bert):
    backend = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32")
    u = utterance("u", UTTERANCES["1272-128104-0001"])
    _, pieces = reference_vectors(tiny_bert, [w.word for w in u.words])
    assert backend.cost(u) == sum(pieces) + 2


# ----------------------------------------------------------------------------------------------- windows

def test_plan_windows_cover_every_word_with_overlap():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = list(rng.integers(1, 5, size=int(rng.integers(1, 60))))
        max_tokens = int(rng.integers(max(lengths), 20))
        stride = int(rng.integers(1, max_tokens + 1))
        windows = plan_windows(lengths, max_tokens, stride)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
        for (s, e), (s2, e2) in zip(windows, windows[1:]):
            assert s < s2 <= e < e2  # moves forward, no gap
        for s, e in windows:
            assert offsets[e] - offsets[s] <= max_tokens
        owner = assign_windows(lengths, windows)
        for i, k in enumerate(owner):
            s, e = windows[k]
            assert s <= i < e


def test_long_utterance_uses_windows_and_each_word_matches_its_window(tiny_bert):
    backend = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32", max_tokens=16, stride=6)
    assert backend.window_tokens == 14
    u = utterance("long", LONG_WORDS)
    words = [w.word for w in u.words]
    out = backend.embed(items([u]))[0]
    assert out.shape == (3, 40, 32) and np.isfinite(out).all()

    # independent: the windows the backend used are checked for their sizes, then each word's vector must be
    # the reference computed on that window's words alone, and that window must be one where the word is
    # most central (largest context on its cut sides) among all windows holding it
    _, pieces = reference_vectors(tiny_bert, words)
    windows = plan_windows(pieces, 14, 6)
    assert len(windows) > 3
    offsets = np.concatenate([[0], np.cumsum(pieces)])
    owner = assign_windows(pieces, windows)

    def context(i: int, s: int, e: int) -> float:
        left = math.inf if s == 0 else offsets[i] - offsets[s]
        right = math.inf if e == len(words) else offsets[e] - offsets[i + 1]
        return min(left, right)

    refs = {k: reference_vectors(tiny_bert, words[s:e])[0] for k, (s, e) in enumerate(windows)}
    for i in range(len(words)):
        k = owner[i]
        s, e = windows[k]
        holding = [context(i, a, b) for a, b in windows if a <= i < b]
        assert context(i, s, e) == max(holding)
        np.testing.assert_allclose(out[:, i], refs[k][:, i - s], atol=2e-5, rtol=1e-4)

    # the cost counts every window's tokens
    assert backend.cost(utterance("long", LONG_WORDS)) == sum(offsets[e] - offsets[s] + 2 for s, e in windows)


def test_window_limit_at_least_the_utterance_is_the_plain_path(tiny_bert):
    plain = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32")
    u = utterance("long", LONG_WORDS)
    n = int(plain.cost(u))
    exact = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32", max_tokens=n)
    assert exact.windows_for(u)[0][0] == plain.windows_for(u)[0][0] and len(exact.windows_for(u)) == 1
    np.testing.assert_array_equal(exact.embed(items([u]))[0], plain.embed(items([u]))[0])
    short = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32", max_tokens=n - 1)
    assert len(short.windows_for(u)) == 2


def test_word_longer_than_a_window_is_an_error(tiny_bert):
    backend = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32", max_tokens=4)  # 2 content tokens
    with pytest.raises(UserError, match="raise --max_tokens"):
        backend.embed(items([utterance("u", ["mister", "quilter's"])]))


# ------------------------------------------------------------------------------------------- bad models

def test_path_that_is_not_a_model(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_hf_text_backend(str(tmp_path / "nothing-here"), "cpu", precision="float32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_hf_text_backend(str(tmp_path / "empty"), "cpu", precision="float32")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            load_hf_text_backend(str(tmp_path / "empty"), "cuda")


# ------------------------------------------------------------------------------------------- the script

def test_script_writes_reference_vectors(tiny_bert, tmp_path):
    from wordreps.embeddings.store import EmbeddingSet

    alignment = write_alignment_json(tmp_path / "al.json")
    out_dir = tmp_path / "emb"
    proc = run_script(NLP, "--model", str(tiny_bert), "--path", str(alignment), "--device", "cpu",
                      "--precision", "float32", "--out_dir", str(out_dir), "--dtype", "float32", "--batch_tokens", "64",
                      "--no_progress")
    assert proc.returncode == 0, proc.stderr
    folder = out_dir / "tiny-bert"
    assert proc.stdout.strip().endswith(str(folder))
    emb = EmbeddingSet.open(folder)
    for u in utterances():
        words = [w.word for w in u.words]
        got = emb.load(u.utt_id)
        ref, _ = reference_vectors(tiny_bert, words)
        np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)
        assert list(emb.missing(u.utt_id)) == []


def test_script_unknown_model_one_error_line(tmp_path):
    alignment = write_alignment_json(tmp_path / "al.json")
    out_dir = tmp_path / "emb"
    proc = run_script(NLP, "--model", "no-such-org/no-such-model", "--path", str(alignment),
                      "--device", "cpu", "--out_dir", str(out_dir))
    assert proc.returncode == 2
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "no-such-org/no-such-model is not a local model folder and could not be fetched" in lines[0]
    assert not out_dir.exists()
