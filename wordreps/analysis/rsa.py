"""Representational similarity analysis (RSA) between X (n x p) and Y (n x q), on a seeded sample of rows.

Kriegeskorte, Mur, Bandettini (2008). Representational similarity analysis - connecting the branches of
systems neuroscience. Front. Syst. Neurosci. 2:4. Each representation is summarised by its representational
dissimilarity matrix (RDM) over the same s items, here s sampled word occurrences (default 2000, seeded):

    RDM_ab = 1 - Pearson correlation(x_a, x_b)        (rows a < b, each row correlated across its p features)

and two representations are compared by the Spearman rank correlation of their RDMs' upper triangles
(s (s - 1) / 2 values; ties get average ranks, as in scipy.stats.spearmanr; values are compared at 1e-10 of
their range, :func:`snap`, so that exact ties survive rounding).

Columns are centred over the sample first (as for every measure here): otherwise the mean
pattern shared by all rows (large in models with a few high-magnitude dimensions) dominates every correlation.
The correlation distance is invariant to isotropic scaling and translation of either side, and to rotations
that keep the all-ones direction (for example permutations of the features); a general rotation changes the
row means it subtracts, so RSA, unlike CKA, CCA and Procrustes, is not rotation-invariant. ``kind="euclidean"``
(Euclidean distance between rows) is rotation-invariant.

An RDM costs O(s^2 p) and its ranks O(s^2 log s): each layer's ranks are computed once, and a pair is one dot
product of two standardised rank vectors. Always float64 (``precision`` is accepted and ignored).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from wordreps.analysis.cka import LayerSource, center_columns
from wordreps.analysis.compare import sample_rows
from wordreps.analysis.measures import OPTION_DEFAULTS
from wordreps.analysis.pairs import (
    LayerTicker,
    as_device,
    check_names,
    layer_rows,
    paired_count,
)

NAMES = ("rsa",)
RSA_SAMPLE = int(OPTION_DEFAULTS["rsa_sample"])
RDMS = ("correlation", "euclidean")


# ---------------------------------------------------------------------------------------------- reference forms

def rdm(X: np.ndarray, kind: str = "correlation") -> np.ndarray:
    """Condensed RDM (the upper triangle a < b, row by row, as scipy.spatial.distance.pdist orders it), float64.

    ``correlation``: 1 - Pearson correlation between rows (NaN for a constant row); ``euclidean``: ||x_a - x_b||.
    """
    X = center_columns(X)
    upper = np.triu_indices(X.shape[0], k=1)
    if kind == "correlation":
        Z = X - X.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(Z, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            Z = Z / norms[:, None]
        return 1.0 - (Z @ Z.T)[upper]
    if kind == "euclidean":
        sq = np.einsum("ij,ij->i", X, X)
        return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0))[upper]
    raise ValueError(f"rdm kind must be one of {RDMS}, got {kind!r}")


TIE_RESOLUTION = 1e-10


def snap(values: np.ndarray) -> np.ndarray:
    """RDM values on a grid of TIE_RESOLUTION times their largest magnitude, as integers in float64.

    Only the order of RDM values matters to a rank correlation; on the grid, entries that are equal in exact
    arithmetic (two copies of a row, as a bootstrap resample makes) tie as they should, whatever the rounding
    of the products that computed them.
    """
    top = np.max(np.abs(values)) if values.size else 0.0
    return np.rint(values / top / TIE_RESOLUTION) if top > 0 else np.zeros_like(values)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing the mean of their positions (scipy.stats.rankdata's 'average')."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size)
    ranks[order] = ((starts + ends - 1) / 2.0 + 1.0)[np.cumsum(new) - 1]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks; NaN if either has a NaN or is constant."""
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.linalg.norm(ra) * np.linalg.norm(rb)
    return float(ra @ rb / denom) if denom > 0 else float("nan")


def rsa(X: np.ndarray, Y: np.ndarray, sample: int = RSA_SAMPLE, seed: int = 0, kind: str = "correlation") -> float:
    """Spearman correlation of the RDMs of the same seeded sample of rows (Kriegeskorte et al. 2008)."""
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows and Y has {Y.shape[0]}: RSA needs the same rows")
    rows = sample_rows(X.shape[0], sample, seed)
    if rows.size < 3:
        return float("nan")
    a, b = rdm(X[rows], kind), rdm(Y[rows], kind)
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")   # a constant row: its correlations are undefined
    return spearman(snap(a), snap(b))


