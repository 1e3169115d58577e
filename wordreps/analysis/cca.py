"""Canonical correlation family: mean CCA, SVCCA and PWCCA between X (n x p) and Y (n x q), the same n rows.

Small float64 numpy functions, one per equation (the reference forms), and one all-pairs engine
(:func:`all_pairs`) in torch that computes all three for every layer pair of two models.

Notation: X and Y are column-centred; X = U S V^T is a thin SVD (U: n x r orthonormal columns, S: the r
singular values above the rank tolerance, r = rank X); the canonical correlations rho_1 >= ... >= rho_m,
m = min(rank X, rank Y), are the singular values of U_X^T U_Y, and with U_X^T U_Y = A diag(rho) B^T the
canonical variates of X are the unit vectors h_i = U_X a_i (= X w_i with w_i = V S^-1 a_i).

References
- Hotelling (1936). Relations between two sets of variates. Biometrika 28: canonical correlations.
- Bjorck, Golub (1973). Numerical methods for computing angles between linear subspaces. Math. Comp. 27:
  the canonical correlations are the cosines of the principal angles between the column spaces, i.e. the
  singular values of Q_X^T Q_Y for any orthonormal bases Q_X, Q_Y of them (here Q = U from the SVD, which
  also gives the numerical rank and the variance order SVCCA needs).
- Raghu, Gilmer, Yosinski, Sohl-Dickstein (2017). SVCCA: Singular Vector Canonical Correlation Analysis for
  Deep Learning Dynamics and Interpretability. NeurIPS: keep the top singular directions of each side that
  explain a fraction (0.99) of its variance, then the mean canonical correlation of what is kept.
- Morcos, Raghu, Bengio (2018). Insights on representational similarity in neural networks with canonical
  correlation. NeurIPS: projection-weighted CCA, sum_i alpha_i rho_i with alpha_i proportional to
  sum_j |<h_i, x_j>| over the columns x_j of X. Here the weights always come from the first model's side
  (the released code takes the side with fewer neurons), so pwcca(X, Y) != pwcca(Y, X).

Rank tolerance. Singular values below ``rank_tol`` (1e-5) times the largest count as zero: float32 rounding of
the data alone creates singular values up to about eps32 sqrt(p) sigma_1 (2e-6 sigma_1 at p = 1024), and a
direction at that level is rounding, not representation.

Sample size. Canonical correlations are inflated when n is not much larger than the ranks: for unrelated data
the mean of rho_i^2 is max(r_X, r_Y) / (n - 1) exactly (E tr(P_X P_Y) = r_X r_Y / (n - 1) for independent
rotation-invariant column spaces in the (n - 1)-dimensional centred space), and once a rank reaches n - 1 every
correlation is 1 whatever the data. Hence the guard (:func:`sample_size_problem`): below
``SAMPLE_RATIO`` = 10 rows per dimension of the larger rank, a :class:`SampleSizeWarning` (one line naming the
pair, n, p, q and the ranks, pointing at SVCCA's smaller dimension); once a rank reaches n - 1, the value is
NaN (there is no value to report, only the 1 that the dimension count forces), with the same warning.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from wordreps.analysis.cka import (
    LayerSource,
    center_columns,
    center_torch,
    cross_products,
)
from wordreps.analysis.measures import OPTION_DEFAULTS
from wordreps.analysis.pairs import (
    SampleSizeWarning,
    as_device,
    check_names,
    one_thread,
    paired_count,
    singular_values,
    storage_dtype,
    stream_cross_products,
)

NAMES = ("cca", "svcca", "pwcca")
RANK_TOL = float(OPTION_DEFAULTS["cca_rank_tol"])
SVCCA_VARIANCE = float(OPTION_DEFAULTS["svcca_variance"])
SAMPLE_RATIO = 10


# ---------------------------------------------------------------------------------------------- reference forms

def numerical_rank(singular_values: np.ndarray, rank_tol: float = RANK_TOL) -> int:
    """Number of singular values above ``rank_tol`` times the largest (descending input); 0 for a zero matrix."""
    s = np.asarray(singular_values, dtype=np.float64)
    if s.size == 0 or not s[0] > 0:
        return 0
    return int(np.count_nonzero(s > rank_tol * s[0]))


def svcca_dims(singular_values: np.ndarray, variance: float = SVCCA_VARIANCE) -> int:
    """Smallest k whose top k singular directions explain ``variance`` of the total: sum_{i<=k} s_i^2 >= v sum s_i^2.

    Raghu et al. (2017), Sec. 2: "the top singular directions which explain 99% of the variance".
    """
    if not 0 < variance <= 1:
        raise ValueError(f"the SVCCA variance fraction must be in (0, 1], got {variance}")
    power = np.asarray(singular_values, dtype=np.float64) ** 2
    total = power.sum()
    if power.size == 0 or not total > 0:
        return 0
    # a relative slack of 1e-12 so that variance = 1 keeps every direction despite rounding in the cumsum
    return int(min(power.size, np.searchsorted(np.cumsum(power), variance * total * (1 - 1e-12)) + 1))


def principal_basis(X: np.ndarray, rank_tol: float = RANK_TOL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(U_r, s_r, V_r^T) of the thin SVD of column-centred X, truncated to its numerical rank r."""
    U, s, Vt = np.linalg.svd(center_columns(X), full_matrices=False)
    r = numerical_rank(s, rank_tol)
    return U[:, :r], s[:r], Vt[:r]


