"""The alignment JSON: the one format every later stage reads word intervals and frames from.

Written by ``alignments/alignments_and_trans.py`` through :func:`write_alignment` (atomic: temp name +
rename) and read ONLY through :func:`load_alignment`, which validates everything a later stage relies on
and raises :class:`UserError` naming the file (and the utterance / word) for anything wrong.

Format (version 1)::

    {"format": "wordreps.alignments", "version": 1,
     "geometry": {"sample_rate_hz": 16000, "hop_samples": 320, "receptive_field_samples": 400},
     "frame_rule": "centre-in-word, nearest-to-midpoint fallback",
     "textgrid_root": "...", "audio_root": "...",
     "unit": "words", "tier": "words", "corpus_format": "librispeech",
     "markers": {"labels": ["", "<eps>", ...], "bracketed": true}, "skipped_markers": {"": 412, "sp": 3},
     "utterances": [{"id": "1272-128104-0000", "audio_path": "datasets/.../1272-128104-0000.flac",
                     "transcript": "MISTER QUILTER IS ...", "num_samples": 93680, "sample_rate_hz": 16000,
                     "transcript_match": true,
                     "words": [{"word": "mister", "start_s": 0.5, "end_s": 0.8,
                                "first_frame": 24, "last_frame": 39}, ...]}, ...]}

Frames are inclusive (``first_frame..last_frame``) and lie in ``[0, geometry.num_frames(num_samples))``.
Utterances are sorted by id; a word occurrence is identified by (utterance id, position in ``words``).

``unit`` says what the entries of ``words`` are: "words" (also assumed for files written before the field
existed), "phones", or the name of another tier. Every stage reads them the same way; text models accept
only "words" (:meth:`Alignment.require_words`). ``transcript_match`` is left out for an utterance without a
transcript (read as true). ``corpus_format``, ``markers`` and ``skipped_markers`` are provenance.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from wordreps.alignments.geometry import FrameGeometry, default_alignment_file
from wordreps.common.atomic import write_json_atomic
from wordreps.common.errors import UserError
from wordreps.common.hashing import sha256_file
from wordreps.embeddings.base import Utterance, Word

FORMAT = "wordreps.alignments"
VERSION = 1
FRAME_RULE = "centre-in-word, nearest-to-midpoint fallback"
UNIT_WORDS = "words"

_REMAKE = "re-create it with alignments/alignments_and_trans.py"


@dataclass
class Alignment:
    """A loaded, validated alignment JSON."""
    geometry: FrameGeometry
    utterances: list[Utterance]
    path: str
    sha256: str
    textgrid_root: str = ""
    audio_root: str = ""
    frame_rule: str = FRAME_RULE
    # utterance id -> did the TextGrid's word sequence equal the trans.txt transcript (case-insensitive)
    transcript_match: dict[str, bool] = field(default_factory=dict)
    unit: str = UNIT_WORDS            # what the utterances' "words" are: words, phones or a tier's name
    tier: str = UNIT_WORDS

    def require_words(self, model: str) -> None:
        """Refuse (:class:`UserError`) to give a text model anything but words."""
        if self.unit != UNIT_WORDS:
            raise UserError(
                f"alignment file {self.path} holds {self.unit} (tier {self.tier!r}), but {model} is a text model, "
                f"which reads words; extract text models from an alignment made with --tier words, and compare "
                f"{self.unit} with audio models only")

    def by_id(self) -> dict[str, Utterance]:
        return {u.utt_id: u for u in self.utterances}

    @property
    def num_words(self) -> int:
        return sum(len(u.words) for u in self.utterances)

    def require_geometry(self, geometry: FrameGeometry, model: str) -> None:
        """Refuse (:class:`UserError`) to pair this alignment with a model whose frames sit elsewhere; the
        message names the alignment file to make and the exact command that makes it."""
        if geometry != self.geometry:
            name = default_alignment_file(geometry)
            tier = "" if self.unit == UNIT_WORDS else f" --tier {self.tier}"
            if tier:
                name = name[:-len(".json")] + f"_{unit_slug(self.unit)}.json"
            raise UserError(
                f"alignment file {self.path} was made for frames of {self.geometry.describe()}, but model {model} "
                f"has {geometry.describe()}; make a matching alignment with `python3 alignments/alignments_and_trans.py "
                f"{geometry.cli_flags()}{tier} --output {name}` (or --model), then pass --path {name}")


def unit_slug(unit: str) -> str:
    """A unit as file names show it: phones -> phones, "My Tier" -> My_Tier."""
    return re.sub(r"[^\w.\-]+", "_", unit).strip("_") or "unit"


def utterance_to_dict(utt: Utterance, transcript_match: bool | None) -> dict:
    out = {
        "id": utt.utt_id,
        "audio_path": utt.audio_path,
        "transcript": utt.transcript,
        "num_samples": int(utt.num_samples),
        "sample_rate_hz": int(utt.sample_rate_hz),
        "transcript_match": None if transcript_match is None else bool(transcript_match),
        "words": [
            {"word": w.word, "start_s": float(w.start_s), "end_s": float(w.end_s),
             "first_frame": int(w.first_frame), "last_frame": int(w.last_frame)}
            for w in utt.words
        ],
    }
    if transcript_match is None:  # no transcript to compare with
        del out["transcript_match"]
    return out


def alignment_to_dict(geometry: FrameGeometry, utterances: Sequence[Utterance], *, textgrid_root: str = "",
                      audio_root: str = "", transcript_match: dict[str, bool | None] | None = None,
                      unit: str = UNIT_WORDS, tier: str = UNIT_WORDS, **provenance: Any) -> dict:
    """The JSON object for ``utterances`` (sorted by id here so the file never depends on walk order).
    ``provenance``: further top-level fields (corpus_format, markers, skipped_markers)."""
    transcript_match = transcript_match or {}
    ordered = sorted(utterances, key=lambda u: u.utt_id)
    return {
        "format": FORMAT,
        "version": VERSION,
        "geometry": geometry.to_dict(),
        "frame_rule": FRAME_RULE,
        "textgrid_root": str(textgrid_root),
        "audio_root": str(audio_root),
        "unit": unit,
        "tier": tier,
        **provenance,
        "utterances": [utterance_to_dict(u, transcript_match.get(u.utt_id, True)) for u in ordered],
    }


def write_alignment(path: str | os.PathLike, geometry: FrameGeometry, utterances: Sequence[Utterance], *,
                    textgrid_root: str = "", audio_root: str = "",
                    transcript_match: dict[str, bool | None] | None = None, unit: str = UNIT_WORDS,
                    tier: str = UNIT_WORDS, **provenance: Any) -> str:
    """Validate and write the alignment JSON atomically; returns its sha256.

    The object is validated with the same checks :func:`load_alignment` applies, so a file this writes is
    always one that loads.
    """
    obj = alignment_to_dict(geometry, utterances, textgrid_root=textgrid_root, audio_root=audio_root,
                            transcript_match=transcript_match, unit=unit, tier=tier, **provenance)
    _parse(obj, os.fspath(path))
    write_json_atomic(path, obj, indent=None)
    return sha256_file(path)


def load_alignment(path: str | os.PathLike) -> Alignment:
    """Read and validate an alignment JSON; any problem is a :class:`UserError` naming the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"alignment file {path} does not exist; make it with alignments/alignments_and_trans.py "
                        "or pass the right --alignments path")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise UserError(f"alignment file {path} cannot be read ({err.strerror}); check its permissions") from err
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"alignment file {path} is not JSON ({err}); {_REMAKE}") from err
    alignment = _parse(obj, path)
    # the bytes are already in memory: hash those, not a second read
    alignment.sha256 = hashlib.sha256(data).hexdigest()
    return alignment


