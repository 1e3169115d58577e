"""Frame placement with audio whose content is known: one loud burst inside one word.

Layer 0 (projected CNN features + positional conv) is local: CNN frame t sees samples [320t, 320t+400), and
the tiny models' positional conv (kernel 16, as tiny_speech.POS_CONV) widens that by 8 frames each side. So
the burst's word must move and every word whose frames lie outside that window must not move at all. The
tiny "-local" models have a layer-norm feature encoder and no waveform normalisation (both of which would
spread the burst over the whole utterance, see speech_backends' docstring).
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from tests.helpers.speech import HOP, RF, SR, tiny_model, write_corpus
from wordreps.embeddings.extract import add_extraction_args, run_extraction
from wordreps.embeddings.families import load_backend
from wordreps.embeddings.store import EmbeddingSet
from wordreps.embeddings.tiny.speech import POS_CONV


def _corpus(folder):
    rng = np.random.default_rng(7)
    n = 6 * SR
    quiet = (1e-3 * rng.standard_normal(n)).astype(np.float32)
    words = [(f"w{j}", 0.2 + 0.7 * j, 0.2 + 0.7 * j + 0.5) for j in range(8)]
    burst_start = int((words[4][1] + 0.2) * SR)  # 40 ms inside word 4
    burst_len = int(0.04 * SR)
    loud = quiet.copy()
    t = np.arange(burst_len) / SR
    loud[burst_start:burst_start + burst_len] += 0.8 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    al = write_corpus(folder, {"utt-quiet": (quiet, words), "utt-burst": (loud, words)})
    # CNN frames overlapping the burst, then widened by the positional conv's half kernel
    t_lo = max(0, (burst_start - RF) // HOP + 1)
    t_hi = (burst_start + burst_len - 1) // HOP
    return al, (t_lo - POS_CONV // 2, t_hi + POS_CONV // 2)


@pytest.mark.parametrize("name", ["tiny-wav2vec2-local", "tiny-s3prl-wav2vec2-local.pt"])
def test_burst_moves_only_its_word_at_layer_0(name, tmp_path):
    al, (lo, hi) = _corpus(tmp_path / "corpus")
    backend = load_backend("speech", str(tiny_model(name)), "cpu")
    parser = argparse.ArgumentParser()
    add_extraction_args(parser, audio=True)
    args = parser.parse_args(["--path", str(al), "--out_dir", str(tmp_path / "emb"), "--device", "cpu",
                              "--dtype", "float32", "--no_progress"])
    emb = EmbeddingSet.open(run_extraction(backend, args))
    quiet, loud = emb.load("utt-quiet")[0], emb.load("utt-burst")[0]
    manifest_words = emb.manifest["utterances"]["utt-quiet"]["words"]
    assert manifest_words == [f"w{j}" for j in range(8)]
    import json
    frames = [(w["first_frame"], w["last_frame"]) for w in json.loads(al.read_text())["utterances"][1]["words"]]
    moved = np.abs(loud - quiet).max(axis=1) / (np.abs(quiet).max() + 1e-9)
    assert moved[4] > 1e-2, f"the burst's word did not move ({moved[4]:.3g})"
    far = [j for j, (a, b) in enumerate(frames) if b < lo or a > hi]
    assert far and 4 not in far
    assert set(range(8)) - set(far) <= {3, 4, 5}  # the window is narrow: at most the neighbours are near it
    for j in far:
        assert moved[j] < 1e-6, f"word {j} (frames {frames[j]}) moved by {moved[j]:.3g}, outside [{lo}, {hi}]"
    # deeper layers attend over the whole utterance: there the burst reaches every word
    deep = np.abs(emb.load("utt-burst")[-1] - emb.load("utt-quiet")[-1]).max(axis=1)
    assert (deep > 0).all()
