"""Centered Kernel Alignment between two representations X (n x p) and Y (n x q) of the same n word occurrences.

Small functions, one per equation, in float64 numpy (the reference forms), and one all-pairs engine
(:func:`all_pairs`) in torch that computes every layer pair of two models without ever forming an n x n
matrix for the linear indexes (n = 54k words would need 23 GB per Gram matrix).

Notation: row i of X is the representation x_i of occurrence i; K = X X^T and L = Y Y^T are the linear
Gram matrices; H = I - 11^T/n is the centering matrix; ||.||_F is the Frobenius norm.

References
- Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations Revisited. ICML.
  Sec. 3: HSIC(K, L) = tr(KHLH) / (n-1)^2 and CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L));
  with linear kernels and centred columns, CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
  (the dot-product identity tr(XX^T YY^T) = ||Y^T X||_F^2 of Sec. 3 and the "Linear CKA" row of Table 1).
- Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence Maximization. JMLR 13,
  Eq. 5: the unbiased estimator HSIC_1 (below).
- Nguyen, Raghu, Kornblith (2021). Do Wide and Deep Networks Learn the Same Things? ICLR: CKA with HSIC_1 in
  place of the biased estimator ("debiased CKA"), close to 0 for independent representations at any n/p.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from wordreps.analysis.measures import CKA_NAMES as METRICS  # the measures this module's engine computes
from wordreps.analysis.measures import PRECISIONS
from wordreps.common.precision import exact_float32


# ---------------------------------------------------------------------------------------------- reference forms

def center_columns(X: np.ndarray) -> np.ndarray:
    """X - 1 mean(X): each column (feature) centred over the n rows, in float64. Equals H X (Kornblith Sec. 3)."""
    X = np.asarray(X, dtype=np.float64)
    return X - X.mean(axis=0, keepdims=True)


def gram_linear(X: np.ndarray) -> np.ndarray:
    """K = X X^T, the n x n Gram matrix of the linear kernel k(x, x') = x . x'."""
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def gram_rbf(X: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """Gaussian-kernel Gram matrix K_ij = exp(-||x_i - x_j||^2 / (2 (sigma * m)^2)), m^2 = median of all ||x_i - x_j||^2.

    The bandwidth is ``sigma`` times the median distance, as in Kornblith et al. (2019), Sec. 6.1 and their
    reference code (the median is taken over all n^2 squared distances, the zero diagonal included).
    """
    X = np.asarray(X, dtype=np.float64)
    dots = X @ X.T
    sq_norms = np.diag(dots)
    sq_dist = np.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * dots, 0.0)
    sq_median = float(np.median(sq_dist))
    if sq_median <= 0.0:
        return np.ones_like(sq_dist)  # more than half the pairs coincide: every bandwidth sees one point
    return np.exp(-sq_dist / (2.0 * sigma ** 2 * sq_median))


def center_gram(K: np.ndarray) -> np.ndarray:
    """H K H with H = I - 11^T / n (double centering of a Gram matrix)."""
    K = np.asarray(K, dtype=np.float64)
    return K - K.mean(axis=0, keepdims=True) - K.mean(axis=1, keepdims=True) + K.mean()


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """HSIC_0(K, L) = tr(K H L H) / (n - 1)^2 (Kornblith et al. 2019, Sec. 3; Gretton et al. 2005)."""
    n = K.shape[0]
    return float(np.sum(center_gram(K) * center_gram(L)) / (n - 1) ** 2)


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """HSIC_1 of Song et al. (2012), Eq. 5, with K~, L~ the Gram matrices with their diagonals set to 0::

        HSIC_1 = [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1 ] / (n (n-3))

    n x n form, for small n (tests, RBF samples). Needs n >= 4.
    """
    n = K.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 rows, got {n}")
    Kt = np.array(K, dtype=np.float64)
    Lt = np.array(L, dtype=np.float64)
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    ones = np.ones(n)
    trace = float(np.sum(Kt * Lt))  # tr(K~ L~) for symmetric matrices
    sums = float(ones @ Kt @ ones) * float(ones @ Lt @ ones) / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * float((Kt @ ones) @ (Lt @ ones))
    return (trace + sums - cross) / (n * (n - 3))


def cka_from_grams(K: np.ndarray, L: np.ndarray, debiased: bool = False) -> float:
    """CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019, Sec. 3), with HSIC_0 or HSIC_1."""
    hsic = hsic_unbiased if debiased else hsic_biased
    denom = hsic(K, K) * hsic(L, L)
    return float(hsic(K, L) / math.sqrt(denom)) if denom > 0 else float("nan")


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA in feature space: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), columns centred (Kornblith et al. 2019).

    Equal to cka_from_grams(gram_linear(X), gram_linear(Y)) because tr(KHLH) = ||(HY)^T (HX)||_F^2, and costs
    O(n p q) instead of O(n^2 (p + q)).
    """
    Xc, Yc = center_columns(X), center_columns(Y)
    num = np.linalg.norm(Yc.T @ Xc) ** 2
    denom = np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)
    return float(num / denom) if denom > 0 else float("nan")


