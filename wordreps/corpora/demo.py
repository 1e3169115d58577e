"""The bundled demo corpus: synthesized speech whose word boundaries are known by construction.

Every word is synthesized on its own by libespeak-ng, its leading and trailing silence trimmed, resampled
from espeak's 22050 Hz to 16 kHz with soxr, and placed after a seeded pause of digital silence. The
word's interval ``[start_s, end_s)`` is therefore exactly the span of its samples (whole samples at
16 kHz), not an aligner's guess.

The "phones" tier is synthetic: each word interval is split into equal parts (rounded to whole
samples), one per espeak phoneme name of the word; the phones' own boundaries are *not* ground truth.

The output uses the LibriSpeech layout::

    <out>/librispeech-clean-16k/dev-clean/<spk>/<chap>/<spk>-<chap>-<utt>.flac
    <out>/librispeech-clean-16k/dev-clean/<spk>/<chap>/<spk>-<chap>.trans.txt
    <out>/alignments/dev-clean/<spk>/<chap>/<spk>-<chap>-<utt>.TextGrid

Determinism: a fixed sentence list, a seeded numpy generator and a fixed call order into espeak-ng
(whose output depends on its call history) give identical samples and files on every run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from praatio import textgrid
from praatio.utilities.constants import Interval

from wordreps.common.atomic import atomic_path, write_text_atomic
from wordreps.corpora.espeak import get_espeak

SAMPLE_RATE_HZ = 16000
SPLIT = "dev-clean"


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak voice (language + variant) and its base prosody."""
    speaker_id: str
    chapter_id: str
    voice: str           # espeak-ng voice name, e.g. "en-us" or "en+f3" (British English, female variant 3)
    description: str
    rate_wpm: int        # espeak speaking rate, words per minute
    pitch: int           # espeak base pitch, 0-100
    pitch_range: int     # espeak pitch range, 0-100
    sentences: tuple[str, ...]


# A ~40-word vocabulary, so that words repeat across utterances and speakers. Two sentences are shared
# by both speakers; several repeat a word within the utterance ("the", "very", "was", "home").
SPEAKERS: tuple[Speaker, ...] = (
    Speaker("1001", "101", "en-us", "American English, male (espeak-ng en-us)", 175, 38, 45, (
        "THE OLD MAN SAW THE DOG IN THE GARDEN",
        "A LITTLE GIRL GAVE WATER TO THE CAT",
        "THE WOMAN WALKED HOME BY THE RIVER IN THE MORNING",
        "THE BOY FOUND A SMALL RED HOUSE BY THE ROAD",
        "THE DOG WAS VERY GOOD AND VERY SMALL",
        "THE GIRL WENT TO THE GREEN TREE WITH THE OLD DOG",
        "IN THE NIGHT THE CAT CAME HOME FROM THE RIVER",
        "THE MAN TOOK BREAD AND WATER TO THE LITTLE BOY",
        "THE LIGHT WAS GREEN AND THE DAY WAS GOOD",
        "A WOMAN SAW A LITTLE CAT BY THE OLD TREE",
    )),
    Speaker("1002", "102", "en+f3", "British English, female (espeak-ng en with variant f3)", 185, 62, 60, (
        "THE OLD MAN SAW THE DOG IN THE GARDEN",
        "THE LITTLE GIRL WALKED TO THE RIVER WITH A RED DOG",
        "THE WOMAN GAVE THE BOY GOOD BREAD IN THE MORNING",
        "A SMALL CAT CAME FROM THE HOUSE BY THE ROAD",
        "THE TREE WAS VERY OLD AND THE HOUSE WAS VERY SMALL",
        "THE MAN WENT HOME IN THE NIGHT",
        "THE BOY FOUND WATER AND BREAD IN THE GREEN GARDEN",
        "THE DOG TOOK THE LIGHT TO THE LITTLE HOUSE",
        "THE WOMAN WALKED HOME BY THE RIVER IN THE MORNING",
        "A GOOD DAY CAME AND THE GIRL SAW THE LIGHT",
    )),
)

# Trimming and joining, in seconds / relative amplitude.
TRIM_THRESHOLD = 0.01          # a sample is "sound" above 1 % of the word's peak
TRIM_MARGIN_S = 0.010          # keep 10 ms of the quiet onset/offset (fricatives start softly)
FADE_S = 0.002                 # raised-cosine fade at both word edges so joins do not click
PAUSE_S = (0.080, 0.200)       # silence between words, uniform
EDGE_SILENCE_S = (0.250, 0.450)  # leading and trailing silence of an utterance, uniform
PITCH_JITTER = 4               # +- espeak pitch units per word occurrence, so repeated words differ
RATE_JITTER_WPM = 10           # +- words per minute per word occurrence
DEFAULT_SEED = 20240601


@dataclass(frozen=True)
class WordSpan:
    """One word occurrence: lower-case text and its samples [start, end) at 16 kHz, with its phones."""
    word: str
    start_sample: int
    end_sample: int
    phones: tuple[str, ...]


@dataclass(frozen=True)
class DemoUtterance:
    utt_id: str
    speaker: Speaker
    transcript: str          # upper case, as in LibriSpeech
    samples: np.ndarray      # int16 at 16 kHz
    words: tuple[WordSpan, ...]


