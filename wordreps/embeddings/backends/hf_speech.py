"""Hugging Face speech encoders (Wav2Vec2, HuBERT, WavLM, Data2VecAudio): the ``hf-speech`` family.

Layers, padding and what layer 0 is: see :mod:`wordreps.embeddings.backends.speech`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from wordreps.common.errors import UserError, one_line
from wordreps.common.hashing import sha256_files
from wordreps.common.precision import cast_matmul_weights, convolutions_as_matmuls
from wordreps.embeddings.backends.speech import (
    SpeechBackend,
    conv_geometry,
)
from wordreps.embeddings.families import HF_SPEECH_TYPES


class HFSpeechBackend(SpeechBackend):
    """A Hugging Face speech encoder (Wav2Vec2, HuBERT, WavLM, Data2VecAudio) by hub name or local folder."""

    family = "hf-speech"

    def __init__(self, model: str, device: torch.device | str, precision: str = "auto"):
        super().__init__(model, device, precision)
        import transformers as tf

        try:
            config = tf.AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load a Hugging Face config for {model} ({one_line(err)}); "
                            "pass a hub name that is cached (no network here) or a folder with config.json") from err
        if config.model_type not in HF_SPEECH_TYPES:
            raise UserError(f"{model} is a Hugging Face {config.model_type!r} model, not a speech encoder; supported "
                            f"types: {', '.join(HF_SPEECH_TYPES)}")
        try:
            self.feature_extractor = tf.AutoFeatureExtractor.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise UserError(f"{model} has no feature extractor (preprocessor_config.json) to say how audio is "
                            "normalised; add one (Wav2Vec2FeatureExtractor.save_pretrained) beside the model") from err
        self.model = tf.AutoModel.from_pretrained(model).to(self.device).eval()
        cast_matmul_weights(self.model, self.precision)
        self._conv1d_as_matmul = convolutions_as_matmuls(self.model, self.precision, self.device)
        self.config = config
        self.sample_rate_hz = int(getattr(self.feature_extractor, "sampling_rate", 16000))
        self.geometry = conv_geometry(config.conv_kernel, config.conv_stride, self.sample_rate_hz)
        self.num_layers = int(config.num_hidden_layers) + 1
        self.dim = int(config.hidden_size)
        self.layer_names = [f"layer_{i}" for i in range(self.num_layers)]
        self.do_normalize = bool(getattr(self.feature_extractor, "do_normalize", False))
        self.use_mask = bool(getattr(self.feature_extractor, "return_attention_mask", False))
        norm = getattr(config, "feat_extract_norm", "layer")
        # Data2VecAudio's positional embedding is a STACK of convolutions: only the first one's input has its
        # padded frames zeroed, so padding leaks into the last valid frames (measured: up to 1e-2 at layer 1).
        stacked_pos_conv = config.model_type == "data2vec-audio"
        self.padding_sensitive = (not self.use_mask) or norm == "group" or stacked_pos_conv
        revision = getattr(config, "_commit_hash", None)
        self._describe = {
            "source": "huggingface", "model_type": config.model_type, "architecture": type(self.model).__name__,
            "revision": revision, "feat_extract_norm": norm, "do_normalize": self.do_normalize,
            "attention_mask": self.use_mask, "padding_sensitive": self.padding_sensitive,
            "layer_0": "hidden_states[0]: input to the first transformer layer (feature projection + positional "
                       "conv" + (", + encoder LayerNorm" if not getattr(config, "do_stable_layer_norm", True) else "")
                       + ")",
        }
        if os.path.isdir(model):
            weights = [p for p in Path(model).iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json"]
            self._describe["weights_sha256"] = sha256_files(weights)

    def _hidden(self, wavs):
        lengths = [int(w.shape[0]) for w in wavs]
        if self.do_normalize:
            # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, per item over its own samples, on the device
            wavs = [(w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7) for w in wavs]
        batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True, padding_value=0.0)
        mask = None
        if self.use_mask:
            mask = (torch.arange(batch.shape[1], device=batch.device)[None, :]
                    < torch.tensor(lengths, device=batch.device)[:, None]).to(torch.long)
        out = self.model(batch, attention_mask=mask, output_hidden_states=True)
        frames = self.model._get_feat_extract_output_lengths(torch.tensor(lengths)).tolist()
        max_t = int(out.hidden_states[0].shape[1])
        return list(out.hidden_states), [min(int(f), max_t) for f in frames]


def load_hf_speech_backend(model: str, device: torch.device | str, precision: str = "auto",
                           **_: object) -> HFSpeechBackend:
    """The family table's loader for a Hugging Face name or folder (the speech kind's default family);
    ``precision``: see ``common/precision.py``."""
    if os.path.isdir(model):
        if not (Path(model) / "config.json").is_file():
            raise UserError(f"{model} is a folder without config.json, so not a Hugging Face model; a local path "
                            "must hold config.json (save_pretrained) or be an s3prl checkpoint file")
    elif "/" not in model or model.startswith((".", "/")):
        raise UserError(f"unknown model {model}: not an s3prl upstream (e.g. wav2vec2, hubert, wavlm_large) and not a "
                        "Hugging Face speech encoder; a local path must hold config.json")
    return HFSpeechBackend(model, device, precision)
