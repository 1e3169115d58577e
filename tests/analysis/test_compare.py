"""experiments/experiment_CKA.py end to end: outputs, intervals, baseline, within-model map, bad input."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers.faults import assert_refused
from tests.helpers.files import visible_files
from tests.helpers.folders import related_layers, write_matrix_folder
from tests.helpers import references as ref
from tests.helpers.references import linear_cka_features
from tests.helpers.scripts import run_script

SCRIPT = "experiments/experiment_CKA.py"


@pytest.fixture(scope="module")
def cka_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cka")
    rng = np.random.default_rng(0)
    m1, m2 = related_layers(rng, 300)
    write_matrix_folder(tmp / "mats", "org__text", m1, model="org/text")
    write_matrix_folder(tmp / "mats", "speech", m2)
    proc = run_script(SCRIPT, "--model1", "org/text", "--layer1", "2", "--model2", "speech", "--layer2", "1",
                      "--metric", "linear", "debiased", "rbf", "--bootstrap", "30", "--permutations", "20",
                      "--seed", "3", "--device", "cpu", "--matrices_dir", tmp / "mats", "--out_dir", tmp / "res")
    assert proc.returncode == 0, proc.stderr
    return tmp, m1, m2


def test_writes_json_csv_and_heatmap(cka_run):
    tmp, m1, m2 = cka_run
    folder = tmp / "res" / "org__text__vs__speech"
    assert sorted(p.name for p in visible_files(folder)) == sorted(
        f"{m}.{ext}" for m in ("linear", "debiased", "rbf") for ext in ("json", "csv", "png"))
    info = json.loads((folder / "linear.json").read_text())
    # "name" (shown in plots, CSV, summaries) is the matrices folder's slug; "model" keeps the full model name
    assert info["model1"]["name"] == "org__text" and info["model2"]["name"] == "speech"
    assert info["model1"]["model"] == "org/text" and info["model2"]["model"] == "speech"
    assert info["model1"]["layers"] == [0, 1, 2] and info["model2"]["layers"] == [0, 1]
    assert info["num_rows"] == 300 and info["keys_sha256"] == "k" * 64 and info["metric"] == "linear"
    values = np.array(info["values"])
    expected = np.array([[linear_cka_features(a, b) for b in m2] for a in m1])
    assert np.allclose(values, expected, atol=1e-6)
    with open(folder / "linear.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["model1", "layer1", "model2", "layer2", "metric", "value", "ci_low", "ci_high",
                             "perm_mean", "perm_p95", "note"]
    assert len(rows) == 6
    for row in rows:
        assert float(row["value"]) == pytest.approx(expected[int(row["layer1"]), int(row["layer2"])], abs=1e-6)
        assert row["model1"] == "org__text" and row["model2"] == "speech" and row["metric"] == "linear"
    png = (folder / "linear.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    rbf = json.loads((folder / "rbf.json").read_text())
    assert rbf["settings"]["rbf_sample"] == 300 and rbf["settings"]["rbf_sigma"] == 0.8


def test_debiased_and_rbf_values_equal_the_papers_gram_formulas(cka_run):
    """The script's debiased and RBF maps against the Gram-matrix equations written in tests/helpers/references.py
    (Song et al. 2012 Eq. 5 in CKA; Kornblith et al. 2019's Gaussian kernel at 0.8 x the median distance), on the
    float32 values the script reads. rbf_sample (5000 by default) is above n = 300: every row is used."""
    tmp, _, _ = cka_run
    folder = tmp / "res" / "org__text__vs__speech"
    m1 = [np.load(tmp / "mats" / "org__text" / f"layer_{i}.npy").astype(np.float64) for i in range(3)]
    m2 = [np.load(tmp / "mats" / "speech" / f"layer_{j}.npy").astype(np.float64) for j in range(2)]
    debiased = np.array(json.loads((folder / "debiased.json").read_text())["values"])
    want = np.array([[ref.cka(a @ a.T, b @ b.T, ref.hsic1) for b in m2] for a in m1])
    np.testing.assert_allclose(debiased, want, atol=1e-6)
    rbf = json.loads((folder / "rbf.json").read_text())
    assert rbf["settings"]["rbf_sample"] == 300
    want = np.array([[ref.cka(ref.rbf_gram(a, 0.8), ref.rbf_gram(b, 0.8), ref.hsic0) for b in m2] for a in m1])
    np.testing.assert_allclose(np.array(rbf["values"]), want, atol=1e-6)
    # the three estimators differ on these data, so a mix-up between them cannot pass
    linear = np.array(json.loads((folder / "linear.json").read_text())["values"])
    assert np.abs(linear - debiased).min() > 1e-3 and np.abs(linear - np.array(rbf["values"])).min() > 1e-3


def test_rbf_bandwidth_and_sample_flags_reach_the_engine(cka_run, tmp_path):
    """--rbf_sigma and --rbf_sample are used, not only recorded: values at sigma 0.3 equal the Gaussian-kernel
    equation at 0.3 (all rows), and a sample of 120 of the 300 rows is what is used and recorded."""
    tmp, _, _ = cka_run
    m1 = [np.load(tmp / "mats" / "org__text" / f"layer_{i}.npy").astype(np.float64) for i in range(3)]
    m2 = [np.load(tmp / "mats" / "speech" / f"layer_{j}.npy").astype(np.float64) for j in range(2)]
    common = ["--model1", "org/text", "--layer1", "2", "--model2", "speech", "--layer2", "1", "--metric", "rbf",
              "--device", "cpu", "--matrices_dir", tmp / "mats", "--no_progress"]
    proc = run_script(SCRIPT, *common, "--rbf_sigma", "0.3", "--out_dir", tmp_path / "narrow")
    assert proc.returncode == 0, proc.stderr
    narrow = json.loads((tmp_path / "narrow" / "org__text__vs__speech" / "rbf.json").read_text())
    assert narrow["settings"]["rbf_sigma"] == 0.3 and narrow["settings"]["rbf_sample"] == 300
    want = np.array([[ref.cka(ref.rbf_gram(a, 0.3), ref.rbf_gram(b, 0.3), ref.hsic0) for b in m2] for a in m1])
    wide = np.array([[ref.cka(ref.rbf_gram(a, 0.8), ref.rbf_gram(b, 0.8), ref.hsic0) for b in m2] for a in m1])
    assert np.abs(want - wide).max() > 1e-2  # the bandwidth matters on these data
    np.testing.assert_allclose(np.array(narrow["values"]), want, atol=1e-6)
    proc = run_script(SCRIPT, *common, "--rbf_sample", "120", "--out_dir", tmp_path / "sampled")
    assert proc.returncode == 0, proc.stderr
    sampled = json.loads((tmp_path / "sampled" / "org__text__vs__speech" / "rbf.json").read_text())
    assert sampled["settings"]["rbf_sample"] == 120
    assert np.abs(np.array(sampled["values"]) - wide).max() > 1e-4  # fewer rows, other values


def test_bootstrap_interval_contains_estimate_and_permutation_baseline(cka_run):
    tmp, _, _ = cka_run
    folder = tmp / "res" / "org__text__vs__speech"
    for metric in ("linear", "debiased", "rbf"):
        info = json.loads((folder / f"{metric}.json").read_text())
        v, lo, hi = (np.array(info[k]) for k in ("values", "ci_low", "ci_high"))
        # related layers (column 0 of model 2): interval around the estimate, and not degenerate
        assert np.all(lo[:, 0] <= v[:, 0]) and np.all(v[:, 0] <= hi[:, 0]), metric
        assert np.all(hi - lo > 1e-4), metric
    deb = json.loads((folder / "debiased.json").read_text())
    perm_mean = np.array(deb["perm_mean"])
    assert np.all(np.abs(perm_mean) < 0.02)
    # the related pairs stand far above the no-correspondence baseline; the unrelated layer does not
    assert np.all(np.array(deb["values"])[:, 0] > np.array(deb["perm_p95"])[:, 0] + 0.1)
    lin = json.loads((folder / "linear.json").read_text())
    assert np.all(np.array(lin["perm_mean"]) > 0.001)  # biased: shuffled rows still score above 0


def test_within_model_map(tmp_path):
    rng = np.random.default_rng(1)
    m1, _ = related_layers(rng, 120)
    write_matrix_folder(tmp_path / "mats", "text", m1)
    proc = run_script(SCRIPT, "--model1", "text", "--layer1", "2", "--model2", "text", "--layer2", "2",
                      "--metric", "linear", "debiased", "--device", "cpu",
                      "--matrices_dir", tmp_path / "mats", "--out_dir", tmp_path / "res")
    assert proc.returncode == 0, proc.stderr
    for metric in ("linear", "debiased"):
        values = np.array(json.loads((tmp_path / "res" / "text__vs__text" / f"{metric}.json").read_text())["values"])
        assert np.allclose(np.diag(values), 1.0, atol=1e-6)
        assert np.allclose(values, values.T, atol=1e-9)
    lin = np.array(json.loads((tmp_path / "res" / "text__vs__text" / "linear.json").read_text())["values"])
    assert lin[0, 1] == pytest.approx(linear_cka_features(m1[0], m1[1]), abs=1e-6)


def _bad(tmp_path, *args):
    out = tmp_path / "res"
    proc = run_script(SCRIPT, *args, "--matrices_dir", tmp_path / "mats", "--out_dir", out, "--device", "cpu")
    line = assert_refused(proc, [])
    assert visible_files(out) == []
    return line


def test_bad_input(tmp_path):
    rng = np.random.default_rng(2)
    a = [rng.normal(size=(50, 4)).astype(np.float32) for _ in range(3)]
    write_matrix_folder(tmp_path / "mats", "a", a)
    write_matrix_folder(tmp_path / "mats", "short", [x[:40] for x in a])
    write_matrix_folder(tmp_path / "mats", "otherkeys", a, keys_sha256="f" * 64)
    nan = [x.copy() for x in a]
    nan[1][17, 2] = np.nan
    write_matrix_folder(tmp_path / "mats", "nan", nan)
    assert "50 rows" in _bad(tmp_path, "--model1", "a", "--layer1", "2", "--model2", "short", "--layer2", "2")
    msg = _bad(tmp_path, "--model1", "a", "--layer1", "2", "--model2", "otherkeys", "--layer2", "2")
    assert "different keys files" in msg
    msg = _bad(tmp_path, "--model1", "a", "--layer1", "2", "--model2", "nan", "--layer2", "2")
    assert "row 17" in msg and "layer_1.npy" in msg
    msg = _bad(tmp_path, "--model1", "a", "--layer1", "5", "--model2", "a", "--layer2", "1")
    assert "layer 5" in msg and "0-2" in msg
    assert "no assembled matrices" in _bad(tmp_path, "--model1", "nope", "--layer1", "1", "--model2", "a",
                                           "--layer2", "1")
    # a truncated layer file (a half-copied matrix) is refused, not read as data
    data = (tmp_path / "mats" / "a" / "layer_2.npy").read_bytes()
    (tmp_path / "mats" / "a" / "layer_2.npy").write_bytes(data[: len(data) // 2])
    assert "layer_2.npy" in _bad(tmp_path, "--model1", "a", "--layer1", "2", "--model2", "a", "--layer2", "1")