def trim_word(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Cut a synthesized word's leading/trailing silence; return float64 samples in [-1, 1] with faded edges."""
    x = samples.astype(np.float64) / 32768.0
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    loud = np.nonzero(np.abs(x) > TRIM_THRESHOLD * peak)[0]
    if peak == 0.0 or loud.size == 0:
        raise ValueError("espeak-ng returned silence for a word")
    margin = int(round(TRIM_MARGIN_S * rate_hz))
    x = x[max(0, loud[0] - margin): min(x.size, loud[-1] + 1 + margin)].copy()
    fade = min(int(round(FADE_S * rate_hz)), x.size // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
        x[:fade] *= ramp
        x[-fade:] *= ramp[::-1]
    return x


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


def synthesize_utterance(speaker: Speaker, index: int, sentence: str, rng: np.random.Generator) -> DemoUtterance:
    """Build one utterance word by word; ``rng`` draws the pauses and the per-word prosody jitter."""
    espeak = get_espeak()
    words = sentence.lower().split()
    pieces: list[np.ndarray] = []
    spans: list[WordSpan] = []
    position = 0

    def add_silence(bounds_s: tuple[float, float]) -> None:
        nonlocal position
        n = int(round(rng.uniform(*bounds_s) * SAMPLE_RATE_HZ))
        pieces.append(np.zeros(n, dtype=np.int16))
        position += n

    add_silence(EDGE_SILENCE_S)
    for k, word in enumerate(words):
        if k > 0:
            add_silence(PAUSE_S)
        espeak.set_pitch(speaker.pitch + int(rng.integers(-PITCH_JITTER, PITCH_JITTER + 1)))
        espeak.set_rate(speaker.rate_wpm + int(rng.integers(-RATE_JITTER_WPM, RATE_JITTER_WPM + 1)))
        raw = espeak.synth(word)
        trimmed = trim_word(raw, espeak.sample_rate_hz)
        audio = to_int16(soxr.resample(trimmed, espeak.sample_rate_hz, SAMPLE_RATE_HZ, quality="VHQ"))
        spans.append(WordSpan(word, position, position + audio.size, tuple(espeak.phonemes(word))))
        pieces.append(audio)
        position += audio.size
    add_silence(EDGE_SILENCE_S)
    utt_id = f"{speaker.speaker_id}-{speaker.chapter_id}-{index:04d}"
    return DemoUtterance(utt_id, speaker, sentence.upper(), np.concatenate(pieces), tuple(spans))


def build_utterances(seed: int = DEFAULT_SEED) -> list[DemoUtterance]:
    """Synthesize every utterance, speakers and sentences in a fixed order (espeak output depends on it)."""
    espeak = get_espeak()
    rng = np.random.default_rng(seed)
    utterances = []
    for speaker in SPEAKERS:
        espeak.set_voice(speaker.voice, rate_wpm=speaker.rate_wpm, pitch=speaker.pitch, pitch_range=speaker.pitch_range)
        for index, sentence in enumerate(speaker.sentences):
            utterances.append(synthesize_utterance(speaker, index, sentence, rng))
    return utterances


def textgrid_for(utt: DemoUtterance) -> textgrid.Textgrid:
    """Tiers "words" (lower case) and "phones" (synthetic, see module docstring); gaps become empty intervals."""
    sr = SAMPLE_RATE_HZ
    duration_s = utt.samples.size / sr
    word_entries = [Interval(w.start_sample / sr, w.end_sample / sr, w.word) for w in utt.words]
    phone_entries = []
    for w in utt.words:
        n = len(w.phones)
        cuts = [w.start_sample + int(round(k * (w.end_sample - w.start_sample) / n)) for k in range(n + 1)]
        for phone, a, b in zip(w.phones, cuts[:-1], cuts[1:]):
            if b > a:
                phone_entries.append(Interval(a / sr, b / sr, phone))
    grid = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=duration_s)
    grid.addTier(textgrid.IntervalTier("words", word_entries, 0.0, duration_s))
    grid.addTier(textgrid.IntervalTier("phones", phone_entries, 0.0, duration_s))
    return grid


def write_corpus(out_dir: Path, utterances: list[DemoUtterance]) -> dict[str, int]:
    """Write audio, transcripts and TextGrids under ``out_dir`` (atomically); return counts and bytes."""
    audio_root = out_dir / "librispeech-clean-16k" / SPLIT
    tg_root = out_dir / "alignments" / SPLIT
    transcripts: dict[Path, list[str]] = {}
    total_bytes = 0
    for utt in utterances:
        spk, chap = utt.speaker.speaker_id, utt.speaker.chapter_id
        chapter_dir = audio_root / spk / chap
        flac = chapter_dir / f"{utt.utt_id}.flac"
        with atomic_path(flac) as tmp:
            sf.write(tmp, utt.samples, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16", compression_level=1.0)
        total_bytes += flac.stat().st_size
        grid_path = tg_root / spk / chap / f"{utt.utt_id}.TextGrid"
        with atomic_path(grid_path) as tmp:
            textgrid_for(utt).save(str(tmp), format="long_textgrid", includeBlankSpaces=True)
        total_bytes += grid_path.stat().st_size
        transcripts.setdefault(chapter_dir / f"{spk}-{chap}.trans.txt", []).append(f"{utt.utt_id} {utt.transcript}")
    for path, lines in transcripts.items():
        write_text_atomic(path, "\n".join(lines) + "\n")
        total_bytes += path.stat().st_size
    words = [w.word for u in utterances for w in u.words]
    return {
        "speakers": len({u.speaker.speaker_id for u in utterances}),
        "utterances": len(utterances),
        "words": len(words),
        "distinct_words": len(set(words)),
        "seconds": int(round(sum(u.samples.size for u in utterances) / SAMPLE_RATE_HZ)),
        "bytes": total_bytes,
    }
