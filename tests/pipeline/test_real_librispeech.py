"""The whole chain on real LibriSpeech: dev-clean 1272-128104-0000 with its real MFA word alignment.

tests/data/real-librispeech (see its SOURCES.md) holds the utterance in the LibriSpeech layout, plus one real
utterance without a TextGrid. One subprocess (tests/helpers/real_chain.py) runs the reproduction runner's plan on
it: the 24 kHz copy, four alignment files, every embedding family, keys, matrices and CKA. The checks below
recompute what matters without the code under test: the TextGrid is parsed with a regular expression, frames are
found by testing every frame centre, pooled vectors are averaged with numpy from the models' own outputs.

Real speech brings what the synthetic demo lacks: words that run into each other (no pause between most of
them), a 30 ms silence inside the utterance, and words shorter than a 100 ms or 160 ms step.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.real_chain import DATA, FLAC, TEXTGRID, frames_by_brute_force, textgrid_words
from tests.helpers.references import word_means
from tests.helpers.scripts import run_script, script_env
from tests.helpers.speech import hf_reference, s3prl_reference

UTT = "1272-128104-0000"

# wav2vec2 frames (16 kHz, hop 320, receptive field 400: frame t's centre is 12.5 ms + 20 ms t), worked out by
# hand from the TextGrid: first = the smallest t with centre >= start, last = the largest with centre < end.
WAV2VEC2_BY_HAND = [("mister", 25, 39), ("quilter", 40, 62), ("is", 63, 69), ("the", 70, 75), ("apostle", 76, 106),
                    ("of", 107, 112), ("the", 113, 116), ("middle", 117, 130), ("classes", 131, 162),
                    ("and", 165, 171), ("we", 172, 179), ("are", 180, 182), ("glad", 183, 202), ("to", 203, 209),
                    ("welcome", 210, 229), ("his", 230, 241), ("gospel", 242, 274)]
# The same rule for AST's 100 ms steps (centre 87.5 ms + 100 ms t): "are" [3.60, 3.67) holds no centre
# (3.5875 and 3.6875 lie outside), so it gets the step nearest its midpoint 3.635 s: step 35 (47.5 ms away).
AST_BY_HAND = {"mister": (5, 7), "of": (21, 21), "the": (22, 22), "and": (33, 33), "we": (34, 35), "are": (35, 35)}

GEOMETRIES = {  # alignment file -> (sample rate, hop, receptive field)
    "audio_alignments_20_16.json": (16000, 320, 400),
    "audio_alignments_100_16.json": (16000, 1600, 2800),
    "audio_alignments_160_16.json": (16000, 2560, 2800),
    "audio_alignments_13.33_24.json": (24000, 320, 320),
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real-chain")
    run = run_script("tests/helpers/real_chain.py", out, env=script_env(easyaudio=True), timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return out


def test_textgrid_is_the_real_mfa_alignment():
    words = textgrid_words(TEXTGRID)
    transcript = (FLAC.parent / "1272-128104.trans.txt").read_text().split()
    assert [w for w, _, _ in words] == [t.lower() for t in transcript[1:]] and len(words) == 17
    # the original CorentinJ line: words and end times (silences are the empty words)
    original = (DATA / "1272-128104.alignment.txt").read_text().split()
    ends = [Fraction(x) for x in original[2].strip('"').split(",")]
    tokens = original[1].strip('"').split(",")
    assert [(t.lower(), e) for t, e in zip(tokens, ends) if t] == [(w, end) for w, _, end in words]
    assert sf.info(FLAC).frames == 93680 and ends[-1] == Fraction(93680, 16000)


def test_every_word_lands_on_the_frames_the_rule_gives(chain):
    words = textgrid_words(TEXTGRID)
    for name, (rate, hop, field) in GEOMETRIES.items():
        alignment = json.loads((chain / "alignments" / name).read_text())
        # the silences (before, inside and after the speech) are the TextGrid's 3 empty intervals
        assert alignment["skipped_markers"] == {"": 3}
        # the real utterance without a TextGrid is skipped and listed beside the JSON
        skipped = (chain / "alignments" / name.replace(".json", ".skipped.txt")).read_text().split()
        assert skipped == ["1988-24833-0000"], name
        (utt,) = alignment["utterances"]
        assert utt["id"] == UTT and utt["num_samples"] == 93680 * rate // 16000
        got = [(w["word"], Fraction(w["start_s"]).limit_denominator(1000), Fraction(w["end_s"]).limit_denominator(1000))
               for w in utt["words"]]
        assert got == words, name
        spans = [(w["first_frame"], w["last_frame"]) for w in utt["words"]]
        assert spans == frames_by_brute_force(words, rate, hop, field, utt["num_samples"]), name
        if name == "audio_alignments_20_16.json":
            assert [(w["word"], w["first_frame"], w["last_frame"]) for w in utt["words"]] == WAV2VEC2_BY_HAND
        if name == "audio_alignments_100_16.json":
            by_word = {w["word"]: (w["first_frame"], w["last_frame"]) for w in utt["words"][:13]}
            assert {k: by_word[k] for k in AST_BY_HAND} == AST_BY_HAND


def _stored(chain: Path, slug: str) -> np.ndarray:
    return np.load(chain / "embeddings" / slug / "utts" / f"{UTT}.npy").astype(np.float64)


def test_every_family_wrote_one_vector_per_word_and_layer(chain):
    layers = {"glove": 1, "all-MiniLM-L6-v2": 7, "tiny-s3prl": 3, "tiny-wav2vec2": 3, "tiny-ast": 3,
              "encodecmae_base": 4, "BEATs_iter3": 4}
    for slug, n_layers in layers.items():
        arr = _stored(chain, slug)
        assert arr.shape[:2] == (n_layers, 17) and np.isfinite(arr).all(), slug


def test_speech_vectors_are_means_of_the_models_own_frames(chain):
    audio, rate = sf.read(FLAC, dtype="float32")
    spans = [(f, l) for _, f, l in WAV2VEC2_BY_HAND]
    references = {"tiny-wav2vec2": hf_reference(chain / "models" / "tiny-wav2vec2-layer", audio),
                  "tiny-s3prl": s3prl_reference(chain / "models" / "tiny-s3prl-wav2vec2-large.pt", audio)}
    for slug, hidden in references.items():
        assert hidden[0].shape[0] == 292  # (93680 - 400) // 320 + 1 frames
        expected = np.stack([word_means(h, spans) for h in hidden])
        np.testing.assert_allclose(_stored(chain, slug), expected, rtol=2e-3, atol=2e-3)  # stored as float16


def test_standin_audio_frames_follow_the_real_word_times(chain):
    # the stand-in's layer 0 carries the frame (EnCodecMAE) or step (BEATs) index in its first feature, so a
    # word's pooled value is the mean of its frame indices: (first + last) / 2 of the brute-force span
    words = textgrid_words(TEXTGRID)
    for slug, (rate, hop, field) in {"encodecmae_base": (24000, 320, 320), "BEATs_iter3": (16000, 2560, 2800)}.items():
        spans = frames_by_brute_force(words, rate, hop, field, 93680 * rate // 16000)
        np.testing.assert_allclose(_stored(chain, slug)[0, :, 0], [(f + l) / 2 for f, l in spans], atol=0.07)


def test_glove_rows_are_the_vectors_of_the_words(chain):
    from wordreps.embeddings.backends.vector_pairs import packaged_glove_6b_50d

    stored = _stored(chain, "glove")[0]
    the = [i for i, (w, _, _) in enumerate(WAV2VEC2_BY_HAND) if w == "the"]
    assert the == [3, 6]
    if packaged_glove_6b_50d(required=False) is not None:
        for i in the:  # Stanford's glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527 ..."
            np.testing.assert_allclose(stored[i, :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527], rtol=1e-3)
    else:
        pair = chain / "glove-pair"
        listed = (pair / "vectors.txt").read_text().split()
        matrix = np.load(pair / "vectors.npy")
        np.testing.assert_allclose(stored[3], matrix[listed.index("the")], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(stored[3], stored[6])  # a static vector: both occurrences alike


def test_matrices_stack_the_stored_vectors_and_cka_equals_the_gram_formula(chain):
    keys = json.loads((chain / "words_in_order.json").read_text())
    assert [(u, p) for u, p, _ in keys["rows"]] == [(UTT, i) for i in range(17)]
    for slug in ("glove", "tiny-wav2vec2", "BEATs_iter3"):
        stored = _stored(chain, slug)
        for layer in range(stored.shape[0]):
            matrix = np.load(chain / "matrices" / slug / f"layer_{layer}.npy")
            np.testing.assert_array_equal(matrix, stored[layer].astype(np.float32))
    res = json.loads((chain / "results" / "cka" / "glove__vs__tiny-wav2vec2" / "linear.json").read_text())
    x = np.load(chain / "matrices" / "glove" / "layer_0.npy").astype(np.float64)
    for j in range(3):
        y = np.load(chain / "matrices" / "tiny-wav2vec2" / f"layer_{j}.npy").astype(np.float64)
        h = np.eye(17) - 1.0 / 17  # Kornblith et al. (2019): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
        k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
        assert res["values"][0][j] == pytest.approx(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)), abs=1e-6)