# ----------------------------------------------------------------------------------------------- validation

def _parse(obj: Any, path: str) -> Alignment:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"{path} is not a wordreps alignment file (format {found!r}, expected {FORMAT!r}); "
                        f"pass the JSON written by alignments/alignments_and_trans.py")
    if obj.get("version") != VERSION:
        raise UserError(f"alignment file {path} has version {obj.get('version')!r}, this toolkit reads version "
                        f"{VERSION}; {_REMAKE}")
    for key in ("geometry", "utterances"):
        if key not in obj:
            raise UserError(f"alignment file {path} has no {key!r} field; {_REMAKE}")
    geometry = _parse_geometry(obj["geometry"], path)
    if not isinstance(obj["utterances"], list):
        raise UserError(f"alignment file {path}: 'utterances' is not a list; {_REMAKE}")
    utterances: list[Utterance] = []
    matches: dict[str, bool] = {}
    seen: set[str] = set()
    for index, raw in enumerate(obj["utterances"]):
        utt, match = _parse_utterance(raw, index, geometry, path)
        if utt.utt_id in seen:
            raise UserError(f"alignment file {path}: utterance {utt.utt_id} appears twice; {_REMAKE}")
        seen.add(utt.utt_id)
        utterances.append(utt)
        matches[utt.utt_id] = match
    unit, tier = obj.get("unit", UNIT_WORDS), obj.get("tier", obj.get("unit", UNIT_WORDS))
    if not isinstance(unit, str) or not unit or not isinstance(tier, str) or not tier:
        raise UserError(f"alignment file {path}: 'unit' and 'tier' must be non-empty strings; {_REMAKE}")
    return Alignment(geometry=geometry, utterances=utterances, path=path, sha256="",
                     textgrid_root=str(obj.get("textgrid_root", "")), audio_root=str(obj.get("audio_root", "")),
                     frame_rule=str(obj.get("frame_rule", FRAME_RULE)), transcript_match=matches, unit=unit,
                     tier=tier)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_geometry(raw: Any, path: str) -> FrameGeometry:
    keys = ("sample_rate_hz", "hop_samples", "receptive_field_samples")
    if not isinstance(raw, dict) or any(k not in raw for k in keys):
        raise UserError(f"alignment file {path}: 'geometry' must have the fields {', '.join(keys)}; {_REMAKE}")
    if any(not _is_int(raw[k]) or raw[k] <= 0 for k in keys):
        raise UserError(f"alignment file {path}: geometry {raw} must hold positive integers; {_REMAKE}")
    return FrameGeometry.from_dict(raw)


