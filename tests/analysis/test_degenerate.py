"""Degenerate numbers are said, not left blank (issue 9): a constant layer makes CKA undefined (warned, marked
undefined in JSON, CSV and plot); very few rows warn with the count; library warnings never precede the
``error:`` line."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import warnings
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import assert_refused
from tests.helpers.folders import write_matrix_folder
from tests.helpers.references import linear_cka_features
from tests.helpers.scripts import script_env
from tests.helpers.scripts import run_script as run
from tests.helpers.text import all_words, write_alignment_json
from wordreps.common.errors import UserError, run_cli
from wordreps.embeddings.matrices import keys_text

CKA = "experiments/experiment_CKA.py"
ASIF = "experiments/experiment_ASIF.py"


def warnings_on() -> dict[str, str]:
    """The scripts' environment without PYTHONWARNINGS=ignore, so that library warnings would show."""
    env = script_env()
    env.pop("PYTHONWARNINGS", None)
    return env


def _inputs(tmp_path: Path, n: int, constant: dict[str, int] | None = None) -> tuple[Path, Path, dict]:
    """keys + matrices 'a' (3 layers, dim 5) and 'b' (2 layers, dim 4) of n related rows; ``constant`` sets
    one layer of a model to a constant row (a: all 0.25, b: all zeros)."""
    rng = np.random.default_rng(n)
    rows = [(f"1-1-{i // 10:04d}", i % 10, f"w{i % 7}") for i in range(n)]
    text = keys_text(["a", "b"], rows)
    (tmp_path / "keys.json").write_text(text)
    sha = hashlib.sha256(text.encode()).hexdigest()
    base = rng.normal(size=(n, 5))
    layers = {"a": [base + 0.5 * rng.normal(size=(n, 5)) for _ in range(3)],
              "b": [np.tanh(base @ rng.normal(size=(5, 4))) + 0.2 * rng.normal(size=(n, 4)) for _ in range(2)]}
    for model, layer in (constant or {}).items():
        layers[model][layer] = np.full_like(layers[model][layer], 0.25 if model == "a" else 0.0)
    for model, mats in layers.items():
        write_matrix_folder(tmp_path / "mats", model, mats, keys_sha256=sha)
    return tmp_path / "mats", tmp_path / "keys.json", {m: [x.astype(np.float32) for x in v] for m, v in layers.items()}


def test_a_constant_layer_is_said_and_marked_undefined(tmp_path):
    mats, _, layers = _inputs(tmp_path, 150, {"a": 1, "b": 0})
    out = tmp_path / "res"
    proc = run(CKA, "--model1", "a", "--layer1", 2, "--model2", "b", "--layer2", 1, "--metric", "linear", "debiased",
               "--bootstrap", 3, "--permutations", 3, "--matrices_dir", mats, "--out_dir", out, "--device", "cpu",
               "--no_progress", env=warnings_on())
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert any("a layer 1: all 150 rows are equal" in line for line in said), proc.stderr
    assert any("b layer 0: all 150 rows are equal" in line for line in said), proc.stderr
    assert "Warning" not in proc.stderr  # no numpy "All-NaN slice" / "invalid value" noise besides our lines
    folder = out / "a__vs__b"
    for metric in ("linear", "debiased"):
        info = json.loads((folder / f"{metric}.json").read_text())
        undefined = {(i, j) for i, j, _ in info["undefined"]}
        assert undefined == {(i, j) for i in range(3) for j in range(2) if i == 1 or j == 0}
        for i, j in undefined:
            assert info["values"][i][j] is None and info["ci_low"][i][j] is None and info["perm_mean"][i][j] is None
        assert len(info["warnings"]) == 2
        with open(folder / f"{metric}.csv") as fh:
            for row in csv.DictReader(fh):
                cell = (int(row["layer1"]), int(row["layer2"]))
                assert (row["value"] == "nan") == (cell in undefined)
                assert ("all rows equal" in row["note"]) == (cell in undefined)
    # the defined cells are the real values (an independent float64 computation)
    info = json.loads((folder / "linear.json").read_text())
    for i, j in ((0, 1), (2, 1)):
        assert info["values"][i][j] == pytest.approx(linear_cka_features(layers["a"][i], layers["b"][j]), abs=1e-6)


def _cell_box(image: np.ndarray, rgb) -> tuple[slice, slice]:
    """(rows, columns) of the heatmap cell painted ``rgb``: the rows and columns where that colour fills more
    than half of the longest run (the colour bar's thin band of the same colour and the cell's label fall out)."""
    match = np.abs(image[..., :3] - np.asarray(rgb[:3])).max(axis=-1) < 0.01
    rows = np.flatnonzero(match.sum(axis=1) > match.sum(axis=1).max() / 2)
    cols = np.flatnonzero(match.sum(axis=0) > match.sum(axis=0).max() / 2)
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def _hatch_fractions(image: np.ndarray) -> tuple[float, float]:
    """In the top-left cell (values[0, 1] of the test below: model 1's layer 0, model 2's layer 1), the fraction
    of pixels that are the hatch's light grey face (0.85) and of those that are its darker grey lines (0.45,
    antialiased towards the face). The cell is found from its neighbours: the columns of the 0.5 cell below it,
    the rows of the 0.9 cell beside it."""
    from matplotlib import colormaps

    magma = colormaps["magma"]
    _, cols = _cell_box(image, magma(0.5))
    rows, _ = _cell_box(image, magma(0.9))
    cell = image[rows, cols, :3]
    grey = np.ptp(cell, axis=-1) < 0.02
    level = cell[..., 0]
    face = grey & (np.abs(level - 0.85) < 0.03)
    lines = grey & (level > 0.35) & (level < 0.8)
    return float(face.mean()), float(lines.mean())


