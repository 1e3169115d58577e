"""Linear probes: tasks, group splits, scores against scikit-learn, decodable vs shuffled labels, the script."""
from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from tests.helpers.faults import assert_refused
from tests.helpers.files import visible_files as files_under
from tests.helpers.folders import write_matrix_folder
from tests.helpers.scripts import REPO, run_script
from wordreps.common.errors import UserError
from wordreps.embeddings.matrices import keys_text, load_keys
from wordreps.analysis import probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCRIPT = "experiments/experiment_probe.py"
VOCAB = ["the", "of", "and", "to", "a", "in", "he", "was", "it", "that", "his", "she"]


def _corpus(rng, speakers=6, utts_per_speaker=10, words_per_utt=15):
    """Keys rows (utt, position, word) with Zipf word frequencies and LibriSpeech-like ids."""
    freq = 1.0 / np.arange(1, len(VOCAB) + 1)
    rows = []
    for s in range(speakers):
        for u in range(utts_per_speaker):
            utt = f"{100 + s}-{7 + s}-{u:04d}"
            words = rng.choice(len(VOCAB), size=words_per_utt, p=freq / freq.sum())
            rows += [(utt, pos, VOCAB[w]) for pos, w in enumerate(words)]
    return sorted(rows)


def _layers(rng, rows, dim=16):
    """Layer 0: noise (word identity not decodable); layer 1: a word vector plus noise (decodable)."""
    word_vec = {w: rng.normal(size=dim) * 3 for w in VOCAB}
    noise = rng.normal(size=(len(rows), dim))
    return [noise, np.array([word_vec[w] for _, _, w in rows]) + rng.normal(size=(len(rows), dim))]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(0)
    rows = _corpus(rng)
    text = keys_text(["m"], rows)
    (tmp / "keys.json").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    layers = _layers(rng, rows)
    write_matrix_folder(tmp / "mats", "m", layers, keys_sha256=sha)
    return tmp, rows, layers


# ---------------------------------------------------------------------------------------------- library

def test_word_task_keeps_the_k_most_frequent_words(corpus):
    tmp, rows, _ = corpus
    keys = load_keys(tmp / "keys.json")
    task = probe.word_identity_task(keys, top_k=4)
    counts = {w: sum(1 for r in rows if r[2] == w) for w in VOCAB}
    expected = sorted(counts, key=lambda w: (-counts[w], w))[:4]
    assert task.classes == expected
    assert task.rows.tolist() == [i for i, r in enumerate(rows) if r[2] in expected]
    assert [task.classes[c] for c in task.labels] == [rows[i][2] for i in task.rows]


def test_split_keeps_every_group_on_one_side():
    groups = [f"u{k % 23}" for k in range(500)]
    test = probe.split_by_group(groups, 0.2, seed=4)
    assert {g for g, t in zip(groups, test) if t}.isdisjoint({g for g, t in zip(groups, test) if not t})
    assert len({g for g, t in zip(groups, test) if t}) == 5          # ceil(0.2 x 23)
    assert (probe.split_by_group(groups, 0.2, seed=4) == test).all()
    assert not (probe.split_by_group(groups, 0.2, seed=5) == test).all()
    assert probe.group_of("1272-128104-0003", "speaker") == "1272"
    with pytest.raises(UserError, match="speaker-chapter-utterance"):
        probe.group_of("utt7", "speaker")
    with pytest.raises(UserError, match="at least 2"):
        probe.split_by_group(["a", "a"], 0.2)


def test_scores_equal_scikit_learn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 7, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 9, 300))   # 7, 8: predicted, never true
    assert probe.macro_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro"), abs=1e-12)
    assert probe.accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))