def canonical_correlations(X: np.ndarray, Y: np.ndarray, rank_tol: float = RANK_TOL) -> np.ndarray:
    """rho_1 >= ... >= rho_m, m = min(rank X, rank Y): singular values of U_X^T U_Y (Bjorck & Golub 1973)."""
    Ux, _, _ = principal_basis(X, rank_tol)
    Uy, _, _ = principal_basis(Y, rank_tol)
    return np.clip(np.linalg.svd(Ux.T @ Uy, compute_uv=False), 0.0, 1.0)


def sample_size_problem(n: int, rank_x: int, rank_y: int) -> str | None:
    """None when n >= SAMPLE_RATIO * max rank; "inflated" below that; "degenerate" once a rank reaches n - 1."""
    top = max(rank_x, rank_y)
    if top >= n - 1:
        return "degenerate"
    if n < SAMPLE_RATIO * top:
        return "inflated"
    return None


def sample_size_message(measure: str, where: str, n: int, p: int, q: int, rank_x: int, rank_y: int,
                        degenerate: bool) -> str:
    """The guard's one warning line."""
    baseline = min(1.0, max(rank_x, rank_y) / max(n - 1, 1))
    kept = "directions kept" if measure == "svcca" else "ranks"
    tail = (f"; one of the {kept} reaches n - 1, so every correlation is 1 by construction: NaN" if degenerate
            else "")
    advice = ("lower --svcca_variance or use more rows" if measure == "svcca"
              else "compare with svcca (fewer, top directions) or use more rows")
    return (f"{measure}: {where}: n = {n} rows is not comfortably more than the dimensions (p = {p}, q = {q}; "
            f"{kept} {rank_x}, {rank_y}): unrelated data would give a mean squared canonical correlation of "
            f"{baseline:.2f}{tail}; {advice}")


def _guarded(measure: str, n: int, p: int, q: int, rx: int, ry: int) -> bool:
    """Warn if needed; True when the value must be NaN."""
    problem = sample_size_problem(n, rx, ry)
    if problem is not None:
        warnings.warn(sample_size_message(measure, "this pair", n, p, q, rx, ry, problem == "degenerate"),
                      SampleSizeWarning, stacklevel=3)
    return problem == "degenerate"


def cca(X: np.ndarray, Y: np.ndarray, rank_tol: float = RANK_TOL) -> float:
    """Mean canonical correlation (1/m) sum_i rho_i (Hotelling 1936), exact from orthonormal bases; NaN if degenerate."""
    Ux, _, _ = principal_basis(X, rank_tol)
    Uy, _, _ = principal_basis(Y, rank_tol)
    if min(Ux.shape[1], Uy.shape[1]) == 0 or _guarded("cca", X.shape[0], X.shape[1], Y.shape[1], Ux.shape[1], Uy.shape[1]):
        return float("nan")
    return float(np.clip(np.linalg.svd(Ux.T @ Uy, compute_uv=False), 0.0, 1.0).mean())


def svcca(X: np.ndarray, Y: np.ndarray, variance: float = SVCCA_VARIANCE, rank_tol: float = RANK_TOL) -> float:
    """SVCCA (Raghu et al. 2017): the mean canonical correlation of the top singular directions of each side
    that explain ``variance`` of its variance (CCA of X V_k, spanning U_k)."""
    Ux, sx, _ = principal_basis(X, rank_tol)
    Uy, sy, _ = principal_basis(Y, rank_tol)
    kx, ky = svcca_dims(sx, variance), svcca_dims(sy, variance)
    if min(kx, ky) == 0 or _guarded("svcca", X.shape[0], X.shape[1], Y.shape[1], kx, ky):
        return float("nan")
    return float(np.clip(np.linalg.svd(Ux[:, :kx].T @ Uy[:, :ky], compute_uv=False), 0.0, 1.0).mean())


