"""From one utterance's aligned units to an alignment :class:`Utterance`: the part every corpus reader shares.

A corpus reader (LibriSpeech layout: ``corpus.py``; an MFA corpus folder: ``mfa_corpus.py``; lhotse manifests:
``lhotse_corpus.py``) finds, per utterance, its audio (path and length in samples), the intervals of the chosen
tier (words, phones or any named tier, markers already skipped) and, when there is one, its transcript. A
:class:`CorpusBuilder` then applies what is the same for all of them:

- units ending more than one hop past the audio's end are an error, or with ``allow_past_end`` are clipped
  to the audio's end (a unit starting past it becomes a zero-length unit at the end, which the frame rule
  gives the last frame) and counted; ends up to one hop past the end are kept as written (aligners round
  times, and the frame rule limits frames to the audio's);
- the frame rule (``wordreps/alignments/frames.py``) gives each unit its frames;
- the words of the utterance (its words tier) are compared with its transcript, both lower-cased and with
  the same markers removed; a mismatch is recorded, or with ``strict`` is an error.

Utterance ids become file names (``<id>.npy``) in the embedding stage: :func:`safe_utterance_ids` makes them
safe and unique.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from wordreps.alignments.frames import words_frames
from wordreps.alignments.geometry import FrameGeometry
from wordreps.alignments.markers import DEFAULT_MARKERS, MarkerCounts, MarkerRule
from wordreps.alignments.textgrids import PHONES_TIER, WORDS_TIER, WordInterval
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Utterance, Word


def unit_of_tier(tier: str) -> str:
    """The unit an alignment records for a tier: "words", "phones", or the tier's own name."""
    key = tier.strip().lower()
    return key if key in (WORDS_TIER, PHONES_TIER) else tier.strip()


def unit_noun(unit: str) -> str:
    """Singular for messages: words -> word, phones -> phone, anything else -> unit."""
    return {WORDS_TIER: "word", PHONES_TIER: "phone"}.get(unit, "unit")


@dataclass(frozen=True)
class UnitOptions:
    """What every reader is asked for: the tier, the markers to skip, and how strict to be."""
    tier: str = WORDS_TIER
    markers: MarkerRule = DEFAULT_MARKERS
    strict: bool = False
    allow_past_end: bool = False

    @property
    def unit(self) -> str:
        return unit_of_tier(self.tier)


@dataclass
class CorpusAlignment:
    utterances: list[Utterance]
    transcript_match: dict[str, bool | None]                   # None: no transcript, or no words to compare
    textgrid_root: str
    audio_root: str
    mismatches: list[str] = field(default_factory=list)        # utterance ids, sorted
    clipped_words: int = 0                                      # units clipped by allow_past_end
    audio_without_textgrid: list[str] = field(default_factory=list)   # skipped inputs (see skipped_what)
    skipped_what: str = "audio file(s) without a TextGrid"
    skipped_markers: MarkerCounts = field(default_factory=MarkerCounts)
    unit: str = WORDS_TIER
    tier: str = WORDS_TIER
    corpus_format: str = "librispeech"

    @property
    def num_words(self) -> int:
        return sum(len(u.words) for u in self.utterances)