def hsic_unbiased_linear(X: np.ndarray, Y: np.ndarray) -> float:
    """Song et al. (2012) Eq. 5 for the linear kernels K = X X^T, L = Y Y^T, in feature space (no n x n matrix).

    Derivation. Write r_i = ||x_i||^2 and s_i = ||y_i||^2 (the diagonals of K and L), a = X^T 1 and b = Y^T 1
    (column sums). K~ = K - diag(r), L~ = L - diag(s). Then

    - tr(K~ L~) = sum_{i != j} K_ij L_ij = sum_ij K_ij L_ij - sum_i r_i s_i = tr(K L) - r.s
      and tr(K L) = tr(X X^T Y Y^T) = tr((Y^T X)^T (Y^T X)) = ||Y^T X||_F^2;
    - 1^T K~ 1 = 1^T X X^T 1 - sum_i r_i = ||a||^2 - sum(r), and likewise 1^T L~ 1 = ||b||^2 - sum(s);
    - K~ 1 = X a - r and L~ 1 = Y b - s, so 1^T K~ L~ 1 = (K~ 1)^T (L~ 1) = (X a - r).(Y b - s).

    Everything but Y^T X (a p x q matrix, O(n p q)) costs O(n (p + q)). With centred columns a = b = 0, which
    leaves ||Y^T X||_F^2 - r.s, sum(r) sum(s) and r.s. The estimator is unchanged by translating X or Y (it is
    a U-statistic of differences), so centring first only improves rounding.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 rows, got {n}")
    r = np.einsum("ij,ij->i", X, X)
    s = np.einsum("ij,ij->i", Y, Y)
    a = X.sum(axis=0)
    b = Y.sum(axis=0)
    trace = np.linalg.norm(Y.T @ X) ** 2 - r @ s
    sum_k = a @ a - r.sum()
    sum_l = b @ b - s.sum()
    cross = (X @ a - r) @ (Y @ b - s)
    return float((trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3)))


def debiased_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)) with linear kernels (Nguyen et al. 2021), in feature space."""
    Xc, Yc = center_columns(X), center_columns(Y)
    denom = hsic_unbiased_linear(Xc, Xc) * hsic_unbiased_linear(Yc, Yc)
    return float(hsic_unbiased_linear(Xc, Yc) / math.sqrt(denom)) if denom > 0 else float("nan")


def rbf_cka(X: np.ndarray, Y: np.ndarray, sigma: float = 0.8) -> float:
    """CKA with Gaussian kernels of bandwidth sigma x median distance (Kornblith et al. 2019), n x n form."""
    return cka_from_grams(gram_rbf(X, sigma), gram_rbf(Y, sigma))


# ---------------------------------------------------------------------------------------------- all pairs

LayerSource = Callable[[], np.ndarray]


@dataclass
class LinearStats:
    """One layer prepared once: centred rows (matmul dtype) and, in float64, r_i = ||x_i||^2, sum(r), r.r, ||X^T X||_F^2."""
    centered: torch.Tensor
    row_sq: torch.Tensor
    sum_r: float
    r_dot_r: float
    self_sq: float = float("nan")


def layer_rows(source: LayerSource, rows: np.ndarray | None) -> np.ndarray:
    X = source()
    if X.ndim != 2:
        raise ValueError(f"a layer matrix must be 2-D, got shape {X.shape}")
    return X if rows is None else X[rows]