def test_torch_fit_reaches_scikit_learns_optimum():
    # the same strictly convex objective (mean cross-entropy + l2/2 ||W||^2 = sklearn's with C = 1/(n l2)), so
    # both solvers must land on the same weights
    rng = np.random.default_rng(2)
    n, d, k = 400, 6, 4
    y = rng.integers(0, k, n)
    X = rng.normal(size=(k, d))[y] + rng.normal(size=(n, d)) * 1.5
    l2 = 0.01
    ours = probe.fit_softmax_torch(X, y, k, l2=l2, max_iter=500, tol=1e-9)
    Z = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=1 / (n * l2), tol=1e-10, max_iter=5000).fit(Z, y)
    # softmax weights are defined up to a shift common to all classes: compare centred over classes
    centre = lambda W: W - W.mean(axis=1, keepdims=True)  # noqa: E731
    assert np.abs(centre(ours.weight) - centre(ref.coef_.T)).max() < 1e-3
    assert (ours.predict(X) == ref.predict(Z)).mean() > 0.99
    theirs = probe.fit_softmax_sklearn(X, y, k, l2=l2, max_iter=5000, tol=1e-10)
    assert (theirs.predict(X) == ref.predict(Z)).all()


def test_both_implementations_reach_the_same_optimum_with_two_classes():
    """With two classes sklearn fits one vector w = W_1 - W_0 under ||w||^2 / 2; the softmax optimum has
    W_1 = -W_0 = w / 2, so the same objective needs C = 2 / (n l2) there. A strong l2 makes the difference show."""
    rng = np.random.default_rng(3)
    n, d = 300, 5
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(2, d))[y] + rng.normal(size=(n, d))
    l2 = 0.5
    ours = probe.fit_softmax_torch(X, y, 2, l2=l2, max_iter=500, tol=1e-10)
    theirs = probe.fit_softmax_sklearn(X, y, 2, l2=l2, max_iter=5000, tol=1e-10)
    assert np.abs(ours.weight - theirs.weight).max() < 1e-3
    assert np.abs(ours.weight).max() > 0.05  # not trivially both zero


def test_decodable_label_near_one_shuffled_labels_near_majority(corpus, tmp_path):
    tmp, rows, layers = corpus
    keys = load_keys(tmp / "keys.json")
    from wordreps.embeddings.matrices import open_model_matrices

    mats = open_model_matrices(tmp / "mats", "m")
    task = probe.word_identity_task(keys)
    res = probe.probe_layers(mats, keys, task, [0, 1], seed=0)
    # no utterance on both sides
    utts = np.array([rows[i][0] for i in task.rows])
    assert set(utts[res.test_mask]).isdisjoint(utts[~res.test_mask])
    noise, decodable = res.layers
    assert decodable.accuracy > 0.95 and decodable.macro_f1 > 0.9
    majority = res.baselines["majority_accuracy"]
    expected_majority = np.mean(task.labels[res.test_mask] == np.bincount(task.labels[~res.test_mask]).argmax())
    assert majority == pytest.approx(expected_majority)
    assert res.baselines["chance_accuracy"] == pytest.approx(1 / len(VOCAB))
    assert noise.accuracy < majority + 0.1
    # a label file with labels independent of the vectors (skewed, so that the majority baseline is high)
    rng = np.random.default_rng(3)
    labels = rng.choice(["noun", "verb", "other"], size=len(rows), p=[0.6, 0.3, 0.1])
    path = tmp_path / "pos.tsv"
    path.write_text("# utterance\tposition\tlabel\n" + "".join(f"{u}\t{p}\t{lab}\n" for (u, p, _), lab in zip(rows, labels)))
    shuffled = probe.probe_layers(mats, keys, probe.label_file_task(path, keys), [1], seed=0)
    assert shuffled.task.classes == ["noun", "verb", "other"]
    assert abs(shuffled.layers[0].accuracy - shuffled.baselines["majority_accuracy"]) < 0.08
    # by speaker: no speaker on both sides either
    by_speaker = probe.probe_layers(mats, keys, task, [1], split_by="speaker", seed=1)
    speakers = np.array([u.split("-")[0] for u in utts])
    assert set(speakers[by_speaker.test_mask]).isdisjoint(speakers[~by_speaker.test_mask])
    assert by_speaker.layers[0].accuracy > 0.95


