"""CKA estimators: properties, agreement with the papers' Gram-matrix equations, a hand-worked case.

The Gram-matrix references (tests/helpers/references.py) are written from the equations, independently of the
module: Kornblith et al. (2019), Sec. 3 (HSIC_0, CKA, the RBF kernel) and Song et al. (2012), Eq. 5 (HSIC_1).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import references as ref
from wordreps.analysis import cka as M


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _related(rng, n=120, p=12, q=9, noise=0.5):
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p) + rng.normal(size=p) * 4
    Y = np.tanh(X[:, :7] @ rng.normal(size=(7, q))) + noise * rng.normal(size=(n, q))
    return X, Y


def _pairs(X, Y, metrics=("linear", "debiased"), **kw):
    res = M.all_pairs([lambda: X.astype(np.float32)], [lambda: Y.astype(np.float32)], list(metrics), **kw)
    return {m: float(v[0, 0]) for m, v in res.items()}


def test_feature_space_equals_gram_formulas():
    rng = np.random.default_rng(0)
    for trial in range(3):
        X, Y = _related(rng)
        K, L = X @ X.T, Y @ Y.T
        ref_lin = ref.cka(K, L, ref.hsic0)
        ref_deb = ref.cka(K, L, ref.hsic1)
        assert M.linear_cka(X, Y) == pytest.approx(ref_lin, abs=1e-9)
        assert M.debiased_linear_cka(X, Y) == pytest.approx(ref_deb, abs=1e-9)
        assert M.hsic_unbiased_linear(X, Y) == pytest.approx(ref.hsic1(K, L), rel=1e-9)
        assert M.cka_from_grams(K, L) == pytest.approx(ref_lin, abs=1e-9)
        # the n x n reference forms of the debiased estimator too
        assert M.hsic_unbiased(K, L) == pytest.approx(ref.hsic1(K, L), rel=1e-9)
        assert M.cka_from_grams(K, L, debiased=True) == pytest.approx(ref_deb, abs=1e-9)
        ref_rbf = ref.cka(ref.rbf_gram(X, 0.8), ref.rbf_gram(Y, 0.8), ref.hsic0)
        assert M.rbf_cka(X, Y, 0.8) == pytest.approx(ref_rbf, abs=1e-9)
        # the all-pairs engine (float32 products summed in float64, then float64) to 1e-6
        for precision in ("mixed", "float64"):
            got = _pairs(X, Y, ("linear", "debiased", "rbf"), precision=precision, chunk_rows=50)
            # the engine sees float32 inputs: compare with the references on the same float32 values
            X32, Y32 = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
            assert got["linear"] == pytest.approx(ref.cka(X32 @ X32.T, Y32 @ Y32.T, ref.hsic0), abs=1e-6)
            assert got["debiased"] == pytest.approx(ref.cka(X32 @ X32.T, Y32 @ Y32.T, ref.hsic1), abs=1e-6)
            ref_rbf32 = ref.cka(ref.rbf_gram(X32, 0.8), ref.rbf_gram(Y32, 0.8), ref.hsic0)
            assert got["rbf"] == pytest.approx(ref_rbf32, abs=1e-6)


def test_identical_representations_give_one():
    rng = np.random.default_rng(1)
    X, _ = _related(rng)
    assert M.linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert M.debiased_linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert M.rbf_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    got = _pairs(X, X, ("linear", "debiased", "rbf"))
    assert got == pytest.approx({"linear": 1.0, "debiased": 1.0, "rbf": 1.0}, abs=1e-6)


def test_invariant_to_rotation_isotropic_scaling_and_translation():
    rng = np.random.default_rng(2)
    X, Y = _related(rng)
    Q, _ = np.linalg.qr(rng.normal(size=(X.shape[1], X.shape[1])))
    # (a small scale too: the RBF bandwidth follows the median distance, whatever its size)
    variants = {"rotation": X @ Q, "scaling": 3.7 * X, "shrinking": 1e-3 * X,
                "translation": X + rng.normal(size=X.shape[1]) * 10}
    for name, Xv in variants.items():
        for fn in (M.linear_cka, M.debiased_linear_cka, M.rbf_cka):
            assert fn(Xv, Y) == pytest.approx(fn(X, Y), abs=1e-9), (name, fn.__name__)
        every = ("linear", "debiased", "rbf")
        assert _pairs(Xv, Y, every) == pytest.approx(_pairs(X, Y, every), abs=2e-6), name
    # and not to an anisotropic scaling, so the test above can fail
    assert abs(M.linear_cka(X * np.linspace(0.1, 10, X.shape[1]), Y) - M.linear_cka(X, Y)) > 1e-3


def test_debiased_is_near_zero_for_independent_data_while_biased_is_not():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 100))
    Y = rng.normal(size=(200, 100))
    assert M.linear_cka(X, Y) > 0.3
    assert abs(M.debiased_linear_cka(X, Y)) < 0.05
    got = _pairs(X, Y)
    assert got["linear"] > 0.3 and abs(got["debiased"]) < 0.05


def test_hand_worked_case():
    # Four points on the axes and their first coordinate:
    #   X = [[1,0],[0,1],[-1,0],[0,-1]] (columns already centred), Y = [[1],[0],[-1],[0]].
    # Linear CKA: Y^T X = [2, 0] -> ||Y^T X||_F^2 = 4; X^T X = diag(2, 2) -> ||.||_F = sqrt(8); Y^T Y = 2.
    #   CKA = 4 / (sqrt(8) * 2) = 1/sqrt(2).
    # Debiased (n = 4: n(n-3) = 4, (n-1)(n-2) = 6, 2/(n-2) = 1), K~ and L~ with zero diagonals:
    #   K~ has -1 at (1,3),(3,1),(2,4),(4,2); L~ has -1 at (1,3),(3,1).
    #   HSIC_1(K,L): tr(K~L~) = 2, 1'K~1 = -4, 1'L~1 = -2, K~1 = [-1,-1,-1,-1], L~1 = [-1,0,-1,0] -> 1'K~L~1 = 2
    #                (2 + 8/6 - 2) / 4 = 1/3
    #   HSIC_1(K,K): (4 + 16/6 - 4) / 4 = 2/3;  HSIC_1(L,L): (2 + 4/6 - 2) / 4 = 1/6
    #   debiased CKA = (1/3) / sqrt(2/3 * 1/6) = (1/3) / (1/3) = 1.
    # 1-D case: x = [0,1,2,3], y = [0,0,1,1]: centred x.y = 2, |x|^2 = 5, |y|^2 = 1 -> CKA = 2^2 / (5 * 1) = 0.8.
    X = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
    Y = np.array([[1.0], [0], [-1], [0]])
    assert M.linear_cka(X, Y) == pytest.approx(1 / np.sqrt(2), abs=1e-12)
    assert M.hsic_unbiased_linear(X, Y) == pytest.approx(1 / 3, abs=1e-12)
    assert M.hsic_unbiased_linear(X, X) == pytest.approx(2 / 3, abs=1e-12)
    assert M.hsic_unbiased_linear(Y, Y) == pytest.approx(1 / 6, abs=1e-12)
    assert M.debiased_linear_cka(X, Y) == pytest.approx(1.0, abs=1e-12)
    # the n x n form at its smallest n (4)
    assert M.hsic_unbiased(X @ X.T, Y @ Y.T) == pytest.approx(1 / 3, abs=1e-12)
    assert M.cka_from_grams(X @ X.T, Y @ Y.T, debiased=True) == pytest.approx(1.0, abs=1e-12)
    assert _pairs(X, Y) == pytest.approx({"linear": 1 / np.sqrt(2), "debiased": 1.0}, abs=1e-7)
    x = np.array([[0.0], [1], [2], [3]])
    y = np.array([[0.0], [0], [1], [1]])
    assert M.linear_cka(x, y) == pytest.approx(0.8, abs=1e-12)


def test_all_pairs_matches_pairwise_and_is_symmetric_within_a_model():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(150, 6))
    A = [np.c_[base, rng.normal(size=(150, 4))] @ rng.normal(size=(10, 10)) for _ in range(3)]
    B = [np.tanh(base @ rng.normal(size=(6, 7))) + s * rng.normal(size=(150, 7)) for s in (0.1, 1.0)]
    A32 = [a.astype(np.float32) for a in A]
    B32 = [b.astype(np.float32) for b in B]
    src = lambda m: (lambda: m)  # noqa: E731
    ticks: list[str] = []
    res = M.all_pairs([src(a) for a in A32], [src(b) for b in B32], ["linear", "debiased", "rbf"], chunk_rows=64,
                      progress=lambda: ticks.append("res"))
    # model 1 is the narrower here, so the engine swaps sides; a caller's bar still counts model 1's layers,
    # once per family asked for (linear and debiased are one family, rbf another)
    swapped = M.all_pairs([src(b) for b in B32], [src(a) for a in A32], ["linear", "debiased", "rbf"],
                          progress=lambda: ticks.append("swapped"))
    assert ticks == ["res"] * (3 * 2) + ["swapped"] * (2 * 2)
    for i in range(3):
        a = A32[i].astype(np.float64)
        for j in range(2):
            b = B32[j].astype(np.float64)
            assert res["linear"][i, j] == pytest.approx(M.linear_cka(A32[i], B32[j]), abs=1e-6)
            assert res["debiased"][i, j] == pytest.approx(M.debiased_linear_cka(A32[i], B32[j]), abs=1e-6)
            want_rbf = ref.cka(ref.rbf_gram(a, 0.8), ref.rbf_gram(b, 0.8), ref.hsic0)
            assert res["rbf"][i, j] == pytest.approx(want_rbf, abs=1e-6)
    for m in ("linear", "debiased", "rbf"):
        assert swapped[m].shape == (2, 3)
        assert np.allclose(swapped[m], res[m].T, atol=1e-6), m
    within = M.all_pairs([src(a) for a in A32], [src(a) for a in A32], ["linear", "debiased", "rbf"], symmetric=True)
    full = M.all_pairs([src(a) for a in A32], [src(a.copy()) for a in A32], ["linear", "debiased", "rbf"])
    for m in within:
        assert np.allclose(within[m], within[m].T)
        assert np.allclose(np.diag(within[m]), 1.0, atol=1e-6)
        assert np.allclose(within[m], full[m], atol=1e-6)
    # rows select and pair occurrences: a permutation applied to both sides changes nothing
    perm = rng.permutation(150)
    same = M.all_pairs([src(a) for a in A32], [src(b) for b in B32], ["linear"], rows1=perm, rows2=perm)
    assert np.allclose(same["linear"], res["linear"], atol=1e-6)


def test_mixed_precision_matches_float64_to_1e6():
    # many rows and a large mean: the regime where float32 sums over all n rows would lose digits
    rng = np.random.default_rng(5)
    n = 40000
    Z = rng.normal(size=(n, 16))
    X = (Z @ rng.normal(size=(16, 48)) + 50.0 + rng.normal(size=(n, 48))).astype(np.float32)
    Y = (np.tanh(Z[:, :8]) @ rng.normal(size=(8, 40)) - 20.0 + 2 * rng.normal(size=(n, 40))).astype(np.float32)
    W = rng.normal(size=(n, 40)).astype(np.float32)
    mixed = M.all_pairs([lambda: X], [lambda: Y, lambda: W], ["linear", "debiased"], precision="mixed",
                        chunk_rows=8192)
    exact = M.all_pairs([lambda: X], [lambda: Y, lambda: W], ["linear", "debiased"], precision="float64")
    for m in mixed:
        assert np.max(np.abs(mixed[m] - exact[m])) < 1e-6, m
    assert exact["linear"][0, 0] == pytest.approx(M.linear_cka(X, Y), abs=1e-9)
