"""CCA family, Procrustes and RSA: each checked against an independent implementation, on known answers,
invariances, baselines, and the all-pairs engines against the reference forms pair by pair.

Independent implementations used here (none of them calls the module under test):
- canonical correlations: cosines of scipy.linalg.subspace_angles (Bjorck & Golub's principal angles) and
  scikit-learn's iterative CCA (NIPALS), scores correlated pair by pair;
- PWCCA: Morcos et al.'s recipe as their released code does it (covariance whitening, canonical directions,
  QR of the canonical variates, weights summed over neurons), written below from the covariance equations;
- Procrustes: scipy.linalg.orthogonal_procrustes (its ``scale`` is the nuclear norm of A^T B) and the
  residual ||X R - Y||_F^2 of its rotation;
- RSA: scipy.stats.spearmanr on scipy.spatial.distance.pdist(..., "correlation").
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.spatial.distance as ssd
import scipy.stats as sst
from sklearn.cross_decomposition import CCA as SklearnCCA

from wordreps.analysis import cca as C
from wordreps.analysis import procrustes as P
from wordreps.analysis import rsa as R
from wordreps.analysis.pairs import SampleSizeWarning

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _centred(X):
    return X - X.mean(axis=0)


def _related(rng, n=400, p=10, q=7, noise=0.7):
    Z = rng.normal(size=(n, 4))
    X = np.c_[Z, rng.normal(size=(n, p - 4))] @ rng.normal(size=(p, p)) + rng.normal(size=p) * 5
    Y = np.c_[np.tanh(Z[:, :3]) @ rng.normal(size=(3, 3)), rng.normal(size=(n, q - 3))] + noise * rng.normal(size=(n, q))
    return X, Y


def _src(*mats):
    return [(lambda m=m.astype(np.float32): m) for m in mats]


def _inv_sqrt(S):
    w, V = np.linalg.eigh(S)
    return (V / np.sqrt(w)) @ V.T


def _morcos_pwcca(X, Y):
    """PWCCA the way Morcos et al.'s released code computes it, with the weights on X's side."""
    Xc, Yc = _centred(X), _centred(Y)
    Wx, Wy = _inv_sqrt(Xc.T @ Xc), _inv_sqrt(Yc.T @ Yc)
    A, rho, _ = np.linalg.svd(Wx @ (Xc.T @ Yc) @ Wy, full_matrices=False)
    dirns = Xc @ Wx @ A                      # canonical variates, one column per correlation
    Q, _ = np.linalg.qr(dirns)               # their code orthonormalises the variates
    weights = np.abs(Q.T @ Xc).sum(axis=1)   # sum over neurons j of |<h_i, x_j>|
    return float(weights @ rho / weights.sum())


def _orthonormal_centred(rng, n, k):
    Q, _ = np.linalg.qr(_centred(rng.normal(size=(n, k))))
    return Q.T  # rows q_1..q_k: orthonormal, each summing to 0


# ---------------------------------------------------------------------------------------------- CCA family

def test_canonical_correlations_equal_principal_angles_and_sklearn():
    rng = np.random.default_rng(0)
    X, Y = _related(rng)
    rho = C.canonical_correlations(X, Y)
    angles = np.sort(np.cos(sla.subspace_angles(_centred(X), _centred(Y))))[::-1]
    assert rho.shape == (7,)
    assert np.allclose(rho, angles, atol=1e-10)
    assert rho[0] > 0.8 and rho[-1] < 0.2  # related and unrelated directions, so the comparison means something
    cca = SklearnCCA(n_components=3, scale=False, max_iter=5000, tol=1e-13).fit(X, Y)
    xs, ys = cca.transform(X, Y)
    sk = [np.corrcoef(xs[:, k], ys[:, k])[0, 1] for k in range(3)]
    assert np.allclose(sk, rho[:3], atol=1e-6)
    assert C.cca(X, Y) == pytest.approx(rho.mean(), abs=1e-12)


def test_known_answers_on_an_orthonormal_design():
    # q1..q4 orthonormal and centred; X = [3 q1, q2], Y = [0.8 q1 + 0.6 q3, q4]:
    #   U_X^T U_Y = [[0.8, 0], [0, 0]] -> rho = (0.8, 0), cca = 0.4.
    #   PWCCA from X's side: variates q1 (rho 0.8) and q2 (rho 0); sum_j |<q1, x_j>| = 3, sum_j |<q2, x_j>| = 1
    #   -> (3 * 0.8 + 1 * 0) / 4 = 0.6.  From Y's side both weights are 1 -> 0.4.
    #   SVCCA at 85 % variance keeps q1 of X (9 / 10 of its variance) and both of Y -> rho = 0.8.
    #   Procrustes: X^T Y = [[2.4, 0], [0, 0]], ||X||_F = sqrt(10), ||Y||_F = sqrt(2) -> 2.4 / sqrt(20).
    rng = np.random.default_rng(1)
    q1, q2, q3, q4 = _orthonormal_centred(rng, 200, 4)
    X = np.c_[3 * q1, q2] + 7.0
    Y = np.c_[0.8 * q1 + 0.6 * q3, q4]
    assert C.canonical_correlations(X, Y) == pytest.approx([0.8, 0.0], abs=1e-12)
    assert C.cca(X, Y) == pytest.approx(0.4, abs=1e-12)
    assert C.pwcca(X, Y) == pytest.approx(0.6, abs=1e-12)
    assert C.pwcca(Y, X) == pytest.approx(0.4, abs=1e-12)
    assert _morcos_pwcca(X, Y) == pytest.approx(0.6, abs=1e-12)
    assert C.svcca(X, Y, variance=0.85) == pytest.approx(0.8, abs=1e-12)
    assert C.svcca(X, Y) == pytest.approx(0.4, abs=1e-12)
    assert P.procrustes(X, Y) == pytest.approx(2.4 / np.sqrt(20), abs=1e-12)
    assert P.procrustes_distance(X, Y) == pytest.approx(2 - 4.8 / np.sqrt(20), abs=1e-12)
    for precision in ("mixed", "float64"):
        got = C.all_pairs(_src(X), _src(Y), precision=precision, svcca_variance=0.85)
        assert {k: float(v[0, 0]) for k, v in got.items()} == pytest.approx(
            {"cca": 0.4, "svcca": 0.8, "pwcca": 0.6}, abs=2e-6)
        back = C.all_pairs(_src(Y), _src(X), ["pwcca"], precision=precision)
        assert back["pwcca"][0, 0] == pytest.approx(0.4, abs=2e-6)
        got = P.all_pairs(_src(X), _src(Y), precision=precision)
        assert got["procrustes"][0, 0] == pytest.approx(2.4 / np.sqrt(20), abs=2e-6)


def test_pwcca_and_svcca_against_independent_recipes_on_random_data():
    rng = np.random.default_rng(2)
    for _ in range(3):
        X, Y = _related(rng, n=300, p=9, q=6)
        assert C.pwcca(X, Y) == pytest.approx(_morcos_pwcca(X, Y), abs=1e-10)
        assert C.pwcca(Y, X) == pytest.approx(_morcos_pwcca(Y, X), abs=1e-10)
        # SVCCA from scratch: PCA by eigh of the covariance, keep 99 % of the variance, principal angles
        def top(Z):
            w, V = np.linalg.eigh(np.cov(Z.T))
            w, V = w[::-1], V[:, ::-1]
            k = int(np.searchsorted(np.cumsum(w) / w.sum(), 0.99) + 1)
            return _centred(Z) @ V[:, :k]
        expected = np.cos(sla.subspace_angles(top(X), top(Y))).mean()
        assert C.svcca(X, Y) == pytest.approx(expected, abs=1e-10)


def test_cca_invariances():
    rng = np.random.default_rng(3)
    X, Y = _related(rng)
    p = X.shape[1]
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    A = rng.normal(size=(p, p)) + 3 * np.eye(p)   # invertible, not orthogonal
    base = {f.__name__: f(X, Y) for f in (C.cca, C.svcca, C.pwcca)}
    signed_permutation = np.eye(p)[rng.permutation(p)] * rng.choice([-1.0, 1.0], size=p)
    for name, Xv in {"scaling": 0.01 * X, "translation": X - 100.0, "signed permutation": X @ signed_permutation,
                     "rotation": X @ Q}.items():
        for f in (C.cca, C.svcca, C.pwcca):
            if f is C.pwcca and name == "rotation":
                continue
            assert f(Xv, Y) == pytest.approx(base[f.__name__], abs=1e-9), (name, f.__name__)
    assert C.cca(X @ A, Y) == pytest.approx(base["cca"], abs=1e-9)
    # PWCCA's weights sum |<h_i, x_j>| over X's own columns (neurons), so rotating X moves it (Kornblith et al.
    # 2019, Table 1); only the span of Y enters, so any invertible map of Y leaves it alone
    assert abs(C.pwcca(X @ Q, Y) - base["pwcca"]) > 1e-3
    assert C.pwcca(X, Y @ rng.normal(size=(Y.shape[1], Y.shape[1]))) == pytest.approx(base["pwcca"], abs=1e-9)
    # SVCCA's variance cut depends on the metric of X, so a general linear map moves it
    squash = np.diag(np.r_[np.full(5, 1e-3), np.ones(p - 5)])
    assert abs(C.svcca(X @ squash, Y) - base["svcca"]) > 1e-3


def test_identical_inputs_give_one_and_independent_inputs_their_baseline():
    rng = np.random.default_rng(4)
    X, _ = _related(rng)
    for f in (C.cca, C.svcca, C.pwcca, P.procrustes, R.rsa):
        assert f(X, X) == pytest.approx(1.0, abs=1e-9), f.__name__
    assert P.procrustes_distance(X, X) == pytest.approx(0.0, abs=1e-9)
    # unrelated data: the mean of rho^2 over the m = min(p, q) correlations has expectation max(p, q) / (n - 1)
    n, p, q = 600, 12, 30
    mean_sq = [np.mean(C.canonical_correlations(rng.normal(size=(n, p)), rng.normal(size=(n, q))) ** 2)
               for _ in range(40)]
    assert np.mean(mean_sq) == pytest.approx(q / (n - 1), rel=0.05)
    # Procrustes of independent n x p Gaussians: ||X^T Y||_* / (||X|| ||Y||) -> (8 / (3 pi)) sqrt(p / n)
    # (quarter-circle law: the mean singular value of a p x p Gaussian matrix is 8 sqrt(p) / (3 pi))
    n, p = 4000, 40
    sims = [P.procrustes(rng.normal(size=(n, p)), rng.normal(size=(n, p))) for _ in range(10)]
    assert np.mean(sims) == pytest.approx(8 / (3 * np.pi) * np.sqrt(p / n), rel=0.06)
    rsas = [R.rsa(rng.normal(size=(150, 20)), rng.normal(size=(150, 20))) for _ in range(10)]
    assert abs(np.mean(rsas)) < 0.01 and max(map(abs, rsas)) < 0.05


def test_rank_deficient_layers_use_their_numerical_rank():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(300, 5))
    X = np.c_[Z, Z[:, :2] @ rng.normal(size=(2, 3))]                       # 8 columns, rank 5
    Y = np.c_[np.tanh(Z[:, :3]), rng.normal(size=(300, 2))]
    assert C.principal_basis(X)[0].shape[1] == 5
    assert C.canonical_correlations(X, Y).shape == (5,)
    assert C.cca(X, Y) == pytest.approx(np.cos(sla.subspace_angles(_centred(Z), _centred(Y))).mean(), abs=1e-9)
    X32 = X.astype(np.float32)   # rounding to float32 breaks the exact dependence by ~1e-7, under the tolerance
    got = C.all_pairs(_src(X32), _src(Y))
    for name in C.NAMES:
        assert got[name][0, 0] == pytest.approx(getattr(C, name)(X32, Y.astype(np.float32)), abs=2e-6), name


def test_sample_size_guard_warns_once_and_never_returns_a_silent_one():
    rng = np.random.default_rng(6)
    X, Y = rng.normal(size=(30, 8)), rng.normal(size=(30, 6))
    with pytest.warns(SampleSizeWarning, match=r"n = 30 rows .*p = 8, q = 6.*svcca"):
        value = C.cca(X, Y)
    assert 0 < value < 1
    wide = rng.normal(size=(30, 40))                      # rank 29 = n - 1: every correlation is 1
    assert C.canonical_correlations(wide, Y) == pytest.approx(np.ones(6))
    with pytest.warns(SampleSizeWarning, match="NaN"):
        assert np.isnan(C.cca(wide, Y))
    with pytest.warns(SampleSizeWarning):
        assert np.isnan(C.pwcca(wide, Y))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = C.all_pairs(_src(wide, X), _src(Y, Y))
    lines = [str(w.message) for w in caught if issubclass(w.category, SampleSizeWarning)]
    assert len(lines) == 2 and all("\n" not in line for line in lines)                # cca/pwcca, and svcca
    assert lines[0].startswith("cca/pwcca: layer pair (0, 0) and 3 more pairs: n = 30 rows")
    assert "p = 40, q = 6" in lines[0] and "NaN" in lines[0]
    assert np.isnan(got["cca"][0]).all() and np.isnan(got["pwcca"][0]).all()
    assert np.isfinite(got["cca"][1]).all() and (got["cca"][1] < 1).all()
    # enough rows: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleSizeWarning)
        C.all_pairs(_src(rng.normal(size=(200, 8))), _src(rng.normal(size=(200, 6))))


# ---------------------------------------------------------------------------------------------- Procrustes

def test_procrustes_against_scipy_orthogonal_procrustes():
    rng = np.random.default_rng(7)
    for p, q in ((9, 9), (10, 6)):
        X, Y = _related(rng, p=p, q=q)
        Xn, Yn = _centred(X) / np.linalg.norm(_centred(X)), _centred(Y) / np.linalg.norm(_centred(Y))
        Yp = np.c_[Yn, np.zeros((Yn.shape[0], p - q))]            # Ding et al. pad the narrower side
        Rot, scale = sla.orthogonal_procrustes(Xn, Yp)
        assert P.procrustes(X, Y) == pytest.approx(scale, abs=1e-12)
        assert P.procrustes_distance(X, Y) == pytest.approx(np.linalg.norm(Xn @ Rot - Yp) ** 2, abs=1e-12)
        Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
        assert P.procrustes(1e-3 * X @ Q + 5, Y) == pytest.approx(scale, abs=1e-9)
    # not invariant to a general linear map (so the rotation check above could fail)
    assert abs(P.procrustes(X @ np.diag(np.linspace(0.1, 5, p)), Y) - P.procrustes(X, Y)) > 1e-3


# ---------------------------------------------------------------------------------------------- RSA

def test_rsa_against_scipy_spearman_of_pdist():
    rng = np.random.default_rng(8)
    X, Y = _related(rng, n=250)
    for kind in ("correlation", "euclidean"):
        expected = sst.spearmanr(ssd.pdist(_centred(X), kind), ssd.pdist(_centred(Y), kind)).statistic
        assert R.rsa(X, Y, kind=kind) == pytest.approx(expected, abs=1e-12)
        assert R.rdm(X, kind) == pytest.approx(ssd.pdist(_centred(X), kind), abs=1e-9)
    rows = np.sort(np.random.default_rng(3).choice(250, size=60, replace=False))
    expected = sst.spearmanr(ssd.pdist(_centred(X[rows]), "correlation"),
                             ssd.pdist(_centred(Y[rows]), "correlation")).statistic
    assert R.rsa(X, Y, sample=60, seed=3) == pytest.approx(expected, abs=1e-12)
    # duplicated rows (as a bootstrap makes) give distances equal in exact arithmetic but not always after
    # rounding (pdist gives 0 or 2e-16 for two copies of a row): on a 1e-10 grid they tie, with average ranks
    Xd, Yd = X[np.r_[0:50, 0:20]], Y[np.r_[0:50, 0:20]]
    dx, dy = ssd.pdist(_centred(Xd), "correlation"), ssd.pdist(_centred(Yd), "correlation")
    assert len(np.unique(dx[dx < 1e-12])) > 1   # the rounding that breaks ties
    expected = sst.spearmanr(np.round(dx, 10), np.round(dy, 10)).statistic
    assert R.rsa(Xd, Yd) == pytest.approx(expected, abs=1e-12)
    assert R.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])) == pytest.approx(sst.rankdata([3, 1, 3, 2]))


def test_rsa_invariances():
    rng = np.random.default_rng(9)
    X, Y = _related(rng, n=120)
    base = R.rsa(X, Y)
    perm = rng.permutation(X.shape[1])
    assert R.rsa(2.5 * X[:, perm] + 3, Y) == pytest.approx(base, abs=1e-12)
    # a rotation keeping the all-ones direction keeps every row correlation
    p = X.shape[1]
    basis, _ = np.linalg.qr(np.c_[np.ones(p), rng.normal(size=(p, p - 1))])
    inner, _ = np.linalg.qr(rng.normal(size=(p - 1, p - 1)))
    keep_ones = basis @ sla.block_diag(1.0, inner) @ basis.T
    assert R.rsa(X @ keep_ones, Y) == pytest.approx(base, abs=1e-9)
    Q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    assert R.rsa(X @ Q, Y, kind="euclidean") == pytest.approx(R.rsa(X, Y, kind="euclidean"), abs=1e-9)
    assert abs(R.rsa(X @ Q, Y) - base) > 1e-4   # a general rotation moves the correlation RDM (module doc)


# ---------------------------------------------------------------------------------------------- engines

def _layers(rng):
    n = 160
    Z = rng.normal(size=(n, 6))
    # no subspace shared exactly between layers: a repeated canonical correlation (e.g. 1, 1, 1) leaves its
    # canonical variates undetermined within their span, and PWCCA's L1 weights depend on that choice
    Z3 = Z[:, :3] + 0.3 * rng.normal(size=(n, 3))
    A = [np.c_[Z, rng.normal(size=(n, 4))] @ rng.normal(size=(10, 10)) + 20.0,
         np.c_[Z3, Z3 @ rng.normal(size=(3, 2)), rng.normal(size=(n, 3))],               # rank 6 of 8
         np.tanh(Z) @ rng.normal(size=(6, 12))]                                            # rank 6 of 12
    B = [np.tanh(Z[:, :4]) @ rng.normal(size=(4, 7)) + s * rng.normal(size=(n, 7)) for s in (0.2, 1.0)]
    return [a.astype(np.float32) for a in A], [b.astype(np.float32) for b in B]


REFERENCES = {"cca": C.cca, "svcca": C.svcca, "pwcca": C.pwcca, "procrustes": P.procrustes,
              "procrustes_distance": P.procrustes_distance, "rsa": lambda X, Y: R.rsa(X, Y, sample=100, seed=5)}
ENGINES = [(C.all_pairs, C.NAMES, {}), (P.all_pairs, P.NAMES, {}), (R.all_pairs, R.NAMES, {"rsa_sample": 100, "rsa_seed": 5})]


@pytest.mark.parametrize("engine,names,options", ENGINES)
def test_engines_equal_the_reference_forms_pair_by_pair(engine, names, options):
    rng = np.random.default_rng(10)
    A, B = _layers(rng)
    ticks = []
    for precision in ("mixed", "float64"):
        res = engine(_src(*A), _src(*B), names, precision=precision, chunk_rows=64, progress=lambda: ticks.append(1),
                     **options)
        for name in names:
            assert res[name].shape == (3, 2)
            for i in range(3):
                for j in range(2):
                    assert res[name][i, j] == pytest.approx(REFERENCES[name](A[i], B[j]), abs=2e-6), (name, i, j)
    assert len(ticks) == 2 * 3   # once per layer of model 1, whichever side stays resident
    # model 1 narrower (resident side swaps): pwcca keeps its weights on model 1's side
    swapped = engine(_src(*B), _src(*A), names, progress=lambda: ticks.append(1), **options)
    assert len(ticks) == 2 * 3 + 2
    for name in names:
        for i in range(2):
            for j in range(3):
                assert swapped[name][i, j] == pytest.approx(REFERENCES[name](B[i], A[j]), abs=2e-6), (name, i, j)
    # within one model: only j >= i computed, the rest filled (transposed weights for pwcca)
    within = engine(_src(*A), _src(*A), names, symmetric=True, **options)
    for name in names:
        for i in range(3):
            for j in range(3):
                assert within[name][i, j] == pytest.approx(REFERENCES[name](A[i], A[j]), abs=2e-6), (name, i, j)
    # rows pair occurrences: the same permutation on both sides changes nothing; a bootstrap resample is the
    # reference on the resampled rows; a shuffled model 2 is the reference on shuffled rows
    perm = rng.permutation(160)
    boot = rng.integers(0, 160, 160)
    same = engine(_src(*A), _src(*B), names, rows1=perm, rows2=perm, **options)
    resampled = engine(_src(*A[:1]), _src(*B[:1]), names, rows1=boot, rows2=boot, **options)
    shuffled = engine(_src(*A[:1]), _src(*B[:1]), names, rows1=None, rows2=perm, **options)
    for name in names:
        if name != "rsa":   # RSA's sample positions are fixed, so a permutation picks other rows
            assert np.allclose(same[name], engine(_src(*A), _src(*B), [name], **options)[name], atol=2e-6)
        assert resampled[name][0, 0] == pytest.approx(REFERENCES[name](A[0][boot], B[0][boot]), abs=2e-6), name
        assert shuffled[name][0, 0] == pytest.approx(REFERENCES[name](A[0], B[0][perm]), abs=2e-6), name


def test_constant_layers_give_nan_not_an_error():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(50, 4))
    flat = np.ones((50, 3))
    assert np.isnan(C.cca(X, flat)) and np.isnan(P.procrustes(X, flat)) and np.isnan(R.rsa(X, flat))
    for engine, names, options in ENGINES:
        res = engine(_src(X), _src(flat, X), names, **options)
        for name in names:
            assert np.isnan(res[name][0, 0]) and np.isfinite(res[name][0, 1]), name


def test_an_undefined_cell_says_why_in_its_measures_own_terms():
    """A NaN cell without a constant layer is explained by its measure: the CCA family by too few rows for its
    ranks (not by debiased CKA's rule), debiased CKA by its self-similarity estimate."""
    import wordreps.analysis.reliability as R

    notes = {}
    for metric in ("debiased", "svcca", "rsa"):
        values = np.array([[0.5, np.nan]])
        notes[metric] = R.undefined_cells(values, [0], [0, 1], [], [], "a", "b", metric, 50)
        assert list(notes[metric]) == [(0, 1)]
        assert notes[metric][0, 1].startswith(f"{metric} has no value here at n = 50: ")
    assert "debiased" in notes["debiased"][0, 1] and "canonical correlations" in notes["svcca"][0, 1]
    assert "debiased" not in notes["svcca"][0, 1] and "debiased" not in notes["rsa"][0, 1]
    assert "constant" in notes["rsa"][0, 1]
