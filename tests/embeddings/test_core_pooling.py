"""pool_words against a plain numpy loop: clipping, overlap, empty items, errors, one host copy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wordreps.common.errors import UserError
from wordreps.embeddings.pooling import pool_words, pooled_to_numpy


def _reference(hidden: np.ndarray, num_frames, spans):
    out = []
    for b, item in enumerate(spans):
        rows = np.zeros((hidden.shape[0], len(item), hidden.shape[3]))
        for w, (first, last) in enumerate(item):
            last = min(last, num_frames[b] - 1)
            for layer in range(hidden.shape[0]):
                acc = np.zeros(hidden.shape[3])
                for t in range(first, last + 1):
                    acc += hidden[layer, b, t]
                rows[layer, w] = acc / (last - first + 1)
        out.append(rows)
    return out


def test_pool_words_matches_loop_with_clipping_and_overlap():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 3, 40, 5)).astype(np.float32) * 100  # large values, as in wav2vec2-large
    num_frames = [40, 25, 31]  # item 1 and 2 are padded
    spans = [[(0, 0), (1, 9), (5, 12), (39, 39)],       # overlapping words are allowed
             [(0, 3), (20, 30)],                         # last clipped to 24 (model produced fewer frames)
             []]                                         # an utterance without words
    got = pool_words(torch.from_numpy(hidden), num_frames, spans)
    want = _reference(hidden, num_frames, spans)
    assert [tuple(g.shape) for g in got] == [(3, 4, 5), (3, 2, 5), (3, 0, 5)]
    for g, w in zip(got, want):
        assert g.dtype == torch.float32
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-4)
    # the list-of-layers form gives the same numbers, also from bf16 input (averaged in float32)
    listed = pool_words([torch.from_numpy(h) for h in hidden], num_frames, spans)
    for a, b in zip(listed, got):
        assert torch.equal(a, b)
    host = pooled_to_numpy(got)
    assert [h.shape for h in host] == [(3, 4, 5), (3, 2, 5), (3, 0, 5)]
    np.testing.assert_array_equal(host[1], got[1].numpy())


def test_a_batch_without_any_word_gives_empty_arrays():
    out = pool_words(torch.ones((3, 2, 10, 4)), [10, 7], [[], []])
    assert [tuple(o.shape) for o in out] == [(3, 0, 4), (3, 0, 4)]


def test_pool_words_bf16_input_is_averaged_in_float32():
    x = torch.full((1, 1, 300, 2), 1.0 + 2 ** -7, dtype=torch.bfloat16)  # exact in bf16
    out = pool_words(x, [300], [[(0, 299)]])[0]
    assert out.dtype == torch.float32
    assert float(out[0, 0, 0]) == pytest.approx(1.0 + 2 ** -7, abs=2e-6)  # bf16 sums would be off by ~4e-3


def test_word_past_the_produced_frames_is_an_error_naming_it():
    hidden = torch.zeros((2, 1, 10, 4))
    with pytest.raises(UserError, match=r"utterance u1, word #1 \('two'\) starts at frame 8 .* only 8 frames"):
        pool_words(hidden, [8], [[(0, 2), (8, 9)]], utt_ids=["u1"], words=[["one", "two"]])
