"""Tiny speech models, speech-like corpora and model references for the extraction-core and speech tests.

References here are deliberately written without the code under test: frames are averaged with numpy from
the model's own outputs obtained by calling transformers / s3prl directly.
"""
from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from tests.helpers.references import frame_span
from tests.helpers.scripts import REPO, run_script, script_cmd

SPEECH_SCRIPT = "embeddings/speech_embedding.py"
DEMO_TEXTGRIDS = REPO / "datasets" / "demo" / "alignments"
DEMO_AUDIO = REPO / "datasets" / "demo" / "librispeech-clean-16k"
SR = 16000
HOP = 320
RF = 400


# ---------------------------------------------------------------------------------------------- models

@functools.lru_cache(maxsize=None)
def _model_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="wordreps-tiny-speech-"))


@functools.lru_cache(maxsize=None)
def tiny_model(name: str) -> Path:
    """Build (once per test process) and return the path of a tiny model from tools/make_tiny_speech.py."""
    from wordreps.embeddings.tiny import speech as tiny_speech

    if name in tiny_speech.HF_VARIANTS:
        return tiny_speech.build_hf(_model_root(), name)
    return tiny_speech.build_s3prl(_model_root(), name)


# ---------------------------------------------------------------------------------------------- corpora

def frames_for(start_s: float, end_s: float, num_samples: int) -> tuple[int, int]:
    """The frame rule for 20 ms / 25 ms frames (tests/helpers/references.frame_span, not the code under test)."""
    return frame_span(start_s, end_s, num_samples, SR, HOP, RF)


def write_corpus(folder: Path, utterances: dict[str, tuple[np.ndarray, list[tuple[str, float, float]]]],
                 *, geometry=None) -> Path:
    """FLAC files (float -> 24-bit) + an alignment JSON; utterances: id -> (audio, [(word, start_s, end_s)])."""
    from wordreps.alignments.format import write_alignment
    from wordreps.alignments.geometry import FrameGeometry
    from wordreps.embeddings.base import Utterance, Word

    geometry = geometry or FrameGeometry(SR, HOP, RF)
    folder.mkdir(parents=True, exist_ok=True)
    utts = []
    for utt_id, (audio, words) in utterances.items():
        path = folder / f"{utt_id}.flac"
        sf.write(path, np.asarray(audio, dtype=np.float32), SR, subtype="PCM_24")
        ws = [Word(w, s, e, *frames_for(s, e, len(audio))) for w, s, e in words]
        utts.append(Utterance(utt_id, str(path), " ".join(w for w, _, _ in words).upper(), len(audio), SR, ws))
    out = folder / "al.json"
    write_alignment(out, geometry, utts)
    return out


def random_corpus(folder: Path, lengths_s: Sequence[float], *, seed: int = 0, words_per_s: float = 2.5,
                  prefix: str = "utt") -> Path:
    """Noise-like 'speech' utterances with evenly spread words (frames centre-in-word)."""
    rng = np.random.default_rng(seed)
    utts = {}
    for i, dur in enumerate(lengths_s):
        n = int(round(dur * SR))
        t = np.arange(n) / SR
        audio = 0.1 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * 3 * t + i))
        audio += 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t)
        k = max(1, int(dur * words_per_s))
        edges = np.linspace(0.05, dur - 0.05, k + 1)
        words = [(f"w{j}", float(edges[j]), float(edges[j + 1] - 0.01)) for j in range(k)]
        utts[f"{prefix}-{i:03d}"] = (audio.astype(np.float32) * 0.5, words)
    return write_corpus(folder, utts)


@functools.lru_cache(maxsize=None)
def demo_alignment() -> Path | None:
    """Alignment JSON of the bundled demo corpus (datasets/demo), made once per process; None if absent."""
    if not (DEMO_TEXTGRIDS / "dev-clean").is_dir() or not (DEMO_AUDIO / "dev-clean").is_dir():
        return None
    from wordreps.alignments.format import write_alignment
    from wordreps.alignments.corpus import align_corpus
    from wordreps.alignments.geometry import FrameGeometry

    geometry = FrameGeometry(SR, HOP, RF)
    corpus = align_corpus(str(DEMO_TEXTGRIDS), str(DEMO_AUDIO), "dev-clean", geometry, progress=False)
    out = Path(tempfile.mkdtemp(prefix="wordreps-demo-al-")) / "audio_alignments_20_16.json"
    write_alignment(out, geometry, corpus.utterances, transcript_match=corpus.transcript_match)
    return out


# ---------------------------------------------------------------------------------------------- runs

def speech_args(model: str | Path, al: Path, out_dir: Path, *extra: str) -> list[str]:
    """embeddings/speech_embedding.py's flags for one model, alignment and output folder, on the CPU."""
    return ["--model", str(model), "--path", str(al), "--out_dir", str(out_dir), "--device", "cpu", "--no_progress",
            *extra]


def speech_cmd(model: str | Path, al: Path, out_dir: Path, *extra: str) -> list[str]:
    """The speech script's command line, for tests that start (and kill) it themselves."""
    return script_cmd(SPEECH_SCRIPT, *speech_args(model, al, out_dir, *extra))


def run_speech(model: str | Path, al: Path, out_dir: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return run_script(SPEECH_SCRIPT, *speech_args(model, al, out_dir, *extra), **kw)


# ---------------------------------------------------------------------------------------------- references

def hf_reference(model_dir: Path, audio: np.ndarray) -> list[np.ndarray]:
    """All hidden states (T, D) of one utterance, through transformers' own feature extractor and model."""
    import torch
    import transformers as tf

    fe = tf.AutoFeatureExtractor.from_pretrained(model_dir)
    model = hf_model(str(model_dir))
    inputs = fe(audio, sampling_rate=SR, return_tensors="pt")
    kwargs = {"attention_mask": inputs["attention_mask"]} if "attention_mask" in inputs else {}
    with torch.no_grad():
        out = model(inputs["input_values"], output_hidden_states=True, **kwargs)
    return [h[0].numpy() for h in out.hidden_states]


@functools.lru_cache(maxsize=None)
def hf_model(path: str):
    """A transformers speech model loaded by transformers itself (once per test process)."""
    import transformers as tf

    return tf.AutoModel.from_pretrained(path).eval()


def s3prl_reference(ckpt: Path, audio: np.ndarray) -> list[np.ndarray]:
    """All hidden states (T, D) of one utterance, through s3prl's wav2vec2_custom upstream."""
    import torch

    upstream = s3prl_model(str(ckpt))
    with torch.no_grad():
        states = upstream([torch.from_numpy(np.asarray(audio, dtype=np.float32))])["hidden_states"]
    return [h[0].numpy() for h in states]


@functools.lru_cache(maxsize=None)
def s3prl_model(path: str):
    """An s3prl wav2vec2_custom upstream loaded by s3prl itself (once per test process)."""
    from s3prl.upstream.wav2vec2.hubconf import wav2vec2_custom

    return wav2vec2_custom(ckpt=path).eval()


def reference(model_name: str, audio: np.ndarray) -> list[np.ndarray]:
    """The library's own hidden states of one utterance for a tiny model of tiny_model()."""
    path = tiny_model(model_name)
    return s3prl_reference(path, audio) if model_name.endswith(".pt") else hf_reference(path, audio)
