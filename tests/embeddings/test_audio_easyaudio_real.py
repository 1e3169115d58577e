"""The easyaudio adapter against the REAL easyaudio code (random weights), where it is importable.

easyaudio is not on PyPI and is not part of requirements.txt, so this module is skipped in the project's own
environment (the skip says why). docs/real-parts.md gives the recipe for an environment that has it (mrpep/
easyaudio 12e6c0e, encodecmae 4a3be20, byol-a 3e65c92, all offline) and the command to run this file there.

Every step runs in a subprocess under an environment that makes the libraries read local caches
(tests/helpers/real_easyaudio.py writes random-weight checkpoints with the real classes where the real loaders
look): the 24 kHz copy of the real LibriSpeech utterance, the alignments, ``audio_embeddings.py`` for
EnCodecMAE (through easyaudio's hub name) and BEATs (from a local checkpoint, ``--beats_checkpoint``), all on
the CPU. The vectors are compared with the real models' own activations, computed without the adapter and
averaged with numpy over the frames the rule gives (found by brute force from the TextGrid).
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.real_chain import DATA, FLAC, TEXTGRID, frames_by_brute_force, textgrid_words
from tests.helpers.scripts import REPO, run_script, script_env

HELPER = REPO / "tests" / "helpers" / "real_easyaudio.py"
UTT = "1272-128104-0000"


def _skip_unless_real_easyaudio() -> None:
    spec = importlib.util.find_spec("easyaudio")
    if spec is None:
        pytest.skip("the real easyaudio is not installed here (it is not on PyPI; docs/real-parts.md: "
                    "'The real easyaudio test' says how to make an environment that has it)")
    if any("fake_easyaudio" in str(p) for p in (spec.submodule_search_locations or [])):
        pytest.skip("easyaudio here is the tests' stand-in, not the real code")
    missing = [m for m in ("encodecmae", "encodec", "gin", "ginpipe") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"easyaudio is installed but {', '.join(missing)} is not (see docs/real-parts.md)")


def _run(args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """``python3 args[0] args[1:]`` in ``cwd`` (the scripts are named by absolute path)."""
    return run_script(args[0], *args[1:], cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    _skip_unless_real_easyaudio()
    root = tmp_path_factory.mktemp("real-easyaudio")
    env = script_env(OMP_NUM_THREADS="2", TORCH_HOME=str(root / "torch"), HF_HUB_CACHE=str(root / "hf"),
                     HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    steps = [
        [HELPER, "weights", root],
        [REPO / "datasets/resample_corpus.py", "--src", DATA / "librispeech-clean-16k", "--dst", root / "audio24k",
         "--rate", "24000"],
        [REPO / "alignments/alignments_and_trans.py", "--model", "encodecmae_base", "--path", DATA / "alignments",
         "--audio_root", root / "audio24k", "--output", root / "al_24k.json", "--quiet"],
        [REPO / "alignments/alignments_and_trans.py", "--model", "BEATs_iter3", "--path", DATA / "alignments",
         "--audio_root", DATA / "librispeech-clean-16k", "--output", root / "al_beats.json", "--quiet"],
        [REPO / "embeddings/audio_embeddings.py", "--model", "encodecmae_base", "--path", root / "al_24k.json",
         "--device", "cpu", "--dtype", "float32", "--out_dir", root / "emb", "--no_progress"],
        [REPO / "embeddings/audio_embeddings.py", "--model", "BEATs_iter3", "--beats_checkpoint",
         root / "BEATs_iter3.pt", "--path", root / "al_beats.json", "--device", "cpu", "--dtype", "float32",
         "--out_dir", root / "emb", "--no_progress"],
        [HELPER, "reference", root, FLAC, root / "audio24k/dev-clean/1272/128104" / f"{UTT}.flac"],
    ]
    for step in steps:
        res = _run(step, env, root)
        assert res.returncode == 0, f"{step}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    (root / "env.json").write_text(json.dumps({k: env[k] for k in ("TORCH_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")}))
    return root


def _pooled(layers: np.ndarray, spans) -> np.ndarray:
    """(L, T, D) -> (L, W, D): each word the float64 mean of its frames."""
    return np.stack([layers[:, f:l + 1].astype(np.float64).mean(axis=1) for f, l in spans], axis=1)


def test_encodecmae_runs_on_the_cpu_and_its_vectors_are_means_of_its_frames(real):
    reference = np.load(real / "reference.npz")
    layers = reference["encodecmae"]                      # (blocks, T, D) from easyaudio's own wrapper
    n = 93680 * 24000 // 16000
    # the pinned encodecmae drops nothing: ceil(N / 320) frames, one more than the geometry
    assert layers.shape[1] == math.ceil(n / 320) == (n - 320) // 320 + 2
    spans = frames_by_brute_force(textgrid_words(TEXTGRID), 24000, 320, 320, n)
    stored = np.load(real / "emb" / "encodecmae_base" / "utts" / f"{UTT}.npy")
    assert stored.shape == (layers.shape[0], 17, layers.shape[2])
    np.testing.assert_allclose(stored, _pooled(layers, spans), rtol=1e-4, atol=1e-5)


def test_encodecmae_manifest_names_the_version_that_made_the_vectors(real):
    manifest = json.loads((real / "emb" / "encodecmae_base" / "manifest.json").read_text())
    info = manifest["describe"]["encodecmae"]
    assert info["api"] == "v1" and "BEFORE the final norm" in info["behaviour"]
    assert manifest["describe"]["torch_compile"] == "turned off by the adapter"
    assert manifest["layer_names"][0] == "layer_1"
    source = Path(info["path"])
    head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # the source is a git checkout: the recorded commit is the checked-out one
        assert info["commit"] == head.stdout.strip()
    # what v1 means: the last layer is not the encoder's own output (the final norm comes after it)
    reference = np.load(real / "reference.npz")
    last, final = reference["encodecmae"][-1, :300], reference["encodecmae_final_norm"]
    assert np.abs(last - final).max() > 1e-2


def test_beats_from_a_local_checkpoint_folds_8_patches_per_step(real):
    tokens = np.load(real / "reference.npz")["beats_tokens"]       # (layers, 8 * steps, D), time-major
    steps = ((93680 - 400) // 160 + 1) // 16
    assert tokens.shape[1] == 8 * steps
    folded = tokens.reshape(tokens.shape[0], steps, 8, tokens.shape[2]).astype(np.float64).mean(axis=2)
    spans = frames_by_brute_force(textgrid_words(TEXTGRID), 16000, 2560, 2800, 93680)
    stored = np.load(real / "emb" / "BEATs_iter3" / "utts" / f"{UTT}.npy")
    np.testing.assert_allclose(stored, _pooled(folded, spans), rtol=1e-4, atol=1e-5)
    manifest = json.loads((real / "emb" / "BEATs_iter3" / "manifest.json").read_text())
    assert manifest["describe"]["beats_checkpoint"] == str(real / "BEATs_iter3.pt")
    assert manifest["layer_names"][0] == "input"
    assert not (real / "ckpts").exists()  # easyaudio's get_model would have made it in the working directory


def test_beats_offline_without_a_checkpoint_says_what_to_pass(real):
    env = script_env(**json.loads((real / "env.json").read_text()))
    res = _run([REPO / "embeddings/audio_embeddings.py", "--model", "BEATs_iter3", "--path", real / "al_beats.json",
                "--device", "cpu", "--out_dir", real / "emb-offline", "--no_progress"], env, real)
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr
    assert "--beats_checkpoint" in lines[0]
    assert not (real / "emb-offline").exists() or not list((real / "emb-offline").rglob("*.npy"))
