"""The torch part of ASIF (see :mod:`wordreps.analysis.retrieval` for the procedure and the choices made).

Top-k similarities to the anchors in chunks, sparse relative representations, sparse products and the
ranking of candidate words. Kept apart so that the command line checks its inputs without importing torch.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from wordreps.analysis.retrieval import chance_levels, normalise
from wordreps.common.devices import resolve_device
from wordreps.common.precision import exact_float32

# torch marks sparse CSR as "beta"; the products used here (CPU: MKL, CUDA: cuSPARSE) are long-standing ones
_CSR_BETA = "Sparse CSR tensor support is in beta state"


# ---------------------------------------------------------------------------------------------- relative reps

def topk_anchor_similarities(X: torch.Tensor, anchors: torch.Tensor, ks: Sequence[int], chunk_size: int,
                             exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row of X: the max(ks) largest cosine similarities to ``anchors`` (values, anchor indices).

    ``exclude[r]`` (or -1) is an anchor index that row r must not use: an anchor's relative representation
    leaves itself out. Otherwise a candidate anchor would carry its own index at similarity 1, and the score of
    a query against it would be the query's similarity to the candidate's *paired* vector in the query's own
    modality: a within-modality lookup dressed up as cross-modal retrieval.

    Sorted by value, descending. For each k in ``ks`` the first k entries are the top-k *set*, with a tie at the
    k-th place broken towards lower anchor indices (rows with such a tie are re-sorted stably), so the set does
    not depend on how topk happens to order equal values.
    """
    kmax = max(ks)
    na = anchors.shape[0]
    take = min(kmax + 1, na)
    vals_out = torch.empty((X.shape[0], kmax), dtype=torch.float32, device=X.device)
    idx_out = torch.empty((X.shape[0], kmax), dtype=torch.int64, device=X.device)
    for s in range(0, X.shape[0], chunk_size):
        sims = X[s:s + chunk_size] @ anchors.T
        if exclude is not None:
            ex = exclude[s:s + chunk_size]
            rows = torch.nonzero(ex >= 0).flatten()
            sims[rows, ex[rows]] = float("-inf")
        v, i = torch.topk(sims, take, dim=1, largest=True, sorted=True)
        tie = torch.zeros(v.shape[0], dtype=torch.bool, device=X.device)
        for k in set(ks):
            if k < take:
                tie |= v[:, k - 1] == v[:, k]
        if bool(tie.any()):
            rows = torch.nonzero(tie).flatten()
            order = torch.sort(-sims[rows], dim=1, stable=True).indices[:, :take]
            i[rows] = order
            v[rows] = sims[rows].gather(1, order)
        vals_out[s:s + chunk_size] = v[:, :kmax]
        idx_out[s:s + chunk_size] = i[:, :kmax]
        del sims
    return vals_out, idx_out