def _first_difference(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"word {i + 1}: TextGrid {x!r} vs transcript {y!r}"
    return f"TextGrid has {len(a)} words, transcript {len(b)}"


class CorpusBuilder:
    """Collects utterances one by one (see the module docstring); :meth:`result` returns them sorted by id."""

    def __init__(self, geometry: FrameGeometry, options: UnitOptions) -> None:
        self.geometry = geometry
        self.options = options
        self.utterances: list[Utterance] = []
        self.matches: dict[str, bool | None] = {}
        self.mismatches: list[str] = []
        self.clipped = 0
        self.skipped_markers = MarkerCounts()
        self._seen: dict[str, str] = {}

    def add(self, utt_id: str, audio_path: str, num_samples: int, units: Sequence[WordInterval], *,
            where: str, transcript: str | None = None, words: Sequence[str] | None = None,
            transcript_where: str = "", skipped: MarkerCounts | None = None) -> Utterance:
        """One utterance. ``where`` names its alignment source in messages (``"TextGrid x.TextGrid"``);
        ``words`` are its words (lower-case, markers removed) compared with ``transcript`` (found in
        ``transcript_where``); either None skips the comparison. ``skipped``: the markers its reader skipped."""
        if utt_id in self._seen:
            raise UserError(f"{self._seen[utt_id]} and {where} have the same utterance id {utt_id}; remove one")
        self._seen[utt_id] = where
        if skipped is not None:
            self.skipped_markers.update(skipped)
        sr = self.geometry.sample_rate_hz
        duration_s = num_samples / sr
        starts = np.array([u.start_s for u in units], dtype=np.float64)
        ends = np.array([u.end_s for u in units], dtype=np.float64)
        past = ends > duration_s + self.geometry.hop_s + 1e-9
        if past.any():
            i = int(np.argmax(past))
            if not self.options.allow_past_end:
                noun = unit_noun(self.options.unit)
                raise UserError(
                    f"{where}: {noun} {i + 1} ({units[i].word!r}) ends at {ends[i]:.3f} s, past the end of its "
                    f"audio {audio_path} ({duration_s:.3f} s) by more than one frame hop; the alignment and the "
                    f"audio do not match (pass --allow_past_end to clip such {noun}s to the audio's end)")
            self.clipped += int(past.sum())
            starts = np.where(past, np.minimum(starts, duration_s), starts)
            ends = np.where(past, duration_s, ends)
        first, last = words_frames(starts, ends, self.geometry, num_samples)
        out = [Word(word=u.word, start_s=float(s), end_s=float(e), first_frame=int(f), last_frame=int(l_))
               for u, s, e, f, l_ in zip(units, starts, ends, first, last)]

        match: bool | None = None
        if transcript is not None and words is not None:
            expected = self.options.markers.transcript_words(transcript)
            match = list(words) == expected
            if not match:
                if self.options.strict:
                    raise UserError(f"{where} does not match the transcript of {utt_id} in {transcript_where} "
                                    f"({_first_difference(list(words), expected)}); fix one of them, or drop "
                                    "--strict to record the mismatch and go on")
                self.mismatches.append(utt_id)
        self.matches[utt_id] = match
        utt = Utterance(utt_id=utt_id, audio_path=audio_path, transcript=transcript or "",
                        num_samples=int(num_samples), sample_rate_hz=sr, words=out)
        self.utterances.append(utt)
        return utt

    def result(self, *, textgrid_root: str, audio_root: str, corpus_format: str,
               skipped: Sequence[str] = (), skipped_what: str = "audio file(s) without a TextGrid"
               ) -> CorpusAlignment:
        return CorpusAlignment(
            utterances=sorted(self.utterances, key=lambda u: u.utt_id), transcript_match=dict(self.matches),
            textgrid_root=textgrid_root, audio_root=audio_root, mismatches=sorted(self.mismatches),
            clipped_words=self.clipped, audio_without_textgrid=sorted(skipped), skipped_what=skipped_what,
            skipped_markers=self.skipped_markers, unit=self.options.unit, tier=self.options.tier,
            corpus_format=corpus_format)


# ------------------------------------------------------------------------------------------------- ids

_UNSAFE = re.compile(r"[^\w.\-]+")
MAX_ID_CHARS = 150   # file names are at most 255 bytes; the store adds ".npy" and temporary-name affixes


def _sanitise(name: str) -> tuple[str, bool]:
    """(safe text, whether characters had to be replaced: separators and leading dots do not count)."""
    parts = [p for p in re.split(r"[/\\]+", name) if p not in ("", ".")]
    plain = "__".join(parts)
    text = "__".join(_UNSAFE.sub("_", p) for p in parts)
    replaced = text != plain
    text = re.sub(r"^\.+", "_", text)  # no hidden files, no "." or ".."
    if len(text.encode("utf-8")) > MAX_ID_CHARS:
        text = text.encode("utf-8")[:MAX_ID_CHARS].decode("utf-8", errors="ignore")
        replaced = True
    return text or "_", replaced


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def safe_utterance_ids(names: Sequence[str]) -> dict[str, str]:
    """Each name (a relative path without its suffix, or a manifest's id) -> an id that is a safe file name.

    Path separators become ``__``, leading dots ``_``; a name in which other characters had to be replaced
    (anything but letters, digits, ``_``, ``.`` and ``-``: ``a b`` -> ``a_b``) or that was cut to
    :data:`MAX_ID_CHARS` also gets ``~`` and 8 hex digits of the sha256 of the name, so that it cannot meet
    another file's id and never depends on which other files are present. Two ids equal otherwise (a file
    literally named ``a__b`` beside ``a/b``) both get the suffix.
    """
    safe: dict[str, str] = {}
    for name in names:
        text, replaced = _sanitise(name)
        safe[name] = f"{text}~{_digest(name)}" if replaced else text
    groups: dict[str, list[str]] = {}
    for name, s in safe.items():
        groups.setdefault(s, []).append(name)
    for s, members in groups.items():
        if len(members) > 1:
            for m in members:
                safe[m] = f"{s}~{_digest(m)}"
    if len(set(safe.values())) != len(safe):  # a suffixed id equal to another name: vanishingly rare
        raise UserError("utterance names collide after being made safe for file names ("
                        + ", ".join(sorted(safe)[:3]) + ", ...); rename the files")
    return safe
