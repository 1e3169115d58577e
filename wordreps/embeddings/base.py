"""The contract between the extraction core and one backend per model family.

The core (``wordreps/embeddings/extract.py``) reads the alignment JSON, sorts and batches utterances, loads audio,
resumes, shards, converts dtypes and writes files. A backend only turns a batch of utterances into one
float32 array per utterance of shape (layers, words, dim).

A backend with a model runs its forward passes on ``device`` at ``precision`` (resolved once, when it is
built, by ``common/precision.py``: float32, bfloat16 or float16) and pools in float32 whatever the precision.

Layer numbering, the same for every model: 0 is the input to the first block (BERT's embeddings,
wav2vec2's projected CNN features), layer i is the output of block i.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from wordreps.alignments.geometry import FrameGeometry


@dataclass(frozen=True)
class Word:
    """One word occurrence of the alignment: text, interval in seconds and its frames (inclusive)."""
    word: str
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int


@dataclass
class Utterance:
    utt_id: str
    audio_path: str
    transcript: str
    num_samples: int
    sample_rate_hz: int
    words: list[Word]

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz


@dataclass
class BatchItem:
    utterance: Utterance
    audio: np.ndarray | None = None  # float32 mono at backend.sample_rate_hz; None for text backends


class Backend(ABC):
    """One model family. Subclasses set the attributes in ``__init__``."""

    model_name: str            # as the user gave it (hub name or path)
    family: str                # "glove" | "hf-text" | "s3prl" | "hf-speech" | "easyaudio" | "hf-audio"
    num_layers: int            # including layer 0
    dim: int
    layer_names: list[str]
    geometry: FrameGeometry | None = None   # audio backends: must equal the alignment JSON's geometry
    sample_rate_hz: int | None = None       # audio backends: rate the core loads audio at
    needs_audio: bool = False
    # Models whose outputs change with padding (group-norm wav2vec2-base, ...) are batched only with
    # utterances of exactly equal length.
    padding_sensitive: bool = False
    # Backends whose words may have no vector (GloVe's out-of-vocabulary words) return NaN rows for them and
    # set this; for any other backend a NaN is the model's overflow and stops the run.
    words_can_be_missing: bool = False
    device = None              # torch.device of the model; None for backends without one (GloVe)
    precision: str = "float32"  # compute precision of the forward passes (common/precision.py)

    @abstractmethod
    def cost(self, utterance: Utterance) -> float:
        """Batch budget units of one utterance: seconds of audio, or tokens for text models."""

    @abstractmethod
    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        """One float32 array (num_layers, len(words), dim) per item; NaN rows for words with no vector."""

    def describe(self) -> dict:
        """Model id, revision and anything else the manifest should record."""
        return {}

    def min_samples(self) -> int | None:
        """The fewest samples an utterance may have: the model's receptive field (a shorter waveform gives no
        whole frame, and a convolution stack fails on it); None for text models."""
        if not self.needs_audio or self.geometry is None:
            return None
        return int(self.geometry.receptive_field_samples)

    def compute(self) -> dict:
        """The manifest's ``compute`` record: device (GPU name), precision. Folders refuse a run that differs."""
        from wordreps.common.precision import compute_record

        return compute_record(self.device, self.precision)  # None (no torch device): recorded as the CPU
