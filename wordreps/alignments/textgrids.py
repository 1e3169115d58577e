"""Read the word intervals of a TextGrid (Praat long or short text format, or praatio's JSON).

Parsing is praatio's: :func:`praatio.utilities.textgrid_io.parseTextgridStr`, the parser behind
``praatio.textgrid.openTextgrid``. We call the parser rather than ``openTextgrid`` because ``openTextgrid``
sorts each tier's intervals before validating them, which would hide intervals written out of order; here
they are checked in file order and every problem becomes one :class:`UserError` naming the file.

Checks on the "words" tier (all intervals, labelled or empty): every interval has end >= start, and each
starts at or after the previous one's end (no out-of-order or overlapping intervals).

Kept words: labels stripped and lower-cased; empty labels (LibriSpeech MFA alignments mark silence with
empty intervals) and the silence/filler tokens ``sp``, ``sil``, ``<eps>`` are skipped. ``<unk>`` is kept:
it marks time where a word was spoken that the aligner's dictionary lacked, and dropping it would shift
positions against the transcript (the transcript check reports it as a mismatch).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from praatio.utilities import textgrid_io

from wordreps.common.errors import UserError

SKIPPED_LABELS = frozenset({"", "sp", "sil", "<eps>"})
WORDS_TIER = "words"


@dataclass(frozen=True)
class WordInterval:
    """One word occurrence of a TextGrid: lower-cased text and [start_s, end_s) in seconds."""
    word: str
    start_s: float
    end_s: float


@dataclass
class TextGridWords:
    path: str
    tier_names: list[str]
    words: list[WordInterval]
    xmax_s: float          # the TextGrid's end time


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as err:
        raise UserError(f"TextGrid {path} does not exist; check --path and --split") from err
    except OSError as err:
        raise UserError(f"TextGrid {path} cannot be read ({err.strerror}); check the file and its permissions") \
            from err
    # Praat writes UTF-8 or UTF-16 with a byte-order mark; guessing UTF-16 without one (as praatio's
    # openTextgrid does first) can decode an ASCII file as garbage.
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"TextGrid {path} is not UTF-8 or UTF-16 text ({err.reason} at byte {err.start}); "
                        "re-create or re-download it") from err


def _find_words_tier(tiers: list[dict], path: str) -> dict:
    names = [str(t.get("name", "")) for t in tiers]
    exact = [t for t in tiers if str(t.get("name", "")).strip().lower() == WORDS_TIER]
    # Some MFA versions prefix tiers with the speaker ("1272 - words").
    prefixed = [t for t in tiers if str(t.get("name", "")).strip().lower().endswith(" - " + WORDS_TIER)]
    found = exact or prefixed
    if len(found) != 1:
        why = "no" if not found else "more than one"
        raise UserError(f"TextGrid {path} has {why} \"words\" tier (tiers: {', '.join(map(repr, names)) or 'none'}); "
                        "pass word-level alignments, e.g. the Montreal Forced Aligner's TextGrids")
    tier = found[0]
    if tier.get("class") != "IntervalTier":
        raise UserError(f"TextGrid {path}: tier {tier.get('name')!r} is a point tier, not an interval tier; "
                        "pass word-level interval alignments")
    return tier


def read_textgrid_words(path: str | os.PathLike) -> TextGridWords:
    """The words of a TextGrid's "words" tier, in order, validated (see the module docstring)."""
    path = os.fspath(path)
    text = _read_text(path)
    if not text.strip():
        raise UserError(f"TextGrid {path} is empty (0 bytes of text); re-create or re-download it")
    try:
        parsed = textgrid_io.parseTextgridStr(text, includeEmptyIntervals=True)
        tiers = list(parsed["tiers"])
        xmax = float(parsed["xmax"])
        for tier in tiers:  # the empty-interval filter is lazy in praatio: materialise inside the try
            tier["entries"] = list(tier["entries"])
    except Exception as err:  # praatio raises ParsingError, ValueError, IndexError, ... on malformed text
        detail = f"{type(err).__name__}: {err}".strip().rstrip(":")
        raise UserError(f"TextGrid {path} cannot be parsed as a Praat TextGrid ({detail}); "
                        "re-create or re-download it") from err
    if not tiers:
        raise UserError(f"TextGrid {path} has no tiers (empty or cut short); re-create or re-download it")
    tier = _find_words_tier(tiers, path)
    where = f"TextGrid {path}, tier {tier['name']!r}"

    words: list[WordInterval] = []
    prev: tuple[float, float, str] | None = None
    for number, entry in enumerate(tier["entries"], start=1):
        try:
            start, end, label = float(entry[0]), float(entry[1]), str(entry[2])
        except (TypeError, ValueError, IndexError) as err:
            raise UserError(f"{where}, interval {number}: times are not numbers ({entry!r}); "
                            "re-create or re-download it") from err
        if end < start:
            raise UserError(f"{where}, interval {number} ({label!r}) ends at {end} s before it starts at {start} s; "
                            "fix or re-create the TextGrid")
        if prev is not None and start < prev[1]:
            kind = "is out of order with" if start < prev[0] else "overlaps"
            raise UserError(f"{where}, interval {number} ({label!r}, {start}-{end} s) {kind} the interval before it "
                            f"({prev[2]!r}, {prev[0]}-{prev[1]} s); fix or re-create the TextGrid")
        prev = (start, end, label)
        word = label.strip().lower()
        if word in SKIPPED_LABELS:
            continue
        words.append(WordInterval(word, start, end))
    return TextGridWords(path=path, tier_names=[str(t["name"]) for t in tiers], words=words, xmax_s=xmax)
