"""Tiny speech encoders with the real architectures, built offline for tests and the demo.

Each model has the real wav2vec2 conv front end geometry (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2: a
hop of 320 samples and a receptive field of 400 at 16 kHz) but tiny widths (hidden 32, 2 layers, 2 heads),
and random weights from a fixed seed, so that building twice gives the same files.

- Hugging Face folders (``save_pretrained`` + a ``Wav2Vec2FeatureExtractor`` beside): loaded by path through
  exactly the code that loads a hub name.
- An s3prl converted checkpoint (``torch.save({"task_cfg", "model_cfg", "model_weight"})`` of s3prl's own
  Wav2Vec2Model), loaded through ``s3prl``'s ``wav2vec2_custom(ckpt=PATH)``.

    python3 tools/make_tiny_speech.py --out outputs/models
"""
from __future__ import annotations

from pathlib import Path

from wordreps.common.atomic import ensure_dir

CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)

# name -> (architecture, feature-extractor norm, stable (pre-)layer norm, waveform normalisation)
HF_VARIANTS: dict[str, tuple[str, str, bool, bool]] = {
    "tiny-wav2vec2-group": ("wav2vec2", "group", False, True),    # like wav2vec2-base
    "tiny-wav2vec2-layer": ("wav2vec2", "layer", True, True),     # like wav2vec2-large-960h-lv60
    "tiny-hubert": ("hubert", "group", False, False),              # like hubert-base-ls960
    "tiny-wavlm": ("wavlm", "layer", True, True),                  # like wavlm-large
    "tiny-data2vec-audio": ("data2vec-audio", "layer", False, True),
    # no waveform normalisation, local front end: for frame-placement tests (a burst must stay local)
    "tiny-wav2vec2-local": ("wav2vec2", "layer", True, False),
}
S3PRL_VARIANTS: dict[str, tuple[str, bool, bool]] = {
    # name -> (extractor_mode, layer_norm_first, normalize)
    "tiny-s3prl-wav2vec2.pt": ("default", False, False),      # like wav2vec2 base (group norm)
    "tiny-s3prl-wav2vec2-large.pt": ("layer_norm", True, True),  # like wav2vec2_large_960
    "tiny-s3prl-wav2vec2-local.pt": ("layer_norm", True, False),
}
POS_CONV = 16  # positional conv kernel in frames (the real models use 128): keeps the burst test's span small


def _hf_config(arch: str, norm: str, stable: bool):
    import transformers as tf

    common = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE, conv_bias=(norm == "layer"),
        num_conv_pos_embeddings=POS_CONV, num_conv_pos_embedding_groups=2, vocab_size=8,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        layerdrop=0.0, mask_time_prob=0.0,
    )
    if arch == "wav2vec2":
        return tf.Wav2Vec2Config(feat_extract_norm=norm, do_stable_layer_norm=stable, **common)
    if arch == "hubert":
        return tf.HubertConfig(feat_extract_norm=norm, do_stable_layer_norm=stable, **common)
    if arch == "wavlm":
        return tf.WavLMConfig(feat_extract_norm=norm, do_stable_layer_norm=stable, num_buckets=32,
                              max_bucket_distance=100, **common)
    if arch == "data2vec-audio":
        # Data2VecAudio: layer-normed conv stack always; a stack of small positional convs
        common.pop("num_conv_pos_embeddings")
        common.pop("num_conv_pos_embedding_groups")
        return tf.Data2VecAudioConfig(num_conv_pos_embeddings=5, conv_pos_kernel_size=5,
                                      num_conv_pos_embedding_groups=2, **common)
    raise ValueError(arch)


def build_hf(out: str | Path, name: str, seed: int = 0) -> Path:
    """Save one tiny Hugging Face speech encoder (+ feature extractor) to ``out/name``; returns the folder."""
    import torch
    import transformers as tf

    arch, norm, stable, normalize = HF_VARIANTS[name]
    config = _hf_config(arch, norm, stable)
    torch.manual_seed(seed)
    model = tf.AutoModel.from_config(config)
    # The default init (std 0.02) makes every layer nearly constant; larger weights give vectors that differ.
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(p.shape[1], 1)) ** 0.5)
    model.eval()
    folder = Path(out) / name
    ensure_dir(folder)
    model.save_pretrained(folder)
    fe = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                     do_normalize=normalize, return_attention_mask=(norm == "layer"))
    fe.save_pretrained(folder)
    return folder


def build_s3prl(out: str | Path, name: str = "tiny-s3prl-wav2vec2.pt", seed: int = 0) -> Path:
    """Save a tiny s3prl converted wav2vec2 checkpoint (2 layers, dim 64) to ``out/name``; returns the file."""
    import torch
    from s3prl.upstream.utils import merge_with_parent
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    from wordreps.embeddings.backends.s3prl import build_quietly

    mode, ln_first, normalize = S3PRL_VARIANTS[name]
    conv = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
    model_cfg = {
        "_name": "wav2vec2", "extractor_mode": mode, "encoder_layers": 2, "encoder_embed_dim": 64,
        "encoder_ffn_embed_dim": 128, "encoder_attention_heads": 2, "conv_feature_layers": conv,
        "conv_pos": POS_CONV, "conv_pos_groups": 4, "layer_norm_first": ln_first, "final_dim": 32,
        "latent_vars": 8, "latent_groups": 2, "conv_bias": mode == "layer_norm",
        "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0, "dropout_input": 0.0,
        "dropout_features": 0.0, "encoder_layerdrop": 0.0,
    }
    task_cfg = {"_name": "audio_pretraining", "sample_rate": 16000, "normalize": normalize}
    torch.manual_seed(seed)
    model = build_quietly(Wav2Vec2Model, cfg=merge_with_parent(Wav2Vec2Config, model_cfg))
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(p.shape[1], 1)) ** 0.5)
    path = Path(out) / name
    ensure_dir(path.parent)
    import io

    from wordreps.common.atomic import write_bytes_atomic
    # saved through a buffer: torch.save names the zip's folder after the file, and the temp name is random
    buf = io.BytesIO()
    torch.save({"task_cfg": task_cfg, "model_cfg": model_cfg, "model_weight": model.state_dict()}, buf)
    write_bytes_atomic(path, buf.getvalue())
    return path


def build_all(out: str | Path, seed: int = 0) -> dict[str, Path]:
    made = {name: build_hf(out, name, seed) for name in HF_VARIANTS}
    made.update({name: build_s3prl(out, name, seed) for name in S3PRL_VARIANTS})
    return made
