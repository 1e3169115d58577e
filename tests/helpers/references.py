"""Independent references: the numbers a test checks, computed here from the equations with plain numpy.

Nothing here imports the code under test. Each function names the rule or equation it writes out.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np


# ------------------------------------------------------------------------------------------- frame rule

def num_frames(num_samples: int, hop_samples: int, receptive_field_samples: int) -> int:
    """Frames a conv stack gives for N samples: (N - R) // H + 1, at least 1."""
    return max(1, (num_samples - receptive_field_samples) // hop_samples + 1)


def _exact(t_s: float | Fraction) -> Fraction:
    """A time as an exact fraction: a Fraction as it is, a float as the decimal it prints as."""
    return t_s if isinstance(t_s, Fraction) else Fraction(str(t_s))


def frame_span(start_s: float | Fraction, end_s: float | Fraction, num_samples: int, sample_rate_hz: int = 16000,
               hop_samples: int = 320, receptive_field_samples: int = 400) -> tuple[int, int]:
    """The frame rule written the slow, exact way: frame t is centred at (tH + R/2) / sr seconds; a word
    [start, end) owns the frames whose centre lies inside it; a word owning none gets the frame nearest its
    midpoint (a tie goes to the later frame); only the audio's frames count. Every frame centre is tried.
    Times are exact: a Fraction as given, a float as the decimal it prints as (a TextGrid's 0.14 is 0.14, not
    the float next to it). The one reference for the rule: every test helper that needs frames calls this."""
    a, b = _exact(start_s), _exact(end_s)
    n = num_frames(num_samples, hop_samples, receptive_field_samples)
    centres = [Fraction(2 * t * hop_samples + receptive_field_samples, 2 * sample_rate_hz) for t in range(n)]
    owned = [t for t, c in enumerate(centres) if a <= c < b]
    if owned:
        return owned[0], owned[-1]
    mid = (a + b) / 2
    best = min(abs(c - mid) for c in centres)
    nearest = max(t for t, c in enumerate(centres) if abs(c - mid) == best)
    return nearest, nearest


# ------------------------------------------------------------------------------------------------ pooling

def word_means(frames: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Word pooling written as a loop: frames (..., T, D) -> (..., W, D) float64, word i the mean of the frames
    first_i..min(last_i, T-1) (a word past the frames the model produced keeps the frames it has)."""
    rows = []
    for first, last in spans:
        last = min(last, frames.shape[-2] - 1)
        assert first <= last, (first, last, frames.shape)
        rows.append(frames[..., first:last + 1, :].astype(np.float64).mean(axis=-2))
    return np.stack(rows, axis=-2)


def spans(utterance) -> list[tuple[int, int]]:
    """(first_frame, last_frame) of each word of an alignment's utterance, as stored."""
    return [(w.first_frame, w.last_frame) for w in utterance.words]


# ---------------------------------------------------------------------------------------------------- CKA

def centring_matrix(n: int) -> np.ndarray:
    """H = I - 11'/n."""
    return np.eye(n) - np.ones((n, n)) / n


def hsic0(K: np.ndarray, L: np.ndarray) -> float:
    """Kornblith et al. (2019), Sec. 3: HSIC_0(K, L) = tr(K H L H) / (n-1)^2 (the biased estimator)."""
    n = K.shape[0]
    H = centring_matrix(n)
    return float(np.trace(K @ H @ L @ H)) / (n - 1) ** 2


def hsic1(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012), Eq. 5: HSIC_1 = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
    K~ = K with a zero diagonal (the unbiased estimator)."""
    n = K.shape[0]
    Kt = K * (1 - np.eye(n))
    Lt = L * (1 - np.eye(n))
    one = np.ones((n, 1))
    term1 = np.trace(Kt @ Lt)
    term2 = (one.T @ Kt @ one).item() * (one.T @ Lt @ one).item() / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one.T @ Kt @ Lt @ one).item()
    return float(term1 + term2 - term3) / (n * (n - 3))


def cka(K: np.ndarray, L: np.ndarray, hsic=hsic0) -> float:
    """CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019, Sec. 3)."""
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def rbf_gram(X: np.ndarray, sigma: float) -> np.ndarray:
    """Kornblith et al.'s Gaussian kernel: bandwidth sigma * median pairwise distance (median of all n^2 squared
    distances, the zero diagonal included)."""
    X = np.asarray(X, dtype=np.float64)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma ** 2 * np.median(d2)))


def linear_cka_features(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al. (2019), Eq. 5 (feature space): ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F), columns centred, float64."""
    X = X.astype(np.float64) - X.astype(np.float64).mean(0)
    Y = Y.astype(np.float64) - Y.astype(np.float64).mean(0)
    return float(np.sum((Y.T @ X) ** 2) / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def linear_cka_gram(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al. (2019), Gram form: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = XX', L = YY',
    HSIC(K, L) = tr(K H L H) (the 1/(n-1)^2 cancels)."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    H = centring_matrix(X.shape[0])
    K, L = X @ X.T, Y @ Y.T

    def hsic(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.trace(A @ H @ B @ H))

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))
