"""On the demo corpus, how far bfloat16 extraction moves the CKA values of the float32 run.

Stated amounts: |CKA(bfloat16) - CKA(float32)| < 1e-3 for a layer pair whose vectors, once centred over the
words, move by less than 1 % (real MiniLM-L6 weights: 0.3-0.6 %; the tiny AST: 0.2 %), and < 2e-2 for every
pair. The tiny random speech models need the wider bound: three quarters of their vectors' norm is a mean
shared by every word, so bfloat16's 0.6 % error per vector is 2-4 % of the word-to-word variation that CKA
measures. The models run through the real extraction stage (float16 storage, as the demo) and CKA through
the real all-pairs engine (linear and debiased).
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from tests.helpers.speech import DEMO_AUDIO, DEMO_TEXTGRIDS, demo_alignment, tiny_model
from wordreps.embeddings.extract import add_extraction_args, run_extraction
from wordreps.embeddings.families import load_backend
from wordreps.embeddings.store import EmbeddingSet
from wordreps.embeddings.tiny.text import minilm_path
from wordreps.analysis.cka import all_pairs

SMALL_MOVE = 1e-2        # centred relative change of a layer's vectors
CKA_MOVE_SMALL = 1e-3    # CKA change allowed when both layers moved less than SMALL_MOVE
CKA_MOVE_ANY = 2e-2      # CKA change allowed for any pair


def _ast_alignment(folder):
    from wordreps.alignments.format import write_alignment
    from wordreps.alignments.corpus import align_corpus
    from wordreps.alignments.geometry import geometry_for_model

    geometry = geometry_for_model("ast")
    corpus = align_corpus(str(DEMO_TEXTGRIDS), str(DEMO_AUDIO), "dev-clean", geometry, progress=False)
    out = folder / "audio_alignments_ast.json"
    write_alignment(out, geometry, corpus.utterances, transcript_match=corpus.transcript_match)
    return out


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    """{(precision, model): (layers, words, dim) float32}: every demo word, utterances in id order."""
    import torch

    from wordreps.embeddings.tiny.audio import build_tiny_ast

    if demo_alignment() is None:
        pytest.skip("the demo corpus is not in this checkout")
    work = tmp_path_factory.mktemp("precision-demo")
    models = {
        "minilm": ("text", minilm_path(), demo_alignment()),
        "tiny-wav2vec2": ("speech", tiny_model("tiny-wav2vec2-layer"), demo_alignment()),
        "tiny-ast": ("audio", build_tiny_ast(work / "tiny-ast"), _ast_alignment(work)),
    }
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for precision in ("float32", "bfloat16"):
            for name, (kind, path, alignment) in models.items():
                backend = load_backend(kind, str(path), "cpu", precision=precision)
                args = add_extraction_args(argparse.ArgumentParser(), audio=backend.needs_audio).parse_args(
                    ["--path", str(alignment), "--out_dir", str(work / precision), "--name", name, "--no_progress"])
                emb = EmbeddingSet.open(run_extraction(backend, args))
                assert emb.manifest["compute"]["precision"] == precision
                out[(precision, name)] = np.concatenate([emb.load(u).astype(np.float32) for u in emb.utterance_ids],
                                                        axis=1)
    finally:
        torch.set_num_threads(saved)
    return out


def _centred_move(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per layer: ||centred(b) - centred(a)|| / ||centred(a)||, centred over the words."""
    ca = a - a.mean(axis=1, keepdims=True)
    cb = b - b.mean(axis=1, keepdims=True)
    return np.linalg.norm(cb - ca, axis=(1, 2)) / np.linalg.norm(ca, axis=(1, 2))


def test_bfloat16_moves_the_demo_cka_values_by_less_than_the_stated_amounts(matrices, one_torch_thread):
    names = sorted({name for _, name in matrices})
    move = {n: _centred_move(matrices[("float32", n)], matrices[("bfloat16", n)]) for n in names}
    assert (move["minilm"][1:] < SMALL_MOVE).all() and (move["tiny-ast"] < SMALL_MOVE).all()
    checked_small = 0
    for i, a in enumerate(names):
        for b in names[i:]:
            res = {}
            for p in ("float32", "bfloat16"):
                x, y = matrices[(p, a)], matrices[(p, b)]
                res[p] = all_pairs([lambda k=k: x[k] for k in range(len(x))], [lambda k=k: y[k] for k in range(len(y))],
                                   ["linear", "debiased"])
            for metric in ("linear", "debiased"):
                diff = np.abs(res["bfloat16"][metric] - res["float32"][metric])
                small = (move[a][:, None] < SMALL_MOVE) & (move[b][None, :] < SMALL_MOVE)
                assert (diff[small] < CKA_MOVE_SMALL).all(), (a, b, metric, diff, move[a], move[b])
                assert (diff < CKA_MOVE_ANY).all(), (a, b, metric, diff)
                checked_small += int(small.sum())
    assert checked_small >= 2 * (7 * 7 + 7 * 3 + 3 * 3)  # MiniLM with itself and with the AST, both metrics
