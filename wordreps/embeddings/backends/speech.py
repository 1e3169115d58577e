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

from typing import Sequence

import numpy as np
import torch

from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.precision import CONV1D_AS_MATMUL, autocast, resolve_precision
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.pooling import pool_utterances

# ---------------------------------------------------------------------------------------------- geometry

def conv_geometry(kernels: Sequence[int], strides: Sequence[int], sample_rate_hz: int) -> FrameGeometry:
    """Hop = product of strides; receptive field R = 1 + sum_i (k_i - 1) * prod(strides before i).

    wav2vec2's (10,3,3,3,3,2,2)/(5,2,2,2,2,2,2) gives a hop of 320 and R = 400 samples.
    """
    rf, jump = 1, 1
    for k, s in zip(kernels, strides):
        rf += (int(k) - 1) * jump
        jump *= int(s)
    return FrameGeometry(int(sample_rate_hz), jump, rf)  # the hop is the product of all strides


def conv_output_lengths(num_samples: Sequence[int], kernels: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Frames a valid conv stack produces for each input length (floor((n - k) / s) + 1 per layer)."""
    out = []
    for n in num_samples:
        n = int(n)
        for k, s in zip(kernels, strides):
            n = (n - int(k)) // int(s) + 1
        out.append(max(n, 0))
    return out


# ---------------------------------------------------------------------------------------------- shared

class SpeechBackend(Backend):
    """Common part: batching cost, padding, autocast, pooling and the one host copy per batch."""

    needs_audio = True

    def __init__(self, model_name: str, device: torch.device | str, precision: str = "auto"):
        self.model_name = model_name
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)  # before the (slow) model load
        self._describe: dict = {}
        self._conv1d_as_matmul = 0   # convolutions run as matrix products (precision.convolutions_as_matmuls)

    def describe(self) -> dict:
        out = dict(self._describe)
        if self._conv1d_as_matmul:
            out["conv1d"] = CONV1D_AS_MATMUL
        return out

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