def relative_reps(vals: torch.Tensor, idx: torch.Tensor, k: int, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse relative representations (values, anchor indices sorted ascending): top-k, clip at 0, ^p, L2-normalise."""
    v = vals[:, :k].clamp_min(0.0) ** p
    norm = torch.linalg.norm(v, dim=1, keepdim=True)
    v = torch.where(norm > 0, v / torch.where(norm > 0, norm, torch.ones_like(norm)), v)
    i, order = torch.sort(idx[:, :k], dim=1)
    return v.gather(1, order), i


def _csr(vals: torch.Tensor, idx: torch.Tensor, num_cols: int) -> torch.Tensor:
    rows, k = vals.shape
    crow = torch.arange(0, rows * k + 1, k, dtype=torch.int64, device=vals.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CSR_BETA)
        return torch.sparse_csr_tensor(crow, idx.reshape(-1), vals.reshape(-1), size=(rows, num_cols))


def _transposed_csr(vals: torch.Tensor, idx: torch.Tensor, num_cols: int) -> torch.Tensor:
    """(num_cols x rows) CSR of the transpose of the sparse (rows x num_cols) matrix given by (vals, idx)."""
    rows, k = vals.shape
    cand = torch.arange(rows, device=vals.device).repeat_interleave(k)
    coo = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), cand]), vals.reshape(-1), size=(num_cols, rows))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CSR_BETA)
        return coo.coalesce().to_sparse_csr()


@dataclass
class Candidates:
    """The candidates' sparse relative representations in both layouts the two products need."""
    vals: torch.Tensor
    idx: torch.Tensor
    num_anchors: int
    method: str
    csr: torch.Tensor | None = None      # (candidates x anchors), for CUDA
    csr_t: torch.Tensor | None = None    # (anchors x candidates), for CPU

    def scores(self, q_vals: torch.Tensor, q_idx: torch.Tensor) -> torch.Tensor:
        """Dense (queries x candidates) dot products of the queries' and candidates' relative representations."""
        if self.method == "sparse-dense":
            if self.csr is None:
                self.csr = _csr(self.vals, self.idx, self.num_anchors)
            dense = torch.zeros((q_vals.shape[0], self.num_anchors), dtype=torch.float32, device=q_vals.device)
            dense.scatter_(1, q_idx, q_vals)
            return (self.csr @ dense.T.contiguous()).T.contiguous()
        if self.csr_t is None:
            self.csr_t = _transposed_csr(self.vals, self.idx, self.num_anchors)
        q = _csr(q_vals, q_idx, self.num_anchors)
        return torch.sparse.mm(q, self.csr_t).to_dense()


def rank_words(scores: torch.Tensor, cand_word: torch.Tensor, num_words: int, true_word: torch.Tensor,
               top: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query: the rank (1-based, 0 if the true word is no candidate) of the true word and the top word ids.

    A word's score is its best occurrence's; equal scores are ordered by that best occurrence's index.
    """
    C, M = scores.shape
    expand = cand_word.unsqueeze(0).expand(C, M)
    best = torch.full((C, num_words), -math.inf, dtype=scores.dtype, device=scores.device)
    best.scatter_reduce_(1, expand, scores, reduce="amax", include_self=True)
    at_best = scores == best.gather(1, expand)
    position = torch.where(at_best, torch.arange(M, device=scores.device).expand(C, M), M)
    first = torch.full((C, num_words), M, dtype=torch.int64, device=scores.device)
    first.scatter_reduce_(1, expand, position, reduce="amin", include_self=True)
    # two stable sorts: by first occurrence, then by score (descending) -> score order, ties by first occurrence
    by_first = torch.argsort(first, dim=1, stable=True)
    by_score = torch.argsort(-best.gather(1, by_first), dim=1, stable=True)
    order = by_first.gather(1, by_score)
    hit = order == true_word.unsqueeze(1)
    rank = torch.where(true_word >= 0, hit.to(torch.int64).argmax(dim=1) + 1, torch.zeros_like(true_word))
    return rank, order[:, :min(top, num_words)]


# ---------------------------------------------------------------------------------------------- run

@dataclass
class DirectionResult:
    name: str
    ranks: np.ndarray
    top: np.ndarray          # (queries, <=5) word ids
    metrics: dict = field(default_factory=dict)


def _direction(q_vals, q_idx, c_vals, c_idx, num_anchors: int, cand_word: torch.Tensor, true_word: torch.Tensor,
               num_words: int, k: int, p: float, chunk_size: int, method: str, name: str) -> DirectionResult:
    qv, qi = relative_reps(q_vals, q_idx, k, p)
    cv, ci = relative_reps(c_vals, c_idx, k, p)
    cands = Candidates(cv, ci, num_anchors, method)
    ranks, tops = [], []
    for s in range(0, qv.shape[0], chunk_size):
        scores = cands.scores(qv[s:s + chunk_size], qi[s:s + chunk_size])
        r, t = rank_words(scores, cand_word, num_words, true_word[s:s + chunk_size])
        ranks.append(r.cpu())
        tops.append(t.cpu())
        del scores
    ranks_np = torch.cat(ranks).numpy()
    top_np = torch.cat(tops).numpy()
    recip = np.where(ranks_np > 0, 1.0 / np.maximum(ranks_np, 1), 0.0)
    metrics = {"top1": float(np.mean(ranks_np == 1)), "top5": float(np.mean((ranks_np >= 1) & (ranks_np <= 5))),
               "mrr": float(recip.mean()), "num_queries": int(len(ranks_np)),
               "num_answerable": int((true_word >= 0).sum()), "num_candidate_words": int(num_words),
               "num_candidates": int(c_vals.shape[0])}
    return DirectionResult(name=name, ranks=ranks_np, top=top_np, metrics=metrics)


def run_asif(a: np.ndarray, t: np.ndarray, words: Sequence[str], queries: np.ndarray, anchors: np.ndarray, *,
             ks: Sequence[int], ps: Sequence[float], seed: int = 0, center: bool = False, chunk_size: int = 512,
             device: str | torch.device = "cpu", method: str = "auto", names: tuple[str, str] = ("audio", "text"),
             chance_draws: int = 1000, paths: tuple[str, str] = ("layer1", "layer2")) -> dict:
    """ASIF in both directions for every (k, p) with the given split; returns vocabulary and per-config results.

    ``queries`` and ``anchors`` are row indices (see :func:`wordreps.analysis.retrieval.split_rows`); every k must
    be at most the number of anchors - 1 (an anchor's own representation leaves itself out).
    """
    n = a.shape[0]
    if len(words) != n or t.shape[0] != n:
        raise ValueError("a, t and words must have the same number of rows")
    na = len(anchors)
    if max(ks) > na - 1:
        raise ValueError(f"k = {max(ks)} exceeds the {na - 1} anchors an anchor can use (itself left out)")
    with exact_float32():  # cosine similarities in full float32 (no TF32): top-k sets must not depend on the GPU
        return _run_asif(a, t, words, queries, anchors, ks=ks, ps=ps, seed=seed, center=center, chunk_size=chunk_size,
                         device=device, method=method, names=names, chance_draws=chance_draws, paths=paths)


def _run_asif(a, t, words, queries, anchors, *, ks, ps, seed, center, chunk_size, device, method, names, chance_draws,
              paths) -> dict:
    n = a.shape[0]
    na = len(anchors)
    dev = resolve_device(device) if isinstance(device, str) else device
    if method == "auto":
        method = "sparse-dense" if dev.type == "cuda" else "sparse-sparse"
    A = torch.from_numpy(normalise(a, anchors, center, paths[0])).to(dev)
    T = torch.from_numpy(normalise(t, anchors, center, paths[1])).to(dev)
    ks = sorted(set(int(k) for k in ks))
    q_t, a_t = torch.from_numpy(queries).to(dev), torch.from_numpy(anchors).to(dev)
    exclude = torch.full((n,), -1, dtype=torch.int64, device=dev)
    exclude[a_t] = torch.arange(na, device=dev)
    a_vals, a_idx = topk_anchor_similarities(A, A[a_t], ks, chunk_size, exclude)
    t_vals, t_idx = topk_anchor_similarities(T, T[a_t], ks, chunk_size, exclude)
    del A, T
    vocab = sorted({words[i] for i in anchors})
    word_id = {w: j for j, w in enumerate(vocab)}
    cand_word = torch.tensor([word_id[words[i]] for i in anchors], dtype=torch.int64, device=dev)
    true_word = torch.tensor([word_id.get(words[i], -1) for i in queries], dtype=torch.int64, device=dev)
    chance = chance_levels(cand_word.cpu().numpy(), true_word.cpu().numpy(), len(vocab), seed, chance_draws)
    fwd, bwd = f"{names[0]}_to_{names[1]}", f"{names[1]}_to_{names[0]}"
    configs = []
    for p in ps:
        for k in ks:
            res = {
                fwd: _direction(a_vals[q_t], a_idx[q_t], t_vals[a_t], t_idx[a_t], na, cand_word, true_word,
                                len(vocab), k, p, chunk_size, method, fwd),
                bwd: _direction(t_vals[q_t], t_idx[q_t], a_vals[a_t], a_idx[a_t], na, cand_word, true_word,
                                len(vocab), k, p, chunk_size, method, bwd),
            }
            configs.append({"k": k, "p": float(p), "directions": res})
    return {"queries": queries, "anchors": anchors, "vocab": vocab, "chance": chance, "configs": configs,
            "method": method, "device": str(dev)}


