"""General-audio backends: easyaudio models (EnCodecMAE, BEATs) and Hugging Face's Audio Spectrogram Transformer.

Both turn one utterance's waveform into hidden states of shape (layers, time steps, dim) whose time steps
follow a :class:`FrameGeometry` (``alignments/geometry.py``), so a word's vector is the mean of the time
steps the alignment JSON gives it (``first_frame..last_frame``, inclusive), pooled by ``pooling.pool_words``.

easyaudio (https://github.com/mrpep/easyaudio), through its wrapper classes::

    model = easyaudio.hub.available_models[prefix](name, device=...)   # what get_model(name) builds
    acts = model.extract_activations_from_array(x)   # x: 1-D float32 waveform at the model's rate
    # acts: one (T, D) array per extraction point (numpy or torch)

(``get_model`` itself never passes ``device`` on, and BEATs' wrapper always asks the Hugging Face hub first;
``embeddings/easyaudio_support.py`` says how the adapter gets round both.)

- EnCodecMAE (``encodecmae_*``): 24 kHz; EnCodec's encoder gives one frame every 320 samples (75 Hz). easyaudio
  returns the output of every transformer block of the encoder and nothing for the transformer's input, so
  here layer 0 is the output of block 1 (layer names say so). What the last layer is and whether a short last
  chunk is dropped depend on the encodecmae version (``easyaudio_support.ENCODECMAE_BEHAVIOUR``; the manifest
  records the version and commit): at the commit easyaudio pins, the last layer is before the final norm and
  nothing is dropped (T = ceil(N / 320)); encodecmae v2 applies the final norm to the last layer and drops a last
  chunk of at most 2048 samples, so T can fall a few frames short of the geometry. A word's frames are clipped
  to those produced, and a word with none left is an error naming it. torch.compile is turned off.
- BEATs (``BEATs_*``): 16 kHz; a 128-bin fbank (25 ms window, 10 ms shift) cut into 16x16 patches gives 8
  frequency patches for every 16 fbank frames (160 ms). easyaudio returns the transformer's input followed by
  every block's output (layer 0 = the input to block 1, as everywhere in this toolkit), each a sequence of
  ``8 * steps`` tokens in time-major order (token ``8*s + f`` is time step ``s``, frequency patch ``f``). The
  tokens are folded back to time steps by averaging each group of 8 consecutive tokens.
- easyaudio's first returned array is layer 0 and the order is kept. It takes one 1-D waveform per call, so
  utterances are run one at a time. Its model runs in its own precision (no autocast).

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

import contextlib
import importlib
import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from wordreps.alignments.geometry import FrameGeometry, geometry_for_model
from wordreps.common.atomic import sha256_file
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.easyaudio_support import (build_model, encodecmae_provenance, source_provenance,
                                                   turn_off_compile)
from wordreps.embeddings.pooling import autocast_for, pool_utterances

# ------------------------------------------------------------------------------------------------ easyaudio

EASYAUDIO_REPO = "https://github.com/mrpep/easyaudio"
EASYAUDIO_INSTALL = (f"git clone --recursive {EASYAUDIO_REPO} && cd easyaudio && bash install.sh && "
                     "pip install -e .")
EASYAUDIO_HINT = f"install it with: {EASYAUDIO_INSTALL} (see README: Installing easyaudio)"

# The easyaudio models whose activations keep a time axis. BYOL-A (byola_*) pools over time, so it has no
# word-level frames and is not offered.
ENCODECMAE_MODELS = ("encodecmae_small", "encodecmae_base", "encodecmae_base-st", "encodecmae_large",
                     "encodecmae_large-st")
BEATS_MODELS = ("BEATs_iter1", "BEATs_iter2", "BEATs_iter3", "BEATs_iter3+_AS20K", "BEATs_iter3+_AS2M")
EASYAUDIO_MODELS = ENCODECMAE_MODELS + BEATS_MODELS

BEATS_FREQ_PATCHES = 8        # 128 mel bins / 16-bin patches
# Probe length used at load time to learn the number of layers and the width, and to check the frame rate.
_PROBE_S = 2.0


def easyaudio_model_name(name: str) -> str | None:
    """The canonical easyaudio name for ``name`` (any case), or None if it is not one."""
    for known in EASYAUDIO_MODELS:
        if known.lower() == name.strip().lower():
            return known
    return None


def _looks_like_easyaudio(name: str) -> bool:
    return name.strip().lower().startswith(("encodecmae", "beats", "byola"))


def import_easyaudio_hub(model: str) -> Any:
    """``easyaudio.hub``, or a one-line :class:`UserError` with the install command."""
    try:
        return importlib.import_module("easyaudio.hub")
    except ModuleNotFoundError as err:
        if err.name in ("easyaudio", "easyaudio.hub"):
            raise UserError(f"easyaudio is not installed, and model {model!r} needs it; {EASYAUDIO_HINT}") from err
        raise UserError(f"easyaudio is installed but cannot be imported (missing module {err.name!r}); "
                        f"re-run its install.sh, or reinstall it: {EASYAUDIO_HINT}") from err
    except Exception as err:  # easyaudio imports heavy dependencies at import time (torchaudio, librosa, ...)
        raise UserError(f"easyaudio is installed but cannot be imported ({type(err).__name__}: {_one_line(err)}); "
                        f"reinstall it: {EASYAUDIO_HINT}") from err


def fold_time_major(tokens: torch.Tensor, group: int) -> torch.Tensor:
    """(T_tokens, D) tokens ordered time-major in groups of ``group`` -> (T_tokens // group, D) step means."""
    t_tokens, dim = tokens.shape
    if t_tokens % group:
        raise ValueError(f"{t_tokens} tokens are not a whole number of {group}-patch time steps")
    return tokens.reshape(t_tokens // group, group, dim).mean(dim=1)


class EasyAudioBackend(Backend):
    """An easyaudio model (EnCodecMAE or BEATs), one utterance at a time, pooled on ``device``."""

    family = "easyaudio"
    needs_audio = True
    # easyaudio takes one unpadded waveform per call: nothing is ever padded.
    padding_sensitive = True

    def __init__(self, model: str, device: str = "cpu", *, beats_checkpoint: str | None = None) -> None:
        name = easyaudio_model_name(model)
        if name is None:
            raise UserError(f"unknown easyaudio model {model!r}; known: {', '.join(EASYAUDIO_MODELS)} "
                            f"(byola_* pools over time and has no word-level frames)")
        self.model_name = name
        self.device = torch.device(device)
        self.is_beats = name in BEATS_MODELS
        self.geometry = geometry_for_model(name)  # every name in EASYAUDIO_MODELS is in the registry
        self.sample_rate_hz = self.geometry.sample_rate_hz
        self.beats_checkpoint = None if beats_checkpoint is None else os.path.abspath(beats_checkpoint)
        hub = import_easyaudio_hub(name)
        try:
            self.model = build_model(hub, name, self.device, self.beats_checkpoint)
        except UserError:
            raise
        except Exception as err:  # download failures, missing checkpoints, CUDA errors: one line, not a traceback
            offline = (" (offline: pass --beats_checkpoint with the BEATs_*.pt file, since easyaudio always asks "
                       "the Hugging Face hub first)" if self.is_beats else "")
            raise UserError(f"easyaudio could not load model {name!r} ({type(err).__name__}: {_one_line(err)}); "
                            "check the network for the first download (easyaudio fetches the weights)"
                            f"{offline}, the device, and the easyaudio install") from err
        # encodecmae before v2 compiles its encoder for every new input length: far slower than eager on a CPU
        self.compile_turned_off = False if self.is_beats else turn_off_compile(self.model)
        model_rate = getattr(self.model, "sr", None)
        if model_rate is not None and int(model_rate) != self.sample_rate_hz:
            raise UserError(f"easyaudio model {name!r} reports {model_rate} Hz but this toolkit's geometry for it "
                            f"is {self.sample_rate_hz} Hz; check the easyaudio version")
        # One short run tells the number of extraction points and the width, and checks the frame rate.
        probe = np.zeros(int(_PROBE_S * self.sample_rate_hz), dtype=np.float32)
        steps = self._hidden(probe, where="a 2 s probe of silence")
        self.num_layers, t_probe, self.dim = (int(s) for s in steps.shape)
        expected = self.geometry.num_frames(probe.size)
        if not (expected <= t_probe <= expected + 1):
            raise UserError(f"easyaudio model {name!r} gave {t_probe} time steps for {_PROBE_S:g} s of audio, "
                            f"but its geometry ({self.geometry.frame_rate_hz:g} Hz) gives {expected}; check the "
                            "easyaudio version")
        if self.is_beats:
            self.layer_names = ["input"] + [f"layer_{i}" for i in range(1, self.num_layers)]
        else:  # no input entry: file layer 0 is block 1's output
            self.layer_names = [f"layer_{i}" for i in range(1, self.num_layers + 1)]

    def cost(self, utterance: Utterance) -> float:
        return utterance.duration_s

    def _hidden(self, audio: np.ndarray, where: str) -> torch.Tensor:
        """(layers, time steps, dim) float32 on the device for one 1-D waveform."""
        x = np.ascontiguousarray(audio, dtype=np.float32)
        with torch.no_grad():
            acts = self.model.extract_activations_from_array(x)
        if isinstance(acts, (np.ndarray, torch.Tensor)) and acts.ndim == 3:
            acts = list(acts)
        if not isinstance(acts, (list, tuple)) or not acts:
            raise UserError(f"easyaudio model {self.model_name!r} returned {type(acts).__name__} for {where}, "
                            "not a list of (T, D) arrays; check the easyaudio version")
        layers = [torch.as_tensor(a).to(self.device, torch.float32) for a in acts]
        shapes = {tuple(a.shape) for a in layers}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise UserError(f"easyaudio model {self.model_name!r} returned layers of shapes {sorted(shapes)} for "
                            f"{where}; expected one (T, D) shape; check the easyaudio version")
        hidden = torch.stack(layers)
        if self.is_beats:
            if hidden.shape[1] % BEATS_FREQ_PATCHES:
                raise UserError(f"BEATs model {self.model_name!r} returned {hidden.shape[1]} tokens for {where}, "
                                f"not a multiple of {BEATS_FREQ_PATCHES} frequency patches; check the easyaudio "
                                "version")
            hidden = torch.stack([fold_time_major(h, BEATS_FREQ_PATCHES) for h in hidden])
        return hidden

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for item in batch:
            utt = item.utterance
            if item.audio is None or item.audio.ndim != 1:
                raise ValueError(f"utterance {utt.utt_id}: the core must pass 1-D audio")
            hidden = self._hidden(item.audio, where=f"utterance {utt.utt_id}")
            if hidden.shape[0] != self.num_layers or hidden.shape[2] != self.dim:
                raise UserError(f"easyaudio model {self.model_name!r} returned {hidden.shape[0]} layers of width "
                                f"{hidden.shape[2]} for utterance {utt.utt_id}, but {self.num_layers} of "
                                f"{self.dim} at load time")
            # frames are clipped to those produced: encodecmae drops a last chunk of <= 2048 samples
            out.extend(pool_utterances(hidden.unsqueeze(1), [int(hidden.shape[1])], [utt]))
        return out

    def describe(self) -> dict:
        easyaudio = source_provenance("easyaudio")
        info = {
            "easyaudio_model": self.model_name,
            "easyaudio_version": easyaudio["version"],
            "easyaudio_commit": easyaudio["commit"],
            "layers": ("easyaudio's extraction points in order: the transformer input, then each block's output"
                       if self.is_beats else
                       "easyaudio's extraction points in order: each encoder block's output (see encodecmae."
                       "behaviour for the last one); layer 0 is block 1's output"),
            "time_steps": ("8 frequency-patch tokens per 160 ms step (time-major), averaged per step"
                           if self.is_beats else "EnCodec frames, 320 samples (13.33 ms) apart"),
            "precision": "float32 (easyaudio's own)",
        }
        if self.is_beats:
            info["beats_checkpoint"] = self.beats_checkpoint
            info["beats_checkpoint_sha256"] = sha256_file(self.beats_checkpoint) if self.beats_checkpoint else None
        else:
            info["encodecmae"] = encodecmae_provenance()
            info["torch_compile"] = "turned off by the adapter" if self.compile_turned_off else "off"
        return info


# ------------------------------------------------------------------------------------------------------ AST

AST_MODEL_TYPE = "audio-spectrogram-transformer"


def ast_geometry(sample_rate_hz: int, patch_size: int, time_stride: int) -> FrameGeometry:
    """Geometry of AST time steps: hop ``time_stride`` fbank shifts, span ``patch_size - 1`` shifts + a window."""
    shift = sample_rate_hz // 100          # 10 ms fbank shift
    window = sample_rate_hz * 25 // 1000   # 25 ms fbank window
    return FrameGeometry(sample_rate_hz, time_stride * shift, (patch_size - 1) * shift + window)


def _load_error(model: str, err: Exception) -> UserError:
    text = _one_line(err)
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
                 autocast: bool | None = None) -> None:
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        self.model_name = model
        self.device = torch.device(device)
        try:
            config = AutoConfig.from_pretrained(model)
        except (OSError, ValueError) as err:
            raise _load_error(model, err) from err
        if getattr(config, "model_type", None) != AST_MODEL_TYPE:
            raise UserError(f"model {model!r} is a {getattr(config, 'model_type', '?')!r} model, not an Audio "
                            f"Spectrogram Transformer; general-audio models are the easyaudio models "
                            f"({', '.join(EASYAUDIO_MODELS)}) and AST names or folders")
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
        self.autocast = (self.device.type == "cuda") if autocast is None else bool(autocast)

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

    def _autocast(self):
        return autocast_for(self.device) if self.autocast else contextlib.nullcontext()

    def step_states(self, chunks: Sequence[np.ndarray]) -> torch.Tensor:
        """(layers, chunks, chunk_steps, dim) float32: patch tokens averaged over frequency, per time step."""
        feats = self.feature_extractor(list(chunks), sampling_rate=self.sample_rate_hz, return_tensors="pt")
        values = feats["input_values"]
        outs = []
        for start in range(0, values.shape[0], self.max_chunks_per_forward):
            x = values[start:start + self.max_chunks_per_forward].to(self.device)
            with torch.inference_mode(), self._autocast():
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
            "transformers_version": _dist_version("transformers"),
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
            "precision": "bf16/fp16 autocast" if self.autocast else "float32",
        }