_UTT_FIELDS = ("id", "audio_path", "transcript", "num_samples", "sample_rate_hz", "words")
_WORD_FIELDS = ("word", "start_s", "end_s", "first_frame", "last_frame")


def _parse_utterance(raw: Any, index: int, geometry: FrameGeometry, path: str) -> tuple[Utterance, bool]:
    if not isinstance(raw, dict):
        raise UserError(f"alignment file {path}: utterance #{index} is not an object; {_REMAKE}")
    where = f"utterance {raw.get('id', '#' + str(index))}"
    missing = [k for k in _UTT_FIELDS if k not in raw]
    if missing:
        raise UserError(f"alignment file {path}: {where} has no field(s) {', '.join(missing)}; {_REMAKE}")
    if not isinstance(raw["id"], str) or not raw["id"]:
        raise UserError(f"alignment file {path}: utterance #{index} has an empty or non-string id; {_REMAKE}")
    if not isinstance(raw["audio_path"], str) or not isinstance(raw["transcript"], str):
        raise UserError(f"alignment file {path}: {where}: audio_path and transcript must be strings; {_REMAKE}")
    if not _is_int(raw["num_samples"]) or raw["num_samples"] <= 0:
        raise UserError(f"alignment file {path}: {where}: num_samples {raw['num_samples']!r} must be a positive "
                        f"integer; {_REMAKE}")
    if raw["sample_rate_hz"] != geometry.sample_rate_hz:
        raise UserError(f"alignment file {path}: {where} is at {raw['sample_rate_hz']!r} Hz but the file's "
                        f"geometry is at {geometry.sample_rate_hz} Hz; {_REMAKE}")
    if not isinstance(raw["words"], list):
        raise UserError(f"alignment file {path}: {where}: 'words' is not a list; {_REMAKE}")
    num_frames = geometry.num_frames(raw["num_samples"])
    words = [_parse_word(w, i, where, num_frames, path) for i, w in enumerate(raw["words"])]
    match = raw.get("transcript_match", True)
    utt = Utterance(utt_id=raw["id"], audio_path=raw["audio_path"], transcript=raw["transcript"],
                    num_samples=int(raw["num_samples"]), sample_rate_hz=int(raw["sample_rate_hz"]), words=words)
    return utt, bool(match)


def _parse_word(raw: Any, position: int, where: str, num_frames: int, path: str) -> Word:
    if not isinstance(raw, dict):
        raise UserError(f"alignment file {path}: {where}, word #{position} is not an object; {_REMAKE}")
    missing = [k for k in _WORD_FIELDS if k not in raw]
    here = f"{where}, word #{position} ({raw.get('word', '?')!r})"
    if missing:
        raise UserError(f"alignment file {path}: {here} has no field(s) {', '.join(missing)}; {_REMAKE}")
    if not isinstance(raw["word"], str) or not raw["word"]:
        raise UserError(f"alignment file {path}: {here}: the word text is empty; {_REMAKE}")
    start, end = raw["start_s"], raw["end_s"]
    if not _is_num(start) or not _is_num(end):
        raise UserError(f"alignment file {path}: {here}: start_s/end_s must be finite numbers; {_REMAKE}")
    if end < start:
        raise UserError(f"alignment file {path}: {here} ends ({end} s) before it starts ({start} s); {_REMAKE}")
    first, last = raw["first_frame"], raw["last_frame"]
    if not _is_int(first) or not _is_int(last):
        raise UserError(f"alignment file {path}: {here}: first_frame/last_frame must be integers; {_REMAKE}")
    if first > last:
        raise UserError(f"alignment file {path}: {here} has first_frame {first} > last_frame {last} (a word with "
                        f"no frame); {_REMAKE}")
    if first < 0 or last >= num_frames:
        raise UserError(f"alignment file {path}: {here} has frames {first}..{last} outside the audio's "
                        f"{num_frames} frames (0..{num_frames - 1}); {_REMAKE}")
    return Word(word=raw["word"], start_s=float(start), end_s=float(end), first_frame=int(first),
                last_frame=int(last))
