"""The benchmarks' shared helpers (benchmarks/_bench.py, benchmarks/_thesis.py), loaded as the scripts load them.

What could fail: bench_cka's random data correlated the two models only when d1 >= d2 (with d1 < d2 every CKA
value sat near 0); bench_measures let a CPU out-of-memory (a RuntimeError) through as a traceback; the thesis
loop's JSON must be the thesis's ({utt: {word: [occurrence][layer][dim]}}, indent=4).
"""
from __future__ import annotations

import json
import runpy

import numpy as np
import pytest
import torch

from tests.helpers.scripts import REPO
from wordreps.common.errors import UserError


def test_cka_data_are_correlated_whichever_model_is_wider():
    bench_one = runpy.run_path(str(REPO / "benchmarks" / "bench_cka.py"))["bench_one"]
    values = [bench_one(2000, d1, d2, 1, 1, torch.device("cpu"), "mixed", 16384, False, 0)["linear_00"]
              for d1, d2 in ((32, 64), (64, 32))]
    assert min(values) > 0.1, values  # independent data would give about d/n = 0.02-0.03


def test_measures_cpu_out_of_memory_is_one_user_error(monkeypatch):
    script = runpy.run_path(str(REPO / "benchmarks" / "bench_measures.py"))
    bench = script["bench_one"].__globals__["_bench"]

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(bench, "correlated_layers", no_memory)
    with pytest.raises(UserError, match="out of memory at n = 100"):
        script["main"](["--rows", "100", "--dims", "8:8", "--layers1", "1", "--layers2", "1", "--device", "cpu"])


def test_thesis_utterance_writes_the_thesis_json(tmp_path):
    thesis = runpy.run_path(str(REPO / "benchmarks" / "bench_busy.py"))["_thesis"]
    states = [torch.arange(12, dtype=torch.float32).reshape(1, 4, 3) * (k + 1) for k in range(2)]  # 2 layers
    path = thesis.utterance(lambda: states, "u1", ["a", "b", "a"], [slice(0, 2), [2], slice(3, 4)], tmp_path)
    text = path.read_text()
    assert path.name == "embeddings_words_u1.json" and text.startswith('{\n    "u1": {\n        "a": [')
    data = json.loads(text)["u1"]
    assert list(data) == ["a", "b"] and len(data["a"]) == 2  # every occurrence of a repeated word, in order
    np.testing.assert_allclose(data["a"][0], [[1.5, 2.5, 3.5], [3.0, 5.0, 7.0]])  # mean of frames 0-1, per layer
    np.testing.assert_allclose(data["b"][0][1], [12.0, 14.0, 16.0])
    np.testing.assert_allclose(data["a"][1][0], [9.0, 10.0, 11.0])
