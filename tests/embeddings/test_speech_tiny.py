"""The tiny speech models: deterministic files, real geometry, loaded through the real loading paths."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.scripts import run_script
from tests.helpers.speech import hf_model, reference, s3prl_model, tiny_model
from wordreps.embeddings.backends.speech import conv_geometry, conv_output_lengths
from wordreps.embeddings.base import BatchItem, Utterance, Word
from wordreps.embeddings.families import load_backend, s3prl_hub_names
from wordreps.embeddings.tiny.speech import build_hf, build_s3prl


def _digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(path.iterdir())
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_builders_are_deterministic(tmp_path):
    assert _digest(build_hf(tmp_path / "a", "tiny-wav2vec2-group")) == \
        _digest(build_hf(tmp_path / "b", "tiny-wav2vec2-group"))
    assert _digest(build_s3prl(tmp_path / "a")) == _digest(build_s3prl(tmp_path / "b"))


def test_geometry_from_the_conv_stack():
    g = conv_geometry((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), 16000)
    assert (g.hop_samples, g.receptive_field_samples) == (320, 400)
    # frames a valid conv stack produces agree with the geometry's count, for lengths around the edges
    for n in (400, 719, 720, 16000, 93680):
        assert conv_output_lengths([n], (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == [g.num_frames(n)]


def test_s3prl_names_found_without_importing_the_hub():
    names = s3prl_hub_names()
    for expected in ("wav2vec2", "wav2vec2_large_960", "hubert", "wavlm_large", "wav2vec2_custom"):
        assert expected in names
    assert "no_such_model" not in names


def test_cli_builds_the_named_models(tmp_path):
    """The CLI builds exactly the models --only names, byte for byte what the library's builders make (the
    builds tests/helpers/speech.tiny_model makes once per test process, shared with the other tests)."""
    proc = run_script("tools/make_tiny_speech.py", "--out", tmp_path / "cli", "--only", "tiny-hubert",
                      "tiny-s3prl-wav2vec2.pt")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["tiny-hubert", "tiny-s3prl-wav2vec2.pt"]
    hubert = _digest(tmp_path / "cli" / "tiny-hubert")
    assert {"config.json", "preprocessor_config.json"} <= set(hubert)
    assert hubert == _digest(tiny_model("tiny-hubert"))
    assert _digest(tmp_path / "cli" / "tiny-s3prl-wav2vec2.pt") == _digest(tiny_model("tiny-s3prl-wav2vec2.pt"))
    bad = run_script("tools/make_tiny_speech.py", "--out", tmp_path, "--only", "nope")
    assert bad.returncode == 2 and bad.stderr.count("error:") == 1 and "invalid choice: 'nope'" in bad.stderr
    assert not (tmp_path / "tiny-hubert").exists()  # refused before any model is built


@pytest.mark.parametrize("name", ["tiny-s3prl-wav2vec2.pt", "tiny-s3prl-wav2vec2-large.pt", "tiny-wav2vec2-group",
                                  "tiny-wav2vec2-layer"])
def test_layer_0_is_the_input_to_the_first_block(name):
    """Both libraries' hidden_states[0]: projected CNN features + positional conv (+ LayerNorm if post-norm), and
    the backend's layer 0 is that hidden_states[0] (layer numbering: 0 = the input to the first block)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(16000) * 0.1
    path = str(tiny_model(name))
    with torch.no_grad():
        if name.endswith(".pt"):
            up = s3prl_model(path)
            m = up.model
            states = up([x])["hidden_states"]
            wav = torch.nn.functional.layer_norm(x, x.shape) if up.wav_normalize else x
            proj = m.post_extract_proj(m.layer_norm(m.feature_extractor(wav[None]).transpose(1, 2)))
            pos = proj + m.encoder.pos_conv(proj.transpose(1, 2)).transpose(1, 2)
            post_norm = not m.encoder.layer_norm_first
        else:
            m = hf_model(path)
            states = m(x[None], output_hidden_states=True).hidden_states
            proj, _ = m.feature_projection(m.feature_extractor(x[None]).transpose(1, 2))
            pos = proj + m.encoder.pos_conv_embed(proj)
            post_norm = not m.config.do_stable_layer_norm
        want = m.encoder.layer_norm(pos) if post_norm else pos
        assert torch.allclose(states[0], want, atol=1e-5)
        assert not torch.allclose(states[0], proj, atol=1e-3)  # the positional conv is part of layer 0
    # the same through the backend: one word per frame, so its word vectors are the frames themselves; layer 0
    # is the library's hidden_states[0] (transformers: after its own feature extractor), the last layer its last
    audio = x.numpy()
    frames = (len(audio) - 400) // 320 + 1
    words = [Word(f"f{t}", 0.02 * t, 0.02 * t + 0.02, t, t) for t in range(frames)]
    backend = load_backend("speech", path, "cpu", precision="float32")
    got = backend.embed([BatchItem(Utterance("u", "-", "", len(audio), 16000, words), audio)])[0]
    library = reference(name, audio)
    assert got.shape == (3, frames, library[0].shape[-1]) and len(library) == 3
    for layer in (0, 2):
        np.testing.assert_allclose(got[layer], library[layer], rtol=1e-4, atol=1e-4 * np.abs(library[layer]).max(),
                                   err_msg=f"layer {layer}")
    if name.endswith(".pt"):  # s3prl takes the waveform as it is: layer 0 is the block input built above
        np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-4, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize("name", ["tiny-s3prl-wav2vec2-large.pt", "tiny-wav2vec2-layer"])
