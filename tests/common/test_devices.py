"""The one device resolver (common/devices.py) and the GPU paths a CPU can check: which GPU a process takes, what
the manifest records, allocation failures turned into advice, deterministic pooling, and the RBF median.

GPUs are simulated by replacing torch.cuda's queries (is_available, device_count, set_device, names and
capabilities); nothing here needs or uses a real GPU.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from tests.helpers.text import items, utterances
from wordreps.common import devices as D
from wordreps.common.errors import UserError
from wordreps.common.precision import compute_record

# ---------------------------------------------------------------------------------------------- resolver

@pytest.fixture
def fake_gpus(monkeypatch):
    """``count`` simulated GPUs; returns the list of devices passed to torch.cuda.set_device."""
    calls: list[torch.device] = []

    def install(count: int) -> list[torch.device]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(torch.device(device)))
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
        return calls

    return install


def test_cpu_and_auto_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert D.resolve_device("cpu") == torch.device("cpu")
    assert D.resolve_device("auto") == torch.device("cpu")
    assert D.resolve_device(None) == torch.device("cpu")
    for text in ("cuda", "cuda:1", "CUDA"):
        with pytest.raises(UserError, match=r"no usable CUDA GPU; pass --device cpu \(or auto\)"):
            D.resolve_device(text)
    with pytest.raises(UserError, match="allowed: auto, cpu, cuda, cuda:N"):
        D.resolve_device("gpu")


def test_auto_and_cuda_take_this_processs_gpu_and_make_it_current(fake_gpus):
    calls = fake_gpus(4)
    assert D.resolve_device("auto", {}) == torch.device("cuda", 0)
    assert D.resolve_device("cuda", {"LOCAL_RANK": "2"}) == torch.device("cuda", 2)  # torchrun, 4 GPUs a node
    assert D.resolve_device("auto", {"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    assert D.resolve_device("cuda:1", {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)  # explicit wins
    assert calls == [torch.device("cuda", i) for i in (0, 2, 3, 1)]  # every CUDA answer became current


def test_one_visible_gpu_per_process_is_that_ranks_gpu(fake_gpus):
    calls = fake_gpus(1)  # CUDA_VISIBLE_DEVICES set per rank: rank 3 sees its GPU as cuda:0
    assert D.resolve_device("cuda", {"LOCAL_RANK": "3"}) == torch.device("cuda", 0)
    assert calls == [torch.device("cuda", 0)]


def test_impossible_gpus_are_one_clear_error(fake_gpus):
    fake_gpus(2)
    with pytest.raises(UserError, match=r"--device cuda:2: this process sees 2 GPU\(s\) \(cuda:0..cuda:1\)"):
        D.resolve_device("cuda:2")
    with pytest.raises(UserError, match=r"LOCAL_RANK=5 but this process sees 2 GPUs"):
        D.resolve_device("auto", {"LOCAL_RANK": "5"})
    with pytest.raises(UserError, match=r"LOCAL_RANK='x' is not an integer"):
        D.resolve_device("cuda", {"LOCAL_RANK": "x"})


def test_every_script_takes_the_same_device_values(capsys, repo_root):
    import runpy

    from wordreps.embeddings.extract import add_extraction_args

    def parser_of(script: str):
        return runpy.run_path(str(repo_root / script))["build_parser"]

    bench_parser, asif_parser = parser_of("benchmarks/bench_cka.py"), parser_of("experiments/experiment_ASIF.py")
    cka_parser = parser_of("experiments/experiment_CKA.py")

    cka = cka_parser().parse_args(["--model1", "a", "--layer1", "1", "--model2", "b", "--layer2", "1",
                                   "--device", "cuda:1"])
    asif = asif_parser().parse_args(["--path_layer1", "a", "--path_layer2", "b", "--keys", "k", "--device", "CUDA:0"])
    bench = bench_parser().parse_args(["--device", "cuda:2"])
    extract = add_extraction_args(argparse.ArgumentParser(), audio=True).parse_args(["--path", "x", "--device", "cuda:3"])
    assert (cka.device, asif.device, bench.device, extract.device) == ("cuda:1", "cuda:0", "cuda:2", "cuda:3")
    with pytest.raises(SystemExit):
        cka_parser().parse_args(["--model1", "a", "--layer1", "1", "--model2", "b", "--layer2", "1", "--device", "gpu"])
    assert "allowed: auto, cpu, cuda, cuda:N" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- manifest

def test_the_manifest_records_the_gpu_and_the_precision(fake_gpus):
    fake_gpus(1)
    record = compute_record(torch.device("cuda", 0), "bfloat16")
    assert record == {"device_type": "cuda", "gpu_name": "NVIDIA H200", "compute_capability": "9.0",
                      "precision": "bfloat16", "pooling": "float32", "cudnn_deterministic": True}
    assert compute_record("cpu", "float32") == {"device_type": "cpu", "precision": "float32", "pooling": "float32"}


# ---------------------------------------------------------------------------------------------- out of memory

@pytest.mark.parametrize("message,is_oom", [
    ("CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`", True),
    ("CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`", True),
    ("cuDNN error: CUDNN_STATUS_ALLOC_FAILED", True),
    ("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
     True),
    ("mat1 and mat2 shapes cannot be multiplied (4x3 and 4x3)", False),
    ("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED", False),
])
def test_allocation_failures_are_recognised_whatever_their_wording(message, is_oom):
    assert D.is_out_of_memory(RuntimeError(message)) is is_oom
    assert D.is_out_of_memory(torch.OutOfMemoryError("anything")) and D.is_out_of_memory(MemoryError())
    assert not D.is_out_of_memory(ValueError("out of memory"))  # not an allocator's error type


def test_a_cublas_allocation_failure_gets_the_batch_budget_hint(tmp_path):
    from tests.helpers.speech import random_corpus
    from wordreps.embeddings.base import Backend
    from wordreps.embeddings.extract import add_extraction_args, run_extraction

    class CublasFails(Backend):
        model_name, family, num_layers, dim, layer_names = "org/m", "stand-in", 1, 2, ["layer_0"]
        needs_audio, sample_rate_hz = True, 16000

        def cost(self, utterance):
            return utterance.duration_s

        def embed(self, batch):
            raise RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")

    al = random_corpus(tmp_path / "c", [1.5, 1.6])
    args = add_extraction_args(argparse.ArgumentParser(), audio=True).parse_args(
        ["--path", str(al), "--out_dir", str(tmp_path / "o"), "--batch_seconds", "30", "--no_progress"])
    with pytest.raises(UserError, match=r"ran out of memory on a batch of 2 utterances .* smaller --batch_seconds "
                                        r"\(now 30.0\).*CUBLAS_STATUS_ALLOC_FAILED"):
        run_extraction(CublasFails(), args)


# ---------------------------------------------------------------------------------------------- pooling

def test_pool_groups_is_the_mean_of_each_groups_positions():
    from wordreps.embeddings.pooling import pool_groups

    gen = torch.Generator().manual_seed(0)
    hidden = [torch.randn(2, 6, 3, generator=gen).to(torch.bfloat16), torch.randn(2, 6, 3, generator=gen)]
    groups = torch.tensor([[-1, 0, 0, 1, 2, -1], [-1, 1, 1, 1, 0, -1]])
    pooled = pool_groups(hidden, groups, 3)  # (L, B, G, D)
    assert pooled.dtype == torch.float32 and pooled.shape == (2, 2, 3, 3)
    for layer, h in enumerate(hidden):
        h = h.double().numpy()
        want = {(0, 0): h[0, 1:3].mean(0), (0, 1): h[0, 3], (0, 2): h[0, 4], (1, 0): h[1, 4], (1, 1): h[1, 1:4].mean(0),
                (1, 2): np.zeros(3)}  # item 1 has no group 2: zeros, never NaN
        for (b, g), vec in want.items():
            np.testing.assert_allclose(pooled[layer, b, g].numpy(), vec, rtol=1e-6, atol=1e-6)


def test_text_pooling_never_uses_index_add(tiny_bert, monkeypatch, one_torch_thread):  # noqa: F811
    from wordreps.embeddings.backends.hf_text import load_hf_text_backend

    backend = load_hf_text_backend(str(tiny_bert), "cpu", precision="float32", max_tokens=16, stride=6)  # windows
    utts = utterances()
    before = backend.embed(items(utts))

    def refuse(*args, **kwargs):
        raise AssertionError("index_add_ is nondeterministic on CUDA")

    monkeypatch.setattr(torch.Tensor, "index_add_", refuse)
    monkeypatch.setattr(torch.Tensor, "index_add", refuse)
    again = backend.embed(items(utts))
    assert all(np.array_equal(a, b) for a, b in zip(before, again))  # byte-identical on a second run
    assert all(np.isfinite(a).all() for a in again)


# ---------------------------------------------------------------------------------------------- RBF median

@pytest.mark.parametrize("n", [1, 2, 7, 10, 401])
def test_the_median_matches_numpy_with_every_method(n):
    from wordreps.analysis.cka import median_like_numpy

    rng = np.random.default_rng(n)
    values = np.round(rng.standard_normal((n, n)) ** 2, 1)  # many ties
    t = torch.from_numpy(values)
    want = float(np.median(values))
    for method in ("sort", "select", "auto"):
        assert median_like_numpy(t, method) == want, method
    assert np.array_equal(t.numpy(), values)  # the caller's tensor is left untouched
