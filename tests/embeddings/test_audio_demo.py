"""General-audio models on the bundled demo corpus: one vector per word occurrence, every layer, and each
vector equal to the mean of the model's own time steps recomputed here (easyaudio: the stand-in; AST: tiny)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.helpers.audio import reference_steps
from tests.helpers.files import read_embeddings
from tests.helpers.references import spans, word_means
from tests.helpers.scripts import REPO, script_main, standin_easyaudio
from wordreps.alignments.format import load_alignment
from wordreps.common.audio import load_audio

DEMO = REPO / "datasets" / "demo"
pytestmark = pytest.mark.skipif(not (DEMO / "librispeech-clean-16k").is_dir(), reason="demo corpus not present")


def _align(model: str, audio_root, out) -> object:
    main = script_main("alignments/alignments_and_trans.py")
    assert main(["--model", model, "--path", str(DEMO / "alignments"), "--audio_root",
                                      str(audio_root), "--output", str(out), "--quiet"]) == 0
    return load_alignment(out)


def _extract(monkeypatch, model: str, path, out_dir) -> tuple[dict, dict]:
    main = script_main("embeddings/audio_embeddings.py")
    monkeypatch.setattr(sys, "argv", ["audio_embeddings.py", "--model", str(model), "--path", str(path),
                                      "--device", "cpu", "--precision", "float32", "--out_dir", str(out_dir), "--name", "m",
                                      "--dtype", "float32", "--no_progress"])
    assert main() == 0
    return read_embeddings(out_dir / "m")


def _check(alignment, manifest, arrays, frames_for) -> None:
    assert sorted(arrays) == sorted(u.utt_id for u in alignment.utterances)
    assert sum(a.shape[1] for a in arrays.values()) == alignment.num_words == 192
    for utt in alignment.utterances:
        got = arrays[utt.utt_id]
        assert got.shape == (manifest["num_layers"], len(utt.words), manifest["dim"])
        assert manifest["utterances"][utt.utt_id]["words"] == [w.word for w in utt.words]
        np.testing.assert_allclose(got, word_means(frames_for(utt), spans(utt)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["encodecmae_base", "BEATs_iter3"])
def test_easyaudio_models_on_the_demo_corpus(name, tmp_path, monkeypatch):
    if name.startswith("encodecmae"):
        from wordreps.corpora.resample import resample_corpus
        audio_root = tmp_path / "demo-24k"
        resample_corpus(DEMO / "librispeech-clean-16k", audio_root, 24000, progress=False)
        rate = 24000
    else:
        audio_root, rate = DEMO / "librispeech-clean-16k", 16000
    alignment = _align(name, audio_root, tmp_path / "align.json")
    with standin_easyaudio() as hub:
        manifest, arrays = _extract(monkeypatch, name, alignment.path, tmp_path / "emb")
        model = hub.get_model(name, device="cpu")

        def frames_for(utt):
            frames = np.stack([np.asarray(a) for a in
                               model.extract_activations_from_array(load_audio(utt.audio_path, rate))])
            return frames.reshape(frames.shape[0], -1, 8, frames.shape[2]).mean(axis=2) if name[0] == "B" else frames

        _check(alignment, manifest, arrays, frames_for)


def test_tiny_ast_on_the_demo_corpus(tmp_path, monkeypatch):
    from wordreps.embeddings.tiny.audio import build_tiny_ast

    model_dir = build_tiny_ast(tmp_path / "tiny-ast")
    alignment = _align("ast", DEMO / "librispeech-clean-16k", tmp_path / "align.json")
    manifest, arrays = _extract(monkeypatch, model_dir, alignment.path, tmp_path / "emb")
    _check(alignment, manifest, arrays, lambda utt: reference_steps(model_dir, load_audio(utt.audio_path, 16000)))