# ---------------------------------------------------------------------------------------------- dispatch

def load_audio_backend(model: str, device: str = "cpu", **opts: Any) -> Backend:
    """A general-audio backend by name: an easyaudio model name, or an AST hub name / local folder."""
    beats_checkpoint = opts.pop("beats_checkpoint", None)
    if beats_checkpoint is not None and easyaudio_model_name(model) is None:
        raise UserError(f"--beats_checkpoint is for the easyaudio BEATs models, not {model!r}; leave it out")
    if os.path.exists(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise UserError(f"{model!r} is not a model folder (no config.json in it); pass an easyaudio model name "
                            f"({', '.join(EASYAUDIO_MODELS)}) or an AST folder saved with save_pretrained")
        return ASTBackend(model, device, **opts)
    if easyaudio_model_name(model) is not None:
        return EasyAudioBackend(model, device, beats_checkpoint=beats_checkpoint)
    if _looks_like_easyaudio(model):
        raise UserError(f"unknown easyaudio model {model!r}; known: {', '.join(EASYAUDIO_MODELS)} "
                        f"(byola_* pools over time and has no word-level frames)")
    if "/" not in model:
        raise UserError(f"unknown audio model {model!r}: give an easyaudio model ({', '.join(EASYAUDIO_MODELS)}), "
                        "a Hugging Face AST name such as MIT/ast-finetuned-audioset-10-10-0.4593, or an AST folder")
    return ASTBackend(model, device, **opts)


# ------------------------------------------------------------------------------------------------ helpers

def _one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _dist_version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
