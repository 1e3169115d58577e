"""The one audio loader: soundfile, at the rate the model expects, or a clear error."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from wordreps.common.errors import UserError

_EMPTY_HINT = "re-download or remove the utterance"


def _flac_total_samples(path: str) -> int | None:
    """Total samples recorded in a FLAC file's STREAMINFO block, or None if the file does not start with one.

    STREAMINFO (34 bytes after the 4-byte marker and 4-byte block header) holds, in bits: min/max block size
    (16+16), min/max frame size (24+24), rate (20), channels-1 (3), bits-1 (5), total samples (36), MD5 (128).
    """
    with open(path, "rb") as fh:
        head = fh.read(42)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    return (int.from_bytes(head[8:42], "big") >> 128) & ((1 << 36) - 1)


def audio_header(path: str | os.PathLike):
    """soundfile's header info for ``path``, or a :class:`UserError` for a missing, unreadable or empty file.

    libsndfile cannot open a 0-byte file, and reports a FLAC whose header counts 0 samples as endless;
    both are refused here as empty rather than as unreadable (or, worse, accepted).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"audio file {path} does not exist; restore it, or re-create the alignment JSON that names it "
                        "(relative audio paths are read from the working directory: run from the folder the "
                        "alignment was made in)")
    empty = os.path.getsize(path) == 0 or _flac_total_samples(path) == 0
    if empty:
        raise UserError(f"audio file {path} is empty (0 samples); {_EMPTY_HINT}")
    try:
        return sf.info(path)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError with a terse message
        raise UserError(f"audio file {path} cannot be read ({err}); re-download or re-create it") from err


def check_audio(path: str | os.PathLike, expected_rate_hz: int) -> int:
    """The header-only checks of :func:`load_audio` (no decoding); returns the number of samples."""
    path = os.fspath(path)
    info = audio_header(path)
    if info.channels != 1:
        raise UserError(f"audio file {path} has {info.channels} channels; the models take mono audio, "
                        "convert it to one channel first")
    if info.samplerate != expected_rate_hz:
        raise UserError(
            f"audio file {path} is at {info.samplerate} Hz but the model expects {expected_rate_hz} Hz; "
            f"use the corpus copy at that rate (datasets/resample_corpus.py makes a 24 kHz copy) and the matching alignment JSON"
        )
    if info.frames == 0:
        raise UserError(f"audio file {path} is empty (0 samples); {_EMPTY_HINT}")
    return int(info.frames)


def load_audio(path: str | os.PathLike, expected_rate_hz: int) -> np.ndarray:
    """Read a mono file as float32 samples in [-1, 1].

    Refuses (with :class:`UserError`) a missing, unreadable or empty file, more than one channel, and a
    sample rate other than ``expected_rate_hz``: a silent mismatch would shift every word's frames.
    """
    path = os.fspath(path)
    check_audio(path, expected_rate_hz)
    try:
        samples, _ = sf.read(path, dtype="float32", always_2d=False)
    except Exception as err:
        raise UserError(f"audio file {path} cannot be decoded ({err}); re-download or re-create it") from err
    return np.ascontiguousarray(samples, dtype=np.float32)
