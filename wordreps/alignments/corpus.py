"""Walk a LibriSpeech-layout corpus of TextGrids and audio into alignment utterances.

Layout::

    <textgrid_root>/<split>/<speaker>/<chapter>/<utt_id>.TextGrid
    <audio_root>/<split>/<speaker>/<chapter>/<utt_id>.flac
    <audio_root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    ("UTT_ID WORD WORD ...")

Either root may also point straight at the split folder. Every TextGrid needs its audio and a transcript
line; audio files without a TextGrid are skipped and counted. Audio paths are stored as built from
``audio_root`` as the user gave it (relative to the working directory when relative).

What is the same for every corpus format (units past the audio's end, the frame rule, the transcript check)
is in ``wordreps/alignments/utterances.py``.

Without ``--audio_root`` the audio is looked for in ``datasets/librispeech-clean-16k`` (or ``-24k`` by the
sample rate, relative to the working directory) and then beside the TextGrid folder
(``<path>/../librispeech-clean-16k``), the layout of the thesis's README, which keeps ``datasets/`` next to
the repository and passes ``--path ../datasets/alignments`` (:func:`find_audio_root`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from tqdm import tqdm

from wordreps.alignments.geometry import FrameGeometry, format_number
from wordreps.alignments.markers import DEFAULT_MARKERS, MarkerRule
from wordreps.alignments.textgrids import WORDS_TIER, read_textgrid_units
from wordreps.alignments.utterances import CorpusAlignment, CorpusBuilder, UnitOptions
from wordreps.common.audio import audio_header
from wordreps.common.errors import UserError

DEFAULT_AUDIO_ROOTS = {16000: "datasets/librispeech-clean-16k", 24000: "datasets/librispeech-clean-24k"}
AUDIO_SUFFIX = ".flac"


def default_audio_root(sample_rate_hz: int) -> str:
    if sample_rate_hz not in DEFAULT_AUDIO_ROOTS:
        raise UserError(f"there is no default audio folder for {sample_rate_hz} Hz (defaults exist for 16 and "
                        "24 kHz); pass --audio_root")
    return DEFAULT_AUDIO_ROOTS[sample_rate_hz]


def find_audio_root(textgrid_path: str, split: str, sample_rate_hz: int) -> tuple[str, str]:
    """The audio folder when ``--audio_root`` is not given, and one line saying which was used.

    Candidates in order: ``datasets/librispeech-clean-<k>k`` (relative to the working directory, as before),
    then ``librispeech-clean-<k>k`` beside the TextGrid folder (beside its parent when ``textgrid_path`` is the
    split folder itself). The first that exists wins; when none does, the first whose 16 kHz sibling exists
    (so that the reader's error names the resample command), else a :class:`UserError` naming both.
    """
    default = default_audio_root(sample_rate_hz)
    tg = os.path.normpath(textgrid_path)
    holder = os.path.dirname(tg) if os.path.basename(tg) == split else tg
    beside = os.path.normpath(os.path.join(holder, os.pardir, os.path.basename(default)))
    candidates = [default] + ([beside] if os.path.abspath(beside) != os.path.abspath(default) else [])
    existing = [c for c in candidates if os.path.isdir(c)]
    if existing:
        chosen = existing[0]
        where = "the default folder" if chosen == default else "beside the TextGrid folder"
        also = f"; {existing[1]} exists too, pass --audio_root to choose" if len(existing) > 1 else ""
        return chosen, f"note: audio from {chosen} ({where}; no --audio_root given{also})"
    for c in candidates:
        source = re.sub(r"\d+(\.\d+)?k(?=[^/]*$)", "16k", c)
        if source != c and os.path.isdir(source):
            return c, f"note: audio expected in {c} (no --audio_root given)"
    raise UserError(f"no audio folder at {' or '.join(candidates)} (looked there because no --audio_root was "
                    "given); pass --audio_root, or put the audio in one of them")


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


def align_corpus(textgrid_root: str, audio_root: str, split: str, geometry: FrameGeometry, *,
                 strict: bool = False, allow_past_end: bool = False, progress: bool = True,
                 tier: str = WORDS_TIER, markers: MarkerRule = DEFAULT_MARKERS) -> CorpusAlignment:
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
    builder = CorpusBuilder(geometry, UnitOptions(tier=tier, markers=markers, strict=strict,
                                                  allow_past_end=allow_past_end))
    transcripts: dict[str, dict[str, str]] = {}
    for tg_path in tqdm(textgrids, desc="alignments", unit="utt", disable=None if progress else True):
        utt_id = tg_path.stem
        speaker, chapter = tg_path.parent.parent.name, tg_path.parent.name
        chapter_dir = os.path.join(audio_split, speaker, chapter)
        audio_path = os.path.join(chapter_dir, utt_id + AUDIO_SUFFIX)

        units, words = read_textgrid_units(str(tg_path), tier, markers)
        num_samples = audio_num_samples(audio_path, sr, resample_command(audio_split, split, sr))

        trans_path = os.path.join(chapter_dir, f"{speaker}-{chapter}.trans.txt")
        if trans_path not in transcripts:
            transcripts[trans_path] = read_transcripts(trans_path)
        if utt_id not in transcripts[trans_path]:
            raise UserError(f"transcript file {trans_path} has no line for utterance {utt_id} (TextGrid {tg_path}); "
                            "add it or remove the TextGrid")
        builder.add(utt_id, audio_path, num_samples, units.words, where=f"TextGrid {tg_path}",
                    transcript=transcripts[trans_path][utt_id],
                    words=None if words is None else [w.word for w in words.words],
                    transcript_where=trans_path, skipped=units.skipped)

    audio_files = {p.stem for p in Path(audio_split).glob(f"*/*/*{AUDIO_SUFFIX}")}
    without = sorted(audio_files - {p.stem for p in textgrids})
    return builder.result(textgrid_root=tg_split, audio_root=audio_split, corpus_format="librispeech",
                          skipped=without)
