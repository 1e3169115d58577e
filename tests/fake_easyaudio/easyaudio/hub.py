"""Stand-in for ``easyaudio.hub`` with the real models' shapes and rates (see ``__init__``).

Where the real code (mrpep/easyaudio 12e6c0e with encodecmae 4a3be20, run with random weights) differs from
easyaudio's documentation, the stand-in does what the real code does:

- ``get_model(name, device=...)`` ignores ``device`` (the real one builds ``Wrapper(name)``, which defaults to
  ``cuda:0``); the wrappers themselves take ``device``, and record it here.
- EnCodecMAE (``encodecmae_*``), 24 kHz: one frame per 320 samples, ``ceil(N / 320)`` frames for a 4 s chunk
  of N samples (EnCodec pads its input); like the pinned encodecmae's ``extract_features_from_array`` the audio
  is run in 4 s chunks and nothing is dropped. ``DROP_SHORT_LAST_CHUNK = True`` makes it drop a last chunk of at
  most 2048 samples, as encodecmae v2 does. Its ``model.visible_encoder.compile`` starts True, as the pinned
  encodecmae's gin config leaves it. Extraction points: one per encoder block.

- BEATs (``BEATs_*``), 16 kHz: ``F = (N - 400)//160 + 1`` fbank frames (25 ms window, 10 ms shift), ``F // 16``
  time steps of 8 frequency patches, returned as ``8 * steps`` tokens in time-major order (token 8*s + f), as
  numpy arrays. Extraction points: the transformer input, then one per block. The wrapper holds a stand-in
  ``BEATs`` module (``easyaudio.models.beats.BEATs``) whose ``scale`` multiplies every activation.

Features (``D = 16``): layer 0 is readable, the other layers are fixed random linear mixes of it.
- EnCodecMAE frame t: [t, energy, mean, max |x|, 1, 0, ...] over samples [320 t, 320 t + 320).
- BEATs token (s, f): scale * [s, f, f*f, energy * (f + 1), 1, 0, ...], energy over samples
  [2560 s, 2560 s + 2800).
"""
from __future__ import annotations

import math

import numpy as np
import torch

DIM = 16
_N_FEATURES = 5


def _mix(layer: int) -> np.ndarray:
    """Fixed (5, DIM) matrix for ``layer``; layer 0 is the identity onto the first 5 dims."""
    if layer == 0:
        w = np.zeros((_N_FEATURES, DIM), dtype=np.float64)
        w[np.arange(_N_FEATURES), np.arange(_N_FEATURES)] = 1.0
        return w
    return np.random.default_rng(1000 + layer).normal(size=(_N_FEATURES, DIM))


def _as_1d(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"stand-in easyaudio expects a 1-D waveform, got shape {x.shape}")
    return x.astype(np.float64)


class _Flag:
    compile = True


class _EncodecMAE:
    """Where the real wrapper keeps encodecmae's model (``.model``), with its transformers' compile flags."""

    def __init__(self) -> None:
        self.visible_encoder = _Flag()
        self.decoder = _Flag()


class EnCodecMAEWrapped:
    HOP = 320
    CHUNK = 4 * 24000
    MIN_LENGTH = 2048
    DROP_SHORT_LAST_CHUNK = False   # the pinned encodecmae (4a3be20) drops nothing; v2 drops <= MIN_LENGTH

    def __init__(self, model: str, device: str = "cuda:0") -> None:
        self.name = model
        self.device = device
        self.sr = 24000
        self.num_blocks = 6 if "large" in model else 4
        self.model = _EncodecMAE()

    def frame_features(self, x: np.ndarray) -> np.ndarray:
        """(T, 5) readable features of the frames that the chunked model produces."""
        rows = []
        for start in range(0, x.size, self.CHUNK):
            chunk = x[start:start + self.CHUNK]
            if self.DROP_SHORT_LAST_CHUNK and chunk.size <= self.MIN_LENGTH:
                continue
            for j in range(math.ceil(chunk.size / self.HOP)):
                t = start // self.HOP + j
                seg = chunk[j * self.HOP:(j + 1) * self.HOP]
                rows.append([t, np.mean(seg ** 2), np.mean(seg), np.max(np.abs(seg)), 1.0])
        return np.asarray(rows, dtype=np.float64).reshape(-1, _N_FEATURES)

    def extract_activations_from_array(self, x):
        phi = self.frame_features(_as_1d(x))
        return [(phi @ _mix(layer)).astype(np.float32) for layer in range(self.num_blocks)]

    @staticmethod
    def list_available_models():
        return {f"encodecmae_{k}": f"huggingface:lpepino/encodecmae-{k}"
                for k in ["base", "small", "base-st", "large", "large-st"]}


class BEATsWrapped:
    SHIFT = 160
    WINDOW = 400
    PATCH = 16
    FREQ_PATCHES = 8
    NAMES = ["BEATs_iter1", "BEATs_iter2", "BEATs_iter3", "BEATs_iter3+_AS20K", "BEATs_iter3+_AS2M"]

    def __init__(self, model: str, device: str = "cuda:0") -> None:
        from easyaudio.models.beats.BEATs import BEATs, BEATsConfig

        if model not in self.NAMES:
            raise Exception(f"Unrecognized model. Available BEATs models are: {self.NAMES}")
        self.cfg = BEATsConfig()
        self.model = BEATs(self.cfg)
        self.device = device
        self.sr = 16000

    def token_features(self, x: np.ndarray) -> np.ndarray:
        """(8 * steps, 5) readable features, time-major."""
        frames = (x.size - self.WINDOW) // self.SHIFT + 1 if x.size >= self.WINDOW else 0
        steps = frames // self.PATCH
        rows = []
        for s in range(steps):
            a = s * self.PATCH * self.SHIFT
            energy = np.mean(x[a:a + (self.PATCH - 1) * self.SHIFT + self.WINDOW] ** 2)
            for f in range(self.FREQ_PATCHES):
                rows.append([s, f, f * f, energy * (f + 1), 1.0])
        return np.asarray(rows, dtype=np.float64).reshape(-1, _N_FEATURES)

    def extract_activations_from_array(self, x):
        phi = self.token_features(_as_1d(x)) * float(self.model.scale.detach())
        return [(phi @ _mix(layer)).astype(np.float32) for layer in range(self.model.cfg.encoder_layers + 1)]

    @staticmethod
    def list_available_models():
        return {n: n for n in BEATsWrapped.NAMES}


available_models = {"BEATs": BEATsWrapped, "encodecmae": EnCodecMAEWrapped}


def get_model(model_name, device="cuda:0"):
    for k, v in available_models.items():
        if model_name.startswith(k):
            model = v(model_name)  # like easyaudio 12e6c0e: `device` is not passed on
    return model  # like easyaudio: an unknown prefix ends in UnboundLocalError


def list_available_models():
    names = []
    for v in available_models.values():
        names += list(v.list_available_models().keys())
    return names
