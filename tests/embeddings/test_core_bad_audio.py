"""Bad audio at the embedding stage: embeddings/speech_embedding.py run for real with a tiny model.

Each case damages one FLAC of a three-utterance corpus after its alignment JSON was written (the audio changed
or went away since the alignment stage checked it). The header checks run before anything is written, so the
whole output folder must be absent afterwards. A file whose header is fine but whose data is damaged can only
be caught when decoded: then no file for it, no temporary file, and the same command finishes once it is fixed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.faults import assert_refused
from tests.helpers.files import temp_files
from tests.helpers.scripts import run_script
from tests.helpers.speech import random_corpus, tiny_model

SCRIPT = "embeddings/speech_embedding.py"
MODEL = "tiny-s3prl-wav2vec2-local.pt"  # an s3prl checkpoint: starts in half the time of a transformers model
BAD = "utt-001"  # the damaged utterance (the second of three, so that the check is not just of the first file)


@pytest.fixture(scope="session")
def speech_model() -> Path:
    """The tiny s3prl wav2vec2 checkpoint from tools/make_tiny_speech.py, built once per test process."""
    return tiny_model(MODEL)


def _corpus(folder: Path) -> Path:
    return random_corpus(folder, [1.0, 1.3, 0.9], seed=3)


def _flac_with_zero_samples(path: Path) -> None:
    """Keep only the FLAC marker and STREAMINFO, with its 36-bit total-samples field set to 0 (a header and no audio).

    STREAMINFO bits: 16+16 block sizes, 24+24 frame sizes, 20 rate, 3 channels, 5 bits per sample, 36 total
    samples, 128 MD5; the total ends 128 bits before the block's end.
    """
    data = path.read_bytes()
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    info = int.from_bytes(data[8:42], "big") & ~(((1 << 36) - 1) << 128)
    path.write_bytes(b"fLaC" + bytes([0x80]) + data[5:8] + info.to_bytes(34, "big"))


def _rewrite(path: Path, transform: Callable[[np.ndarray], np.ndarray], rate_hz: int = 16000) -> None:
    audio, _ = sf.read(path, dtype="float32")
    sf.write(path, transform(audio), rate_hz, format="FLAC", subtype="PCM_16")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: p.unlink(), "does not exist"),
    "zero_length_file": (lambda p: p.write_bytes(b""), "is empty (0 samples)"),
    "zero_samples_flac": (_flac_with_zero_samples, "is empty (0 samples)"),
    "unreadable": (lambda p: p.write_bytes(b"fLaC\x00\x00 this is not audio " * 4), "cannot be read"),
    "two_channels": (lambda p: _rewrite(p, lambda a: np.stack([a, a], axis=1)), "has 2 channels"),
    "wrong_rate": (lambda p: _rewrite(p, lambda a: a, rate_hz=24000),
                   "is at 24000 Hz but the model expects 16000 Hz"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_audio_is_refused_before_anything_is_written(case, speech_model, tmp_path):
    al = _corpus(tmp_path / "corpus")
    mutate, says = CASES[case]
    mutate(tmp_path / "corpus" / f"{BAD}.flac")
    out = tmp_path / "emb"
    proc = run_script(SCRIPT, "--model", speech_model, "--path", al, "--out_dir", out, "--device", "cpu",
                      "--no_progress")
    line = assert_refused(proc, [f"{BAD}.flac", says], absent=[out], no_temps_in=[tmp_path])
    assert line.startswith("error: audio file ")


def test_damaged_audio_data_is_caught_when_decoded_and_the_rerun_finishes(speech_model, tmp_path):
    al = _corpus(tmp_path / "corpus")
    bad = tmp_path / "corpus" / f"{BAD}.flac"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # header intact (it still counts every sample), half the frames gone
    out = tmp_path / "emb"
    args = ("--model", speech_model, "--path", al, "--out_dir", out, "--device", "cpu", "--no_progress")
    folder = out / MODEL.removesuffix(".pt")
    assert_refused(run_script(SCRIPT, *args), [str(bad), "cannot be decoded"],
                   absent=[folder / "utts" / f"{BAD}.npy"], no_temps_in=[tmp_path])
    bad.write_bytes(good)
    proc = run_script(SCRIPT, *args)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (folder / "utts").iterdir()) == ["utt-000.npy", "utt-001.npy", "utt-002.npy"]
    assert temp_files(out) == []
    # the manifest records what is needed to say two runs are comparable: input hashes and library versions
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["alignment_sha256"] == hashlib.sha256(al.read_bytes()).hexdigest()
    # the checkpoint's hash covers its file name and bytes
    expected = hashlib.sha256(speech_model.name.encode() + speech_model.read_bytes()).hexdigest()
    assert manifest["describe"]["ckpt_sha256"] == expected
    import s3prl
    import torch

    assert manifest["versions"] == {"python": manifest["versions"]["python"], "numpy": np.__version__,
                                    "torch": torch.__version__, "s3prl": s3prl.__version__}
