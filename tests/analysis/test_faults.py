"""Gaps of the CKA / ASIF fault tests: Inf and NaN rows, a full disk, and byte-identical reruns with seeds recorded.

Matrices are written straight from numpy (tests/helpers/folders.write_matrix_folder), as the matrices stage
would lay them out.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import assert_refused, limit_file_size
from tests.helpers.files import temp_files, visible_files
from tests.helpers.folders import write_matrix_folder
from tests.helpers.scripts import run_script
from wordreps.embeddings.matrices import keys_text

CKA = "experiments/experiment_CKA.py"
ASIF = "experiments/experiment_ASIF.py"
N = 120


def _inputs(tmp_path: Path, bad_row: int | None = None, bad_value: float = np.inf) -> Path:
    """keys.json + matrices of two related spaces 'a' (2 layers, dim 6) and 'b' (2 layers, dim 5), N rows."""
    rng = np.random.default_rng(4)
    words = [f"w{i % 12}" for i in range(N)]
    rows = [(f"1-1-{i // 10:04d}", i % 10, w) for i, w in enumerate(words)]
    text = keys_text(["a", "b"], rows)
    (tmp_path / "keys.json").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    base = np.stack([rng.normal(size=6) for _ in range(12)])[[i % 12 for i in range(N)]]
    a = [base + 0.3 * rng.normal(size=(N, 6)) for _ in range(2)]
    b = [np.tanh(base @ rng.normal(size=(6, 5))) + 0.1 * rng.normal(size=(N, 5)) for _ in range(2)]
    if bad_row is not None:
        b[1][bad_row, 3] = bad_value
    write_matrix_folder(tmp_path / "mats", "a", a, keys_sha256=sha)
    write_matrix_folder(tmp_path / "mats", "b", b, keys_sha256=sha)
    return tmp_path / "mats"


def _cka(tmp_path: Path, out: Path, *extra: object, **kw):
    return run_script(CKA, "--model1", "a", "--layer1", "1", "--model2", "b", "--layer2", "1", "--device", "cpu",
               "--matrices_dir", tmp_path / "mats", "--out_dir", out, *extra, **kw)


def _asif(tmp_path: Path, out: Path, *extra: object, **kw):
    return run_script(ASIF, "--path_layer1", tmp_path / "mats/a/layer_1.npy", "--path_layer2", tmp_path / "mats/b/layer_1.npy",
               "--keys", tmp_path / "keys.json", "--k", "8", "--p", "2", "--device", "cpu", "--out_dir", out,
               *extra, **kw)


# test_compare.py gives CKA a NaN and test_asif.py gives ASIF an Inf: here the other way round
@pytest.mark.parametrize("stage,value", [("cka", np.inf), ("asif", np.nan)], ids=["cka_inf", "asif_nan"])
def test_non_finite_row_is_named(stage, value, tmp_path):
    _inputs(tmp_path, bad_row=57, bad_value=value)
    out = tmp_path / "res"
    proc = (_cka if stage == "cka" else _asif)(tmp_path, out)
    bad = tmp_path / "mats" / "b" / "layer_1.npy"
    assert_refused(proc, [str(bad), "row 57", "NaN or Inf"], no_temps_in=[tmp_path])
    assert visible_files(out) == []


@pytest.mark.parametrize("stage", ["cka", "asif"])
def test_full_disk_while_writing_results(stage, tmp_path):
    _inputs(tmp_path)
    out = tmp_path / "res"
    # 4 kB: the JSON and CSV of one metric fit, a PNG does not
    proc = (_cka if stage == "cka" else _asif)(tmp_path, out, preexec_fn=limit_file_size(4000))
    assert_refused(proc, ["no space left", "free disk space"], no_temps_in=[tmp_path])
    for path in visible_files(out):  # whatever was written before the disk filled is whole
        assert path.suffix in (".json", ".csv"), path
        if path.suffix == ".json":
            json.loads(path.read_text())
    if stage == "cka":
        proc = _cka(tmp_path, out)  # space freed: the same command finishes
        assert proc.returncode == 0, proc.stderr
        assert [p.suffix for p in visible_files(out)] == [".csv", ".json", ".png"]


def test_reruns_are_byte_identical_and_record_seed_inputs_and_versions(tmp_path):
    import torch

    _inputs(tmp_path)
    keys_sha = hashlib.sha256((tmp_path / "keys.json").read_bytes()).hexdigest()
    outputs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        proc = _cka(tmp_path, out / "cka", "--bootstrap", "20", "--permutations", "10", "--seed", "9")
        assert proc.returncode == 0, proc.stderr
        proc = _asif(tmp_path, out / "asif", "--seed", "9", "--chance_draws", "50")
        assert proc.returncode == 0, proc.stderr
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in visible_files(out)})
    assert outputs[0] == outputs[1] and len(outputs[0]) >= 7  # JSON, CSV and PNG of each, byte for byte
    cka = json.loads(outputs[0]["cka/a__vs__b/linear.json"])
    assert cka["settings"]["seed"] == 9 and cka["keys_sha256"] == keys_sha
    assert cka["versions"] == {"numpy": np.__version__, "torch": torch.__version__}
    asif = json.loads(outputs[0]["asif/a-layer_1__b-layer_1/summary.json"])
    assert asif["keys_sha256"] == keys_sha and asif["settings"]["seed"] == 9
    assert temp_files(tmp_path) == []
