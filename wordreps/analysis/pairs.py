"""Plumbing shared by the all-pairs engines of the CCA family, Procrustes and RSA.

Every engine has the signature of :func:`wordreps.analysis.cka.all_pairs` minus its CKA-only options::

    engine(layers1, layers2, names, *, rows1=None, rows2=None, symmetric=False, device="cpu",
           precision="mixed", chunk_rows=16384, progress=None, **options) -> {name: (L1, L2) float64 array}

(the signature the measure table, :mod:`wordreps.analysis.measures`, expects). A layer is a zero-argument callable returning an (n, d) float32 array (a memory map is fine); ``rows1`` and
``rows2`` select and pair rows (row ``rows1[k]`` of every layer of model 1 is paired with row ``rows2[k]`` of
model 2: a bootstrap passes the same resample twice, a permutation baseline a shuffled ``rows2``).
``symmetric``: both sides are the same layers and rows (a within-model map).

:func:`stream_cross_products` is the product loop the CKA engine uses (:func:`cka._linear_family`), made
generic: each layer is prepared once (centred, or whitened, ...) into an (n, w) matrix; the side with fewer
columns in all stays resident side by side in one (n, sum w) matrix, the other side's layers are streamed one
at a time, and each streamed layer needs one long product against the resident matrix (float32 products on
row chunks summed in float64 with ``precision="mixed"``, see :func:`cka.cross_products`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from wordreps.analysis.cka import PRECISIONS, LayerSource, cross_products, layer_rows  # noqa: F401 (re-exported)
from wordreps.common.precision import exact_float32

# one prepared layer: the (n, w) matrix whose products are taken, and whatever per-layer facts the measure needs
Prepare = Callable[[np.ndarray, "torch.Tensor | None"], tuple[torch.Tensor, Any]]
OnPair = Callable[[int, int, torch.Tensor, Any, Any], None]


class SampleSizeWarning(UserWarning):
    """A value computed from too few rows for the dimensions to mean much (see each measure's guard)."""


@contextlib.contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Small dense factorisations (SVD or eigh of a few hundred to a thousand columns) on one CPU thread.

    They gain little from threads (their bidiagonal or tridiagonal reduction is BLAS-2), and on a busy machine
    each of their many OpenMP barriers waits for a descheduled thread: an SVD of a 1024 x 768 float64 matrix
    took 0.95 s on one thread and 12.7 s on two with the machine's load average at 9. Products stay threaded.
    """
    if device.type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def singular_values(M: torch.Tensor) -> torch.Tensor:
    """Singular values of M (descending, float64) from the eigenvalues of the smaller of M^T M and M M^T.

    Squaring costs nothing that matters here: a singular value sigma comes out within about
    eps64 ||M||^2 / sigma, and within sqrt(eps64) ||M|| (1.5e-8 for a canonical correlation) near zero, where an
    SVD's bidiagonal reduction would cost several times more. The eigenvalue step runs on one thread
    (:func:`one_thread`).
    """
    small = M if M.shape[0] >= M.shape[1] else M.T
    gram = small.T @ small
    with one_thread(M.device):
        lam = torch.linalg.eigvalsh(gram)
    return lam.flip(0).clamp_min(0.0).sqrt()


def storage_dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.float32 if precision == "mixed" else torch.float64


def as_device(device: torch.device | str) -> torch.device:
    return torch.device(device) if isinstance(device, str) else device


def check_names(names: Sequence[str], known: Sequence[str], engine: str) -> list[str]:
    names = list(dict.fromkeys(names))
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ValueError(f"{engine}: unknown or no measure name(s) {unknown}; choose from {tuple(known)}")
    return names


def layer_width(source: LayerSource) -> int:
    shape = source().shape
    if len(shape) != 2:
        raise ValueError(f"a layer matrix must be 2-D, got shape {shape}")
    return int(shape[1])


def paired_count(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], rows1, rows2) -> int:
    """n, the number of paired rows, checked to agree on both sides (without reading a memory map)."""
    n1 = len(rows1) if rows1 is not None else int(layers1[0]().shape[0])
    n2 = len(rows2) if rows2 is not None else int(layers2[0]().shape[0])
    if n1 != n2:
        raise ValueError(f"model 1 gives {n1} rows and model 2 gives {n2}: rows must be paired one to one")
    return n1


class LayerTicker:
    """Calls ``progress`` exactly ``total`` times while ``steps`` streamed layers are done (steps may differ)."""

    def __init__(self, progress: Callable[[], None] | None, total: int, steps: int):
        self.progress, self.total, self.steps, self.done = progress, total, max(steps, 1), 0

    def step(self, k: int) -> None:
        if self.progress is None:
            return
        due = (k + 1) * self.total // self.steps
        while self.done < due:
            self.done += 1
            self.progress()


def stream_cross_products(layers1: Sequence[LayerSource], layers2: Sequence[LayerSource], prepare: Prepare,
                          on_pair: OnPair, *, rows1: np.ndarray | None, rows2: np.ndarray | None,
                          symmetric: bool, device: torch.device, dtype: torch.dtype, chunk_rows: int,
                          progress: Callable[[], None] | None) -> None:
    """Call ``on_pair(i, j, P1_i^T P2_j, info1_i, info2_j)`` for every layer pair (j >= i only if ``symmetric``).

    ``prepare(X, out)`` turns a layer's rows X (n, d) into the matrix P (n, w <= d) whose products are wanted
    and returns (P, info): P is written into the first w columns of ``out`` (an (n, d) tensor of ``dtype`` on
    ``device``, a view into the resident matrix) and returned as a view of them, or, when ``out`` is None,
    into a tensor it allocates. The block handed to ``on_pair`` is float64, (w1_i, w2_j), in model 1 x
    model 2 orientation whichever side was resident. ``progress`` is called len(layers1) times.
    """
    with exact_float32():  # float32 products in full float32: TF32 would cost ~3 decimal digits in X^T Y
        _stream(layers1, layers2, prepare, on_pair, rows1=rows1, rows2=rows2, symmetric=symmetric, device=device,
                dtype=dtype, chunk_rows=chunk_rows, progress=progress)


def _stream(layers1, layers2, prepare: Prepare, on_pair: OnPair, *, rows1, rows2, symmetric: bool,
            device: torch.device, dtype: torch.dtype, chunk_rows: int, progress) -> None:
    n = paired_count(layers1, layers2, rows1, rows2)
    widths1 = [layer_width(s) for s in layers1]
    widths2 = [layer_width(s) for s in layers2]
    if symmetric and len(layers1) != len(layers2):
        raise ValueError("symmetric needs the same layers on both sides")
    # keep the side with fewer columns in all resident (model 2 unless model 1 is smaller)
    swap = not symmetric and sum(widths1) < sum(widths2)
    res_layers, res_rows, res_widths = (layers1, rows1, widths1) if swap else (layers2, rows2, widths2)
    str_layers, str_rows = (layers2, rows2) if swap else (layers1, rows1)
    offsets = np.concatenate([[0], np.cumsum(res_widths)]).astype(int)
    stack = torch.zeros((n, int(offsets[-1])), dtype=dtype, device=device)
    used: list[int] = []
    infos_res: list[Any] = []
    for j, src in enumerate(res_layers):
        X = layer_rows(src, res_rows)
        if X.shape[0] != n:
            raise ValueError(f"a layer has {X.shape[0]} rows where the others have {n}")
        P, info = prepare(X, stack[:, offsets[j]:offsets[j + 1]])
        del X
        w = int(P.shape[1])
        stack[:, offsets[j] + w:offsets[j + 1]] = 0  # columns prepare left over add nothing to the products
        used.append(w)
        infos_res.append(info)
        del P
    ticker = LayerTicker(progress, len(layers1), len(str_layers))
    for i, src in enumerate(str_layers):
        if symmetric:
            P, info = stack[:, offsets[i]:offsets[i] + used[i]], infos_res[i]
            first = i
        else:
            X = layer_rows(src, str_rows)
            if X.shape[0] != n:
                raise ValueError(f"a layer has {X.shape[0]} rows where the others have {n}")
            P, info = prepare(X, None)
            del X
            first = 0
        # one long product against every resident layer from `first` on (unused columns are zeros)
        acc = cross_products(P, stack[:, offsets[first]:], chunk_rows)
        for j in range(first, len(res_layers)):
            block = acc[:, offsets[j] - offsets[first]:offsets[j] - offsets[first] + used[j]]
            if swap:
                on_pair(j, i, block.T, infos_res[j], info)
            else:
                on_pair(i, j, block, info, infos_res[j])
        del P, acc
        ticker.step(i)
