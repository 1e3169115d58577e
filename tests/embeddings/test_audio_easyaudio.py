"""easyaudio backends (EnCodecMAE, BEATs) against the stand-in easyaudio in tests/fake_easyaudio.

The stand-in has the real easyaudio's interface (and its quirks: get_model drops the device, the pinned
encodecmae drops no chunk and leaves torch.compile on) and the real models' rates and shapes, and activations
that are deterministic functions of the waveform, so every pooled number can be recomputed independently below.
tests/embeddings/test_audio_easyaudio_real.py runs the adapter against the real easyaudio code where it is installed.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from tests.helpers.audio import SCRIPT, WORDS, items_for, make_corpus, make_utterance, synth_audio
from tests.helpers.files import read_embeddings
from tests.helpers.references import spans, word_means
from tests.helpers.scripts import error_lines, run_script, script_env, standin_easyaudio
from wordreps.embeddings.families import BEATS, ENCODECMAE, lookup_model_geometry
from wordreps.common.errors import UserError
from wordreps.embeddings.base import BatchItem


@pytest.fixture()
def hub():
    with standin_easyaudio() as h:
        yield h


def _backend(name: str):
    from wordreps.embeddings.families import load_backend
    return load_backend("audio", name, "cpu")


def test_geometry_and_layers_follow_the_registry(hub):
    from wordreps.embeddings.families import load_backend

    enc = _backend("encodecmae_base")
    beats = _backend("beats_iter3")  # any case: easyaudio's own spelling is used
    assert enc.model_name == "encodecmae_base" and beats.model_name == "BEATs_iter3"
    assert enc.geometry == ENCODECMAE == lookup_model_geometry("encodecmae_large")
    assert (enc.geometry.sample_rate_hz, enc.geometry.hop_samples) == (24000, 320)
    assert enc.geometry.frame_rate_hz == 75.0
    assert beats.geometry == BEATS and (BEATS.sample_rate_hz, BEATS.hop_samples, BEATS.receptive_field_samples) \
        == (16000, 2560, 2800)
    assert enc.sample_rate_hz == 24000 and beats.sample_rate_hz == 16000
    # stand-in: 4 encoder blocks (no input entry); BEATs: input + 3 blocks; width 16
    assert (enc.num_layers, enc.dim, enc.layer_names) == (4, 16, ["layer_1", "layer_2", "layer_3", "layer_4"])
    assert (beats.num_layers, beats.dim, beats.layer_names) == (4, 16, ["input", "layer_1", "layer_2", "layer_3"])
    # easyaudio's get_model drops the device (every model to cuda:0); the adapter builds through the wrapper
    assert hub.get_model("encodecmae_base", device="cpu").device == "cuda:0"
    assert enc.model.device == "cpu" and beats.model.device == "cpu"
    # the pinned encodecmae leaves torch.compile on; the adapter turns it off and says so
    assert hub.get_model("encodecmae_base").model.visible_encoder.compile is True
    assert enc.model.model.visible_encoder.compile is False
    assert enc.describe()["torch_compile"] == "turned off by the adapter"
    kept = load_backend("audio", "encodecmae_base", "cpu", torch_compile=True)
    assert kept.model.model.visible_encoder.compile is True and kept.describe()["torch_compile"] == "on"
    with pytest.raises(UserError, match="--torch_compile is for EnCodecMAE"):
        load_backend("audio", "BEATs_iter3", "cpu", torch_compile=True)
    assert enc.family == "easyaudio" and enc.needs_audio


def test_refusals_come_before_the_model_is_loaded(hub, monkeypatch):
    """--torch_compile with BEATs, and an unknown name, are refused before easyaudio downloads or builds anything."""
    import wordreps.embeddings.backends.easyaudio as adapter

    # pytest.fail raises a BaseException, which the adapter's "could not load" handler does not turn into an error
    monkeypatch.setattr(adapter, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(UserError, match="--torch_compile is for EnCodecMAE models .*not BEATs"):
        adapter.load_easyaudio_backend("BEATs_iter3", "cpu", torch_compile=True)
    with pytest.raises(UserError, match="unknown easyaudio model 'byola_2048'; known: encodecmae_small"):
        adapter.load_easyaudio_backend("byola_2048", "cpu")


def test_encodecmae_word_vectors_are_means_of_the_models_frames(hub, tmp_path):
    json_path, audio = make_corpus(tmp_path, ENCODECMAE, {"u1": {"duration_s": 3.7, "seed": 1}})
    (item,) = items_for(json_path, audio)
    (out,) = _backend("encodecmae_base").embed([item])
    # independent: the stand-in model's own frames, averaged here over each word's frames
    acts = hub.get_model("encodecmae_base", device="cpu").extract_activations_from_array(audio["u1"])
    frames = np.stack(acts)
    assert frames.shape == (4, int(np.ceil(audio["u1"].size / 320)), 16)  # 75 frames/s of 24 kHz audio
    expected = word_means(frames, spans(item.utterance))
    assert out.shape == (4, len(WORDS), 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # frame placement, exactly: layer 0's first feature is the frame index, so a word gets (first+last)/2
    for pos, w in enumerate(item.utterance.words):
        assert out[0, pos, 0] == pytest.approx((w.first_frame + w.last_frame) / 2, abs=1e-4)
        # and the frames are the ones whose centres lie in the word (13.33 ms hop at 24 kHz)
        assert (w.first_frame * 320 + 160) / 24000 >= w.start_s
        assert (w.last_frame * 320 + 160) / 24000 < w.end_s


def test_beats_tokens_fold_back_to_160ms_steps(hub, tmp_path):
    from wordreps.embeddings.backends.easyaudio import fold_time_major

    json_path, audio = make_corpus(tmp_path, BEATS, {"u1": {"duration_s": 3.6, "seed": 2}})
    (item,) = items_for(json_path, audio)
    backend = _backend("BEATs_iter3")
    (out,) = backend.embed([item])
    tokens = [np.asarray(t) for t in hub.get_model("BEATs_iter3").extract_activations_from_array(audio["u1"])]
    n = audio["u1"].size
    steps = ((n - 400) // 160 + 1) // 16
    assert tokens[0].shape == (8 * steps, 16) and steps == BEATS.num_frames(n)
    # independent fold: step s is the mean of tokens 8s .. 8s+7 (time-major)
    folded = np.stack([np.stack([t[8 * s:8 * s + 8].astype(np.float64).mean(axis=0) for s in range(steps)])
                       for t in tokens])
    # the stand-in's layer 0 token (s, f) is [s, f, f^2, energy*(f+1), 1]: a step must average exactly the
    # 8 patches of that step, f = 0..7 -> mean f 3.5, mean f^2 17.5
    np.testing.assert_allclose(folded[0, :, 0], np.arange(steps))
    np.testing.assert_allclose(folded[0, :, 1], 3.5)
    np.testing.assert_allclose(folded[0, :, 2], 17.5)
    np.testing.assert_allclose(out, word_means(folded, spans(item.utterance)), rtol=1e-5, atol=1e-5)
    # the backend's own fold agrees, and a frequency-major reading would not
    t0 = torch.from_numpy(tokens[0])
    np.testing.assert_allclose(fold_time_major(t0, 8).numpy(), folded[0], rtol=1e-6, atol=1e-6)
    wrong = t0.reshape(8, steps, 16).mean(0).numpy()
    assert not np.allclose(wrong, folded[0])
    with pytest.raises(ValueError):
        fold_time_major(t0[:-3], 8)


@pytest.mark.parametrize("name,geometry", [("encodecmae_base", ENCODECMAE), ("BEATs_iter3", BEATS)])
def test_a_burst_inside_one_word_moves_that_word_only(hub, tmp_path, name, geometry):
    burst = (1.55, 1.75)  # inside "brown" [1.20, 2.10), far from its neighbours' frames
    j1, a1 = make_corpus(tmp_path / "quiet", geometry, {"u": {"duration_s": 3.6, "seed": 3}})
    j2, a2 = make_corpus(tmp_path / "burst", geometry, {"u": {"duration_s": 3.6, "seed": 3, "burst": burst}})
    backend = _backend(name)
    (quiet,) = backend.embed(items_for(j1, a1))
    (loud,) = backend.embed(items_for(j2, a2))
    brown = [w[0] for w in WORDS].index("brown")
    for pos in range(len(WORDS)):
        if pos == brown:
            assert np.all(np.abs(loud[:, pos] - quiet[:, pos]).max(axis=1) > 1e-3), "every layer moves"
        else:
            np.testing.assert_array_equal(loud[:, pos], quiet[:, pos])


def test_encodecmae_pinned_commit_gives_ceil_frames_and_pools_within_the_geometry(hub, tmp_path):
    # the commit easyaudio pins runs 4 s chunks and drops nothing: ceil(N / 320) frames, one more than the
    # geometry's (N - 320) // 320 + 1 when N is not a multiple of 320; that frame is never pooled
    n = 4 * 24000 + 1000
    x = synth_audio(n / 24000, 24000, seed=4)
    utt = make_utterance("u", "unused.flac", n, ENCODECMAE, [("early", 0.5, 1.0), ("late", 3.95, n / 24000)])
    frames = np.stack(hub.get_model("encodecmae_base").extract_activations_from_array(x))
    assert frames.shape[1] == 304 == ENCODECMAE.num_frames(n) + 1 and utt.words[1].last_frame == 302
    (out,) = _backend("encodecmae_base").embed([BatchItem(utt, x)])
    np.testing.assert_allclose(out, word_means(frames, spans(utt)), rtol=1e-5, atol=1e-5)


def test_encodecmae_frames_are_clipped_to_those_the_model_produced(hub, tmp_path, monkeypatch):
    # encodecmae v2 drops a last chunk of <= 2048 samples: 4 s + 1000 samples gives 300 frames, while the
    # alignment's geometry has 303
    monkeypatch.setattr(hub.EnCodecMAEWrapped, "DROP_SHORT_LAST_CHUNK", True)
    n = 4 * 24000 + 1000
    x = synth_audio(n / 24000, 24000, seed=4)
    assert x.size == n and ENCODECMAE.num_frames(n) == 303
    words = [("early", 0.5, 1.0), ("late", 3.95, n / 24000)]
    utt = make_utterance("u", "unused.flac", n, ENCODECMAE, words)
    assert utt.words[1].last_frame == 302 and utt.words[1].first_frame < 300
    backend = _backend("encodecmae_base")
    (out,) = backend.embed([BatchItem(utt, x)])
    frames = np.stack(hub.get_model("encodecmae_base").extract_activations_from_array(x))
    assert frames.shape[1] == 300
    np.testing.assert_allclose(out, word_means(frames, spans(utt)), rtol=1e-5, atol=1e-5)
    assert out[0, 1, 0] == pytest.approx((utt.words[1].first_frame + 299) / 2)
    # a word that lies wholly in the dropped tail has no frame: an error naming it, never a NaN
    tail = make_utterance("u2", "unused.flac", n, ENCODECMAE, [("early", 0.5, 1.0), ("gone", 4.005, n / 24000)])
    assert tail.words[1].first_frame >= 300
    with pytest.raises(UserError, match=r"u2, word #1 \('gone'\).*only 300 frames"):
        backend.embed([BatchItem(tail, x)])


def test_beats_from_a_local_checkpoint(hub, tmp_path):
    # offline machines: easyaudio's BEATs wrapper always asks the hub first, so a local checkpoint is built
    # with easyaudio's own BEATs classes (the stand-in's have one parameter, `scale`)
    ckpt = tmp_path / "BEATs_iter3.pt"
    torch.save({"cfg": {"encoder_layers": 2}, "model": {"scale": torch.tensor(2.0)}}, ckpt)
    json_path, audio = make_corpus(tmp_path, BEATS, {"u1": {"duration_s": 3.6, "seed": 2}})
    (item,) = items_for(json_path, audio)
    from wordreps.embeddings.families import load_backend

    def load_audio_backend(name, device, **opts):
        return load_backend("audio", name, device, **opts)

    local = load_audio_backend("BEATs_iter3", "cpu", beats_checkpoint=str(ckpt))
    (out,) = local.embed([item])
    (default,) = _backend("BEATs_iter3").embed([item])
    assert local.num_layers == 3 and local.model.device == "cpu" and local.describe()["beats_checkpoint"] == str(ckpt)
    assert local.describe()["beats_checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    np.testing.assert_allclose(out, 2.0 * default[:3], rtol=1e-5, atol=1e-5)
    with pytest.raises(UserError, match=r"BEATs checkpoint .*nope.pt does not exist"):
        load_audio_backend("BEATs_iter3", "cpu", beats_checkpoint=str(tmp_path / "nope.pt"))
    torch.save({"weights": {}}, tmp_path / "odd.pt")
    with pytest.raises(UserError, match=r"odd.pt is not a BEATs checkpoint \(a dict with 'cfg' and 'model'\)"):
        load_audio_backend("BEATs_iter3", "cpu", beats_checkpoint=str(tmp_path / "odd.pt"))
    torch.save({"cfg": {}, "model": {"bias": torch.zeros(3)}}, tmp_path / "misfit.pt")
    with pytest.raises(UserError, match=r"misfit.pt does not fit its own cfg"):
        load_audio_backend("BEATs_iter3", "cpu", beats_checkpoint=str(tmp_path / "misfit.pt"))
    for other in ("encodecmae_base", "MIT/ast-finetuned-audioset-10-10-0.4593"):
        with pytest.raises(UserError, match=r"--beats_checkpoint is for"):
            load_audio_backend(other, "cpu", beats_checkpoint=str(ckpt))


def test_unknown_easyaudio_models_are_refused(hub):
    from wordreps.embeddings.families import load_backend
    for bad in ("encodecmae_huge", "BEATs_iter9", "byola_512"):
        with pytest.raises(UserError, match=r"unknown easyaudio model .*known: encodecmae_small"):
            load_backend("audio", bad, "cpu")
    with pytest.raises(UserError, match=r"unknown audio model 'wav2vec3'"):
        load_backend("audio", "wav2vec3", "cpu")


def test_script_end_to_end_with_the_standin(tmp_path):
    # the thesis commands, on real FLAC files, through the extraction core
    for name, geometry, layers in (("encodecmae_base", ENCODECMAE, 4), ("BEATs_iter3", BEATS, 4)):
        work = tmp_path / name
        json_path, audio = make_corpus(work, geometry, {"a": {"duration_s": 3.6, "seed": 5},
                                                         "b": {"duration_s": 4.2, "seed": 6}})
        out_dir = work / "emb"
        res = run_script(SCRIPT, "--model", name, "--path", json_path, "--device", "cpu", "--out_dir", out_dir,
                                 "--dtype", "float32", "--no_progress", env=script_env(easyaudio=True))
        assert res.returncode == 0, res.stderr
        manifest, arrays = read_embeddings(out_dir / name)
        assert manifest["model"] == name and manifest["family"] == "easyaudio"
        assert manifest["num_layers"] == layers and manifest["dim"] == 16
        assert manifest["geometry"] == geometry.to_dict()
        assert manifest["versions"].get("easyaudio") == "0.0-standin"
        assert sorted(arrays) == ["a", "b"]
        with standin_easyaudio() as hub:
            model = hub.get_model(name)
            for item in items_for(json_path, audio):
                acts = [np.asarray(a) for a in model.extract_activations_from_array(audio[item.utterance.utt_id])]
                frames = np.stack(acts)
                if name.startswith("BEATs"):
                    frames = frames.reshape(layers, -1, 8, 16).mean(axis=2)
                got = arrays[item.utterance.utt_id]
                assert got.shape == (layers, len(WORDS), 16) and got.dtype == np.float32
                expected = word_means(frames, spans(item.utterance))
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_alignment_for_another_geometry_names_the_file_to_make(tmp_path):
    from wordreps.embeddings.families import WAV2VEC2_CONV
    json_path, _ = make_corpus(tmp_path, WAV2VEC2_CONV, {"a": {"duration_s": 2.0}})
    out_dir = tmp_path / "emb"
    res = run_script(SCRIPT, "--model", "BEATs_iter3", "--path", json_path, "--device", "cpu", "--out_dir", out_dir,
                             "--no_progress", env=script_env(easyaudio=True))
    assert res.returncode == 2
    (line,) = error_lines(res.stderr)
    assert "Traceback" not in res.stderr
    assert str(json_path) in line and "alignments/audio_alignments_160_16.json" in line
    assert not list(out_dir.rglob("*.npy"))
