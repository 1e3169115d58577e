"""experiments/experiment_similarity.py end to end: experiment_CKA.py's files and fields for every measure, values
equal to the reference forms, the correspondence table, one warning line per problem, the summary's figures."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.helpers.files import visible_files as files_under
from tests.helpers.folders import related_layers, write_matrix_folder
from tests.helpers.scripts import run_script
from wordreps.analysis import cca, procrustes, rsa

SCRIPT = "experiments/experiment_similarity.py"
MEASURES = ["linear", "debiased", "cca", "svcca", "pwcca", "procrustes", "rsa"]


def _args(mats, out, *extra):
    return ("--model1", "org/text", "--layer1", "2", "--model2", "speech", "--layer2", "1", "--device", "cpu",
            "--matrices_dir", mats, "--out_dir", out, "--no_progress", *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("similarity")
    m1, m2 = related_layers(np.random.default_rng(0), 300)
    write_matrix_folder(tmp / "mats", "org__text", m1, model="org/text")
    write_matrix_folder(tmp / "mats", "speech", m2)
    sim = run_script(SCRIPT, *_args(tmp / "mats", tmp / "sim", "--metric", *MEASURES, "--bootstrap", "4",
                                    "--permutations", "3", "--seed", "3", "--rsa_sample", "120"))
    assert sim.returncode == 0, sim.stderr
    cka = run_script("experiments/experiment_CKA.py", *_args(tmp / "mats", tmp / "cka", "--metric", "linear",
                                                             "debiased", "--bootstrap", "4", "--permutations", "3",
                                                             "--seed", "3"))
    assert cka.returncode == 0, cka.stderr
    return tmp, m1, m2, sim


def test_same_layout_and_fields_as_experiment_cka(runs):
    tmp, _, _, sim = runs
    folder = tmp / "sim" / "org__text__vs__speech"
    assert [p.name for p in files_under(folder)] == sorted(
        [f"{m}.{ext}" for m in MEASURES for ext in ("json", "csv", "png")] + ["correspondence.csv", "correspondence.png"])
    assert "warning:" not in sim.stderr   # 300 rows against 6 and 5 dimensions: nothing to warn about
    for metric in ("linear", "debiased"):
        # the CKA files are those experiment_CKA.py writes, field for field and value for value
        ours = json.loads((folder / f"{metric}.json").read_text())
        theirs = json.loads((tmp / "cka" / "org__text__vs__speech" / f"{metric}.json").read_text())
        assert ours == theirs
        assert (folder / f"{metric}.csv").read_text() == (tmp / "cka" / "org__text__vs__speech" / f"{metric}.csv").read_text()
    keys = set(json.loads((folder / "linear.json").read_text()))
    for metric in MEASURES:
        info = json.loads((folder / f"{metric}.json").read_text())
        assert set(info) == keys and info["metric"] == metric and info["format"] == "wordreps.cka"
        assert np.array(info["ci_low"]).shape == (3, 2) and np.array(info["perm_p95"]).shape == (3, 2)
    svcca_settings = json.loads((folder / "svcca.json").read_text())["settings"]
    assert svcca_settings["svcca_variance"] == 0.99 and svcca_settings["cca_rank_tol"] == 1e-5
    assert json.loads((folder / "rsa.json").read_text())["settings"]["rsa_sample"] == 120


def test_values_equal_the_reference_forms(runs):
    tmp, m1, m2, _ = runs
    folder = tmp / "sim" / "org__text__vs__speech"
    refs = {"cca": cca.cca, "svcca": cca.svcca, "pwcca": cca.pwcca, "procrustes": procrustes.procrustes}
    for metric, ref in refs.items():
        values = np.array(json.loads((folder / f"{metric}.json").read_text())["values"])
        expected = np.array([[ref(a, b) for b in m2] for a in m1])
        assert np.allclose(values, expected, atol=2e-6), metric
    # RSA on the comparison's seeded sample of 120 rows (the rows listed as used)
    info = json.loads((folder / "rsa.json").read_text())
    assert info["rows_used"] == 120
    from wordreps.analysis.compare import _seeds, sample_rows

    rows = sample_rows(300, 120, _seeds(3)[2])
    expected = np.array([[rsa.rsa(a[rows], b[rows]) for b in m2] for a in m1])
    assert np.allclose(np.array(info["values"]), expected, atol=1e-9)


def test_correspondence_is_the_best_layer_under_each_measure(runs):
    tmp, _, _, _ = runs
    folder = tmp / "sim" / "org__text__vs__speech"
    with open(folder / "correspondence.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 3 * len(MEASURES)
    for row in table:
        values = np.array(json.loads((folder / f"{row['measure']}.json").read_text())["values"])
        layer1 = int(row["layer1"])
        assert int(row["best_layer2"]) == int(np.argmax(values[layer1]))
        assert float(row["value"]) == pytest.approx(values[layer1].max(), abs=1e-9)
    # layer 0 of model 2 shares the latent factors, layer 1 is noise: every measure picks layer 0
    assert {row["best_layer2"] for row in table} == {"0"}
    assert (folder / "correspondence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_few_rows_warn_once_and_give_nan_not_one(tmp_path):
    m1, m2 = related_layers(np.random.default_rng(1), 40)
    rng = np.random.default_rng(2)
    narrow = (m1[0] @ rng.normal(size=(6, 45))).astype(np.float32)     # 45 columns, rank 6
    wide = rng.normal(size=(40, 45)).astype(np.float32)                  # rank 39 = n - 1
    write_matrix_folder(tmp_path / "mats", "org__text", [narrow, wide], model="org/text")
    write_matrix_folder(tmp_path / "mats", "speech", m2)
    proc = run_script(SCRIPT, "--model1", "org/text", "--layer1", "1", "--model2", "speech", "--layer2", "1",
                      "--metric", "cca", "pwcca", "--bootstrap", "3", "--device", "cpu", "--matrices_dir",
                      tmp_path / "mats", "--out_dir", tmp_path / "res", "--no_progress")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    # the general small-sample line (wordreps/analysis/reliability.py, below 100 rows), then the engines' own
    assert warnings[0].startswith("warning: only 40 rows"), proc.stderr
    warnings = warnings[1:]
    assert len(warnings) == 1, proc.stderr     # one line, not one per pair or per bootstrap resample
    assert "n = 40 rows" in warnings[0] and "p = 45, q = 5" in warnings[0] and "svcca" in warnings[0]
    values = np.array(json.loads((tmp_path / "res" / "org__text__vs__speech" / "cca.json").read_text())["values"],
                      dtype=float)
    assert np.isnan(values[1]).all() and np.isfinite(values[0]).all()   # JSON null, never a silent 1.0


def test_correspondence_follows_this_run_not_results_left_from_another(runs, tmp_path):
    """A linear.json an earlier run left for other layers must not displace this run's measure from the figure
    (linear comes first in the measure table, so it was the one the others were matched against)."""
    tmp, _, _, _ = runs
    old = run_script("experiments/experiment_CKA.py", "--model1", "org/text", "--layer1", "1", "--model2", "speech",
                     "--layer2", "1", "--device", "cpu", "--matrices_dir", tmp / "mats", "--out_dir", tmp_path,
                     "--no_progress")
    assert old.returncode == 0, old.stderr
    new = run_script(SCRIPT, *_args(tmp / "mats", tmp_path, "--metric", "svcca"))
    assert new.returncode == 0, new.stderr
    with open(tmp_path / "org__text__vs__speech" / "correspondence.csv") as fh:
        table = list(csv.DictReader(fh))
    assert {row["measure"] for row in table} == {"svcca"}
    assert [row["layer1"] for row in table] == ["0", "1", "2"]
