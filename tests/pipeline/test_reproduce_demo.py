"""The README's main job: the whole chain on the bundled demo corpus, then checked from the files it left."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.references import linear_cka_gram
from tests.helpers.scripts import run_script


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
    assert 0 < len(expected) < 192  # the demo's GloVe file leaves some words out on purpose


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
