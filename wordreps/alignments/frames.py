"""Which model frames a word owns. The frame rule (also in the README):

    A model frame t with hop H samples and receptive field R samples covers samples [tH, tH+R) and is
    centred at (tH + R/2) / sr seconds. A word [a, b) (seconds) owns the frames whose centre falls in
    [a, b). A word too short to own one gets the single frame nearest its midpoint (a tie goes to the
    later frame). Frames are limited to the frames the audio gives, 0 .. FrameGeometry.num_frames(N) - 1
    for N samples, so a word past the audio's end gets the last frame(s), and a word that starts past
    the end gets the last frame. No word ever maps to zero frames.

Arithmetic is done in half-samples (2 * seconds * sr), where frame centres are the integers 2tH + R; a
time that is within 1e-6 half-samples of an integer is snapped to it, so a boundary written as 0.02 s in a
TextGrid that lands exactly on a centre is decided by the rule, not by floating-point noise.
"""
from __future__ import annotations

import numpy as np

from wordreps.alignments.geometry import FrameGeometry

_SNAP = 1e-6  # half-samples


def _half_samples(t_s: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Times in seconds -> half-samples, snapped to integers when within float noise of one."""
    v = np.asarray(t_s, dtype=np.float64) * (2.0 * sample_rate_hz)
    r = np.round(v)
    return np.where(np.abs(v - r) <= _SNAP, r, v)


def words_frames(start_s: np.ndarray, end_s: np.ndarray, geometry: FrameGeometry,
                 num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised frame rule: inclusive (first, last) frame arrays (int64) for words [start_s, end_s).

    ``start_s``/``end_s`` are in seconds, ``num_samples`` is the audio's length in samples. Requires
    ``end_s >= start_s`` elementwise (checked by the TextGrid reader; asserted here).
    """
    start = np.atleast_1d(np.asarray(start_s, dtype=np.float64))
    end = np.atleast_1d(np.asarray(end_s, dtype=np.float64))
    if start.shape != end.shape:
        raise ValueError(f"start_s and end_s differ in shape: {start.shape} vs {end.shape}")
    if np.any(end < start) or not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
        raise ValueError("every word needs finite times with end_s >= start_s")
    two_h = 2 * geometry.hop_samples
    r = geometry.receptive_field_samples
    n = geometry.num_frames(int(num_samples))
    a = _half_samples(start, geometry.sample_rate_hz)
    b = _half_samples(end, geometry.sample_rate_hz)
    # centre of t (half-samples) = 2tH + R;  a <= 2tH + R < b  <=>  ceil((a-R)/2H) <= t <= ceil((b-R)/2H) - 1
    first = np.ceil((a - r) / two_h).astype(np.int64)
    last = np.ceil((b - r) / two_h).astype(np.int64) - 1
    first = np.maximum(first, 0)
    last = np.minimum(last, n - 1)
    # No owned frame inside [0, n): the frame whose centre is nearest the midpoint, within the audio.
    nearest = np.floor(((a + b) / 2 - r) / two_h + 0.5).astype(np.int64)
    nearest = np.clip(nearest, 0, n - 1)
    empty = first > last
    first = np.where(empty, nearest, first)
    last = np.where(empty, nearest, last)
    return first, last


def word_frames(start_s: float, end_s: float, geometry: FrameGeometry, num_samples: int) -> tuple[int, int]:
    """The frame rule for one word [start_s, end_s) in seconds: inclusive (first, last) frame indices."""
    first, last = words_frames(np.array([start_s]), np.array([end_s]), geometry, num_samples)
    return int(first[0]), int(last[0])
