"""The one audio loader: soundfile, at the rate the model expects, or a clear error."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from wordreps.common.errors import UserError


def load_audio(path: str | os.PathLike, expected_rate_hz: int) -> np.ndarray:
    """Read a mono file as float32 samples in [-1, 1].

    Refuses (with :class:`UserError`) a missing, unreadable or empty file, more than one channel, and a
    sample rate other than ``expected_rate_hz``: a silent mismatch would shift every word's frames.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"audio file {path} does not exist; check the alignment JSON's audio paths or --audio_root")
    try:
        info = sf.info(path)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError with a terse message
        raise UserError(f"audio file {path} cannot be read ({err}); re-download or re-create it") from err
    if info.channels != 1:
        raise UserError(f"audio file {path} has {info.channels} channels; the models take mono audio, "
                        "convert it to one channel first")
    if info.samplerate != expected_rate_hz:
        raise UserError(
            f"audio file {path} is at {info.samplerate} Hz but the model expects {expected_rate_hz} Hz; "
            f"use the corpus copy at that rate (datasets/resample_corpus.py makes a 24 kHz copy) and the matching alignment JSON"
        )
    if info.frames == 0:
        raise UserError(f"audio file {path} is empty (0 samples); re-download or remove the utterance")
    try:
        samples, _ = sf.read(path, dtype="float32", always_2d=False)
    except Exception as err:
        raise UserError(f"audio file {path} cannot be decoded ({err}); re-download or re-create it") from err
    return np.ascontiguousarray(samples, dtype=np.float32)