def test_heatmap_marks_undefined_cells(tmp_path):
    import matplotlib.image as mpimg
    from wordreps.analysis.plots import heatmap

    values = np.array([[0.5, np.nan], [0.2, 0.9]])
    heatmap(tmp_path / "with.png", values, [0, 1], [0, 1], "x", "y", "t")
    heatmap(tmp_path / "without.png", np.nan_to_num(values, nan=0.0), [0, 1], [0, 1], "x", "y", "t")
    with_nan, plain = mpimg.imread(tmp_path / "with.png"), mpimg.imread(tmp_path / "without.png")
    # the undefined cell is hatched: mostly the light grey face, crossed by darker grey lines
    face, lines = _hatch_fractions(with_nan)
    assert face > 0.4 and lines > 0.1, (face, lines)
    # the same cell holding 0.0 is the colour map's black: no grey face, no hatch lines
    face, lines = _hatch_fractions(plain)
    assert face < 0.01 and lines < 0.01, (face, lines)


def test_few_rows_warn_with_the_count(tmp_path):
    mats, keys, _ = _inputs(tmp_path, 17)
    out = tmp_path / "res"
    proc = run(CKA, "--model1", "a", "--layer1", 2, "--model2", "b", "--layer2", 1, "--bootstrap", 2,
               "--matrices_dir", mats, "--out_dir", out, "--device", "cpu", "--no_progress")
    assert proc.returncode == 0, proc.stderr
    assert "warning: only 17 rows" in proc.stderr
    assert any("only 17 rows" in w for w in json.loads((out / "a__vs__b" / "linear.json").read_text())["warnings"])
    proc = run(ASIF, "--path_layer1", mats / "a" / "layer_0.npy", "--path_layer2", mats / "b" / "layer_0.npy",
               "--keys", keys, "--k", 4, "--out_dir", out, "--name", "asif", "--device", "cpu", "--no_progress")
    assert proc.returncode == 0, proc.stderr
    assert "warning: only 17 rows" in proc.stderr
    summary = json.loads((out / "asif" / "summary.json").read_text())
    assert summary["warnings"] and "only 17 rows" in summary["warnings"][0]
    # with enough rows nothing is said: test_a_constant_layer_is_said_and_marked_undefined (n = 150) and
    # test_asif_accepts_the_common_flags (n = 120)


def test_a_library_warning_never_precedes_the_error_line(tmp_path):
    """The issue's case: a GloVe value of 1e39 (past float32) printed numpy's overflow warning first."""
    al = write_alignment_json(tmp_path / "al.json")
    glove = tmp_path / "glove.txt"
    words = all_words()
    glove.write_text("".join(f"{w} {'1e39' if i == 3 else '0.5'} 0.25\n" for i, w in enumerate(words)))
    proc = run("embeddings/glove_embedding.py", "--glove", glove, "--path", al, "--out_dir", tmp_path / "out",
               "--glove_cache", tmp_path / "cache", "--no_progress", env=warnings_on(), timeout=120)
    line = assert_refused(proc, [str(glove), "line 4", "float32's range"], absent=[tmp_path / "out"])
    assert proc.stderr.splitlines()[0] == line and "Warning" not in proc.stderr


def test_run_cli_holds_warnings_back():
    """The class: whatever warns while main runs is dropped after bad input, and shown after a success."""
    def bad() -> int:
        warnings.warn("overflow encountered in cast", RuntimeWarning)
        raise UserError("the file is damaged")

    def good() -> int:
        warnings.warn("a library's notice", DeprecationWarning)
        print("done", file=sys.stderr)
        return 0

    for main, code in ((bad, 2), (good, 0)):
        err = io.StringIO()
        with redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("always")
            # as outside pytest (which records warnings itself): shown on stderr
            warnings.showwarning = lambda m, c, f, n, file=None, line=None: sys.stderr.write(
                warnings.formatwarning(m, c, f, n, line))
            with pytest.raises(SystemExit) as info:
                run_cli(main)
        assert info.value.code == code
        lines = err.getvalue().splitlines()
        if code == 2:
            assert lines == ["error: the file is damaged"]
        else:
            assert lines[0] == "done" and "DeprecationWarning: a library's notice" in err.getvalue()


def test_asif_accepts_the_common_flags(tmp_path):
    """--no_progress (refused by experiment_ASIF.py before) and --num_threads are accepted by every stage script."""
    mats, keys, _ = _inputs(tmp_path, 120)
    proc = run(ASIF, "--path_layer1", mats / "a" / "layer_0.npy", "--path_layer2", mats / "b" / "layer_1.npy",
               "--keys", keys, "--k", 8, "--out_dir", tmp_path / "res", "--device", "cpu", "--no_progress",
               "--num_threads", 1)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" not in proc.stderr
