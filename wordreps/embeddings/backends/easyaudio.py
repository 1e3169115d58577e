"""easyaudio models (EnCodecMAE, BEATs): the ``easyaudio`` family.

easyaudio (https://github.com/mrpep/easyaudio), through its wrapper classes::

    model = easyaudio.hub.available_models[prefix](name, device=...)   # what get_model(name) builds
    acts = model.extract_activations_from_array(x)   # x: 1-D float32 waveform at the model's rate
    # acts: one (T, D) array per extraction point (numpy or torch)

(``get_model`` itself never passes ``device`` on, and BEATs' wrapper always asks the Hugging Face hub first;
``easyaudio_support.py`` beside this file says how the adapter gets round both.)

- EnCodecMAE (``encodecmae_*``): 24 kHz; EnCodec's encoder gives one frame every 320 samples (75 Hz). easyaudio
  returns the output of every transformer block of the encoder and nothing for the transformer's input, so
  here layer 0 is the output of block 1 (layer names say so). What the last layer is and whether a short last
  chunk is dropped depend on the encodecmae version (``easyaudio_support.ENCODECMAE_BEHAVIOUR``; the manifest
  records the version and commit): at the commit easyaudio pins, the last layer is before the final norm and
  nothing is dropped (T = ceil(N / 320)); encodecmae v2 applies the final norm to the last layer and drops a last
  chunk of at most 2048 samples, so T can fall a few frames short of the geometry. A word's frames are clipped
  to those produced, and a word with none left is an error naming it. torch.compile is off unless asked for.
- BEATs (``BEATs_*``): 16 kHz; a 128-bin fbank (25 ms window, 10 ms shift) cut into 16x16 patches gives 8
  frequency patches for every 16 fbank frames (160 ms). easyaudio returns the transformer's input followed by
  every block's output (layer 0 = the input to block 1, as everywhere in this toolkit), each a sequence of
  ``8 * steps`` tokens in time-major order (token ``8*s + f`` is time step ``s``, frequency patch ``f``). The
  tokens are folded back to time steps by averaging each group of 8 consecutive tokens.
- easyaudio's first returned array is layer 0 and the order is kept. It takes one 1-D waveform per call, so
  utterances are run one at a time. Its call runs under the run's compute precision (``common/precision.py``);
  since these models have not been checked under autocast, ``--precision auto`` means float32 for them and
  only an explicit ``--precision bfloat16`` lowers it.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
import torch

from wordreps.alignments.geometry import geometry_for_model
from wordreps.common.errors import UserError, one_line
from wordreps.common.hashing import sha256_file
from wordreps.common.precision import autocast, resolve_precision
from wordreps.embeddings.backends.easyaudio_support import (
    build_model,
    encodecmae_provenance,
    set_compile,
    source_provenance,
)
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.pooling import pool_utterances

# ------------------------------------------------------------------------------------------------ easyaudio

EASYAUDIO_REPO = "https://github.com/mrpep/easyaudio"
EASYAUDIO_INSTALL = (f"git clone --recursive {EASYAUDIO_REPO} && cd easyaudio && bash install.sh && "
                     "pip install -e .")
EASYAUDIO_HINT = f"install it with: {EASYAUDIO_INSTALL} (see docs/models.md: Installing easyaudio)"

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
        raise UserError(f"easyaudio is installed but cannot be imported ({type(err).__name__}: {one_line(err)}); "
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

    def __init__(self, model: str, device: str = "cpu", *, beats_checkpoint: str | None = None,
                 torch_compile: bool = False, precision: str = "auto") -> None:
        name = easyaudio_model_name(model)
        if name is None:
            raise UserError(f"unknown easyaudio model {model!r}; known: {', '.join(EASYAUDIO_MODELS)} "
                            f"(byola_* pools over time and has no word-level frames)")
        self.model_name = name
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device, family_checked=False)
        self.is_beats = name in BEATS_MODELS
        if torch_compile and self.is_beats:  # before the load, which downloads and builds the model
            raise UserError("--torch_compile is for EnCodecMAE models (encodecmae's own torch.compile), not BEATs")
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
            raise UserError(f"easyaudio could not load model {name!r} ({type(err).__name__}: {one_line(err)}); "
                            "check the network for the first download (easyaudio fetches the weights)"
                            f"{offline}, the device, and the easyaudio install") from err
        # encodecmae before v2 compiles its encoder (minutes on a CPU before the first vector); off unless asked for
        self.torch_compile = bool(torch_compile)
        self.compile_was = None if self.is_beats else set_compile(self.model, self.torch_compile)
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
        with torch.no_grad(), autocast(self.device, self.precision):
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
            # frames are clipped to those produced: encodecmae v2 drops a last chunk of <= 2048 samples
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
        }
        if self.is_beats:
            info["beats_checkpoint"] = self.beats_checkpoint
            info["beats_checkpoint_sha256"] = sha256_file(self.beats_checkpoint) if self.beats_checkpoint else None
        else:
            info["encodecmae"] = encodecmae_provenance()
            info["torch_compile"] = ("on" if self.torch_compile else
                                     "turned off by the adapter" if self.compile_was else "off")
        return info


# ---------------------------------------------------------------------------------------------- loading

def load_easyaudio_backend(model: str, device: str = "cpu", *, beats_checkpoint: str | None = None,
                           torch_compile: bool = False, precision: str = "auto", **_: Any) -> "EasyAudioBackend":
    """The family table's loader: an easyaudio model by name (any letter case); ``beats_checkpoint``: a local
    BEATs checkpoint file for machines without network; ``torch_compile``: keep encodecmae's torch.compile on;
    ``precision``: see ``common/precision.py`` (``auto`` is float32 for these models); an unknown name is
    refused by the constructor."""
    return EasyAudioBackend(model, device, beats_checkpoint=beats_checkpoint, torch_compile=torch_compile,
                            precision=precision)
