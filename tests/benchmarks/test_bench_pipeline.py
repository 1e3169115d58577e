"""Smoke test of benchmarks/bench_pipeline.py: one tiny side-by-side run on the demo corpus (once).

What could fail: the thesis-style path and the toolkit path must hold the same rows (same occurrences in the
same order) and the same numbers, so that the benchmark compares like with like. The CKA values are checked
against a Gram-matrix HSIC computed here (tr(K H L H), explicit centering matrix), not the script's code.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.references import linear_cka_gram
from tests.helpers.scripts import error_lines, run_script

SCRIPT = "benchmarks/bench_pipeline.py"


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("bench")
    proc = run_script(SCRIPT, "--repeat", "1", "--trials", "1", "--out_dir", out, "--keep", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, json.loads((out / "bench_pipeline.json").read_text()), proc


def test_both_paths_hold_the_same_rows_and_numbers(bench_run):
    out, res, proc = bench_run
    work = out / "pipeline-work"
    slug = res["model"]["name"]
    layers = res["model"]["layers"]
    assert res["corpus"]["utterances"] == 20 and res["corpus"]["rows"] == res["corpus"]["words"] == 192
    keys = json.loads((work / "toolkit" / "words_in_order.json").read_text())["rows"]
    thesis_words = json.loads((work / "thesis" / "words_in_order.json").read_text())
    assert sum(len(v) for v in thesis_words.values()) == len(keys)
    for i in range(layers):
        thesis = np.array(json.loads((work / "thesis" / "layers" / f"embeddings_layer{i}_{slug}.json").read_text()))
        toolkit = np.load(work / "toolkit" / "matrices" / slug / f"layer_{i}.npy")
        assert thesis.shape == toolkit.shape == (192, res["model"]["dim"])
        # float16 storage: |error| <= 2^-11 |x| (round to nearest) + fp32 noise of batched vs single runs
        assert np.all(np.abs(thesis - toolkit) <= 2.0 ** -11 * np.abs(thesis) + 1e-4), f"layer {i}"
        # rows are occurrences, not just words: no two rows of a layer are copies of each other
        assert len(np.unique(toolkit.round(3), axis=0)) == len(toolkit)
    # the pooled vector of one word, recomputed from the thesis's per-utterance JSON, equals the toolkit's row
    utt, pos, word = keys[5]
    data = json.loads((work / "thesis" / slug / f"embeddings_words_{utt}.json").read_text())[utt]
    k = sum(1 for u, p, w in keys if u == utt and p < pos and w == word)  # earlier occurrences of the word
    vec = np.array(data[word][k])  # (layers, dim)
    row = np.stack([np.load(work / "toolkit" / "matrices" / slug / f"layer_{i}.npy")[5] for i in range(layers)])
    np.testing.assert_allclose(row, vec, rtol=2.0 ** -10, atol=1e-4)
    assert res["agreement"]["matrices"]["within_fp16"] and res["agreement"]["pooled"]["within_fp16"]


def test_cka_values_match_an_independent_gram_computation(bench_run):
    out, res, proc = bench_run
    work = out / "pipeline-work"
    slug = res["model"]["name"]
    layers = res["model"]["layers"]
    mats = [np.load(work / "toolkit" / "matrices" / slug / f"layer_{i}.npy").astype(np.float64) for i in range(layers)]
    expected = np.array([[linear_cka_gram(mats[i], mats[j]) for j in range(layers)] for i in range(layers)])
    toolkit = np.array(res["cka_values_toolkit"])
    thesis = np.array(json.loads((work / "thesis" / "cka" / f"cka_feature_{slug}_{slug}.json").read_text()))
    np.testing.assert_allclose(toolkit, expected, atol=1e-6)
    np.testing.assert_allclose(thesis, expected, atol=1e-3)  # the thesis read fp32 values, the toolkit fp16
    assert np.allclose(np.diag(toolkit), 1.0) and toolkit.min() < 0.999  # not a degenerate all-ones map
    assert res["agreement"]["cka"]["agree"]
    # the toolkit compared two folders (a copy of the matrices), so it computed every pair, not only j >= i
    assert (work / "toolkit" / "cka" / f"{slug}__vs__{slug}-copy" / "linear.json").is_file()
    assert f"CKA, all {layers * layers} layer pairs each way" in (out / "bench_pipeline.md").read_text()


def test_report_has_every_stage_and_the_load(bench_run):
    out, res, proc = bench_run
    md = (out / "bench_pipeline.md").read_text()
    for stage in ("extraction", "matrix assembly", "CKA", "load average", "within float16 rounding"):
        assert stage in md
    s = res["seconds"]
    assert all(s[k] > 0 for k in ("thesis_extract", "toolkit_extract", "thesis_matrices", "toolkit_matrices",
                                  "thesis_cka_feature", "toolkit_cka"))
    b = res["bytes"]
    assert b["thesis_per_utterance"] > b["toolkit_per_utterance"] > 0  # indented JSON vs float16 .npy
    assert "thesis and toolkit agree" in proc.stdout


def test_cuda_without_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_script(SCRIPT, "--device", "cuda", "--out_dir", tmp_path / "o")
    assert proc.returncode == 2
    errors = error_lines(proc)
    assert len(errors) == 1 and "no usable CUDA GPU" in errors[0] and "bench_pipeline.py" in errors[0]
    assert not (tmp_path / "o").exists()