# ---------------------------------------------------------------------------------------------- all pairs

def _standard_ranks(X: np.ndarray, device: torch.device, kind: str) -> torch.Tensor | None:
    """The RDM's upper triangle as average ranks, centred and scaled to unit norm (float64); None if undefined."""
    Xt = torch.from_numpy(np.asarray(X, dtype=np.float64)).to(device)
    Xt = Xt - Xt.mean(dim=0, keepdim=True)
    s = Xt.shape[0]
    upper = torch.triu_indices(s, s, offset=1, device=device)
    if kind == "correlation":
        Z = Xt - Xt.mean(dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(Z, dim=1)
        if not bool((norms > 0).all()):
            return None   # a constant row has no correlation with anything
        Z = Z / norms[:, None]
        values = 1.0 - (Z @ Z.T)[upper[0], upper[1]]
    else:
        sq = (Xt * Xt).sum(dim=1)
        values = (sq[:, None] + sq[None, :] - 2.0 * Xt @ Xt.T).clamp_min(0.0)[upper[0], upper[1]].sqrt()
    del upper
    top = values.abs().max()
    values = torch.round(values / top / TIE_RESOLUTION) if top > 0 else torch.zeros_like(values)  # as snap()
    ordered, order = torch.sort(values)   # any order within ties: tied values share their mean rank below
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[1:] = ordered[1:] != ordered[:-1]
    starts = torch.nonzero(new).squeeze(1)
    ends = torch.cat([starts[1:], torch.tensor([values.numel()], device=device)])
    ranks = torch.empty_like(values)
    ranks[order] = ((starts + ends - 1).double() / 2.0 + 1.0)[torch.cumsum(new, 0) - 1]
    ranks -= ranks.mean()
    norm = torch.linalg.vector_norm(ranks)
    return ranks / norm if norm > 0 else None


def all_pairs(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], names: Sequence[str] = NAMES, *,
              rows1: np.ndarray | None = None, rows2: np.ndarray | None = None, symmetric: bool = False,
              device: torch.device | str = "cpu", precision: str = "mixed", chunk_rows: int = 16384,
              progress: Callable[[], None] | None = None, rsa_sample: int = RSA_SAMPLE, rsa_seed: int = 0,
              rsa_rdm: str = "correlation") -> dict[str, np.ndarray]:
    """RSA for every pair (i, j) on one seeded sample of the paired rows: {"rsa": (L1, L2)}.

    The sample is ``rsa_sample`` positions of the n paired rows (:func:`compare.sample_rows` with ``rsa_seed``), so
    row ``rows1[k]`` of model 1 stays paired with row ``rows2[k]`` of model 2 for every sampled k (a bootstrap
    or a permutation baseline keeps its meaning). Each layer's standardised RDM ranks are computed once;
    model 2's stay resident, and a pair is one dot product. ``precision`` and ``chunk_rows`` are ignored.
    """
    check_names(names, NAMES, "wordreps.analysis.rsa")
    if rsa_rdm not in RDMS:
        raise ValueError(f"rdm kind must be one of {RDMS}, got {rsa_rdm!r}")
    device = as_device(device)
    n = paired_count(layers1, layers2, rows1, rows2)
    positions = sample_rows(n, rsa_sample, rsa_seed)
    idx1 = positions if rows1 is None else np.asarray(rows1)[positions]
    idx2 = positions if rows2 is None else np.asarray(rows2)[positions]
    L1, L2 = len(layers1), len(layers2)
    out = np.full((L1, L2), np.nan)
    if positions.size < 3:
        return {"rsa": out}

    def ranks(src: LayerSource, idx: np.ndarray) -> torch.Tensor | None:
        return _standard_ranks(layer_rows(src, idx), device, rsa_rdm)

    resident = [ranks(src, idx2) for src in layers2]
    ok2 = [j for j, r in enumerate(resident) if r is not None]
    R2 = torch.stack([resident[j] for j in ok2]) if ok2 else None
    ticker = LayerTicker(progress, L1, L1)
    for i, src in enumerate(layers1):
        r1 = resident[i] if symmetric else ranks(src, idx1)
        if r1 is not None and R2 is not None:
            out[i, ok2] = (R2 @ r1).cpu().numpy()
        ticker.step(i)
    return {"rsa": np.clip(out, -1.0, 1.0)}
