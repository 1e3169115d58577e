"""Hugging Face's Audio Spectrogram Transformer: the ``hf-audio`` family.

Its hidden states have shape (layers, time steps, dim) with time steps that follow a :class:`FrameGeometry`,
so a word's vector is the mean of the time steps the alignment JSON gives it (``first_frame..last_frame``,
inclusive), pooled by ``pooling.pool_utterances``.

Audio Spectrogram Transformer (``ASTModel``, any Hugging Face name or local folder with an AST config):

- The feature extractor turns 16 kHz audio into a 128-bin fbank (25 ms window, 10 ms shift) padded or cut to
  ``max_length`` frames (1024 = 10.24 s for the released models). Patches of 16x16 fbank values are taken
  every ``fstride`` bins and every ``tstride`` frames: ``F = (128 - 16)//fstride + 1`` frequency patches by
  ``S = (max_length - 16)//tstride + 1`` time steps. After the two special tokens (cls, distillation, dropped
  here) the patch tokens are frequency-major: token ``2 + f*S + t`` (``ASTPatchEmbeddings`` flattens the conv
  output of shape (F, S)). Each time step is the mean over its F frequency patches.
- Time step ``t`` covers fbank frames ``[t*tstride, t*tstride + 16)``, i.e. samples
  ``[t*tstride*160, t*tstride*160 + 15*160 + 400)``: hop ``tstride*160`` samples (100 ms at tstride 10) and
  receptive field 2800 samples (175 ms).
- Position embeddings have a fixed size, so an utterance longer than one input is cut into chunks of ``S``
  time steps: chunk ``c`` starts at sample ``c*S*tstride*160`` and its step ``j`` is the utterance's step
  ``c*S + j``, so every step of the utterance is computed exactly once and the chunks tile the time axis.
  The fbank is frame-local (each frame sees only its own 400 samples), so a chunk's fbank frames are exactly
  the utterance's fbank frames. A step's context is its own chunk (at most 10.1 s for the released models).
  Steps that lie on the zero padding of the last chunk are never pooled.
- Hidden states: layer 0 is the embeddings' output (patch projection + position embeddings, the input to
  block 1), layer i the output of block i; transformers returns the last block's output after the model's
  final LayerNorm, and that is what the last layer holds.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError, one_line
from wordreps.common.precision import autocast, cast_matmul_weights, resolve_precision
from wordreps.common.versions import dist_version
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.families import AST_MODEL_TYPE
from wordreps.embeddings.pooling import pool_utterances


def ast_geometry(sample_rate_hz: int, patch_size: int, time_stride: int) -> FrameGeometry:
    """Geometry of AST time steps: hop ``time_stride`` fbank shifts, span ``patch_size - 1`` shifts + a window."""
    shift = sample_rate_hz // 100          # 10 ms fbank shift
    window = sample_rate_hz * 25 // 1000   # 25 ms fbank window
    return FrameGeometry(sample_rate_hz, time_stride * shift, (patch_size - 1) * shift + window)


def _load_error(model: str, err: Exception) -> UserError:
    text = one_line(err)
    where = "folder" if os.path.exists(model) else "model"
    return UserError(f"cannot load Audio Spectrogram Transformer {where} {model!r} ({type(err).__name__}: {text}); "
                     "pass a Hugging Face AST name (e.g. MIT/ast-finetuned-audioset-10-10-0.4593) that is cached "
                     "or reachable, or a folder holding config.json, the weights and preprocessor_config.json")


class ASTBackend(Backend):
    """Hugging Face ``ASTModel``: chunks of ``max_length`` fbank frames, patch tokens averaged per time step."""

    family = "hf-audio"
    needs_audio = True
    # Every chunk is padded to the model's fixed max_length by the feature extractor, whatever else is in the
    # batch, and AST has no attention mask or cross-sample operation: a chunk's input, hence its output, does
    # not depend on batching. So utterances of any lengths can share a batch.
    padding_sensitive = False

    def __init__(self, model: str, device: str = "cpu", *, max_chunks_per_forward: int = 64,
                 precision: str = "auto") -> None:
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        self.model_name = model
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)  # before the (slow) model load
        try:
            config = AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise _load_error(model, err) from err
        if getattr(config, "model_type", None) != AST_MODEL_TYPE:
            raise UserError(f"model {model!r} is a {getattr(config, 'model_type', '?')!r} model, not an Audio "
                            f"Spectrogram Transformer; general-audio models are the easyaudio models "
                            f"({', '.join(_easyaudio_models())}) and AST names or folders")
        try:
            self.feature_extractor = AutoFeatureExtractor.from_pretrained(model)
            net = AutoModel.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise _load_error(model, err) from err
        fe = self.feature_extractor
        if type(fe).__name__ != "ASTFeatureExtractor":
            raise UserError(f"model {model!r} has a {type(fe).__name__}, not an ASTFeatureExtractor; "
                            "save the AST feature extractor beside the model")
        if int(fe.max_length) != int(config.max_length) or int(fe.num_mel_bins) != int(config.num_mel_bins):
            raise UserError(f"model {model!r}: the feature extractor makes {fe.max_length} frames x "
                            f"{fe.num_mel_bins} bins but the model takes {config.max_length} x "
                            f"{config.num_mel_bins}; save a matching preprocessor_config.json")
        self.config = config
        self.model = net.to(self.device).eval()
        cast_matmul_weights(self.model, self.precision)
        self.sample_rate_hz = int(fe.sampling_rate)
        self.patch = int(config.patch_size)
        self.fstride = int(config.frequency_stride)
        self.tstride = int(config.time_stride)
        self.max_length = int(config.max_length)
        self.freq_patches = (int(config.num_mel_bins) - self.patch) // self.fstride + 1
        self.chunk_steps = (self.max_length - self.patch) // self.tstride + 1
        self.geometry = ast_geometry(self.sample_rate_hz, self.patch, self.tstride)
        # The geometry comes from the model's own config (an AST fine-tuned with another time stride has
        # another hop); the alignment JSON's geometry is compared with it by the core.
        shift = self.sample_rate_hz // 100
        self.chunk_hop_samples = self.chunk_steps * self.tstride * shift
        self.chunk_samples = (self.max_length - 1) * shift + self.sample_rate_hz * 25 // 1000
        self.num_layers = int(config.num_hidden_layers) + 1
        self.dim = int(config.hidden_size)
        self.layer_names = ["embeddings"] + [f"layer_{i}" for i in range(1, self.num_layers)]
        self.max_chunks_per_forward = int(max_chunks_per_forward)

    def num_steps(self, num_samples: int) -> int:
        """Time steps that lie on real audio for an utterance of ``num_samples`` samples."""
        return self.geometry.num_frames(num_samples)

    def num_chunks(self, num_samples: int) -> int:
        return math.ceil(self.num_steps(num_samples) / self.chunk_steps)

    def cost(self, utterance: Utterance) -> float:
        # The model always runs whole chunks: a 2 s utterance costs as much as a 10.24 s one.
        return self.num_chunks(utterance.num_samples) * self.max_length / 100.0

    def chunk_waveforms(self, audio: np.ndarray) -> list[np.ndarray]:
        """The waveform slices whose fbanks are the utterance's chunks (see the module docstring)."""
        return [audio[c * self.chunk_hop_samples: c * self.chunk_hop_samples + self.chunk_samples]
                for c in range(self.num_chunks(audio.size))]

    def step_states(self, chunks: Sequence[np.ndarray]) -> torch.Tensor:
        """(layers, chunks, chunk_steps, dim) float32: patch tokens averaged over frequency, per time step."""
        feats = self.feature_extractor(list(chunks), sampling_rate=self.sample_rate_hz, return_tensors="pt")
        values = feats["input_values"]
        outs = []
        for start in range(0, values.shape[0], self.max_chunks_per_forward):
            x = values[start:start + self.max_chunks_per_forward].to(self.device)
            with torch.inference_mode(), autocast(self.device, self.precision):
                hs = self.model(input_values=x, output_hidden_states=True).hidden_states
                h = torch.stack(hs)  # (layers, n, 2 + F*S, dim)
            h = h[:, :, 2:].float()  # drop cls and distillation tokens
            n = h.shape[1]
            # frequency-major: token f*S + t
            h = h.reshape(self.num_layers, n, self.freq_patches, self.chunk_steps, self.dim).mean(dim=2)
            outs.append(h)
        return torch.cat(outs, dim=1)

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        chunks: list[np.ndarray] = []
        counts: list[int] = []
        for item in batch:
            if item.audio is None or item.audio.ndim != 1:
                raise ValueError(f"utterance {item.utterance.utt_id}: the core must pass 1-D audio")
            c = self.chunk_waveforms(np.ascontiguousarray(item.audio, dtype=np.float32))
            chunks.extend(c)
            counts.append(len(c))
        states = self.step_states(chunks)  # (L, total chunks, S, D)
        max_steps = max(counts) * self.chunk_steps
        hidden = states.new_zeros((self.num_layers, len(batch), max_steps, self.dim))
        offset = 0
        for b, n in enumerate(counts):
            # chunk c's step j is the utterance's step c*S + j
            hidden[:, b, :n * self.chunk_steps] = states[:, offset:offset + n].reshape(
                self.num_layers, n * self.chunk_steps, self.dim)
            offset += n
        num_frames = [self.num_steps(item.audio.size) for item in batch]
        return pool_utterances(hidden, num_frames, [item.utterance for item in batch])

    def describe(self) -> dict:
        return {
            "model": self.model_name,
            "revision": getattr(self.config, "_commit_hash", None),
            "transformers_version": dist_version("transformers"),
            "max_length_frames": self.max_length,
            "patch_size": self.patch,
            "frequency_stride": self.fstride,
            "time_stride": self.tstride,
            "frequency_patches": self.freq_patches,
            "chunk_steps": self.chunk_steps,
            "chunk_hop_samples": self.chunk_hop_samples,
            "token_order": "cls, distillation, then frequency-major patches (f*S + t); special tokens dropped, "
                           "patches averaged over frequency per time step",
            "long_utterances": f"cut into chunks of {self.chunk_steps} time steps, each run separately",
            "last_layer": "last block's output after the final LayerNorm (as transformers returns it)",
        }


def load_ast_backend(model: str, device: str = "cpu", **opts: Any) -> ASTBackend:
    """The family table's loader: an AST hub name or local folder (the audio kind's default family)."""
    if opts.pop("beats_checkpoint", None) is not None:
        raise UserError(f"--beats_checkpoint is for the easyaudio BEATs models, not {model!r}; leave it out")
    if opts.pop("torch_compile", False):
        raise UserError(f"--torch_compile is for the easyaudio EnCodecMAE models, not {model!r}; leave it out")
    if os.path.exists(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise UserError(f"{model!r} is not a model folder (no config.json in it); pass an easyaudio model name "
                            f"({', '.join(_easyaudio_models())}) or an AST folder saved with save_pretrained")
    elif "/" not in model:
        raise UserError(f"unknown audio model {model!r}: give an easyaudio model ({', '.join(_easyaudio_models())}), "
                        "a Hugging Face AST name such as MIT/ast-finetuned-audioset-10-10-0.4593, or an AST folder")
    return ASTBackend(model, device, **opts)


def _easyaudio_models() -> tuple[str, ...]:
    from wordreps.embeddings.backends.easyaudio import EASYAUDIO_MODELS

    return EASYAUDIO_MODELS
