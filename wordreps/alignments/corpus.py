"""Walk a LibriSpeech-layout corpus of TextGrids and audio into alignment utterances.

Layout::

    <textgrid_root>/<split>/<speaker>/<chapter>/<utt_id>.TextGrid
    <audio_root>/<split>/<speaker>/<chapter>/<utt_id>.flac
    <audio_root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    ("UTT_ID WORD WORD ...")

Either root may also point straight at the split folder. Every TextGrid needs its audio and a transcript
line; audio files without a TextGrid are skipped and counted. Audio paths are stored as built from
``audio_root`` as the user gave it (relative to the working directory when relative).

Words past the audio's end: a word interval ending more than one hop after the audio's last sample is an
error (the TextGrid belongs to other audio, or the audio was cut); with ``allow_past_end`` such words
are clipped to the audio's end instead (a word starting past it becomes a zero-length word at the end,
which the frame rule gives the last frame) and counted. Ends up to one hop past the end are kept as
written: the aligner rounds times, and the frame rule limits frames to the audio's.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wordreps.alignments.frames import words_frames
from wordreps.alignments.geometry import FrameGeometry, format_number
from wordreps.alignments.textgrids import read_textgrid_words
from wordreps.common.audio import audio_header
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Utterance, Word

DEFAULT_AUDIO_ROOTS = {16000: "datasets/librispeech-clean-16k", 24000: "datasets/librispeech-clean-24k"}
AUDIO_SUFFIX = ".flac"


@dataclass
class CorpusAlignment:
    utterances: list[Utterance]
    transcript_match: dict[str, bool]
    textgrid_root: str
    audio_root: str
    mismatches: list[str] = field(default_factory=list)        # utterance ids, sorted
    clipped_words: int = 0                                      # words clipped by allow_past_end
    audio_without_textgrid: list[str] = field(default_factory=list)

    @property
    def num_words(self) -> int:
        return sum(len(u.words) for u in self.utterances)


def default_audio_root(sample_rate_hz: int) -> str:
    if sample_rate_hz not in DEFAULT_AUDIO_ROOTS:
        raise UserError(f"there is no default audio folder for {sample_rate_hz} Hz (defaults exist for 16 and "
                        "24 kHz); pass --audio_root")
    return DEFAULT_AUDIO_ROOTS[sample_rate_hz]


def _has_chapters(folder: Path, pattern: str) -> bool:
    return any(folder.glob(pattern))


def split_folder(root: str, split: str, what: str, flag: str, pattern: str) -> str:
    """``root/split`` when it exists, else ``root`` itself when it already is a split folder (holds
    ``pattern`` files two levels down); a :class:`UserError` naming both otherwise."""
    nested = os.path.join(root, split)
    if os.path.isdir(nested):
        return nested
    if os.path.isdir(root) and _has_chapters(Path(root), pattern):
        return root
    if not os.path.exists(root):
        raise UserError(f"{what} folder {root} does not exist; pass the right {flag}"
                        + (" (datasets/download script fetches LibriSpeech and its alignments)"
                           if flag == "--path" else ""))
    raise UserError(f"{what} folder {root} has no {split!r} split ({nested} is missing) and holds no "
                    f"<speaker>/<chapter>/{pattern.rsplit('/', 1)[-1]} files itself; pass the right {flag} or --split")


def read_transcripts(path: str) -> dict[str, str]:
    """``UTT_ID WORD WORD ...`` lines -> {utt_id: "WORD WORD ..."}."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError as err:
        raise UserError(f"transcript file {path} does not exist; every chapter folder of the audio needs its "
                        "<speaker>-<chapter>.trans.txt (check --audio_root)") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"transcript file {path} cannot be read ({err}); re-create or re-download it") from err
    out: dict[str, str] = {}
    for line in lines:
        parts = line.strip().split(maxsplit=1)
        if parts:
            out.setdefault(parts[0], parts[1] if len(parts) > 1 else "")
    return out


def resample_command(audio_split: str, split: str, sample_rate_hz: int) -> str:
    """The datasets/resample_corpus.py command that makes a copy of this corpus at ``sample_rate_hz``."""
    src = os.path.dirname(os.path.normpath(audio_split)) or "."
    khz = format_number(sample_rate_hz / 1000)
    dst, count = re.subn(r"\d+(\.\d+)?k(?=[^/]*$)", f"{khz}k", src)
    if not count:
        dst = f"{src}-{khz}k"
    return f"python3 datasets/resample_corpus.py --src {src} --dst {dst} --rate {sample_rate_hz}"


def audio_num_samples(path: str, sample_rate_hz: int, resample_hint: str = "python3 datasets/resample_corpus.py") \
        -> int:
    """Length in samples of a mono file at ``sample_rate_hz`` (header only), or a :class:`UserError`."""
    if not os.path.exists(path):
        raise UserError(f"audio file {path} does not exist (its TextGrid is there); check --audio_root and --split")
    info = audio_header(path)  # unreadable or empty (a 0-byte file, a FLAC counting 0 samples): one clear error
    if info.samplerate != sample_rate_hz:
        raise UserError(
            f"audio file {path} is at {info.samplerate} Hz but the geometry is at {sample_rate_hz} Hz; make a "
            f"{format_number(sample_rate_hz / 1000)} kHz copy of the corpus (`{resample_hint}`) and pass it as "
            f"--audio_root, or choose a geometry at {format_number(info.samplerate / 1000)} kHz")
    if info.channels != 1:
        raise UserError(f"audio file {path} has {info.channels} channels; the models take mono audio, convert it "
                        "to one channel first")
    if info.frames <= 0:
        raise UserError(f"audio file {path} is empty (0 samples); re-download or remove the utterance")
    return int(info.frames)


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"word {i + 1}: TextGrid {x!r} vs transcript {y!r}"
    return f"TextGrid has {len(a)} words, transcript {len(b)}"


