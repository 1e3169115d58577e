"""Read the intervals of one tier of a TextGrid (Praat long or short text format, or praatio's JSON).

Parsing is praatio's: :func:`praatio.utilities.textgrid_io.parseTextgridStr`, the parser behind
``praatio.textgrid.openTextgrid``. We call the parser rather than ``openTextgrid`` because ``openTextgrid``
sorts each tier's intervals before validating them, which would hide intervals written out of order; here
they are checked in file order and every problem becomes one :class:`UserError` naming the file. Files are
UTF-8 or UTF-16 with a byte-order mark (Praat writes both).

The tier is found by name, case-insensitively: ``words``, ``phones`` or any other name, also with the
speaker prefix some MFA versions write (``"1272 - words"``). Checks on that tier (all intervals, labelled or
empty): every interval has end >= start, and each starts at or after the previous one's end (no
out-of-order or overlapping intervals).

Kept units: labels stripped (and lower-cased for the ``words`` tier, which text models look up); markers
(empty intervals, silences, noise and unknown-word tokens: see ``wordreps/alignments/markers.py``) are skipped and
counted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from praatio.utilities import textgrid_io

from wordreps.alignments.markers import DEFAULT_MARKERS, MarkerCounts, MarkerRule
from wordreps.common.errors import UserError

WORDS_TIER = "words"
PHONES_TIER = "phones"


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
    words: list[WordInterval]                 # the tier's units (words, phones, ...), markers skipped
    xmax_s: float                             # the TextGrid's end time
    tier_name: str = WORDS_TIER               # the tier's name as written in the file
    skipped: MarkerCounts = field(default_factory=MarkerCounts)


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


def _find_tier(tiers: list[dict], path: str, name: str = WORDS_TIER) -> dict:
    names = [str(t.get("name", "")) for t in tiers]
    want = name.strip().lower()
    exact = [t for t in tiers if str(t.get("name", "")).strip().lower() == want]
    # Some MFA versions prefix tiers with the speaker ("1272 - words").
    prefixed = [t for t in tiers if str(t.get("name", "")).strip().lower().endswith(" - " + want)]
    found = exact or prefixed
    if len(found) != 1:
        why = "no" if not found else "more than one"
        hint = ("pass word-level alignments, e.g. the Montreal Forced Aligner's TextGrids" if want == WORDS_TIER
                else "pick another tier with --tier (words, phones or a tier name)")
        raise UserError(f"TextGrid {path} has {why} \"{name}\" tier (tiers: {', '.join(map(repr, names)) or 'none'}); "
                        f"{hint}")
    tier = found[0]
    if tier.get("class") != "IntervalTier":
        raise UserError(f"TextGrid {path}: tier {tier.get('name')!r} is a point tier, not an interval tier; "
                        "pass interval alignments")
    return tier


def _parse(path: str) -> tuple[list[dict], float]:
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
    return tiers, xmax


def _tier_units(tier: dict, path: str, markers: MarkerRule, lower: bool) -> tuple[list[WordInterval], MarkerCounts]:
    where = f"TextGrid {path}, tier {tier['name']!r}"
    units: list[WordInterval] = []
    skipped = MarkerCounts()
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
        if markers.is_marker(label):
            skipped.add(label)
            continue
        text = label.strip()
        units.append(WordInterval(text.lower() if lower else text, start, end))
    return units, skipped


def read_textgrid_tier(path: str | os.PathLike, tier: str = WORDS_TIER,
                       markers: MarkerRule = DEFAULT_MARKERS) -> TextGridWords:
    """The units of a TextGrid's tier ``tier``, in order, validated, markers skipped and counted (see the
    module docstring). Labels of the ``words`` tier are lower-cased; other tiers keep their labels' case."""
    return read_textgrid_units(path, tier, markers)[0]


def read_textgrid_words(path: str | os.PathLike, markers: MarkerRule = DEFAULT_MARKERS) -> TextGridWords:
    """The words of a TextGrid's "words" tier, in order, validated (see the module docstring)."""
    return read_textgrid_tier(path, WORDS_TIER, markers)


def read_textgrid_units(path: str | os.PathLike, tier: str, markers: MarkerRule = DEFAULT_MARKERS
                        ) -> tuple[TextGridWords, TextGridWords | None]:
    """(the units of ``tier``, the "words" tier for the transcript check or None when the file has none), from
    one parse of the file."""
    path = os.fspath(path)
    tiers, xmax = _parse(path)
    names = [str(t["name"]) for t in tiers]
    found = _find_tier(tiers, path, tier)
    is_words = tier.strip().lower() == WORDS_TIER
    units, skipped = _tier_units(found, path, markers, lower=is_words)
    result = TextGridWords(path=path, tier_names=names, words=units, xmax_s=xmax, tier_name=str(found["name"]),
                           skipped=skipped)
    if is_words:
        return result, result
    try:
        words_tier = _find_tier(tiers, path, WORDS_TIER)
    except UserError:  # no words tier, several speakers' ones, or a point tier: no transcript to compare with
        return result, None
    words, wskipped = _tier_units(words_tier, path, markers, lower=True)
    return result, TextGridWords(path=path, tier_names=names, words=words, xmax_s=xmax,
                                 tier_name=str(words_tier["name"]), skipped=wskipped)