def center_torch(X: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype, chunk_rows: int,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Columns centred with a float64 mean, stored as ``dtype`` on ``device`` (into ``out`` if given).

    float32: x - m is computed as (x - m32) - (m - m32) in float32, where m32 is the float64 mean rounded to
    float32. The first subtraction is correctly rounded, i.e. accurate relative to the *centred* value, so this
    is as good as subtracting in float64 and rounding, without a float64 copy of the layer.
    """
    n, d = X.shape
    if out is None:
        out = torch.empty((n, d), dtype=dtype, device=device)
    total = torch.zeros(d, dtype=torch.float64, device=device)
    for s in range(0, n, chunk_rows):
        part = X[s:s + chunk_rows]
        if isinstance(part, torch.Tensor):  # already a tensor (a benchmark's device-resident layer)
            out[s:s + chunk_rows] = part.to(device=device, dtype=dtype)
        elif out.device.type == "cpu" and out.is_contiguous():
            out[s:s + chunk_rows].numpy()[...] = part  # one copy straight from a memory map
        else:
            out[s:s + chunk_rows] = torch.from_numpy(np.array(part, dtype=np.float32)).to(device)
        total += out[s:s + chunk_rows].sum(dim=0, dtype=torch.float64)
    mean = total / n
    mean_low = mean.to(dtype)
    rest = (mean - mean_low.double()).to(dtype)
    for s in range(0, n, chunk_rows):
        out[s:s + chunk_rows] -= mean_low
        out[s:s + chunk_rows] -= rest
    return out


def prepare_linear(X: np.ndarray, device: torch.device, dtype: torch.dtype, chunk_rows: int,
                    out: torch.Tensor | None = None) -> LinearStats:
    Xc = center_torch(X, device, dtype, chunk_rows, out=out)
    n = Xc.shape[0]
    r = torch.empty(n, dtype=torch.float64, device=device)
    for s in range(0, n, chunk_rows):
        r[s:s + chunk_rows] = torch.linalg.vector_norm(Xc[s:s + chunk_rows], dim=1, dtype=torch.float64) ** 2
    return LinearStats(centered=Xc, row_sq=r, sum_r=float(r.sum()), r_dot_r=float(r @ r))


def cross_products(Xc: torch.Tensor, Ys: torch.Tensor, chunk_rows: int) -> torch.Tensor:
    """X^T Y (p x q) accumulated in float64 over row chunks of at most ``chunk_rows``.

    With float32 inputs each chunk's product is a float32 matmul (the fast path on CPUs and GPUs) and the
    chunks are summed in float64, so rounding grows with the chunk length, not with n.
    """
    n = Xc.shape[0]
    acc = torch.zeros((Xc.shape[1], Ys.shape[1]), dtype=torch.float64, device=Xc.device)
    for s in range(0, n, chunk_rows):
        acc += (Xc[s:s + chunk_rows].T @ Ys[s:s + chunk_rows]).double()
    return acc


def _block_sq_norms(acc: torch.Tensor, widths: Sequence[int]) -> list[float]:
    """||block||_F^2 of consecutive column blocks of ``acc`` (float64)."""
    out: list[float] = []
    start = 0
    for w in widths:
        out.append(float(torch.linalg.vector_norm(acc[:, start:start + w]) ** 2))
        start += w
    return out


def hsic1_from_terms(tr_kl, r_dot_s, sum_r, sum_s, n: int):
    """Song et al. (2012) Eq. 5 from centred feature-space terms (derivation: :func:`hsic_unbiased_linear`).

    With centred columns: tr(K~L~) = ||Y^T X||_F^2 - r.s, (1^T K~ 1)(1^T L~ 1) = sum(r) sum(s), 1^T K~ L~ 1 = r.s.
    Works elementwise on arrays.
    """
    trace = tr_kl - r_dot_s
    return (trace + sum_r * sum_s / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * r_dot_s) / (n * (n - 3))


def _ratio(num: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """num / sqrt(denom), NaN where denom <= 0 (a constant layer has no similarity to speak of)."""
    ok = denom > 0
    return np.where(ok, num / np.sqrt(np.where(ok, denom, 1.0)), np.nan)


def _linear_family(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], *, rows1, rows2,
                   symmetric: bool, device: torch.device, precision: str, chunk_rows: int,
                   progress: Callable[[], None] | None) -> dict[str, np.ndarray]:
    """Linear and debiased linear CKA of every pair, from ||X_i^T Y_j||_F^2, r_i.s_j, sums and self terms.

    The products come from :func:`wordreps.analysis.pairs.stream_cross_products` (the smaller model's centred
    layers resident side by side, one long X_i^T [Y_0 ... Y_L] product per streamed layer)."""
    from wordreps.analysis.pairs import paired_count, stream_cross_products  # pairs builds on this module

    dtype = torch.float32 if precision == "mixed" else torch.float64
    L1, L2 = len(layers1), len(layers2)
    cross, rs = np.full((L1, L2), np.nan), np.full((L1, L2), np.nan)
    self1, sum_r1, rr1 = np.full(L1, np.nan), np.full(L1, np.nan), np.full(L1, np.nan)
    self2, sum_r2, rr2 = np.full(L2, np.nan), np.full(L2, np.nan), np.full(L2, np.nan)

    def prepare(X, out):
        st = prepare_linear(X, device, dtype, chunk_rows, out=out)
        if not symmetric:  # within one model the diagonal pairs give ||X^T X||_F^2
            st.self_sq = _block_sq_norms(cross_products(st.centered, st.centered, chunk_rows), [X.shape[1]])[0]
        return st.centered, st

    def on_pair(i: int, j: int, block: torch.Tensor, st1: LinearStats, st2: LinearStats) -> None:
        cross[i, j] = float(torch.linalg.vector_norm(block) ** 2)
        rs[i, j] = float(st1.row_sq @ st2.row_sq)
        sum_r1[i], rr1[i], sum_r2[j], rr2[j] = st1.sum_r, st1.r_dot_r, st2.sum_r, st2.r_dot_r
        if not symmetric:
            self1[i], self2[j] = st1.self_sq, st2.self_sq
        else:  # pairs j >= i only: the map is symmetric and its diagonal holds the self terms
            cross[j, i], rs[j, i] = cross[i, j], rs[i, j]
            if i == j:
                self1[i] = self2[i] = cross[i, i]

    stream_cross_products(layers1, layers2, prepare, on_pair, rows1=rows1, rows2=rows2, symmetric=symmetric,
                          device=device, dtype=dtype, chunk_rows=chunk_rows, progress=progress)
    n = paired_count(layers1, layers2, rows1, rows2)
    out = {"linear": _ratio(cross, np.outer(self1, self2))}
    if n >= 4:
        h12 = hsic1_from_terms(cross, rs, sum_r1[:, None], sum_r2[None, :], n)
        h11 = hsic1_from_terms(self1, rr1, sum_r1, sum_r1, n)
        h22 = hsic1_from_terms(self2, rr2, sum_r2, sum_r2, n)
        out["debiased"] = _ratio(h12, np.outer(h11, h22))
    else:
        out["debiased"] = np.full((L1, L2), np.nan)
    return out


def median_like_numpy(values: torch.Tensor, method: str = "auto") -> float:
    """The median of all elements as ``np.median`` defines it (mean of the two middle values for an even count).

    ``method``: ``sort`` (one radix sort of the whole tensor: on a GPU it uses every multiprocessor, where
    ``torch.kthvalue`` on one 25M-element slice (the RBF sample of 5000 rows) runs on a single thread block),
    ``select`` (numpy's introselect on the host: linear time, the fast choice on a CPU), or ``auto``
    (sort on CUDA, select elsewhere). All three give the same value.
    """
    flat = values.reshape(-1)
    m = flat.numel()
    if m == 0:
        raise ValueError("median of an empty tensor")
    lo_k, hi_k = (m - 1) // 2, m // 2  # 0-based ranks of the two middle values
    if method == "auto":
        method = "sort" if flat.device.type == "cuda" else "select"
    if method == "sort":
        ordered = torch.sort(flat).values
        return float((ordered[lo_k] + ordered[hi_k]) / 2)
    if method == "select":
        host = flat.detach().cpu().numpy()
        part = np.partition(host, (lo_k, hi_k))  # a copy: the caller's tensor is left as it was
        return float((part[lo_k] + part[hi_k]) / 2)
    raise ValueError(f"unknown median method {method!r}")


def _rbf_centered_gram(X: np.ndarray, sigma: float, device: torch.device) -> torch.Tensor:
    """H K H for the Gaussian kernel of :func:`gram_rbf`, float64 on ``device``."""
    Xt = torch.from_numpy(np.array(X, dtype=np.float64)).to(device)
    dots = Xt @ Xt.T
    sq = torch.diagonal(dots).clone()
    sq_dist = (sq[:, None] + sq[None, :] - 2.0 * dots).clamp_min_(0.0)
    del dots
    sq_median = median_like_numpy(sq_dist)
    if sq_median <= 0:
        K = torch.ones_like(sq_dist)
    else:
        K = torch.exp(sq_dist.div_(-2.0 * sigma ** 2 * sq_median))
    K -= K.mean(dim=0, keepdim=True)
    K -= K.mean(dim=1, keepdim=True)
    return K


def _rbf_family(layers1, layers2, *, rows1, rows2, symmetric: bool, device: torch.device, sigma: float,
                progress) -> np.ndarray:
    grams2 = [_rbf_centered_gram(layer_rows(src, rows2), sigma, device) for src in layers2]
    norms2 = np.array([float(torch.linalg.norm(G)) for G in grams2])
    L1, L2 = len(layers1), len(layers2)
    out = np.full((L1, L2), np.nan)
    for i in range(L1):
        G = grams2[i] if symmetric else _rbf_centered_gram(layer_rows(layers1[i], rows1), sigma, device)
        norm = float(torch.linalg.norm(G))
        for j in range(i if symmetric else 0, L2):
            denom = norm * norms2[j]
            out[i, j] = float((G * grams2[j]).sum()) / denom if denom > 0 else np.nan
            if symmetric:
                out[j, i] = out[i, j]
        if progress is not None:
            progress()
    return out


def all_pairs(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], metrics: Sequence[str], *,
              rows1: np.ndarray | None = None, rows2: np.ndarray | None = None, symmetric: bool = False,
              device: torch.device | str = "cpu", precision: str = "mixed", rbf_sigma: float = 0.8,
              chunk_rows: int = 16384, progress: Callable[[], None] | None = None, **_options
              ) -> dict[str, np.ndarray]:
    """The CKA engine of the measure table (``measures.py``): every pair (i, j) of ``layers1[i]`` (rows
    ``rows1``) and ``layers2[j]`` (rows ``rows2``): {metric: (L1, L2)}.

    A layer source is a callable returning a (n, d) float32 array (a memory map is fine: rows are read in
    chunks). ``rows1``/``rows2`` select and pair rows (bootstrap: the same resample on both sides; permutation
    baseline: a shuffled ``rows2``). Each layer is centred once (float64 mean) and kept as float32 for the
    products (``precision="mixed"``: float32 matmuls over row chunks of ``chunk_rows``, summed in float64) or
    as float64 throughout (``precision="float64"``). The smaller model's layers stay on the device side by
    side; the other's are streamed one at a time. ``symmetric``: both sides are the same layers and rows
    (within-model map), only pairs j >= i are computed. ``rbf`` expects the caller to pass a row sample.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {METRICS}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    device = torch.device(device) if isinstance(device, str) else device
    if symmetric and (len(layers1) != len(layers2)):
        raise ValueError("symmetric needs the same layers on both sides")
    with exact_float32():  # float32 products in full float32: TF32 would cost ~3 decimal digits in X^T Y
        return _all_pairs(layers1, layers2, metrics, rows1=rows1, rows2=rows2, symmetric=symmetric, device=device,
                          precision=precision, rbf_sigma=rbf_sigma, chunk_rows=chunk_rows, progress=progress)


def _all_pairs(layers1, layers2, metrics, *, rows1, rows2, symmetric, device, precision, rbf_sigma, chunk_rows,
               progress) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if "linear" in metrics or "debiased" in metrics:
        res = _linear_family(layers1, layers2, rows1=rows1, rows2=rows2, symmetric=symmetric, device=device,
                             precision=precision, chunk_rows=chunk_rows, progress=progress)
        out.update({k: v for k, v in res.items() if k in metrics})
    if "rbf" in metrics:
        if not symmetric and len(layers1) < len(layers2):
            # an n x n Gram matrix per resident layer: keep the model with fewer layers resident, and still give
            # the caller one tick per layer of model 1
            from wordreps.analysis.pairs import LayerTicker  # pairs builds on this module

            ticker, calls = LayerTicker(progress, len(layers1), len(layers2)), iter(range(len(layers2)))
            out["rbf"] = _rbf_family(layers2, layers1, rows1=rows2, rows2=rows1, symmetric=False, device=device,
                                     sigma=rbf_sigma, progress=lambda: ticker.step(next(calls))).T.copy()
        else:
            out["rbf"] = _rbf_family(layers1, layers2, rows1=rows1, rows2=rows2, symmetric=symmetric,
                                     device=device, sigma=rbf_sigma, progress=progress)
    return out