def test_a_word_past_an_items_own_frames_is_refused_in_a_padded_batch(name):
    """Each item's frame count is its own, not the padded batch's: a short item's word at a frame only the padding
    has (an alignment made for other audio) is an error naming it, even beside a longer item."""
    from wordreps.common.errors import UserError

    backend = load_backend("speech", str(tiny_model(name)), "cpu")
    assert not backend.padding_sensitive  # mixed lengths share a batch
    rng = np.random.default_rng(0)
    short, long_ = ((0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 32000))
    # 16000 samples give (16000 - 400) // 320 + 1 = 49 frames, 32000 give 99
    late = Utterance("short", "-", "", 16000, 16000, [Word("late", 1.2, 1.3, 60, 64)])
    fine = Utterance("long", "-", "", 32000, 16000, [Word("w", 0.1, 0.2, 5, 9)])
    with pytest.raises(UserError, match=r"utterance short, word #0 \('late'\) starts at frame 60 .* only 49 frames"):
        backend.embed([BatchItem(late, short), BatchItem(fine, long_)])


def test_a_local_folder_with_an_s3prl_upstreams_name_is_the_hugging_face_model(tmp_path, monkeypatch):
    """``--model wav2vec2`` where ./wav2vec2 is a save_pretrained folder: the folder, not s3prl's hub upstream."""
    import torch

    source = tiny_model("tiny-wav2vec2-layer")
    shutil.copytree(source, tmp_path / "wav2vec2")
    monkeypatch.chdir(tmp_path)
    assert "wav2vec2" in s3prl_hub_names()  # the bare name is an s3prl upstream's as well
    backend = load_backend("speech", "wav2vec2", "cpu", precision="float32")
    config = json.loads((source / "config.json").read_text())
    assert (backend.family, backend.model_name) == ("hf-speech", "wav2vec2")
    assert (backend.num_layers, backend.dim) == (config["num_hidden_layers"] + 1, config["hidden_size"])
    # the folder's own weights: its hidden states are those transformers computes from the original folder
    audio = (0.1 * np.random.default_rng(2).standard_normal(8000)).astype(np.float32)
    with torch.inference_mode():
        states, frames = backend._hidden([torch.from_numpy(audio)])
    want = reference("tiny-wav2vec2-layer", audio)
    assert frames == [len(want[0])]
    for got, expected in zip(states, want):
        np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_loading_an_s3prl_checkpoint_prints_no_upstream_deprecation_noise():
    """s3prl's wav2vec2 builds its positional convolution with torch's deprecated weight_norm; the FutureWarning
    that prints on every load is silenced for the load alone (a user's own warnings filters are left as they were)."""
    import warnings

    ckpt = str(tiny_model("tiny-s3prl-wav2vec2.pt"))  # built outside the check: the load alone is checked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_backend("speech", ckpt, "cpu", precision="float32")
        import torch

        torch.nn.utils.weight_norm(torch.nn.Conv1d(2, 2, 3))  # the same call outside the load still warns
    said = [str(w.message) for w in caught if "weight_norm" in str(w.message)]
    assert len(said) == 1, said
