"""Every speech family: one vector per word, every layer, equal to the mean of the model's own frames.

The reference runs the model directly (transformers' feature extractor + model, or s3prl's wav2vec2_custom
upstream) one utterance at a time and averages the word's frames with numpy; the frames are those the frame
rule gives for the TextGrid's word times, computed in the test (tests/helpers/references.frame_span).
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest
from praatio import textgrid

from tests.helpers.references import frame_span, word_means
from tests.helpers.speech import DEMO_TEXTGRIDS, demo_alignment, random_corpus, reference, tiny_model
from wordreps.alignments.format import load_alignment
from wordreps.common.audio import load_audio
from wordreps.embeddings.base import BatchItem
from wordreps.embeddings.extract import add_extraction_args, plan_batches, run_extraction
from wordreps.embeddings.families import load_backend
from wordreps.embeddings.store import EmbeddingSet

FAMILIES = [
    # tiny model, expected family, expected padding sensitivity
    ("tiny-s3prl-wav2vec2.pt", "s3prl", True),          # group-norm extractor ("default")
    ("tiny-s3prl-wav2vec2-large.pt", "s3prl", False),   # layer-norm extractor, normalised waveform
    ("tiny-wav2vec2-group", "hf-speech", True),         # like wav2vec2-base: no attention mask
    ("tiny-wav2vec2-layer", "hf-speech", False),        # like wav2vec2-large-lv60: attention mask
    ("tiny-hubert", "hf-speech", True),
    ("tiny-wavlm", "hf-speech", False),
    ("tiny-data2vec-audio", "hf-speech", True),   # stacked positional convs leak padding
]


@pytest.fixture(scope="module")
def alignment_path(tmp_path_factory):
    path = demo_alignment()
    if path is None:  # the demo corpus is made by another stage; fall back to a synthetic corpus
        path = random_corpus(tmp_path_factory.mktemp("corpus"), [2.1, 3.4, 1.7, 2.9])
    return path


def _word_times(utt) -> list[tuple[float, float]]:
    """(start_s, end_s) of each word from the utterance's TextGrid, read here with praatio (the demo corpus), or
    the times the synthetic corpus was written with."""
    speaker, chapter, _ = utt.utt_id.split("-") if utt.utt_id.count("-") == 2 else ("", "", "")
    path = DEMO_TEXTGRIDS / "dev-clean" / speaker / chapter / f"{utt.utt_id}.TextGrid"
    if not path.is_file():
        return [(w.start_s, w.end_s) for w in utt.words]
    entries = textgrid.openTextgrid(str(path), includeEmptyIntervals=False).getTier("words").entries
    assert [e.label.lower() for e in entries] == [w.word for w in utt.words]
    return [(e.start, e.end) for e in entries]


def _args(al, out_dir, *extra):
    parser = argparse.ArgumentParser()
    add_extraction_args(parser, audio=True)
    return parser.parse_args(["--path", str(al), "--out_dir", str(out_dir), "--device", "cpu", "--no_progress",
                              *extra])


@pytest.mark.parametrize("name,family,sensitive", FAMILIES)
def test_pooled_vectors_equal_mean_of_model_frames(name, family, sensitive, alignment_path, tmp_path):
    backend = load_backend("speech", str(tiny_model(name)), "cpu", precision="float32")
    assert backend.family == family
    assert backend.padding_sensitive is sensitive
    assert backend.num_layers == 3  # 2 transformer layers + layer 0
    assert (backend.geometry.hop_samples, backend.geometry.receptive_field_samples) == (320, 400)
    folder = run_extraction(backend, _args(alignment_path, tmp_path, "--limit", "3", "--batch_seconds", "12"))
    emb = EmbeddingSet.open(folder)
    alignment = load_alignment(alignment_path)
    utts = sorted(alignment.utterances, key=lambda u: u.utt_id)[:3]
    assert emb.done_ids(verify=True) == [u.utt_id for u in utts]
    assert not emb.is_complete()  # --limit 3 of more
    for utt in utts:
        got = emb.load(utt.utt_id)
        assert got.dtype == np.float16
        assert got.shape == (3, len(utt.words), backend.dim)
        assert emb.words(utt.utt_id) == [w.word for w in utt.words]
        assert emb.missing(utt.utt_id) == []
        audio = load_audio(utt.audio_path, 16000)
        states = reference(name, audio)
        assert len(states) == 3
        spans = [frame_span(start, end, len(audio)) for start, end in _word_times(utt)]
        for layer, hidden in enumerate(states):
            want = word_means(hidden, spans)
            scale = np.abs(want).max() + 1e-6
            np.testing.assert_allclose(got[layer].astype(np.float64), want, rtol=2e-3, atol=2e-3 * scale,
                                       err_msg=f"{name} {utt.utt_id} layer {layer}")


@pytest.mark.parametrize("name,family,sensitive", FAMILIES)
def test_batched_equals_one_at_a_time(name, family, sensitive, tmp_path):
    """Mixed lengths (plus two of equal length): batches as the core forms them == one utterance at a time."""
    al = random_corpus(tmp_path, [1.3, 2.0, 2.0, 2.6, 1.7], seed=3)
    backend = load_backend("speech", str(tiny_model(name)), "cpu", precision="float32")
    utts = load_alignment(al).utterances
    audio = {u.utt_id: load_audio(u.audio_path, 16000) for u in utts}
    batches = plan_batches(utts, backend.cost, budget=100.0, padding_sensitive=backend.padding_sensitive)
    sizes = sorted(len(b) for b in batches)
    if sensitive:
        assert sizes == [1, 1, 1, 2]  # only the two 2.0 s utterances share a batch
        assert all(len({u.num_samples for u in b}) == 1 for b in batches)
    else:
        assert sizes == [5]
    single = {u.utt_id: backend.embed([BatchItem(u, audio[u.utt_id])])[0] for u in utts}
    for batch in batches:
        outs = backend.embed([BatchItem(u, audio[u.utt_id]) for u in batch])
        for u, out in zip(batch, outs):
            np.testing.assert_allclose(out, single[u.utt_id], rtol=1e-4, atol=1e-4 * np.abs(out).max(),
                                       err_msg=f"{name} {u.utt_id}")
    if sensitive:
        # why the flag matters: padding does change these models' vectors (group norm over time, no attention
        # mask, or stacked positional convs)
        short, long_ = utts[0], utts[3]
        padded = backend.embed([BatchItem(short, audio[short.utt_id]), BatchItem(long_, audio[long_.utt_id])])[0]
        ref = single[short.utt_id]
        assert np.abs(padded - ref).max() > 1e-3 * np.abs(ref).max()
