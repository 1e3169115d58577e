"""Walk a Montreal Forced Aligner corpus folder (any depth) into alignment utterances.

MFA reads a corpus folder of audio files with transcripts of the same stem beside them, and writes one
TextGrid per audio file into an output folder that mirrors the corpus folder's sub-folders. Both layouts
are read here, at any depth:

    side by side (--path CORPUS):                 parallel trees (--path OUTPUT --audio_root CORPUS):
      CORPUS/spk1/utt1.wav                          CORPUS/spk1/utt1.wav     OUTPUT/spk1/utt1.TextGrid
      CORPUS/spk1/utt1.lab      (transcript)        CORPUS/spk1/utt1.lab
      CORPUS/spk1/utt1.TextGrid (alignment)

A TextGrid at ``<path>/<rel>.TextGrid`` pairs with the audio at ``<audio_root>/<rel>.wav`` or ``.flac``
(suffixes in any letter case); its transcript, when there is one, is ``<audio_root>/<rel>.lab`` or
``.txt`` (MFA's own transcript files) and is compared with the TextGrid's words as for LibriSpeech. Without
a transcript file the comparison is skipped (``transcript_match`` is left out of the JSON for it).

Utterance ids are the relative paths without suffix, made safe for file names and unique
(:func:`wordreps.alignments.utterances.safe_utterance_ids`): ``spk1/utt1.wav`` -> ``spk1__utt1``. Audio files
without a TextGrid are skipped and listed. Hidden files and folders (names starting with ".") are ignored.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm import tqdm

from wordreps.alignments.corpus import audio_num_samples
from wordreps.alignments.geometry import FrameGeometry
from wordreps.alignments.textgrids import read_textgrid_units
from wordreps.alignments.utterances import (
    CorpusAlignment,
    CorpusBuilder,
    UnitOptions,
    safe_utterance_ids,
)
from wordreps.common.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac")
TRANSCRIPT_SUFFIXES = (".lab", ".txt")
TEXTGRID_SUFFIX = ".textgrid"


def _walk(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """``{relative path without suffix ('/'-separated): file}`` for files under ``root`` with one of the
    suffixes (any case), hidden names skipped. Two files for one stem (``a.wav`` and ``a.flac``) are an error."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            stem, suffix = os.path.splitext(name)
            if name.startswith(".") or suffix.lower() not in suffixes:
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).with_suffix("").as_posix()
            if rel in found:
                raise UserError(f"{found[rel]} and {path} are two files for one utterance; keep one of them")
            found[rel] = path
    return found


def find_textgrids(root: str | os.PathLike) -> dict[str, Path]:
    """The TextGrids under ``root`` (any depth), by relative path without suffix."""
    return _walk(Path(root), (TEXTGRID_SUFFIX,))


def read_transcript_file(path: Path) -> str:
    """An MFA transcript file (.lab or .txt): its words on one line."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"transcript file {path} cannot be read ({err.strerror}); check its permissions") from err
    try:
        text = raw.decode("utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"transcript file {path} is not UTF-8 or UTF-16 text ({err.reason} at byte {err.start}); "
                        "re-save it as UTF-8") from err
    return " ".join(text.split())


def align_mfa_corpus(textgrid_root: str, audio_root: str, geometry: FrameGeometry, options: UnitOptions, *,
                     progress: bool = True) -> CorpusAlignment:
    """Every TextGrid under ``textgrid_root`` with its audio under ``audio_root`` (see the module docstring)."""
    for root, what, flag in ((textgrid_root, "TextGrid", "--path"), (audio_root, "audio", "--audio_root")):
        if not os.path.isdir(root):
            raise UserError(f"{what} folder {root} does not exist or is not a folder; pass the right {flag}")
    textgrids = find_textgrids(textgrid_root)
    if not textgrids:
        raise UserError(f"no TextGrids found under {textgrid_root} (at any depth); pass the folder MFA wrote its "
                        "TextGrids to as --path")
    audio = _walk(Path(audio_root), AUDIO_SUFFIXES)
    transcripts = _walk(Path(audio_root), TRANSCRIPT_SUFFIXES)
    ids = safe_utterance_ids(list(textgrids))
    builder = CorpusBuilder(geometry, options)
    sr = geometry.sample_rate_hz
    for rel in tqdm(sorted(textgrids), desc="alignments", unit="utt", disable=None if progress else True):
        tg_path = textgrids[rel]
        if rel not in audio:
            raise UserError(f"TextGrid {tg_path} has no audio file {rel}.wav or {rel}.flac under {audio_root}; "
                            "pass the corpus folder MFA aligned as --audio_root, or remove the TextGrid")
        audio_path = os.path.join(audio_root, *audio[rel].relative_to(audio_root).parts)
        units, words = read_textgrid_units(str(tg_path), options.tier, options.markers)
        num_samples = audio_num_samples(audio_path, sr)
        trans_path = transcripts.get(rel)
        builder.add(ids[rel], audio_path, num_samples, units.words, where=f"TextGrid {tg_path}",
                    transcript=None if trans_path is None else read_transcript_file(trans_path),
                    words=None if words is None else [w.word for w in words.words],
                    transcript_where=str(trans_path), skipped=units.skipped)
    without = [str(audio[rel]) for rel in sorted(set(audio) - set(textgrids))]
    return builder.result(textgrid_root=textgrid_root, audio_root=audio_root, corpus_format="mfa",
                          skipped=without)
