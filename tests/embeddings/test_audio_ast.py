"""Audio Spectrogram Transformer backend with a tiny AST built by tools/make_tiny_ast.py (real architecture,
real 16x16 / 10 / 10 patch geometry, 128-frame inputs = 12 time steps of 100 ms per chunk)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.audio import SCRIPT, TINY_SCRIPT, WORDS, items_for, make_corpus, reference_steps
from tests.helpers.files import read_embeddings
from tests.helpers.references import spans, word_means
from tests.helpers.scripts import run_script
from wordreps.embeddings.families import AST, WAV2VEC2_CONV, lookup_model_geometry


@pytest.fixture(scope="module")
def tiny_ast(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    res = run_script(TINY_SCRIPT, "--out", out)  # the real CLI
    assert res.returncode == 0, res.stderr
    path = out / "tiny-ast"
    assert res.stdout.strip().endswith(str(path)) and (path / "config.json").exists()
    assert (path / "preprocessor_config.json").exists()
    return path


@pytest.fixture(scope="module")
def backend(tiny_ast):
    from wordreps.embeddings.families import load_backend
    return load_backend("audio", str(tiny_ast), "cpu", precision="float32")


def test_geometry_and_layers(backend):
    assert backend.geometry == AST == lookup_model_geometry("MIT/ast-finetuned-audioset-10-10-0.4593")
    assert (AST.sample_rate_hz, AST.hop_samples, AST.receptive_field_samples) == (16000, 1600, 2800)
    assert (backend.freq_patches, backend.chunk_steps) == (12, 12)
    assert backend.num_layers == 3 and backend.layer_names == ["embeddings", "layer_1", "layer_2"]
    assert backend.dim == 32 and backend.family == "hf-audio" and not backend.padding_sensitive


def test_chunk_fbanks_are_the_utterances_fbank_frames(backend, tmp_path):
    from transformers import ASTFeatureExtractor
    x = make_corpus(tmp_path, AST, {"u": {"duration_s": 3.6, "seed": 1}})[1]["u"]
    whole = ASTFeatureExtractor(max_length=400)(x, sampling_rate=16000, return_tensors="np")["input_values"][0]
    real = (x.size - 400) // 160 + 1
    for c, chunk in enumerate(backend.chunk_waveforms(x)):
        fb = backend.feature_extractor(chunk, sampling_rate=16000, return_tensors="np")["input_values"][0]
        start = c * 120  # 12 steps x time stride 10
        m = min(128, real - start)
        np.testing.assert_allclose(fb[:m], whole[start:start + m], rtol=1e-5, atol=1e-5)


def test_vectors_are_means_of_frequency_averaged_patch_tokens(backend, tiny_ast, tmp_path):
    json_path, audio = make_corpus(tmp_path, AST, {"u": {"duration_s": 3.6, "seed": 2}})
    (item,) = items_for(json_path, audio)
    (out,) = backend.embed([item])
    steps = reference_steps(tiny_ast, audio["u"])
    assert steps.shape == (3, AST.num_frames(audio["u"].size), 32)
    assert out.shape == (3, len(WORDS), 32)
    np.testing.assert_allclose(out, word_means(steps, spans(item.utterance)), rtol=1e-4, atol=1e-5)


def test_long_utterance_chunks_cover_every_word(backend, tiny_ast, tmp_path):
    # 7.9 s = 78 steps = 7 chunks of 12 (the last one mostly padding); words up to the very end
    words = [(f"w{i}", 0.05 + 0.6 * i, 0.05 + 0.6 * i + 0.55) for i in range(13)] + [("end", 7.85, 7.9)]
    json_path, audio = make_corpus(tmp_path, AST, {"long": {"duration_s": 7.9, "seed": 3, "words": words}})
    (item,) = items_for(json_path, audio)
    n = audio["long"].size
    assert backend.num_chunks(n) == 7 and AST.num_frames(n) == 78
    assert item.utterance.words[-1].last_frame == 77
    (out,) = backend.embed([item])
    assert np.isfinite(out).all() and out.shape == (3, len(words), 32)
    expected = word_means(reference_steps(tiny_ast, audio["long"]), spans(item.utterance))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_batched_and_one_at_a_time_agree(backend, tmp_path):
    specs = {"a": {"duration_s": 3.6, "seed": 4}, "b": {"duration_s": 1.0, "seed": 5, "words": [("x", 0.1, 0.8)]},
             "c": {"duration_s": 5.3, "seed": 6}}
    json_path, audio = make_corpus(tmp_path, AST, specs)
    items = items_for(json_path, audio)
    together = backend.embed(items)
    for item, got in zip(items, together):
        (alone,) = backend.embed([item])
        np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5)


def test_a_burst_moves_its_word_at_layer_0_and_only_its_chunks(backend, tmp_path):
    burst = (1.55, 1.75)  # inside "brown"; chunk 1 covers steps 12..23 = 1.2 s .. 2.4 s
    j1, a1 = make_corpus(tmp_path / "quiet", AST, {"u": {"duration_s": 3.6, "seed": 7}})
    j2, a2 = make_corpus(tmp_path / "loud", AST, {"u": {"duration_s": 3.6, "seed": 7, "burst": burst}})
    (quiet,) = backend.embed(items_for(j1, a1))
    (loud,) = backend.embed(items_for(j2, a2))
    names = [w[0] for w in WORDS]
    diff = np.abs(loud - quiet).max(axis=2)  # (L, W)
    brown = names.index("brown")
    assert diff[:, brown].min() > 1e-3
    # layer 0 (patch embeddings) sees only its own 175 ms: no other word moves
    assert np.all(np.delete(diff[0], brown) < 1e-6)
    # attention mixes within a chunk, never across chunks: words wholly in chunks 0 and 2 never move
    for word in ("the", "quick", "jumps"):
        assert diff[:, names.index(word)].max() < 1e-6, word


def test_script_end_to_end(tiny_ast, tmp_path):
    json_path, audio = make_corpus(tmp_path / "c", AST, {"a": {"duration_s": 3.6, "seed": 8},
                                                         "b": {"duration_s": 2.3, "seed": 9,
                                                               "words": [("hi", 0.2, 1.0), ("there", 1.0, 2.2)]}})
    out_dir = tmp_path / "emb"
    res = run_script(SCRIPT, "--model", tiny_ast, "--path", json_path, "--device", "cpu", "--precision", "float32",
                     "--out_dir", out_dir, "--dtype", "float32", "--no_progress")
    assert res.returncode == 0, res.stderr
    manifest, arrays = read_embeddings(out_dir / "tiny-ast")
    assert manifest["family"] == "hf-audio" and manifest["num_layers"] == 3 and manifest["dim"] == 32
    assert manifest["geometry"] == AST.to_dict()
    assert manifest["layer_names"] == ["embeddings", "layer_1", "layer_2"]
    for item in items_for(json_path, audio):
        expected = word_means(reference_steps(tiny_ast, audio[item.utterance.utt_id]), spans(item.utterance))
        np.testing.assert_allclose(arrays[item.utterance.utt_id], expected, rtol=1e-4, atol=1e-5)



def test_alignment_for_another_geometry_names_the_file_to_make(backend, tmp_path):
    import argparse
    from wordreps.common.errors import UserError
    from wordreps.embeddings.extract import add_extraction_args, run_extraction

    wrong, _ = make_corpus(tmp_path / "w", WAV2VEC2_CONV, {"a": {"duration_s": 1.0}})
    out_dir = tmp_path / "emb"
    args = add_extraction_args(argparse.ArgumentParser(), audio=True).parse_args(
        ["--path", str(wrong), "--device", "cpu", "--out_dir", str(out_dir), "--no_progress"])
    with pytest.raises(UserError) as info:
        run_extraction(backend, args)
    assert str(wrong) in str(info.value) and "alignments/audio_alignments_100_16.json" in str(info.value)
    assert not list(out_dir.rglob("*.npy"))
