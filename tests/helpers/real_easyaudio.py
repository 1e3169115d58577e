"""Random weights for the REAL easyaudio code, where its own loaders look for them, and reference activations.

    python tests/helpers/real_easyaudio.py weights ROOT [--full_size]  # ROOT/env.json: the environment to run under
    python tests/helpers/real_easyaudio.py reference ROOT A16 A24 # ROOT/reference.npz from two FLAC files

Used by tests/embeddings/test_audio_easyaudio_real.py, only where the real easyaudio (mrpep/easyaudio 12e6c0e with
encodecmae 4a3be20; docs/real-parts.md says how to install it offline) is importable. Nothing is downloaded and
nothing of easyaudio is replaced: every checkpoint is made with the real classes and put where the real code
reads it, with the environment that makes the libraries read their caches:

- EnCodec's pretrained 24 kHz weights: ``$TORCH_HOME/hub/checkpoints/encodec_24khz-d7cc33bc.th`` (the file
  ``torch.hub.load_state_dict_from_url`` finds before it would download);
- encodecmae's ``lpepino/encodecmae-base`` files (``model.pt``, ``config.gin``, ``imports``) in a Hugging Face
  cache (``$HF_HUB_CACHE``, read with ``HF_HUB_OFFLINE=1``); the model is the repository's own
  ``configs/models/encodecmae.gin`` at a smaller width and depth;
- a BEATs checkpoint (``{"cfg", "model"}`` as released) at ``ROOT/BEATs_iter3.pt``, passed to the adapter with
  ``--beats_checkpoint`` (easyaudio's BEATs wrapper would otherwise ask the hub first).

The reference activations are computed here with the real model objects, without the adapter: EnCodecMAE
through easyaudio's wrapper class built on the CPU, BEATs by calling ``BEATs.extract_features`` directly.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ENCODECMAE_REVISION = "0" * 39 + "1"   # a made-up snapshot id for the local Hugging Face cache
# Shape-relevant BEATs settings as in the released BEATs_iter3 cfg, at a smaller width and depth
BEATS_CFG = dict(input_patch_size=16, embed_dim=64, conv_bias=False, encoder_layers=2, encoder_embed_dim=64,
                 encoder_ffn_embed_dim=128, encoder_attention_heads=4, activation_fn="gelu",
                 layer_wise_gradient_decay_ratio=0.6, layer_norm_first=False, deep_norm=True, dropout=0.0,
                 attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.0, dropout_input=0.0,
                 conv_pos=16, conv_pos_groups=4, relative_position_embedding=True, num_buckets=320,
                 max_distance=800, gru_rel_pos=True, finetuned_model=False)
SMALL_ENCODECMAE = {"MODEL_DIM": 64, "NUM_ENCODER_LAYERS": 3, "NUM_ENCODER_HEADS": 4, "NUM_DECODER_LAYERS": 1,
                    "NUM_DECODER_HEADS": 4}


def environment(root: Path) -> dict[str, str]:
    return {"TORCH_HOME": str(root / "torch"), "HF_HUB_CACHE": str(root / "hf"), "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1"}


def write_weights(root: Path, full_size: bool = False) -> None:
    """Random checkpoints; ``full_size`` keeps encodecmae-base's own width and depth (for timing)."""
    import torch

    torch.manual_seed(0)
    import encodec

    # EnCodec 24 kHz, as EncodecModel.encodec_model_24khz builds it, random
    enc = encodec.EncodecModel._get_model([1.5, 3.0, 6, 12.0, 24.0], 24000, 1, causal=True, model_norm="weight_norm",
                                          audio_normalize=False, name="encodec_24khz")
    hub_dir = root / "torch" / "hub" / "checkpoints"
    hub_dir.mkdir(parents=True, exist_ok=True)
    torch.save(enc.state_dict(), hub_dir / "encodec_24khz-d7cc33bc.th")

    # EnCodecMAE through encodecmae's own gin config and get_model (as its load_model does)
    import encodecmae
    import gin
    from ginpipe.core import gin_configure_externals

    configs = Path(encodecmae.__file__).parent / "configs"
    text = (configs / "models" / "encodecmae.gin").read_text()
    for macro, value in ({} if full_size else SMALL_ENCODECMAE).items():
        text, n = re.subn(rf"^{macro}=\d+$", f"{macro}={value}", text, flags=re.M)
        assert n == 1, macro
    text = "MAX_LR=0.0001\n" + text + "\nget_model.model=@tasks.models.EncodecMAE\n"
    snapshot = root / "hf" / "models--lpepino--encodecmae-base" / "snapshots" / ENCODECMAE_REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.gin").write_text(text)
    (snapshot / "imports").write_text((configs / "imports").read_text())
    refs = snapshot.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(ENCODECMAE_REVISION)
    gin.clear_config()
    gin_configure_externals({"module_list": [str(snapshot / "imports")]})
    gin.parse_config_file(str(snapshot / "config.gin"))
    from encodecmae.hub import get_model

    model = get_model()()
    torch.save({"state_dict": model.state_dict()}, snapshot / "model.pt")
    gin.clear_config()

    # BEATs with easyaudio's own classes, saved as the released checkpoints are
    from easyaudio.models.beats.BEATs import BEATs, BEATsConfig

    beats = BEATs(BEATsConfig(BEATS_CFG))
    torch.save({"cfg": BEATS_CFG, "model": beats.state_dict()}, root / "BEATs_iter3.pt")
    (root / "env.json").write_text(json.dumps(environment(root)))


def write_reference(root: Path, flac_16k: Path, flac_24k: Path) -> None:
    import numpy as np
    import soundfile as sf
    import torch
    from easyaudio.models import EnCodecMAEWrapped
    from easyaudio.models.beats.BEATs import BEATs, BEATsConfig

    x24, rate = sf.read(flac_24k, dtype="float32")
    assert rate == 24000
    wrapped = EnCodecMAEWrapped("encodecmae_base", device="cpu")
    wrapped.model.visible_encoder.compile = False  # eager, as the adapter runs it (same numbers, no compile wait)
    encodecmae_layers = np.stack(wrapped.extract_activations_from_array(x24))
    # what the encoder's own forward gives for the first 4 s chunk: the last block after the final norm
    with torch.no_grad():
        chunk = torch.from_numpy(x24[:96000])[None]
        x = {"wav": chunk, "wav_lens": torch.tensor([chunk.shape[1]])}
        wrapped.model.encode_wav(x)
        wrapped.model.mask(x, ignore_mask=True)
        wrapped.model.encode_visible(x)
        final_norm_output = x["visible_embeddings"][0].numpy()

    x16, rate = sf.read(flac_16k, dtype="float32")
    assert rate == 16000
    ckpt = torch.load(root / "BEATs_iter3.pt", map_location="cpu")
    beats = BEATs(BEATsConfig(ckpt["cfg"]))
    beats.load_state_dict(ckpt["model"])
    beats.eval()
    with torch.no_grad():
        wav = torch.from_numpy(x16)[None]
        _, _, feats = beats.extract_features(wav, padding_mask=torch.zeros_like(wav, dtype=torch.bool), tgt_layer=100)
    beats_tokens = np.stack([f[0][:, 0, :].numpy() for f in feats])
    np.savez(root / "reference.npz", encodecmae=encodecmae_layers, encodecmae_final_norm=final_norm_output,
             beats_tokens=beats_tokens)


if __name__ == "__main__":
    command, root = sys.argv[1], Path(sys.argv[2])
    if command == "weights":
        write_weights(root, full_size="--full_size" in sys.argv[3:])
    else:
        write_reference(root, Path(sys.argv[3]), Path(sys.argv[4]))
