"""Compute precision (common/precision.py): how it is decided per device, what bfloat16 does to the vectors of
every family, and that a folder is never resumed at another precision.

Tolerance, stated once: with bfloat16 autocast on a CPU, each layer's word vectors stay within 2e-2 of the
float32 ones in relative Frobenius norm (measured on the tiny models and MiniLM: 5e-5 to 8e-3), and differ from
them by more than 1e-6 (so bfloat16 really ran: two float32 runs of one batch give identical bytes). Pooling
stays float32 whatever the precision.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pytest
import torch

from tests.helpers.files import folder_bytes
from tests.helpers.speech import demo_alignment, random_corpus, tiny_model
from tests.helpers.text import items, utterances
from wordreps.alignments.format import load_alignment
from wordreps.common import precision as P
from wordreps.common.audio import load_audio
from wordreps.common.errors import UserError, run_cli
from wordreps.embeddings.base import BatchItem
from wordreps.embeddings.extract import add_extraction_args, run_extraction
from wordreps.embeddings.families import load_backend
from wordreps.embeddings.tiny.text import minilm_path

BF16_MAX_REL = 2e-2
BF16_MIN_REL = 1e-6
CUDA0 = torch.device("cuda", 0)


# ---------------------------------------------------------------------------------------------- the rule

def _fake_gpu(monkeypatch, major: int, minor: int) -> None:
    """A GPU of the given compute capability as seen by the resolver (no CUDA call is made)."""
    monkeypatch.setattr("wordreps.common.devices.cuda_capability", lambda device: (major, minor))
    # torch 2.8's is_bf16_supported() says True even for emulation: the rule must not listen to it
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


@pytest.mark.parametrize("capability,auto", [((7, 0), "float16"), ((7, 5), "float16"), ((8, 0), "bfloat16"),
                                             ((8, 6), "bfloat16"), ((9, 0), "bfloat16")])
def test_auto_on_a_gpu_follows_the_target_devices_compute_capability(monkeypatch, capability, auto):
    _fake_gpu(monkeypatch, *capability)
    assert P.resolve_precision("auto", CUDA0) == auto
    assert P.resolve_precision("float32", CUDA0) == "float32"
    assert P.resolve_precision("float16", CUDA0) == "float16"
    assert P.resolve_precision("auto", CUDA0, family_checked=False) == "float32"


def test_bfloat16_on_a_gpu_without_it_is_refused(monkeypatch):
    _fake_gpu(monkeypatch, 7, 5)
    with pytest.raises(UserError, match=r"compute capability 7\.5\) has no native bfloat16 .* --precision float16"):
        P.resolve_precision("bfloat16", CUDA0)


def test_auto_on_a_cpu_follows_native_bfloat16(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    assert P.resolve_precision("auto", "cpu") == "bfloat16"
    assert P.resolve_precision("auto", "cpu", family_checked=False) == "float32"
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert P.resolve_precision("auto", "cpu") == "float32"
    assert P.resolve_precision("bfloat16", "cpu") == "bfloat16"  # asked for: honoured (emulated, slower)
    with pytest.raises(UserError, match="float16 is for GPUs; on a CPU pass --precision bfloat16"):
        P.resolve_precision("float16", "cpu")


def test_native_bfloat16_detection_agrees_with_the_cpu_flags(monkeypatch):
    import platform

    flags = P._cpuinfo_flags()  # read here from /proc/cpuinfo, independently of torch's probe
    P.cpu_has_native_bf16.cache_clear()
    try:
        if platform.machine() in ("x86_64", "AMD64") and flags:
            assert P.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})
        # a CPU whose probe says no: torch's capability functions simulated
        monkeypatch.setattr(torch._C._cpu, "_is_avx512_bf16_supported", lambda: False)
        monkeypatch.setattr(torch._C._cpu, "_is_amx_tile_supported", lambda: False)
        P.cpu_has_native_bf16.cache_clear()
        assert P.cpu_has_native_bf16() is False
        # a torch without the probe: the CPU flags decide
        monkeypatch.delattr(torch._C._cpu, "_is_avx512_bf16_supported")
        monkeypatch.setattr(P.platform, "machine", lambda: "x86_64")
        monkeypatch.setattr(P, "_cpuinfo_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
        P.cpu_has_native_bf16.cache_clear()
        assert P.cpu_has_native_bf16() is True
        monkeypatch.setattr(P.platform, "machine", lambda: "aarch64")
        P.cpu_has_native_bf16.cache_clear()
        assert P.cpu_has_native_bf16() is False
    finally:
        monkeypatch.undo()
        P.cpu_has_native_bf16.cache_clear()


def test_precision_flag_values():
    assert [P.precision_arg(t) for t in ("AUTO", "bf16", "fp16", "fp32", "bfloat16")] == \
        ["auto", "bfloat16", "float16", "float32", "bfloat16"]
    with pytest.raises(argparse.ArgumentTypeError, match="allowed: auto, float32, bfloat16, float16"):
        P.precision_arg("double")


def test_autocast_is_off_for_float32_and_bfloat16_otherwise():
    with P.autocast("cpu", "float32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with P.autocast("cpu", "bfloat16"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------- scoped settings

def test_exact_float32_restores_the_users_settings_exactly():
    cudnn = torch.backends.cudnn
    before = (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    try:
        torch.set_float32_matmul_precision("medium")  # the user's choice: TF32 or bf16 passes allowed
        cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = True, False, True
        with P.exact_float32(deterministic=True):
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cuda.matmul.allow_tf32 is False
            assert (cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark) == (False, True, False)
            with P.exact_float32():  # nested (pooling inside an extraction): leaves the outer scope as it was
                pass
            assert cudnn.deterministic is True and torch.get_float32_matmul_precision() == "highest"
        # "medium", not "high": restoring through allow_tf32 would have changed it
        assert torch.get_float32_matmul_precision() == "medium"
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert (cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark) == (True, False, True)
        with pytest.raises(KeyError):
            with P.exact_float32(deterministic=True):
                raise KeyError("a failing run restores them too")
        assert torch.get_float32_matmul_precision() == "medium"
        assert (cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark) == (True, False, True)
    finally:
        torch.set_float32_matmul_precision(before[0])
        cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = before[1:]


@pytest.mark.skipif(not P.cpu_has_native_bf16(), reason="a CPU whose 'medium' matmuls stay float32")
def test_exact_float32_keeps_a_users_medium_setting_out_of_the_products(one_torch_thread):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 256, generator=gen), torch.randn(256, 256, generator=gen)
    exact = a.double() @ b.double()
    saved = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        loose = float(((a @ b).double() - exact).abs().max())
        with P.exact_float32():
            tight = float(((a @ b).double() - exact).abs().max())
    finally:
        torch.set_float32_matmul_precision(saved)
    assert loose > 1e-2 > 1e-3 > tight  # bfloat16 passes outside, float32 (~1e-5 here) inside


# ---------------------------------------------------------------------------------------------- every family

def _rel_per_layer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([np.linalg.norm(a[l] - b[l]) / np.linalg.norm(a[l]) for l in range(a.shape[0])])


def _both_precisions(kind: str, model: str, batch_of) -> tuple[np.ndarray, np.ndarray, object]:
    """float32 and bfloat16 vectors of one batch; also checks that storing the Linear/Conv weights in bfloat16
    once (cast_matmul_weights) gives the very bytes of plain autocast, which casts them at every pass."""
    out = {}
    for precision in ("float32", "bfloat16"):
        backend = load_backend(kind, model, "cpu", precision=precision)
        assert backend.precision == precision and backend.compute()["precision"] == precision
        got = backend.embed(batch_of(backend))
        assert all(a.dtype == np.float32 for a in got)  # pooled in float32 whatever the compute precision
        out[precision] = np.concatenate(got, axis=1)
    with pytest.MonkeyPatch.context() as patch:
        for module in ("wordreps.common.precision", "wordreps.embeddings.backends.hf_speech",
                       "wordreps.embeddings.backends.s3prl", "wordreps.embeddings.backends.hf_audio"):
            patch.setattr(f"{module}.cast_matmul_weights", lambda model, precision: 0)
        plain = load_backend(kind, model, "cpu", precision="bfloat16")
        plain_out = np.concatenate(plain.embed(batch_of(plain)), axis=1)
    assert np.array_equal(plain_out, out["bfloat16"], equal_nan=True), "weights stored in bfloat16 changed the vectors"
    return out["float32"], out["bfloat16"], backend


def _check_close(f32: np.ndarray, bf16: np.ndarray, what: str) -> None:
    rel = _rel_per_layer(f32, bf16)
    # layer 0 of a text model is an embedding lookup plus LayerNorm: float32 in both runs
    moved = rel[rel > 0]
    assert moved.size and moved.max() < BF16_MAX_REL, (what, rel)
    assert moved.min() > BF16_MIN_REL, (what, rel)


def _speech_batch(backend):
    al = load_alignment(demo_alignment())
    utts = sorted(al.utterances, key=lambda u: u.utt_id)[:3]
    return [BatchItem(u, load_audio(u.audio_path, 16000)) for u in utts]


@pytest.mark.parametrize("name", ["tiny-wav2vec2-layer", "tiny-s3prl-wav2vec2-large.pt"])
def test_speech_families_in_bfloat16_stay_close_to_float32(name, one_torch_thread):
    f32, bf16, backend = _both_precisions("speech", str(tiny_model(name)), _speech_batch)
    assert backend.family == ("s3prl" if name.endswith(".pt") else "hf-speech")
    _check_close(f32, bf16, name)


def test_text_in_bfloat16_stays_close_to_float32(tiny_bert, one_torch_thread):  # noqa: F811
    for model in (str(tiny_bert), str(minilm_path())):  # random weights, and real MiniLM-L6 weights
        f32, bf16, backend = _both_precisions("text", model, lambda b: items(utterances()))
        assert np.array_equal(f32[0], bf16[0])  # the embeddings layer has no matmul: float32 either way
        _check_close(f32, bf16, model)


def test_ast_in_bfloat16_stays_close_to_float32(tmp_path_factory, one_torch_thread):
    from tests.helpers.audio import items_for, make_corpus
    from wordreps.embeddings.families import AST
    from wordreps.embeddings.tiny.audio import build_tiny_ast

    model = build_tiny_ast(tmp_path_factory.mktemp("models") / "tiny-ast")
    json_path, audio = make_corpus(tmp_path_factory.mktemp("c"), AST, {"a": {"duration_s": 3.6, "seed": 8},
                                                                       "b": {"duration_s": 2.3, "seed": 9}})
    f32, bf16, backend = _both_precisions("audio", str(model), lambda b: items_for(json_path, audio))
    assert backend.family == "hf-audio"
    _check_close(f32, bf16, "tiny-ast")


def test_easyaudio_runs_its_model_under_the_precision_asked_for_and_auto_keeps_float32(monkeypatch):
    from tests.helpers.scripts import standin_easyaudio
    from wordreps.embeddings.backends.easyaudio import EasyAudioBackend

    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)  # auto would lower a checked family here
    with standin_easyaudio():
        seen = []
        for precision, expected in (("auto", "float32"), ("bfloat16", "bfloat16")):
            backend = EasyAudioBackend("BEATs_iter3", "cpu", precision=precision)
            assert backend.precision == expected
            inner = backend.model.extract_activations_from_array

            def spy(x, inner=inner):
                seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
                return inner(x)

            backend.model.extract_activations_from_array = spy
            backend._hidden(np.zeros(16000, dtype=np.float32), where="a test")
        assert seen == [(False, torch.bfloat16), (True, torch.bfloat16)]


# ---------------------------------------------------------------------------------------------- the stage

def _parse(al, out_dir, *extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_extraction_args(parser, audio=True)
    return parser.parse_args(["--path", str(al), "--out_dir", str(out_dir), "--no_progress", *extra])


def test_auto_stays_float32_on_a_cpu_without_native_bfloat16(monkeypatch, tmp_path, one_torch_thread):
    al = random_corpus(tmp_path / "c", [1.5, 2.2], seed=4)
    model = str(tiny_model("tiny-wav2vec2-layer"))
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)  # an older CPU
    auto = load_backend("speech", model, "cpu")  # --precision auto, the default
    assert auto.precision == "float32"
    folder_auto = run_extraction(auto, _parse(al, tmp_path / "auto", "--dtype", "float32"))
    manifest = json.loads((folder_auto / "manifest.json").read_text())
    assert manifest["compute"] == {"device_type": "cpu", "precision": "float32", "pooling": "float32"}
    explicit = load_backend("speech", model, "cpu", precision="float32")
    folder_f32 = run_extraction(explicit, _parse(al, tmp_path / "f32", "--dtype", "float32"))
    assert folder_bytes(folder_auto) == folder_bytes(folder_f32)  # the very same bytes as an explicit float32 run
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)  # a CPU with avx512_bf16 / AMX
    assert load_backend("speech", model, "cpu").precision == "bfloat16"


def _script_main(argv: list[str]):
    import runpy

    from tests.helpers.scripts import REPO
    from tests.helpers.speech import SPEECH_SCRIPT

    sys.argv = [str(REPO / SPEECH_SCRIPT), *argv]
    return runpy.run_path(str(REPO / SPEECH_SCRIPT))["main"]


def test_a_folder_is_not_resumed_at_another_precision(monkeypatch, tmp_path, capsys, one_torch_thread):
    al = random_corpus(tmp_path / "c", [1.4, 2.0, 1.7], seed=5)
    base = ["--model", str(tiny_model("tiny-wav2vec2-layer")), "--path", str(al), "--out_dir", str(tmp_path / "emb"),
            "--name", "m", "--device", "cpu", "--no_progress"]
    monkeypatch.setattr(sys, "argv", sys.argv)  # restored after the test
    assert _script_main([*base, "--precision", "float32", "--limit", "2"])() == 0
    folder = tmp_path / "emb" / "m"
    before = folder_bytes(folder)
    capsys.readouterr()

    with pytest.raises(SystemExit) as stop:
        run_cli(_script_main([*base, "--precision", "bfloat16"]))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "computed at float32 on cpu but this run would compute at bfloat16 on cpu" in err[0]
    assert "resume it with --precision float32" in err[0] and "--overwrite" in err[0]
    assert folder_bytes(folder) == before  # nothing written, nothing removed

    # a folder begun on a GPU (its manifest as a GPU shard writes it) is not continued on this CPU either
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["compute"] = {"device_type": "cuda", "gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0",
                           "precision": "float32", "pooling": "float32", "cudnn_deterministic": True}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    with pytest.raises(SystemExit):
        run_cli(_script_main([*base, "--precision", "float32"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "computed at float32 on cuda (NVIDIA A100-SXM4-80GB)" in err[0]
    assert "resume it with the same device and --precision" in err[0]

    # the same precision resumes (the third utterance is added), --overwrite redoes at another one
    manifest["compute"] = {"device_type": "cpu", "precision": "float32", "pooling": "float32"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    assert _script_main([*base, "--precision", "float32"])() == 0
    assert len(list((folder / "utts").glob("*.npy"))) == 3
    assert _script_main([*base, "--precision", "bfloat16", "--overwrite"])() == 0
    assert json.loads((folder / "manifest.json").read_text())["compute"]["precision"] == "bfloat16"


def test_plain_convolutions_run_as_matrix_products_on_a_bfloat16_cpu():
    """convolutions_as_matmuls: the same function as the convolution (checked in float32, where only the order of
    the sums differs), applied only to plain Conv1d layers, only for bfloat16 on a CPU."""
    import torch

    from wordreps.common.precision import convolutions_as_matmuls

    torch.manual_seed(0)
    plain = [torch.nn.Conv1d(1, 8, 10, stride=5), torch.nn.Conv1d(8, 8, 3, stride=2, bias=False),
             torch.nn.Conv1d(8, 6, 2, stride=2)]
    others = [torch.nn.Conv1d(8, 8, 3, padding=1), torch.nn.Conv1d(8, 8, 3, groups=2),
              torch.nn.Conv1d(8, 8, 3, dilation=2)]
    model = torch.nn.ModuleList(plain + others)
    x = {1: torch.randn(2, 1, 4003), 8: torch.randn(2, 8, 501)}
    with torch.inference_mode():
        expected = [conv(x[conv.in_channels]) for conv in model]
    assert convolutions_as_matmuls(model, "float32", "cpu") == 0
    assert convolutions_as_matmuls(model, "bfloat16", "cuda") == 0
    assert convolutions_as_matmuls(model, "bfloat16", "cpu") == len(plain)
    with torch.inference_mode():
        got = [conv(x[conv.in_channels]) for conv in model]
    for conv, a, b in zip(model, got, expected):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), conv
    assert all("forward" not in vars(conv) for conv in others)