def pwcca(X: np.ndarray, Y: np.ndarray, rank_tol: float = RANK_TOL) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): sum_i alpha_i rho_i, alpha_i = sum_j |<h_i, x_j>| / normaliser.

    h_i = U_X a_i are X's canonical variates (unit norm) and x_j the centred columns of X: the weights say
    how much of X each canonical direction accounts for, from the first model's side.
    """
    Xc = center_columns(X)
    Ux, _, _ = principal_basis(Xc, rank_tol)
    Uy, _, _ = principal_basis(Y, rank_tol)
    if min(Ux.shape[1], Uy.shape[1]) == 0 or _guarded("pwcca", X.shape[0], X.shape[1], Y.shape[1], Ux.shape[1], Uy.shape[1]):
        return float("nan")
    A, rho, _ = np.linalg.svd(Ux.T @ Uy, full_matrices=False)
    H = Ux @ A                                # n x m canonical variates of X
    alpha = np.abs(Xc.T @ H).sum(axis=0)      # sum_j |<h_i, x_j>|
    return float(alpha @ np.clip(rho, 0.0, 1.0) / alpha.sum())


# ---------------------------------------------------------------------------------------------- all pairs

@dataclass
class _Basis:
    """One layer prepared once: its singular values (kept, descending), rank, SVCCA dims, width, and X^T U."""
    sv: np.ndarray
    rank: int
    k: int
    dim: int
    xtu: torch.Tensor | None   # d x r float64: <h, x_j> for every column j is (X^T U) a


def _prepare_basis(X: np.ndarray, out: torch.Tensor | None, *, device: torch.device, dtype: torch.dtype,
                   chunk_rows: int, rank_tol: float, variance: float, want_xtu: bool) -> tuple[torch.Tensor, _Basis]:
    """U (n x r), orthonormal columns spanning centred X in singular-value order, written over the centred X.

    Eigen-decomposition of the float64 Gram matrix X^T X = V S^2 V^T, then U = X V S^-1 on row chunks in
    float64 (each row of U depends only on that row of X, so it is written in place). Its columns are
    orthonormal to about eps64 kappa^2 (kappa = s_1 / s_r); when that exceeds the storage precision a second
    pass re-orthonormalises, U <- U (U^T U)^-1/2, which leaves the span and, to that size, the order alone.
    """
    n, d = X.shape
    if out is None:
        out = torch.empty((n, d), dtype=dtype, device=device)
    Xc = center_torch(X, device, dtype, chunk_rows, out=out)
    gram = torch.zeros((d, d), dtype=torch.float64, device=device)
    for s in range(0, n, chunk_rows):
        part = Xc[s:s + chunk_rows].double()
        gram += part.T @ part
    with one_thread(device):
        lam, V = torch.linalg.eigh(gram)
    lam, V = lam.flip(0).clamp_min(0.0), V.flip(1)
    sv = lam.sqrt()
    sv_np = sv.cpu().numpy()
    r = numerical_rank(sv_np, rank_tol)
    if r == 0:
        return out[:, :0], _Basis(sv=sv_np[:0], rank=0, k=0, dim=d, xtu=None)
    W = V[:, :r] / sv[:r]
    for s in range(0, n, chunk_rows):
        out[s:s + chunk_rows, :r] = (out[s:s + chunk_rows].double() @ W).to(dtype)
    U = out[:, :r]
    xtu = V[:, :r] * sv[:r] if want_xtu else None     # X^T U = V S for the exact SVD
    kappa = float(sv[0] / sv[r - 1])
    if torch.finfo(torch.float64).eps * kappa ** 2 * d > torch.finfo(dtype).eps:
        second = cross_products(U, U, chunk_rows)
        with one_thread(device):
            lam2, V2 = torch.linalg.eigh(second)
        T = (V2 / lam2.sqrt()) @ V2.T
        for s in range(0, n, chunk_rows):
            out[s:s + chunk_rows, :r] = (out[s:s + chunk_rows, :r].double() @ T).to(dtype)
        if xtu is not None:
            xtu = xtu @ T
    return U, _Basis(sv=sv_np[:r], rank=r, k=svcca_dims(sv_np[:r], variance), dim=d, xtu=xtu)


def all_pairs(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], names: Sequence[str] = NAMES, *,
              rows1: np.ndarray | None = None, rows2: np.ndarray | None = None, symmetric: bool = False,
              device: torch.device | str = "cpu", precision: str = "mixed", chunk_rows: int = 16384,
              progress: Callable[[], None] | None = None, svcca_variance: float = SVCCA_VARIANCE,
              cca_rank_tol: float = RANK_TOL) -> dict[str, np.ndarray]:
    """cca, svcca and/or pwcca for every pair (i, j): {name: (L1, L2)}; pwcca's weights from model 1's side.

    Per layer, once: centring (float64 mean) and an orthonormal basis U in singular-value order
    (:func:`_prepare_basis`), stored as float32 (``precision="mixed"``) or float64. Per pair: the product
    U_i^T U_j (float32 products on row chunks summed in float64: the CKA engine's loop, same cost as one
    linear CKA pair, and accurate to ~1e-7 whatever the conditioning, since U is orthonormal), then one SVD of
    that r_i x r_j matrix for pwcca (its singular vectors give the weights) or the eigenvalues of its smaller
    Gram matrix for cca alone, and the eigenvalues of its top-left k_i x k_j block's for svcca.
    Pairs with too few rows for their ranks raise one :class:`SampleSizeWarning` per measure (module doc).
    """
    names = check_names(names, NAMES, "wordreps.analysis.cca")
    variance = float(svcca_variance)
    svcca_dims(np.ones(1), variance)  # checks the fraction before any work
    device = as_device(device)
    dtype = storage_dtype(precision)
    n = paired_count(layers1, layers2, rows1, rows2)
    L1, L2 = len(layers1), len(layers2)
    out = {m: np.full((L1, L2), np.nan) for m in names}
    full = [m for m in ("cca", "pwcca") if m in names]   # the measures on all r_i x r_j correlations
    flagged: dict[str, list[tuple[int, int, int, int, int, int, bool]]] = {"full": [], "svcca": []}

    def prepare(X: np.ndarray, dest: torch.Tensor | None):
        return _prepare_basis(X, dest, device=device, dtype=dtype, chunk_rows=chunk_rows, rank_tol=cca_rank_tol,
                              variance=variance, want_xtu="pwcca" in names)

    def degenerate(kind: str, i: int, j: int, b1: _Basis, b2: _Basis, r1: int, r2: int) -> bool:
        problem = sample_size_problem(n, r1, r2)
        if problem is not None:
            flagged[kind].append((i, j, b1.dim, b2.dim, r1, r2, problem == "degenerate"))
        return problem == "degenerate"

    def on_pair(i: int, j: int, M: torch.Tensor, b1: _Basis, b2: _Basis) -> None:
        both = symmetric and i != j   # a within-model map: (j, i) from the same product
        m = min(b1.rank, b2.rank)
        if full and m > 0 and not degenerate("full", i, j, b1, b2, b1.rank, b2.rank):
            if "pwcca" in names:
                with one_thread(M.device):
                    A, rho, Bh = torch.linalg.svd(M, full_matrices=False)
                rho = rho.clamp(0.0, 1.0)
                out["pwcca"][i, j] = _weighted(b1.xtu @ A, rho)
                if both:
                    out["pwcca"][j, i] = _weighted(b2.xtu @ Bh.T, rho)
            else:
                rho = singular_values(M).clamp(0.0, 1.0)
            if "cca" in names:
                out["cca"][i, j] = float(rho[:m].mean())
                if both:
                    out["cca"][j, i] = out["cca"][i, j]
        if "svcca" in names and min(b1.k, b2.k) > 0 and not degenerate("svcca", i, j, b1, b2, b1.k, b2.k):
            out["svcca"][i, j] = float(singular_values(M[:b1.k, :b2.k]).clamp(0.0, 1.0).mean())
            if both:
                out["svcca"][j, i] = out["svcca"][i, j]

    stream_cross_products(layers1, layers2, prepare, on_pair, rows1=rows1, rows2=rows2, symmetric=symmetric,
                          device=device, dtype=dtype, chunk_rows=chunk_rows, progress=progress)
    for kind, pairs in flagged.items():
        if pairs:
            pairs.sort(key=lambda t: not t[-1])  # name a degenerate (NaN) pair first if there is one
            i, j, p, q, r1, r2, is_degenerate = pairs[0]
            where = f"layer pair ({i}, {j})" + (f" and {len(pairs) - 1} more pairs" if len(pairs) > 1 else "")
            label = "/".join(full) if kind == "full" else "svcca"
            warnings.warn(sample_size_message(label, where, n, p, q, r1, r2, is_degenerate), SampleSizeWarning,
                          stacklevel=2)
    return out


def _weighted(projections: torch.Tensor, rho: torch.Tensor) -> float:
    """sum_i alpha_i rho_i with alpha_i = sum_j |projections_ji| / total (PWCCA, Morcos et al. 2018)."""
    alpha = projections.abs().sum(dim=0)
    total = float(alpha.sum())
    return float(alpha @ rho) / total if total > 0 else math.nan
