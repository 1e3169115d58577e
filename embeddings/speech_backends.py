"""Speech encoders: s3prl upstreams and Hugging Face speech encoders (Wav2Vec2, HuBERT, WavLM, Data2VecAudio).

Layer numbering (base.py): 0 is the input to the first transformer block, i the output of block i; the
model's ``num_hidden_layers + 1`` states are all kept.

What layer 0 is, checked in the code of both libraries (s3prl 0.4.18, transformers 4.57.1):
- s3prl's wav2vec2/HuBERT/WavLM experts hook the INPUT of every ``encoder.layers[i]`` plus the encoder's
  output, so ``hidden_states[0]`` = projected CNN features + positional convolution (followed by the
  encoder's LayerNorm for post-norm models such as wav2vec2-base; pre-norm "large" models apply no norm
  there), and the last state is the encoder output (after the final LayerNorm for pre-norm models).
- Hugging Face's ``hidden_states[0]`` is the same tensor: feature projection, then ``pos_conv_embed`` added
  (and ``layer_norm`` for the post-norm ``Wav2Vec2Encoder``), i.e. the input to the first layer.
So layer 0 is NOT frame-local: the positional convolution (128 frames, 2.56 s, in the real models) mixes
neighbouring frames. Its span is the CNN receptive field (400 samples) widened by the positional kernel.
Waveform normalisation (``do_normalize`` / s3prl's ``task_cfg.normalize``) and a group-norm feature encoder
(wav2vec2-base's ``feat_extract_norm="group"``, s3prl's ``extractor_mode="default"``) use whole-utterance
statistics, so they make every frame depend on every sample, and make outputs depend on padding.

Padding: a model is ``padding_sensitive`` (batched only with equal-length utterances) when its feature
encoder uses group norm, when (Hugging Face) its feature extractor has ``return_attention_mask=False`` (the
model is meant to be run without a mask, so padded zeros would leak into attention), or when its positional
embedding is a stack of convolutions (Data2VecAudio: padded frames are zeroed only before the first one, so
they leak into the last valid frames; measured differences of 1e-2 at layer 1 of a tiny model).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError
from wordreps.common.precision import autocast, resolve_precision
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.pooling import pool_utterances

HF_SPEECH_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


# ---------------------------------------------------------------------------------------------- geometry

def conv_geometry(kernels: Sequence[int], strides: Sequence[int], sample_rate_hz: int) -> FrameGeometry:
    """Hop = product of strides; receptive field R = 1 + sum_i (k_i - 1) * prod(strides before i).

    wav2vec2's (10,3,3,3,3,2,2)/(5,2,2,2,2,2,2) gives a hop of 320 and R = 400 samples.
    """
    hop, rf, jump = 1, 1, 1
    for k, s in zip(kernels, strides):
        rf += (int(k) - 1) * jump
        jump *= int(s)
    hop = jump
    return FrameGeometry(int(sample_rate_hz), int(hop), int(rf))


def conv_output_lengths(num_samples: Sequence[int], kernels: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Frames a valid conv stack produces for each input length (floor((n - k) / s) + 1 per layer)."""
    out = []
    for n in num_samples:
        n = int(n)
        for k, s in zip(kernels, strides):
            n = (n - int(k)) // int(s) + 1
        out.append(max(n, 0))
    return out


def _sha256_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for p in sorted(paths):
        digest.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- shared

class SpeechBackend(Backend):
    """Common part: batching cost, padding, autocast, pooling and the one host copy per batch."""

    needs_audio = True

    def __init__(self, model_name: str, device: torch.device | str, precision: str = "auto"):
        self.model_name = model_name
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)  # before the (slow) model load

    def cost(self, utterance: Utterance) -> float:
        return utterance.num_samples / utterance.sample_rate_hz  # seconds of audio

    def _hidden(self, wavs: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[int]]:
        """All layers, each (B, T, D), and the frames each item really has (padding excluded)."""
        raise NotImplementedError

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        lengths = [len(item.audio) for item in batch]
        # one host->device copy per batch: concatenate, copy, split into views on the device
        flat = torch.from_numpy(np.concatenate([np.asarray(item.audio, dtype=np.float32) for item in batch]))
        wavs = list(torch.split(flat.to(self.device), lengths))
        with torch.inference_mode():
            with autocast(self.device, self.precision):
                hidden, frames = self._hidden(wavs)
            if len(hidden) != self.num_layers:
                raise RuntimeError(f"{self.model_name} returned {len(hidden)} hidden states, expected "
                                   f"{self.num_layers}")
            return pool_utterances(hidden, frames, [i.utterance for i in batch])