def align_corpus(textgrid_root: str, audio_root: str, split: str, geometry: FrameGeometry, *,
                 strict: bool = False, allow_past_end: bool = False, progress: bool = True) -> CorpusAlignment:
    """Every TextGrid of the split as an :class:`Utterance` with frames by the frame rule, sorted by id."""
    tg_split = split_folder(textgrid_root, split, "TextGrid", "--path", "*/*/*.TextGrid")
    if not os.path.exists(audio_root):
        # e.g. the 24 kHz copy not made yet: point at the command that makes it from the 16 kHz corpus
        source, count = re.subn(r"\d+(\.\d+)?k(?=[^/]*$)", "16k", os.path.normpath(audio_root))
        if count and source != os.path.normpath(audio_root) and os.path.isdir(source):
            raise UserError(f"audio folder {audio_root} does not exist; make it with `python3 datasets/resample_corpus.py "
                            f"--src {source} --dst {audio_root} --rate {geometry.sample_rate_hz}`, or pass --audio_root")
    audio_split = split_folder(audio_root, split, "audio", "--audio_root", f"*/*/*{AUDIO_SUFFIX}")
    textgrids = sorted(p for p in Path(tg_split).glob("*/*/*") if p.suffix.lower() == ".textgrid")
    if not textgrids:
        raise UserError(f"no TextGrids found under {tg_split} (expected <speaker>/<chapter>/<utt_id>.TextGrid); "
                        "pass the right --path and --split")

    sr = geometry.sample_rate_hz
    tolerance_s = geometry.hop_s
    transcripts: dict[str, dict[str, str]] = {}
    utterances: list[Utterance] = []
    matches: dict[str, bool] = {}
    mismatches: list[str] = []
    clipped = 0
    seen_ids: dict[str, Path] = {}
    for tg_path in tqdm(textgrids, desc="alignments", unit="utt", disable=None if progress else True):
        utt_id = tg_path.stem
        if utt_id in seen_ids:
            raise UserError(f"TextGrids {seen_ids[utt_id]} and {tg_path} have the same utterance id {utt_id}; "
                            "remove one")
        seen_ids[utt_id] = tg_path
        speaker, chapter = tg_path.parent.parent.name, tg_path.parent.name
        chapter_dir = os.path.join(audio_split, speaker, chapter)
        audio_path = os.path.join(chapter_dir, utt_id + AUDIO_SUFFIX)

        tg = read_textgrid_words(str(tg_path))
        num_samples = audio_num_samples(audio_path, sr, resample_command(audio_split, split, sr))
        duration_s = num_samples / sr

        trans_path = os.path.join(chapter_dir, f"{speaker}-{chapter}.trans.txt")
        if trans_path not in transcripts:
            transcripts[trans_path] = read_transcripts(trans_path)
        if utt_id not in transcripts[trans_path]:
            raise UserError(f"transcript file {trans_path} has no line for utterance {utt_id} (TextGrid {tg_path}); "
                            "add it or remove the TextGrid")
        transcript = transcripts[trans_path][utt_id]

        starts = np.array([w.start_s for w in tg.words], dtype=np.float64)
        ends = np.array([w.end_s for w in tg.words], dtype=np.float64)
        past = ends > duration_s + tolerance_s + 1e-9
        if past.any():
            i = int(np.argmax(past))
            if not allow_past_end:
                raise UserError(
                    f"TextGrid {tg_path}: word {i + 1} ({tg.words[i].word!r}) ends at {ends[i]:.3f} s, past the end "
                    f"of its audio {audio_path} ({duration_s:.3f} s) by more than one frame hop; the TextGrid and "
                    f"the audio do not match (pass --allow_past_end to clip such words to the audio's end)")
            clipped += int(past.sum())
            starts = np.where(past, np.minimum(starts, duration_s), starts)
            ends = np.where(past, duration_s, ends)
        first, last = words_frames(starts, ends, geometry, num_samples)
        words = [Word(word=w.word, start_s=float(s), end_s=float(e), first_frame=int(f), last_frame=int(l_))
                 for w, s, e, f, l_ in zip(tg.words, starts, ends, first, last)]

        tg_words = [w.word for w in tg.words]
        trans_words = transcript.lower().split()
        match = tg_words == trans_words
        if not match:
            if strict:
                raise UserError(f"TextGrid {tg_path} does not match the transcript of {utt_id} in {trans_path} "
                                f"({_first_difference(tg_words, trans_words)}); fix one of them, or drop --strict "
                                "to record the mismatch and go on")
            mismatches.append(utt_id)
        matches[utt_id] = match
        utterances.append(Utterance(utt_id=utt_id, audio_path=audio_path, transcript=transcript,
                                    num_samples=num_samples, sample_rate_hz=sr, words=words))

    audio_files = {p.stem for p in Path(audio_split).glob(f"*/*/*{AUDIO_SUFFIX}")}
    without = sorted(audio_files - set(seen_ids))
    utterances.sort(key=lambda u: u.utt_id)
    return CorpusAlignment(utterances=utterances, transcript_match=matches, textgrid_root=tg_split,
                           audio_root=audio_split, mismatches=sorted(mismatches), clipped_words=clipped,
                           audio_without_textgrid=without)
