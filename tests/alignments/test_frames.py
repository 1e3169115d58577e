"""The frame rule on hand-computed cases, and as a property against a brute-force exact computation."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.references import frame_span
from wordreps.alignments.frames import word_frames, words_frames
from wordreps.alignments.geometry import FrameGeometry

W2V = FrameGeometry(16000, 320, 400)      # centres at 12.5 ms + 20 ms * t
ENC = FrameGeometry(24000, 320, 320)      # 75 Hz: centres at (320 t + 160) / 24000 s = 6.667 ms + 13.333 ms * t
BEATS = FrameGeometry(16000, 2560, 2800)  # centres at 87.5 ms + 160 ms * t


# ---------------------------------------------------------------------------------------- hand-computed cases

def test_word_owns_frames_whose_centre_is_inside():
    # [100, 160) ms holds centres 112.5 (t=5), 132.5 (t=6), 152.5 (t=7); 92.5 (t=4) and 172.5 (t=8) are out.
    assert word_frames(0.10, 0.16, W2V, 16000) == (5, 7)
    # the centres the geometry reports: (tH + R/2) / sr
    assert W2V.frame_centre_s(5) == pytest.approx(0.1125, abs=1e-12)
    assert ENC.frame_centre_s(1) == pytest.approx(0.02, abs=1e-12)
    assert BEATS.frame_centre_s(2) == pytest.approx(0.4075, abs=1e-12)


def test_interval_is_half_open():
    # [92.5, 112.5) ms: centre 92.5 (t=4) is in (closed start), centre 112.5 (t=5) is out (open end).
    assert word_frames(0.0925, 0.1125, W2V, 16000) == (4, 4)
    # 75 Hz: [20, 40) ms holds 20.0 (t=1: (320+160)/24000 = 0.02 exactly) and 33.33 (t=2); 46.67 (t=3) is out.
    assert word_frames(0.02, 0.04, ENC, 24000) == (1, 2)


def test_boundaries_on_a_centre_are_decided_by_the_rule_not_by_float_noise():
    # 0.14 s * 48000 half-samples/s = 6720.000000000001 in floats, but 0.14 s is exactly the centre of 75 Hz
    # frame 10: (320 * 10 + 160) / 24000 = 0.14. [0.14, 0.2) holds 140 (t=10), 153.3, 166.7, 180, 193.3 (t=14).
    assert word_frames(0.14, 0.2, ENC, 24000) == (10, 14)
    # 2.0125 s * 32000 = 64400.00000000001 in floats; 2.0125 s is exactly the centre of frame 100
    # (12.5 + 20 * 100 = 2012.5 ms), which the open end excludes: [1.95, 2.0125) holds t = 97, 98, 99.
    assert word_frames(1.95, 2.0125, W2V, 48000) == (97, 99)


def test_word_too_short_gets_frame_nearest_its_midpoint():
    # [101, 110) ms holds no centre (92.5 < 101, 112.5 >= 110). Midpoint 105.5 ms: 13 ms from t=4 (92.5),
    # 7 ms from t=5 (112.5) -> t=5.
    assert word_frames(0.101, 0.110, W2V, 16000) == (5, 5)
    # [84, 92) ms: midpoint 88 ms, 4.5 ms from t=4 (92.5) and 15.5 ms from t=3 (72.5) -> t=4.
    assert word_frames(0.084, 0.092, W2V, 16000) == (4, 4)
    # Tie: [100, 105) ms, midpoint 102.5 ms is 10 ms from both 92.5 (t=4) and 112.5 (t=5) -> the later, t=5.
    assert word_frames(0.100, 0.105, W2V, 16000) == (5, 5)
    # Zero-length word at 300 ms: (300 - 12.5) / 20 = 14.375 -> t=14.
    assert word_frames(0.3, 0.3, W2V, 16000) == (14, 14)


def test_word_past_the_audio_end_gets_the_last_frames():
    # 16000 samples: num_frames = (16000 - 400) // 320 + 1 = 49, frames 0..48, last centre 972.5 ms.
    assert W2V.num_frames(16000) == 49
    # [900, 1020) ms holds centres 912.5 (45) .. 1012.5 (50); limited to the audio's frames -> 45..48.
    assert word_frames(0.90, 1.02, W2V, 16000) == (45, 48)
    # [990, 1000) ms: its only centre 992.5 ms is t=49, past the audio's frames -> the last frame, 48.
    assert word_frames(0.99, 1.00, W2V, 16000) == (48, 48)
    # Starts after the audio (1.05 s > 1.0 s): the last frame.
    assert word_frames(1.05, 1.20, W2V, 16000) == (48, 48)


def test_audio_shorter_than_one_receptive_field_has_one_frame():
    # 300 samples < R = 400: num_frames = 1, so every word gets frame 0.
    assert W2V.num_frames(300) == 1
    assert word_frames(0.0, 0.5, W2V, 300) == (0, 0)
    assert word_frames(0.01, 0.0125, W2V, 300) == (0, 0)


def test_75_hz_geometry_does_not_drift_like_a_13_33_ms_hop():
    # Exact 75 Hz: frame 2250 is centred at (320 * 2250 + 160) / 24000 = 30.006667 s, inside [30.000, 30.0133).
    # A 13.33 ms hop would put it at 6.665 + 13.33 * 2250 = 29999.165 ms (outside) and give t=2251, centred
    # 6.665 + 13.33 * 2251 = 30012.495 ms: half a frame of drift after 30 s.
    assert word_frames(30.0, 30.0133, ENC, 31 * 24000) == (2250, 2250)
    # Same at 20 s: t=1500 centred at (480000 + 160) / 24000 = 20.006667 s.
    assert word_frames(20.0, 20.01, ENC, 31 * 24000) == (1500, 1500)


def test_beats_160_ms_frames():
    # BEATs centres at (2560 t + 1400) / 16000 s = 87.5 + 160 t ms. [0.2, 0.6) holds 247.5 (t=1), 407.5 (t=2),
    # 567.5 (t=3). 5 s of audio: (80000 - 2800) // 2560 + 1 = 31 frames.
    assert word_frames(0.2, 0.6, BEATS, 80000) == (1, 3)
    assert BEATS.num_frames(80000) == 31


def test_vectorised_equals_scalar():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 3, 500)
    ends = starts + rng.uniform(0, 0.4, 500)
    first, last = words_frames(starts, ends, W2V, 40000)
    assert [word_frames(s, e, W2V, 40000) for s, e in zip(starts, ends)] == list(zip(first.tolist(), last.tolist()))


def test_end_before_start_is_refused():
    with pytest.raises(ValueError):
        word_frames(0.5, 0.4, W2V, 16000)
    # one bad word among good ones is enough (a NaN time, or an end before its start)
    with pytest.raises(ValueError):
        words_frames(np.array([0.1, np.nan, 0.5]), np.array([0.2, 0.4, 0.6]), W2V, 16000)
    with pytest.raises(ValueError):
        words_frames(np.array([0.1, 0.3, 0.5]), np.array([0.2, np.inf, 0.6]), W2V, 16000)
    with pytest.raises(ValueError):
        words_frames(np.array([0.1, 0.3, 0.5]), np.array([0.2, 0.25, 0.6]), W2V, 16000)


# ------------------------------------------------------------------------------- property vs exact brute force

def brute_force(start: Fraction, end: Fraction, g: FrameGeometry, num_samples: int) -> tuple[int, int]:
    """The rule written the slow, exact way (tests/helpers/references.frame_span): every frame tried."""
    return frame_span(start, end, num_samples, g.sample_rate_hz, g.hop_samples, g.receptive_field_samples)


GEOMETRIES = [W2V, ENC, BEATS, FrameGeometry(16000, 1600, 2800), FrameGeometry(22050, 512, 1024)]


def _time(geometry: FrameGeometry, draw_kind: int, value: int) -> Fraction:
    """A word boundary: a TextGrid-like time in 0.1 ms units, or exactly a frame centre (the hard case)."""
    if draw_kind == 0:
        return Fraction(value, 10000)
    t = value % 200
    return Fraction(2 * t * geometry.hop_samples + geometry.receptive_field_samples, 2 * geometry.sample_rate_hz)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(geometry=st.sampled_from(GEOMETRIES), kinds=st.tuples(st.integers(0, 1), st.integers(0, 1)),
       values=st.tuples(st.integers(0, 30000), st.integers(0, 30000)), num_samples=st.integers(1, 48000))
def test_property_matches_exact_rule(geometry, kinds, values, num_samples):
    # Exact rational times, passed to the code as the nearest floats (as a parsed TextGrid gives them).
    a, b = sorted(_time(geometry, k, v) for k, v in zip(kinds, values))
    first, last = word_frames(float(a), float(b), geometry, num_samples)
    n = geometry.num_frames(num_samples)
    assert 0 <= first <= last < n  # never zero frames, always inside the audio
    assert (first, last) == brute_force(a, b, geometry, num_samples)