# ---------------------------------------------------------------------------------------------- s3prl

def _find_conv_stack(upstream: torch.nn.Module) -> tuple[list[int], list[int], bool] | None:
    """(kernels, strides, uses_group_norm) of a wav2vec2-style ``feature_extractor.conv_layers``, if any."""
    for name, module in upstream.named_modules():
        if name.endswith("feature_extractor") and hasattr(module, "conv_layers"):
            kernels, strides = [], []
            for block in module.conv_layers:
                conv = next((m for m in block.modules() if isinstance(m, torch.nn.Conv1d)), None)
                if conv is None:
                    return None
                kernels.append(int(conv.kernel_size[0]))
                strides.append(int(conv.stride[0]))
            group = any(isinstance(m, torch.nn.GroupNorm) for m in module.modules())
            return kernels, strides, group
    return None


def s3prl_hub_names() -> list[str]:
    """Upstream names s3prl.hub exposes, found by reading the hubconf files (importing s3prl.hub takes ~6 s)."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("s3prl")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0]) / "upstream"
    names: set[str] = set()
    for hubconf in root.glob("*/hubconf.py"):
        try:
            text = hubconf.read_text(encoding="utf-8")
        except OSError:
            continue
        names.update(m.group(1) for m in re.finditer(r"^def ([a-zA-Z][\w]*)\(", text, flags=re.M))
    return sorted(names)


class S3prlBackend(SpeechBackend):
    """An s3prl upstream by hub name, or a converted wav2vec2 checkpoint through ``wav2vec2_custom``."""

    family = "s3prl"

    def __init__(self, model: str, device: torch.device | str, ckpt: str | None = None, precision: str = "auto"):
        super().__init__(str(ckpt) if ckpt else model, device, precision)
        self.upstream_name = model if not ckpt or model.endswith("_custom") else "wav2vec2_custom"
        self.ckpt = ckpt
        self._describe: dict = {"source": "s3prl", "upstream": self.upstream_name}
        try:
            if ckpt:
                if not os.path.isfile(ckpt):
                    raise UserError(f"s3prl checkpoint {ckpt} does not exist; pass the path of a converted "
                                    "wav2vec2 checkpoint (torch.save of task_cfg, model_cfg, model_weight)")
                self._describe["ckpt_sha256"] = _sha256_files([Path(ckpt)])
                if self.upstream_name == "wav2vec2_custom":
                    # direct import: the same function s3prl.hub exposes, without loading all 190 upstreams
                    from s3prl.upstream.wav2vec2.hubconf import wav2vec2_custom as make
                else:
                    import s3prl.hub
                    make = getattr(s3prl.hub, self.upstream_name)
                upstream = make(ckpt=str(ckpt))
            else:
                import s3prl.hub
                upstream = getattr(s3prl.hub, model)()
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - torch.load / s3prl / download errors of every kind
            msg = " ".join(str(err).split())[:160]
            if ckpt:
                raise UserError(f"s3prl checkpoint {ckpt} cannot be loaded ({type(err).__name__}: {msg}); pass a file "
                                "converted with s3prl's wav2vec2 convert.py (keys task_cfg, model_cfg, model_weight)"
                                ) from err
            raise UserError(f"s3prl upstream {model} cannot be loaded ({type(err).__name__}: {msg}); s3prl downloads "
                            "its weights on first use (into ~/.cache/torch/hub): run once where the network is "
                            "reachable, or pass a local converted checkpoint with --s3prl_ckpt") from err
        self.upstream = upstream.to(self.device).eval()
        self.sample_rate_hz = 16000  # every s3prl upstream takes 16 kHz waveforms
        hop = int(self.upstream.get_downsample_rates("hidden_states"))
        stack = _find_conv_stack(self.upstream)
        if stack is not None:
            self._kernels, self._strides, group = stack
            self.geometry = conv_geometry(self._kernels, self._strides, self.sample_rate_hz)
            if self.geometry.hop_samples != hop:
                raise UserError(f"s3prl upstream {self.model_name}: conv stack hop {self.geometry.hop_samples} "
                                f"differs from get_downsample_rates {hop}; this upstream is not supported")
            # a stack of positional convs (data2vec's pos_conv_depth > 1) lets padding leak into valid frames
            pos_convs = sum(isinstance(m, torch.nn.Conv1d) for name, m in self.upstream.named_modules()
                            if ".pos_conv" in name or name.endswith("pos_conv"))
            self.padding_sensitive = group or pos_convs > 1
            self._describe["receptive_field_from"] = "conv stack"
        else:
            # filterbank-style upstreams: a 25 ms analysis window at the hop s3prl reports
            self._kernels = self._strides = None
            self.geometry = FrameGeometry(self.sample_rate_hz, hop, 400)
            self.padding_sensitive = True  # unknown internals: never pad
            self._describe["receptive_field_from"] = "assumed 25 ms window (no conv stack found)"
        # number of hidden states from a one-second probe (cheap, and exact for any upstream)
        with torch.inference_mode():
            probe = self.upstream([torch.zeros(self.sample_rate_hz, device=self.device)])["hidden_states"]
        self.num_layers = len(probe)
        self.dim = int(probe[0].shape[-1])
        self.layer_names = [f"layer_{i}" for i in range(self.num_layers)]
        self._describe.update(padding_sensitive=self.padding_sensitive, hop_samples=hop,
                              layer_0="input to the first transformer block (projected CNN features + positional "
                                      "conv), as s3prl's hidden_states[0]")
        cfg = getattr(getattr(self.upstream, "model", None), "cfg", None)
        if cfg is not None:
            self._describe["extractor_mode"] = str(getattr(cfg, "extractor_mode", ""))

    def describe(self) -> dict:
        return dict(self._describe)

    def _hidden(self, wavs):
        states = self.upstream(wavs)["hidden_states"]
        lengths = [int(w.shape[0]) for w in wavs]
        max_t = int(states[0].shape[1])
        if self._kernels is not None:
            frames = conv_output_lengths(lengths, self._kernels, self._strides)
        else:
            frames = [max(1, round(n / self.geometry.hop_samples)) for n in lengths]
        return list(states), [min(f, max_t) for f in frames]


# ---------------------------------------------------------------------------------------------- Hugging Face

class HFSpeechBackend(SpeechBackend):
    """A Hugging Face speech encoder (Wav2Vec2, HuBERT, WavLM, Data2VecAudio) by hub name or local folder."""

    family = "hf-speech"

    def __init__(self, model: str, device: torch.device | str, precision: str = "auto"):
        super().__init__(model, device, precision)
        import transformers as tf

        try:
            config = tf.AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot load a Hugging Face config for {model} ({' '.join(str(err).split())[:160]}); "
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
            self._describe["weights_sha256"] = _sha256_files(weights)

    def describe(self) -> dict:
        return dict(self._describe)

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


# ---------------------------------------------------------------------------------------------- loading

def load_speech_backend(model: str, device: torch.device | str, s3prl_ckpt: str | None = None,
                        precision: str = "auto", **_: object) -> SpeechBackend:
    """s3prl hub name, s3prl checkpoint (``s3prl_ckpt`` or a file path as ``model``), or HF name/folder."""
    if s3prl_ckpt:
        return S3prlBackend(model or "wav2vec2_custom", device, ckpt=s3prl_ckpt, precision=precision)
    if os.path.isfile(model):
        return S3prlBackend("wav2vec2_custom", device, ckpt=model, precision=precision)
    if os.path.isdir(model):
        if not (Path(model) / "config.json").is_file():
            raise UserError(f"{model} is a folder without config.json, so not a Hugging Face model; a local path "
                            "must hold config.json (save_pretrained) or be an s3prl checkpoint file")
        return HFSpeechBackend(model, device, precision)
    if "/" not in model and model in s3prl_hub_names():
        return S3prlBackend(model, device, precision=precision)
    if "/" in model and not model.startswith((".", "/")):
        return HFSpeechBackend(model, device, precision)
    raise UserError(f"unknown model {model}: not an s3prl upstream (e.g. wav2vec2, hubert, wavlm_large) and not a "
                    "Hugging Face speech encoder; a local path must hold config.json")
