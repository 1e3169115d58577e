"""Orthogonal Procrustes similarity and distance between X (n x p) and Y (n x q), the same n rows.

After centring the columns and dividing each matrix by its Frobenius norm (||X||_F = ||Y||_F = 1),

    min over orthogonal R of ||X R - Y||_F^2 = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_* = 2 - 2 ||X^T Y||_*

(Schoenemann 1966: the best R is U V^T from X^T Y = U S V^T, and the minimum uses tr(S) = ||X^T Y||_*, the
nuclear norm; for p != q the narrower matrix is padded with zero columns, which changes neither side).
Ding, Denain, Steinhardt (2021). Grounding Representation Similarity Through Statistical Testing. NeurIPS:
the orthogonal Procrustes distance d = 2 - 2 ||X^T Y||_*; the similarity ||X^T Y||_* lies in [0, 1]
(1 iff Y is a rotation of X, up to the normalisation) and is reported beside it.

Invariant to rotations and isotropic scaling of either side and to translations; not to other invertible
linear maps (unlike CCA). The all-pairs engine reuses the CKA engine's centring and X^T Y products
(:mod:`wordreps.analysis.cka`): per pair it adds one r x q SVD.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from wordreps.analysis.cka import (
    LayerSource,
    LinearStats,
    center_columns,
    prepare_linear,
)
from wordreps.analysis.pairs import (
    as_device,
    check_names,
    one_thread,
    storage_dtype,
    stream_cross_products,
)

NAMES = ("procrustes", "procrustes_distance")


# ---------------------------------------------------------------------------------------------- reference forms

def normalized(X: np.ndarray) -> np.ndarray:
    """Column-centred X divided by its Frobenius norm (Ding et al. 2021, Sec. 3); a zero matrix stays zero."""
    Xc = center_columns(X)
    norm = np.linalg.norm(Xc)
    return Xc / norm if norm > 0 else Xc


def procrustes(X: np.ndarray, Y: np.ndarray) -> float:
    """Procrustes similarity ||X~^T Y~||_* (nuclear norm) of the normalised matrices, in [0, 1]; NaN for a constant side."""
    Xn, Yn = normalized(X), normalized(Y)
    if not (np.any(Xn) and np.any(Yn)):
        return float("nan")
    return float(np.linalg.svd(Xn.T @ Yn, compute_uv=False).sum())


def procrustes_distance(X: np.ndarray, Y: np.ndarray) -> float:
    """Orthogonal Procrustes distance 2 - 2 ||X~^T Y~||_* (Ding et al. 2021), in [0, 2]."""
    return 2.0 - 2.0 * procrustes(X, Y)


# ---------------------------------------------------------------------------------------------- all pairs

def all_pairs(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], names: Sequence[str] = NAMES, *,
              rows1: np.ndarray | None = None, rows2: np.ndarray | None = None, symmetric: bool = False,
              device: torch.device | str = "cpu", precision: str = "mixed", chunk_rows: int = 16384,
              progress: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """Procrustes similarity and/or distance for every pair (i, j): {name: (L1, L2)}.

    Per layer once: centring (float64 mean) and ||X||_F^2 = sum_i ||x_i||^2 (float64), as for linear CKA. Per
    pair: X_i^T Y_j (float32 products on row chunks summed in float64, or float64 throughout), then the sum of
    its singular values divided by ||X_i||_F ||Y_j||_F.
    """
    names = check_names(names, NAMES, "wordreps.analysis.procrustes")
    device = as_device(device)
    dtype = storage_dtype(precision)
    L1, L2 = len(layers1), len(layers2)
    sim = np.full((L1, L2), np.nan)

    def prepare(X: np.ndarray, dest: torch.Tensor | None) -> tuple[torch.Tensor, LinearStats]:
        st = prepare_linear(X, device, dtype, chunk_rows, out=dest)
        return st.centered, st

    def on_pair(i: int, j: int, C: torch.Tensor, s1: LinearStats, s2: LinearStats) -> None:
        denom = s1.sum_r * s2.sum_r
        if denom > 0:
            with one_thread(C.device):   # the exact singular values: a nuclear norm sums the small ones too
                nuclear = float(torch.linalg.svdvals(C).sum())
            sim[i, j] = nuclear / np.sqrt(denom)
            if symmetric:
                sim[j, i] = sim[i, j]

    stream_cross_products(layers1, layers2, prepare, on_pair, rows1=rows1, rows2=rows2, symmetric=symmetric,
                          device=device, dtype=dtype, chunk_rows=chunk_rows, progress=progress)
    # rounding can take a self-comparison a hair past 1; the similarity is at most 1 by Cauchy-Schwarz
    sim = np.minimum(sim, 1.0)
    out = {"procrustes": sim, "procrustes_distance": 2.0 - 2.0 * sim}
    return {m: out[m] for m in names}
