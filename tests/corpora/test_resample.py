"""datasets/resample_corpus.py: 16 kHz -> 24 kHz keeps duration, frequency and waveform; transcripts copied."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.scripts import error_lines, run_script

RESAMPLE = "datasets/resample_corpus.py"
TONE_HZ = 440.0
AMPLITUDE = 0.5


def tone(rate_hz: int, num_samples: int) -> np.ndarray:
    return AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(num_samples) / rate_hz)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A two-file corpus in the LibriSpeech layout: a 1 s 440 Hz tone and 0.73 s of noise, at 16 kHz."""
    chapter = tmp_path / "src" / "dev-clean" / "84" / "121123"
    chapter.mkdir(parents=True)
    sf.write(chapter / "84-121123-0000.flac", tone(16000, 16000), 16000, subtype="PCM_16")
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, 11680)
    sf.write(chapter / "84-121123-0001.flac", noise, 16000, subtype="PCM_16")
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 A TONE\n84-121123-0001 SOME NOISE\n")
    (tmp_path / "src" / ".dev-clean.done.json").write_text("{}")  # a lay-out marker is not corpus data
    return tmp_path / "src"


def test_tone_keeps_duration_and_frequency(corpus: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    result = run_script(RESAMPLE, "--src", str(corpus), "--dst", str(dst), "--rate", "24000")
    assert result.returncode == 0, result.stderr
    out = dst / "dev-clean" / "84" / "121123" / "84-121123-0000.flac"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24000, 1, "PCM_16", "FLAC")
    y, rate = sf.read(out, dtype="float64")
    assert abs(len(y) - 24000) <= 1  # 1 s stays 1 s

    # Frequency: FFT peak of a Hann-windowed second, 1 Hz bins, refined by parabolic interpolation.
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1: k + 2])
    peak_hz = (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(y)
    assert abs(peak_hz - TONE_HZ) <= 2.0

    # Waveform: away from the edges (filter start-up) the output is the same sine sampled at 24 kHz,
    # same amplitude and no delay, up to 16-bit rounding.
    ref = tone(24000, len(y))
    assert np.max(np.abs(y[1000:-1000] - ref[1000:-1000])) < 3e-4

    noise_out = dst / "dev-clean" / "84" / "121123" / "84-121123-0001.flac"
    assert sf.info(noise_out).frames == 11680 * 3 // 2
    assert (dst / "dev-clean" / "84" / "121123" / "84-121123.trans.txt").read_bytes() == \
        (corpus / "dev-clean" / "84" / "121123" / "84-121123.trans.txt").read_bytes()
    assert not (dst / ".dev-clean.done.json").exists()
    assert not list(dst.rglob("*.tmp"))


def test_second_run_skips_done_files_and_redoes_missing(corpus: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    args = ("--src", str(corpus), "--dst", str(dst), "--rate", "24000", "--no_progress")
    assert run_script(RESAMPLE, *args).returncode == 0
    files = sorted(dst.rglob("*.flac"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()  # as if the first run had been killed before this file

    again = run_script(RESAMPLE, *args, "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "1 files resampled" in again.stdout and "1 already done" in again.stdout
    assert files[0].stat().st_mtime_ns == stamps[files[0]]  # untouched
    assert sf.info(files[1]).samplerate == 24000


def test_missing_source_is_one_error(tmp_path: Path) -> None:
    result = run_script(RESAMPLE, "--src", str(tmp_path / "nope"), "--dst", str(tmp_path / "out"))
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "nope" in errors[0]
    assert not (tmp_path / "out").exists()


def test_unreadable_flac_names_the_file_and_leaves_no_partial_file(corpus: Path, tmp_path: Path) -> None:
    bad = corpus / "dev-clean" / "84" / "121123" / "84-121123-0002.flac"
    bad.write_bytes(b"fLaC but not really")
    dst = tmp_path / "dst"
    result = run_script(RESAMPLE, "--src", str(corpus), "--dst", str(dst), "--no_progress")
    assert result.returncode == 2
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "84-121123-0002.flac" in errors[0], result.stderr
    assert not (dst / "dev-clean" / "84" / "121123" / "84-121123-0002.flac").exists()
    assert not list(dst.rglob("*.tmp"))
