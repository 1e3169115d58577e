"""Synthetic utterances, alignment JSONs and a reference AST for the general-audio tests
(tests/embeddings/test_audio_*.py).

The easyaudio stand-in lives in ``tests/fake_easyaudio``; tests put it on sys.path (in-process, with
scripts.standin_easyaudio) or PYTHONPATH (subprocesses, with scripts.script_env(easyaudio=True)), and only there.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from wordreps.alignments.format import write_alignment
from wordreps.alignments.frames import words_frames
from wordreps.alignments.geometry import FrameGeometry
from wordreps.embeddings.base import BatchItem, Utterance, Word

SCRIPT = "embeddings/audio_embeddings.py"
TINY_SCRIPT = "tools/make_tiny_ast.py"

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


@functools.lru_cache(maxsize=None)
def _ast(model_dir: str):
    """An AST folder's feature extractor and model, loaded by transformers itself (once per test process)."""
    from transformers import ASTFeatureExtractor, ASTModel

    return ASTFeatureExtractor.from_pretrained(model_dir), ASTModel.from_pretrained(model_dir).eval()


def reference_steps(model_dir, audio: np.ndarray) -> np.ndarray:
    """(L, steps, D) computed here without the backend: ASTModel run directly on chunks of the waveform.

    Chunk c starts at 12 steps * 10 frames * 160 samples; its fbank holds 128 frames. Tokens after the two
    special tokens are frequency-major (token 2 + f*12 + t); a step is the mean over its 12 frequency patches.
    """
    import torch

    fe, model = _ast(str(model_dir))
    n = audio.size
    steps = (n - 2800) // 1600 + 1
    per_chunk, freq = 12, 12
    chunks = []
    for c in range(int(np.ceil(steps / per_chunk))):
        a = c * per_chunk * 1600
        x = fe(audio[a:a + 127 * 160 + 400], sampling_rate=16000, return_tensors="pt")["input_values"]
        with torch.no_grad():
            hs = model(input_values=x, output_hidden_states=True).hidden_states
        h = torch.stack(hs)[:, 0].numpy().astype(np.float64)  # (L, 2 + 144, D)
        per_step = np.stack([np.mean([h[:, 2 + f * per_chunk + t] for f in range(freq)], axis=0)
                             for t in range(per_chunk)], axis=1)  # (L, 12, D)
        chunks.append(per_step)
    return np.concatenate(chunks, axis=1)[:, :steps]
