"""ASIF: a hand-worked case, perfect retrieval under a rotation, chance for unrelated spaces (including the
GloVe-like leak an anchor's own index used to open), the k limit, the CLI."""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import torch

from tests.helpers.faults import assert_refused
from tests.helpers.files import visible_files
from tests.helpers.folders import write_matrix_folder
from tests.helpers.scripts import run_script
from wordreps.embeddings.matrices import keys_text
from wordreps.analysis import asif as asif_core
from wordreps.analysis.retrieval import chance_levels, split_rows

SCRIPT = "experiments/experiment_ASIF.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unit(deg) -> np.ndarray:
    rad = np.deg2rad(np.asarray(deg, dtype=np.float64))
    return np.c_[np.cos(rad), np.sin(rad)]


def _rotate(X: np.ndarray, deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return X @ np.array([[c, -s], [s, c]])


def _run(a, t, words, queries, anchors, ks, ps, **kw):
    return asif_core.run_asif(a.astype(np.float32), t.astype(np.float32), words, np.asarray(queries),
                              np.asarray(anchors), ks=ks, ps=ps, device="cpu", **kw)


def test_hand_worked_case():
    # Six anchors on the unit circle at 0, 40, 100, 180, 250, 300 degrees with words x x y y z z; queries at
    # 15 degrees (word x) and 200 degrees (word z). Text = audio rotated by 90 degrees, so every cosine, and
    # so every relative representation, is the same in both spaces. k = 2, p = 1.
    # Cosines between anchors (angle differences): a0-a1 40 -> .76604, a0-a2 100 -> -.17365, a0-a3 180 -> -1,
    #   a0-a4 110 -> -.34202, a0-a5 60 -> .5, a1-a2 60 -> .5, a1-a3 140 -> -.76604, a1-a4 150 -> -.86603,
    #   a1-a5 100 -> -.17365, a2-a3 80 -> .17365, a2-a4 150 -> -.86603, a2-a5 160 -> -.93969,
    #   a3-a4 70 -> .34202, a3-a5 120 -> -.5, a4-a5 50 -> .64279.
    # Anchors' relative representations: top-2 cosines to the OTHER anchors (an anchor leaves itself out),
    # L2-normalised:
    #   c0: {a1: .76604, a5: .5}     / .91478 = {a1: .83741, a5: .54658}
    #   c1: {a0: .76604, a2: .5}     / .91478 = {a0: .83741, a2: .54658}
    #   c2: {a1: .5, a3: .17365}     / .52930 = {a1: .94465, a3: .32807}
    #   c3: {a4: .34202, a2: .17365} / .38358 = {a2: .45271, a4: .89166}
    #   c4: {a5: .64279, a3: .34202} / .72812 = {a3: .46973, a5: .88281}
    #   c5: {a4: .64279, a0: .5}     / .81436 = {a0: .61398, a4: .78932}
    # Queries are no anchors and keep their two nearest anchors:
    # Query 15 deg: {a0: cos15 = .96593, a1: cos25 = .90631} / 1.32454 = {a0: .72925, a1: .68424}
    #   scores c0..c5: .68424*.83741 = .57299, .72925*.83741 = .61068, .68424*.94465 = .64637, 0, 0,
    #                  .72925*.61398 = .44774
    #   -> words y (.64637), x (.61068), z (.44774): rank of x = 2. (With the anchor kept in its own
    #   representation, c0 and c1 held a0/a1 at weight ~.8 and x came first: exactly the within-space lookup
    #   the rule removes; now c0 and c1 only reach the query through their neighbours.)
    # Query 200 deg: {a3: cos20 = .93969, a4: cos50 = .64279} / 1.13851 = {a3: .82537, a4: .56459}
    #   scores: 0, 0, .82537*.32807 = .27078, .56459*.89166 = .50342, .82537*.46973 = .38770,
    #           .56459*.78932 = .44564
    #   -> words y (.50342), z (.44564), x (0): rank of z = 2
    # top-1 = 0, top-5 = 1, MRR = (1/2 + 1/2) / 2 = 0.5, in both directions.
    a = _unit([0, 40, 100, 180, 250, 300, 15, 200])
    t = _rotate(a, 90)
    words = ["x", "x", "y", "y", "z", "z", "x", "z"]
    anchors, queries = np.arange(6), np.array([6, 7])
    exclude = torch.tensor([0, 1, 2, 3, 4, 5, -1, -1])
    vals, idx = asif_core.topk_anchor_similarities(torch.from_numpy(a.astype(np.float32)),
                                                   torch.from_numpy(a[:6].astype(np.float32)), [2], chunk_size=3,
                                                   exclude=exclude)
    assert [sorted(r) for r in idx[:6].tolist()] == [[1, 5], [0, 2], [1, 3], [2, 4], [3, 5], [0, 4]]
    qv, qi = asif_core.relative_reps(vals[6:], idx[6:], 2, 1.0)
    cv, ci = asif_core.relative_reps(vals[:6], idx[:6], 2, 1.0)
    assert cv.numpy() == pytest.approx(np.array([[.83741, .54658], [.83741, .54658], [.94465, .32807],
                                                 [.45271, .89166], [.46973, .88281], [.61398, .78932]]), abs=2e-5)
    for method in ("sparse-sparse", "sparse-dense"):
        scores = asif_core.Candidates(cv, ci, 6, method).scores(qv, qi).numpy()
        assert scores[0] == pytest.approx([.57299, .61068, .64637, 0, 0, .44774], abs=2e-4)
        assert scores[1] == pytest.approx([0, 0, .27078, .50342, .38770, .44564], abs=2e-4)
        one = asif_core.Candidates(cv, ci, 6, method).scores(qv[1:], qi[1:]).numpy()  # 1 query, k = 2
        assert one.shape == (1, 6) and one[0] == pytest.approx(scores[1], abs=1e-6)
    res = _run(a, t, words, queries, anchors, [2], [1.0])
    assert res["vocab"] == ["x", "y", "z"] and res["method"] == "sparse-sparse"  # the CPU's product
    for name, d in res["configs"][0]["directions"].items():
        assert d.ranks.tolist() == [2, 2], name
        assert [[res["vocab"][w] for w in row] for row in d.top.tolist()] == [["y", "x", "z"], ["y", "z", "x"]]
        assert d.metrics["top1"] == 0.0 and d.metrics["top5"] == 1.0 and d.metrics["mrr"] == pytest.approx(0.5)
        assert d.metrics["num_answerable"] == 2  # word x has id 0: it counts


def test_hand_worked_case_through_the_script(tmp_path):
    """The hand-worked case above, end to end through experiment_ASIF.py: same ranks, top-5 lists, top-1, top-5
    and MRR in its JSON and CSV. The split is the documented one (a seeded permutation of the rows, its first
    round(fraction * n) rows the queries), so the two queries are put at the rows that seed gives them and the
    six anchors, in order, at the others."""
    seed, n = 3, 8
    queries = np.sort(np.random.default_rng(seed).permutation(n)[:2])
    anchors = np.setdiff1d(np.arange(n), queries)
    order = np.empty(n, dtype=int)
    order[anchors], order[queries] = np.arange(6), [6, 7]  # row r holds hand-worked point order[r]
    a = _unit([0, 40, 100, 180, 250, 300, 15, 200])[order]
    words = np.array(["x", "x", "y", "y", "z", "z", "x", "z"])[order].tolist()
    rows = [(f"1-1-{i:04d}", 0, w) for i, w in enumerate(words)]
    text = keys_text(["audio", "text"], rows)
    (tmp_path / "keys.json").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    write_matrix_folder(tmp_path / "mats", "audio", [a], keys_sha256=sha)
    write_matrix_folder(tmp_path / "mats", "text", [_rotate(a, 90)], keys_sha256=sha)
    proc = run_script(SCRIPT, "--path_layer1", tmp_path / "mats/audio/layer_0.npy",
                      "--path_layer2", tmp_path / "mats/text/layer_0.npy", "--keys", tmp_path / "keys.json",
                      "--k", "2", "--p", "1", "--query_fraction", "0.25", "--seed", seed, "--chance_draws", "10",
                      "--device", "cpu", "--out_dir", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "res" / "audio-layer_0__text-layer_0"
    result = json.loads((folder / "asif_k2_p1.json").read_text())
    assert result["split"] == {"num_queries": 2, "num_anchors": 6}
    for direction in ("audio_to_text", "text_to_audio"):
        d = result["directions"][direction]
        assert [q["row"] for q in d["queries"]] == queries.tolist(), direction
        assert [q["word"] for q in d["queries"]] == ["x", "z"]
        assert [q["rank"] for q in d["queries"]] == [2, 2], direction
        assert [q["top5"] for q in d["queries"]] == [["y", "x", "z"], ["y", "z", "x"]], direction
        assert d["metrics"]["top1"] == 0.0 and d["metrics"]["top5"] == 1.0
        assert d["metrics"]["mrr"] == pytest.approx(0.5)
    with open(folder / "summary.csv") as fh:
        summary = list(csv.DictReader(fh))
    assert [(r["direction"], r["top1"], r["top5"], r["mrr"]) for r in summary] == \
        [("audio_to_text", "0", "1", "0.5"), ("text_to_audio", "0", "1", "0.5")]


def test_relative_representation_clips_raises_to_p_and_normalises():
    # top-3 similarities .8, .6, -.1 at anchors 7, 2, 5: clipped at 0, squared (p = 2): .64, .36, 0; L2 norm
    # sqrt(.64^2 + .36^2) = .73430; sorted by anchor index: (2: .49026), (5: 0), (7: .87158).
    v, i = asif_core.relative_reps(torch.tensor([[.8, .6, -.1]]), torch.tensor([[7, 2, 5]]), 3, 2.0)
    assert i.tolist() == [[2, 5, 7]]
    assert v.numpy() == pytest.approx(np.array([[.49026, 0.0, .87158]]), abs=1e-5)
    # every similarity negative: an all-zero representation, not a division by zero
    v, _ = asif_core.relative_reps(torch.tensor([[-.2, -.3]]), torch.tensor([[0, 1]]), 2, 1.0)
    assert v.tolist() == [[0.0, 0.0]]


def test_metrics_count_a_word_at_rank_five_and_an_unanswerable_query():
    # k = 2, p = 1. The query's relative representation is anchor 4 alone (1, then 0 at anchor 5); candidate j's
    # is (s_j at anchor 4, sqrt(1 - s_j^2) at anchor 0), so its score is s_j = .9, .8, .7, .6, .5, .4 for words
    # 0..5. Query 0's word is 4: rank 5 (in the top 5, reciprocal rank 1/5). Query 1's word (-1) is no candidate:
    # rank 0, a miss. top-1 0, top-5 1/2, MRR (1/5 + 0) / 2 = 0.1, one answerable query of two.
    s = torch.tensor([.9, .8, .7, .6, .5, .4])
    c_vals = torch.stack([s, torch.sqrt(1 - s ** 2)], dim=1)
    c_idx = torch.tensor([[4, 0]] * 6)
    q_vals, q_idx = torch.tensor([[1.0, 0.0]] * 2), torch.tensor([[4, 5]] * 2)
    d = asif_core._direction(q_vals, q_idx, c_vals, c_idx, 6, torch.arange(6), torch.tensor([4, -1]), 6, 2, 1.0,
                             8, "sparse-sparse", "q")
    assert d.ranks.tolist() == [5, 0]
    assert d.top[0].tolist() == [0, 1, 2, 3, 4]
    assert d.metrics["top1"] == 0.0 and d.metrics["top5"] == 0.5 and d.metrics["mrr"] == pytest.approx(0.1)
    assert d.metrics["num_answerable"] == 1 and d.metrics["num_queries"] == 2


def test_inputs_of_different_lengths_are_refused():
    a = _unit([0, 40, 100, 180, 250, 300, 15, 200])
    with pytest.raises(ValueError, match="same number of rows"):
        _run(a, a[:-1], ["x"] * 8, np.array([6, 7]), np.arange(6), [2], [1.0])
    with pytest.raises(ValueError, match="same number of rows"):
        _run(a, a, ["x"] * 7, np.array([6, 7]), np.arange(6), [2], [1.0])


def _clustered(rng, num_words=30, per_word=20, dim=24, noise=0.08):
    protos = rng.normal(size=(num_words, dim))
    labels = np.repeat(np.arange(num_words), per_word)
    X = protos[labels] + noise * rng.normal(size=(len(labels), dim))
    return X, [f"w{i}" for i in labels]


def test_exact_rotation_retrieves_perfectly():
    rng = np.random.default_rng(0)
    a, words = _clustered(rng)
    Q, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    t = a @ Q
    queries, anchors = split_rows(len(words), 0.15, seed=1)
    res = _run(a, t, words, queries, anchors, [10, 40], [1.0, 4.0], chunk_size=37)
    for cfg in res["configs"]:
        for name, d in cfg["directions"].items():
            assert d.metrics["top1"] == 1.0, (cfg["k"], cfg["p"], name)
            assert d.metrics["mrr"] == 1.0


def test_independent_spaces_sit_at_chance():
    rng = np.random.default_rng(1)
    n = 1500
    words = [f"w{int(i)}" for i in rng.integers(0, 50, n)]
    a = rng.normal(size=(n, 16))
    t = rng.normal(size=(n, 12))
    queries, anchors = split_rows(n, 0.15, seed=2)
    res = _run(a, t, words, queries, anchors, [50], [4.0])
    chance = res["chance"]
    assert chance["top1"] == pytest.approx(1 / 50, rel=0.3)
    for name, d in res["configs"][0]["directions"].items():
        sd1 = np.sqrt(chance["top1"] * (1 - chance["top1"]) / len(queries))
        sd5 = np.sqrt(chance["top5"] * (1 - chance["top5"]) / len(queries))
        assert abs(d.metrics["top1"] - chance["top1"]) < 4 * sd1, name
        assert abs(d.metrics["top5"] - chance["top5"]) < 4 * sd5, name


def _glove_like(rng, num_types=20, n=400, dim=50):
    """One random vector per word type, repeated for every occurrence (GloVe gives all occurrences one vector)."""
    labels = rng.integers(0, num_types, n)
    return rng.normal(size=(num_types, dim))[labels], [f"w{i:02d}" for i in labels]


def _word_clustered_sd(chance_top1: float, words, queries) -> float:
    # With identical vectors per word every query of a word has the same text representation, so text -> audio
    # retrieves one word per word type: outcomes are independent per type, not per query. SD of top-1 for
    # per-type Bernoulli(chance) outcomes weighted by each type's share of the queries (conservative for the
    # other direction, whose outcomes are closer to independent per query).
    _, counts = np.unique([words[i] for i in queries], return_counts=True)
    return float(np.sqrt(chance_top1 * (1 - chance_top1) * np.sum((counts / len(queries)) ** 2)))


def test_identical_word_vectors_against_unrelated_audio_sit_at_chance(monkeypatch):
    # The leak the self-exclusion rule removes: a GloVe-like text space (one vector per word type) and an
    # audio space of independent random vectors. Nothing links the two spaces, so both directions must be at
    # chance. With an anchor's own index kept in its representation (similarity 1), a text query's top-k are
    # same-word anchors at similarity 1, and each of them, as a candidate, carries itself at similarity 1 in
    # its audio representation: text -> audio becomes a within-text lookup and top-1 goes to ~1.
    rng = np.random.default_rng(5)
    t, words = _glove_like(rng)
    a = rng.normal(size=(len(words), 32))
    queries, anchors = split_rows(len(words), 0.15, seed=5)
    ks, ps = [8, 16], [1.0, 4.0, 8.0]
    res = _run(t, a, words, queries, anchors, ks, ps, names=("text", "audio"))
    chance = res["chance"]
    sd = _word_clustered_sd(chance["top1"], words, queries)
    assert 0.04 < chance["top1"] < 0.06 and sd < 0.07
    assert len(res["configs"]) == len(ks) * len(ps)
    for cfg in res["configs"]:
        for name, d in cfg["directions"].items():
            assert abs(d.metrics["top1"] - chance["top1"]) < 4 * sd, (cfg["k"], cfg["p"], name, d.metrics["top1"])
    # control: the same data with the anchor left IN its own representation (the old rule) shows the leak, so
    # this test would catch it coming back
    real = asif_core.topk_anchor_similarities
    monkeypatch.setattr(asif_core, "topk_anchor_similarities",
                        lambda X, A, ks, chunk_size, exclude=None: real(X, A, ks, chunk_size))
    old = _run(t, a, words, queries, anchors, ks, ps, names=("text", "audio"))
    for cfg in old["configs"]:
        assert cfg["directions"]["text_to_audio"].metrics["top1"] > 0.7, (cfg["k"], cfg["p"])


def test_identical_word_vectors_under_an_exact_rotation_retrieve_perfectly():
    # the positive side of the same setting: audio = text rotated, with word-identical vectors. Identical
    # vectors tie (broken by anchor index); retrieval is judged by word, so ties among occurrences are fine.
    rng = np.random.default_rng(6)
    t, words = _glove_like(rng)
    Q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    a = t @ Q
    queries, anchors = split_rows(len(words), 0.15, seed=6)
    res = _run(a, t, words, queries, anchors, [8, 16], [1.0, 8.0])
    for cfg in res["configs"]:
        for name, d in cfg["directions"].items():
            assert d.metrics["top1"] == 1.0 and d.metrics["mrr"] == 1.0, (cfg["k"], cfg["p"], name)


def test_anchor_leaves_itself_out_and_k_limit_is_anchors_minus_one():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(9, 4)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    anchors = np.array([0, 2, 3, 5, 8])
    exclude = torch.full((9,), -1)
    exclude[torch.from_numpy(anchors)] = torch.arange(5)
    vals, idx = asif_core.topk_anchor_similarities(torch.from_numpy(X), torch.from_numpy(X[anchors]), [2, 4],
                                                   chunk_size=4, exclude=exclude)
    for j, row in enumerate(anchors):
        # k = anchors - 1: exactly the other anchors, never itself
        assert sorted(idx[row].tolist()) == sorted(set(range(5)) - {j})
        assert bool(torch.all(vals[row] < 1 - 1e-6))
    for row in (1, 4, 6, 7):  # queries use all anchors
        sims = X[row] @ X[anchors].T
        assert idx[row].tolist() == np.argsort(-sims)[:4].tolist()
    words = ["u", "v"] * 4 + ["u"]
    queries = np.array([1, 4, 6, 7])
    res = _run(X, X, words, queries, anchors, [4], [1.0])
    assert res["configs"][0]["k"] == 4
    with pytest.raises(ValueError, match="k = 5"):
        _run(X, X, words, queries, anchors, [5], [1.0])


def test_chance_levels_match_random_scores_through_the_real_ranking():
    # random scores through rank_words (the real code path) must reproduce chance_levels' numbers
    rng = np.random.default_rng(2)
    counts = np.array([40, 20, 10, 5, 3, 1, 1])
    anchor_word = np.repeat(np.arange(len(counts)), counts)
    query_word = rng.integers(-1, len(counts), 4000)
    chance = chance_levels(anchor_word, query_word, len(counts), seed=0, draws=4000)
    scores = torch.rand(len(query_word), len(anchor_word), generator=torch.Generator().manual_seed(0))
    rank, _ = asif_core.rank_words(scores, torch.from_numpy(anchor_word), len(counts), torch.from_numpy(query_word))
    rank = rank.numpy()
    assert np.mean(rank == 1) == pytest.approx(chance["top1"], abs=0.02)
    assert np.mean((rank >= 1) & (rank <= 5)) == pytest.approx(chance["top5"], abs=0.02)
    assert np.mean(np.where(rank > 0, 1.0 / np.maximum(rank, 1), 0)) == pytest.approx(chance["mrr"], abs=0.02)
    # exact top-1: frequency-weighted over the answerable queries
    exact = np.mean([counts[w] / counts.sum() if w >= 0 else 0 for w in query_word])
    assert chance["top1"] == pytest.approx(exact, abs=1e-12)
    assert chance["uniform"]["top1"] == pytest.approx(np.mean(query_word >= 0) / len(counts))


def test_top_k_ties_break_towards_lower_anchor_index():
    # identical anchor vectors (GloVe gives every occurrence of a word the same vector) tie exactly
    v, w = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    anchors = np.array([w, v, v, w, v, v], dtype=np.float32)
    X = np.array([v, w], dtype=np.float32)
    vals, idx = asif_core.topk_anchor_similarities(torch.from_numpy(X), torch.from_numpy(anchors), [1, 2, 3],
                                                   chunk_size=8)
    assert sorted(idx[0, :2].tolist()) == [1, 2] and sorted(idx[0, :3].tolist()) == [1, 2, 4]
    assert sorted(idx[1, :2].tolist()) == [0, 3] and idx[1, 2].item() == 1


def test_a_tied_row_is_reordered_even_when_other_rows_are_not_tied():
    # torch.topk returns tied values in no particular order (here it gives anchors 1, 4, 3 for four equal ones), so
    # each tied row is re-sorted, whatever the rest of its chunk: row 0 ties at k = 2 (four equal v anchors), row 1
    # does not (its two w anchors, then the v ones)
    v, w = np.array([1.0, 0.0]), np.array([0.6, 0.8])
    anchors = np.array([w, v, v, w, v, v], dtype=np.float32)
    vals, idx = asif_core.topk_anchor_similarities(torch.from_numpy(np.array([v, w], dtype=np.float32)),
                                                   torch.from_numpy(anchors), [2], chunk_size=8)
    assert sorted(idx[0].tolist()) == [1, 2] and sorted(idx[1].tolist()) == [0, 3]


def _write_inputs(tmp_path, n=240, nan_row=None, rows2=None):
    rng = np.random.default_rng(3)
    a, words = _clustered(rng, num_words=12, per_word=n // 12, dim=10, noise=0.3)
    t = np.tanh(a @ rng.normal(size=(10, 8))) + 0.05 * rng.normal(size=(n, 8))
    rows = [(f"1-1-{i // 10:04d}", i % 10, w) for i, w in enumerate(words)]
    text = keys_text(["audio", "text"], rows)
    (tmp_path / "keys.json").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    if nan_row is not None:
        a[nan_row, 0] = np.inf
    write_matrix_folder(tmp_path / "mats", "audio", [a], keys_sha256=sha)
    write_matrix_folder(tmp_path / "mats", "text", [t if rows2 is None else t[:rows2]], keys_sha256=sha)
    write_matrix_folder(tmp_path / "mats", "otherkeys", [t], keys_sha256="0" * 64)
    return words


def test_cli_sweep_writes_results(tmp_path):
    words = _write_inputs(tmp_path)
    proc = run_script(SCRIPT, "--path_layer1", tmp_path / "mats/audio/layer_0.npy",
                      "--path_layer2", tmp_path / "mats/text/layer_0.npy", "--keys", tmp_path / "keys.json",
                      "--k", "5", "20", "--p", "1", "4", "--seed", "7", "--device", "cpu", "--out_dir", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "res" / "audio-layer_0__text-layer_0"
    names = sorted(p.name for p in visible_files(folder))
    assert names == sorted(["accuracy_vs_k.png", "summary.csv", "summary.json", "asif_k5_p1.json",
                            "asif_k5_p4.json", "asif_k20_p1.json", "asif_k20_p4.json"])
    result = json.loads((folder / "asif_k20_p4.json").read_text())
    queries, anchors = split_rows(len(words), 0.15, seed=7)
    assert result["split"] == {"num_queries": len(queries), "num_anchors": len(anchors)}
    for direction in ("audio_to_text", "text_to_audio"):
        d = result["directions"][direction]
        assert [q["row"] for q in d["queries"]] == queries.tolist()
        assert all(q["word"] == words[q["row"]] and len(q["top5"]) == 5 for q in d["queries"])
        top1 = np.mean([q["top5"][0] == q["word"] for q in d["queries"]])
        assert d["metrics"]["top1"] == pytest.approx(top1)
        assert d["metrics"]["top1"] > 3 * d["chance"]["top1"]  # related spaces: far above chance
    with open(folder / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["direction"] for r in rows} == {"audio_to_text", "text_to_audio"}
    assert (folder / "accuracy_vs_k.png").read_bytes()[:4] == b"\x89PNG"


def _bad(tmp_path, *args, names, layer2="mats/text/layer_0.npy") -> str:
    """A refused run (exit 2, one error: line holding every string of ``names``, no traceback) that writes
    nothing; returns the error line."""
    proc = run_script(SCRIPT, "--path_layer1", tmp_path / "mats/audio/layer_0.npy", "--path_layer2",
                      tmp_path / layer2, "--keys", tmp_path / "keys.json", *args, "--out_dir", tmp_path / "res")
    line = assert_refused(proc, names)
    assert visible_files(tmp_path / "res") == []
    return line


def test_bad_input(tmp_path):
    _write_inputs(tmp_path)
    _bad(tmp_path, "--k", "5", "300", names=["--k 300", "anchors"])
    # 240 rows, query_fraction 0.15: 204 anchors, each leaving itself out, so k may be at most 203
    _bad(tmp_path, "--k", "204", names=["--k 204", "204 anchors", "k <= 203"])
    _bad(tmp_path, layer2="mats/otherkeys/layer_0.npy", names=["another keys file"])
    _write_inputs(tmp_path, nan_row=33, rows2=200)
    _bad(tmp_path, layer2="mats/audio/layer_0.npy", names=["row 33", "layer_0.npy"])
    (tmp_path / "mats/audio/layer_0.npy").unlink()
    _write_inputs(tmp_path, rows2=200)
    _bad(tmp_path, names=["240 rows", "200"])
