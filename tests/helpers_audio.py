"""Synthetic utterances, alignment JSONs and script runs for the general-audio tests (tests/test_audio_*.py).

The easyaudio stand-in lives in ``tests/fake_easyaudio``; tests put it on sys.path (in-process) or PYTHONPATH
(subprocesses) themselves, and only there.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf

from wordreps.alignments.format import write_alignment
from wordreps.alignments.frames import words_frames
from wordreps.alignments.geometry import FrameGeometry
from wordreps.embeddings.base import BatchItem, Utterance, Word

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "embeddings" / "audio_embeddings.py"
TINY_SCRIPT = REPO / "tools" / "make_tiny_ast.py"
FAKE_EASYAUDIO = Path(__file__).resolve().parent / "fake_easyaudio"

# (word, start_s, end_s): long enough words that a burst in the middle of one never reaches a neighbour's
# frames, even with BEATs' 175 ms receptive field.
WORDS: list[tuple[str, float, float]] = [
    ("the", 0.10, 0.40), ("quick", 0.40, 1.20), ("brown", 1.20, 2.10), ("fox", 2.25, 2.80), ("jumps", 2.80, 3.55),
]


def synth_audio(duration_s: float, sample_rate_hz: int, *, seed: int = 0,
                burst: tuple[float, float] | None = None, burst_amplitude: float = 0.8) -> np.ndarray:
    """Quiet deterministic noise (on the 16-bit grid, so a FLAC round trip is exact), optionally a loud burst."""
    n = int(round(duration_s * sample_rate_hz))
    rng = np.random.default_rng(seed)
    x = 0.01 * rng.standard_normal(n)
    if burst is not None:
        a, b = (int(round(t * sample_rate_hz)) for t in burst)
        x[a:b] += burst_amplitude * np.sin(2 * np.pi * 440.0 * np.arange(b - a) / sample_rate_hz)
    x = np.clip(np.round(x * 32768.0), -32768, 32767) / 32768.0
    return x.astype(np.float32)


def write_flac(path: Path, audio: np.ndarray, sample_rate_hz: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate_hz, subtype="PCM_16", format="FLAC")
    back, rate = sf.read(str(path), dtype="float32")
    assert rate == sample_rate_hz and np.array_equal(back, audio), "FLAC round trip must be exact"
    return path


def make_utterance(utt_id: str, audio_path: str | Path, num_samples: int, geometry: FrameGeometry,
                   words: Sequence[tuple[str, float, float]] = WORDS) -> Utterance:
    """An Utterance whose frames follow the project's frame rule for ``geometry``."""
    starts = np.array([w[1] for w in words])
    ends = np.array([w[2] for w in words])
    first, last = words_frames(starts, ends, geometry, num_samples)
    return Utterance(utt_id=utt_id, audio_path=str(audio_path), transcript=" ".join(w[0] for w in words).upper(),
                     num_samples=num_samples, sample_rate_hz=geometry.sample_rate_hz,
                     words=[Word(w[0], float(w[1]), float(w[2]), int(f), int(l))
                            for w, f, l in zip(words, first, last)])


def make_corpus(folder: Path, geometry: FrameGeometry, specs: dict[str, dict]) -> tuple[Path, dict[str, np.ndarray]]:
    """FLACs + an alignment JSON for ``specs`` {utt_id: {duration_s, seed, burst?, words?}}; returns (json, audio)."""
    utts, audio = [], {}
    for utt_id, spec in specs.items():
        x = synth_audio(spec["duration_s"], geometry.sample_rate_hz, seed=spec.get("seed", 0),
                        burst=spec.get("burst"))
        path = write_flac(folder / "audio" / f"{utt_id}.flac", x, geometry.sample_rate_hz)
        utts.append(make_utterance(utt_id, path.resolve(), x.size, geometry, spec.get("words", WORDS)))
        audio[utt_id] = x
    json_path = folder / "alignment.json"
    write_alignment(json_path, geometry, utts)
    return json_path, audio


def items_for(json_path: Path, audio: dict[str, np.ndarray]) -> list[BatchItem]:
    from wordreps.alignments.format import load_alignment
    return [BatchItem(u, audio[u.utt_id]) for u in load_alignment(json_path).utterances]


def word_means(frames: np.ndarray, utt: Utterance) -> np.ndarray:
    """Independent pooling: (L, T, D) frames -> (L, W, D), each word the mean of first..min(last, T-1)."""
    rows = []
    for w in utt.words:
        last = min(w.last_frame, frames.shape[1] - 1)
        assert w.first_frame <= last
        rows.append(frames[:, w.first_frame:last + 1].astype(np.float64).mean(axis=1))
    return np.stack(rows, axis=1)


def script_env(*, easyaudio: bool) -> dict[str, str]:
    env = dict(os.environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and "fake_easyaudio" not in p]
    if easyaudio:
        parts.insert(0, str(FAKE_EASYAUDIO))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_script(script: Path, args: Sequence[str], *, easyaudio: bool = False,
               timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=REPO, env=script_env(easyaudio=easyaudio),
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def read_outputs(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    arrays = {p.stem: np.load(p) for p in sorted((folder / "utts").glob("*.npy"))}
    return manifest, arrays


@contextlib.contextmanager
def standin_easyaudio() -> Iterator[object]:
    """Import the stand-in as ``easyaudio`` for the duration of a test, then forget it."""
    sys.path.insert(0, str(FAKE_EASYAUDIO))
    try:
        import easyaudio.hub as hub
        assert "fake_easyaudio" in hub.__file__
        yield hub
    finally:
        sys.path.remove(str(FAKE_EASYAUDIO))
        for name in [m for m in sys.modules if m == "easyaudio" or m.startswith("easyaudio.")]:
            del sys.modules[name]