def test_label_file_errors_name_the_line(corpus, tmp_path):
    tmp, rows, _ = corpus
    keys = load_keys(tmp / "keys.json")
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{rows[0][0]}\t0\tnoun\n{rows[1][0]}\tone\tverb\n")
    with pytest.raises(UserError, match="line 2"):
        probe.read_label_file(bad, keys)
    twice = tmp_path / "twice.tsv"
    twice.write_text(f"{rows[0][0]}\t{rows[0][1]}\tnoun\n{rows[0][0]}\t{rows[0][1]}\tverb\n")
    with pytest.raises(UserError, match="labelled again"):
        probe.read_label_file(twice, keys)
    other = tmp_path / "other.tsv"
    other.write_text("9-9-9\t0\tnoun\n")
    with pytest.raises(UserError, match="labels none"):
        probe.read_label_file(other, keys)


# ---------------------------------------------------------------------------------------------- script

def test_script_writes_json_csv_and_plot(corpus):
    tmp, rows, _ = corpus
    proc = run_script(SCRIPT, "--model", "m", "--matrices_dir", tmp / "mats", "--out_dir", tmp / "res",
                      "--words_path", tmp / "keys.json", "--device", "cpu", "--no_progress", "--top_k", "6")
    assert proc.returncode == 0, proc.stderr
    folder = tmp / "res" / "m"
    assert [p.name for p in files_under(folder)] == ["probe_words-top6.csv", "probe_words-top6.json",
                                                     "probe_words-top6.png"]
    info = json.loads((folder / "probe_words-top6.json").read_text())
    assert info["format"] == "wordreps.probe" and info["task"]["num_classes"] == 6
    assert [entry["layer"] for entry in info["layers"]] == [0, 1]
    assert info["layers"][1]["accuracy"] > 0.95
    # the held-out utterances are listed: recompute the majority baseline from them and the keys
    test_utts = set(info["split"]["test_group_ids"])
    top = info["task"]["classes"]
    train = [w for u, _, w in rows if w in top and u not in test_utts]
    test = [w for u, _, w in rows if w in top and u in test_utts]
    majority = max(set(train), key=lambda w: (train.count(w), -top.index(w)))
    assert info["baselines"]["majority_accuracy"] == pytest.approx(test.count(majority) / len(test))
    assert info["split"]["test_rows"] == len(test) and info["split"]["train_rows"] == len(train)
    with open(folder / "probe_words-top6.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [float(r["accuracy"]) for r in table] == pytest.approx([e["accuracy"] for e in info["layers"]], abs=1e-5)
    assert (folder / "probe_words-top6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_script_bad_input_is_one_line(corpus, tmp_path):
    tmp, _, _ = corpus
    proc = run_script(SCRIPT, "--model", "m", "--matrices_dir", tmp / "mats", "--out_dir", tmp_path / "res",
                      "--words_path", tmp / "keys.json", "--labels", tmp_path / "missing.tsv", "--no_progress")
    assert_refused(proc, ["missing.tsv does not exist"])
    assert files_under(tmp_path / "res") == []
    proc = run_script(SCRIPT, "--model", "m", "--matrices_dir", tmp / "mats", "--out_dir", tmp_path / "res",
                      "--layer", "5", "--words_path", tmp / "keys.json", "--no_progress")
    assert_refused(proc, ["layer 5 is past the depth"])


def test_an_unwritable_out_dir_is_said_before_any_fit(corpus, tmp_path, monkeypatch):
    """The fits take minutes a layer at real sizes: a --out_dir that is a file is refused before the first one."""
    import runpy

    tmp, _, _ = corpus
    main = runpy.run_path(str(REPO / SCRIPT), run_name="probe_script")["main"]
    fits = []
    monkeypatch.setattr(probe, "probe_layers", lambda *a, **k: fits.append(1) or pytest.fail("fitted first"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="results folder") as err:
        main(["--model", "m", "--matrices_dir", str(tmp / "mats"), "--out_dir", str(blocker),
              "--words_path", str(tmp / "keys.json"), "--no_progress", "--top_k", "6"])
    assert str(blocker) in str(err.value) and fits == []
