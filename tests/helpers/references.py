"""Independent references: the numbers a test checks, computed here from the equations with plain numpy.

Nothing here imports the code under test. Each function names the rule or equation it writes out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


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
