"""Which interval labels of an aligned tier are markers (silence, noise, unknown words), not units.

Forced aligners write more than words into their word and phone tiers. The Montreal Forced Aligner (MFA)
conventions, all covered by the default rule:

    ""            empty interval: silence between words (LibriSpeech's MFA alignments, every MFA TextGrid)
    sil, sp       silence / short pause (MFA 1.x, Kaldi recipes; both tiers)
    spn           spoken noise: the phone MFA gives a word it has no pronunciation for
    <eps>         Kaldi's epsilon (empty) symbol
    <unk>         a word missing from the aligner's dictionary: the time is known, the word is not
    [...] <...> {...} (...)
                  a whole label in brackets: MFA's bracketed words, laughter, noise and hesitation
                  annotations (``[adif]``, ``<vocnoise>``, ``{LG}``, ``(noise)``); MFA treats any word
                  wholly inside these brackets as a non-speech annotation

The default rule skips all of them (case-insensitively). ``--skip_labels`` adds labels to the rule in
force; ``--keep_markers`` keeps every non-empty label (empty intervals are always skipped: a unit needs a
label). Skipped labels are counted per label for the stage's report and the alignment JSON.

Transcripts are compared with the same rule applied to their words, so a ``[adif]`` or ``<VOCNOISE>`` that
the transcript and the TextGrid both hold is not a mismatch.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

DEFAULT_SKIP_LABELS = frozenset({"", "sil", "sp", "spn", "<eps>", "<unk>"})
_BRACKETED = re.compile(r"^(\[.*\]|<.*>|\{.*\}|\(.*\))$", re.S)


@dataclass(frozen=True)
class MarkerRule:
    """Labels to skip: an explicit set (compared lower-cased and stripped) and, optionally, bracketed labels."""
    labels: frozenset[str] = DEFAULT_SKIP_LABELS
    bracketed: bool = True

    @classmethod
    def from_flags(cls, keep_markers: bool = False, skip_labels: Iterable[str] = ()) -> "MarkerRule":
        """The rule for ``--keep_markers`` / ``--skip_labels``: defaults, or only empty labels, plus extras."""
        extra = {label.strip().lower() for label in skip_labels}
        if keep_markers:
            return cls(labels=frozenset({""} | extra), bracketed=False)
        return cls(labels=DEFAULT_SKIP_LABELS | extra, bracketed=True)

    def is_marker(self, label: str) -> bool:
        key = label.strip().lower()
        return key in self.labels or (self.bracketed and bool(_BRACKETED.match(key)))

    def describe(self) -> dict:
        """For the alignment JSON: the labels and whether bracketed labels are skipped."""
        return {"labels": sorted(self.labels), "bracketed": self.bracketed}

    def transcript_words(self, transcript: str) -> list[str]:
        """A transcript's words, lower-cased, markers removed (what a words tier is compared with)."""
        return [w for w in transcript.lower().split() if not self.is_marker(w)]


DEFAULT_MARKERS = MarkerRule()


@dataclass
class MarkerCounts:
    """Skipped labels, counted as written (stripped, lower-cased); "" is an empty interval."""
    counts: Counter = field(default_factory=Counter)

    def add(self, label: str) -> None:
        self.counts[label.strip().lower()] += 1

    def update(self, other: "MarkerCounts | Counter") -> None:
        self.counts.update(other.counts if isinstance(other, MarkerCounts) else other)

    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """Most frequent first, ties by label: the order the report shows."""
        return dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self, limit: int = 8) -> str:
        """``412 empty, 12 sp, 3 <vocnoise>, ...``; "none" when nothing was skipped."""
        items = list(self.as_dict().items())
        if not items:
            return "none"
        shown = [f"{n} {label if label else 'empty'}" for label, n in items[:limit]]
        more = sum(n for _, n in items[limit:])
        return ", ".join(shown) + (f", {more} other" if more else "")
