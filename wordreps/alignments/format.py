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
import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Sequence

from wordreps.alignments.geometry import FrameGeometry, default_alignment_file
from wordreps.common import schema as S
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
            name = default_alignment_file(geometry, self.unit)
            # a tier's name may hold spaces or quotes: the command must paste into a shell as it is
            tier = "" if self.unit == UNIT_WORDS else f" --tier {shlex.quote(self.tier)}"
            raise UserError(
                f"alignment file {self.path} was made for frames of {self.geometry.describe()}, but model {model} "
                f"has {geometry.describe()}; make a matching alignment with `python3 alignments/alignments_and_trans.py "
                f"{geometry.cli_flags()}{tier} --output {name}` (or --model), then pass --path {name}")


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

def _word_label(i: int, raw: Any) -> str:
    return f"word #{i} ({raw.get('word', '?')!r})" if isinstance(raw, dict) else f"word #{i}"


def _utterance_label(i: int, raw: Any) -> str:
    uid = raw.get("id") if isinstance(raw, dict) else None
    return f"utterance {uid}" if isinstance(uid, str) and uid else f"utterance #{i}"


_WORD = S.Obj({"word": S.Str(nonempty=True), "start_s": S.Num(), "end_s": S.Num(), "first_frame": S.Int(),
               "last_frame": S.Int()})
_UTTERANCE = S.Obj({"id": S.Str(nonempty=True, file_name=True), "audio_path": S.Str(), "transcript": S.Str(),
                    "num_samples": S.Int(lo=1), "sample_rate_hz": S.Int(lo=1),
                    "words": S.List(_WORD, label=_word_label)},
                   optional={"transcript_match": S.Bool()})
# The declared shape of an alignment JSON (version 1); the module docstring shows an example.
SCHEMA = S.Obj(
    {"geometry": S.Obj({"sample_rate_hz": S.Int(lo=1), "hop_samples": S.Int(lo=1),
                        "receptive_field_samples": S.Int(lo=1)}),
     "utterances": S.List(_UTTERANCE, label=_utterance_label)},
    optional={"unit": S.Str(nonempty=True), "tier": S.Str(nonempty=True), "frame_rule": S.Str(),
              "textgrid_root": S.Str(), "audio_root": S.Str(), "corpus_format": S.Str(),
              "markers": S.Obj({}), "skipped_markers": S.Map(S.Int(lo=0))})


def _parse(obj: Any, path: str) -> Alignment:
    S.check_format(obj, FORMAT, VERSION, f"alignment file {path}", "wordreps alignment file",
                   "pass the JSON written by alignments/alignments_and_trans.py")
    S.validate(obj, SCHEMA, f"alignment file {path}", _REMAKE)
    geometry = FrameGeometry.from_dict(obj["geometry"])
    utterances: list[Utterance] = []
    matches: dict[str, bool] = {}
    seen: set[str] = set()
    for raw in obj["utterances"]:
        utt, match = _parse_utterance(raw, geometry, path)
        if utt.utt_id in seen:
            raise UserError(f"alignment file {path}: utterance {utt.utt_id} appears twice; {_REMAKE}")
        seen.add(utt.utt_id)
        utterances.append(utt)
        matches[utt.utt_id] = match
    unit = obj.get("unit", UNIT_WORDS)
    tier = obj.get("tier", unit)
    return Alignment(geometry=geometry, utterances=utterances, path=path, sha256="",
                     textgrid_root=obj.get("textgrid_root", ""), audio_root=obj.get("audio_root", ""),
                     frame_rule=obj.get("frame_rule", FRAME_RULE), transcript_match=matches, unit=unit, tier=tier)


def _parse_utterance(raw: dict, geometry: FrameGeometry, path: str) -> tuple[Utterance, bool]:
    """One utterance whose fields have their declared types (:data:`SCHEMA`); checks what a schema cannot."""
    where = f"utterance {raw['id']}"
    if raw["sample_rate_hz"] != geometry.sample_rate_hz:
        raise UserError(f"alignment file {path}: {where} is at {raw['sample_rate_hz']!r} Hz but the file's "
                        f"geometry is at {geometry.sample_rate_hz} Hz; {_REMAKE}")
    num_frames = geometry.num_frames(raw["num_samples"])
    words = [_parse_word(w, i, where, num_frames, path) for i, w in enumerate(raw["words"])]
    utt = Utterance(utt_id=raw["id"], audio_path=raw["audio_path"], transcript=raw["transcript"],
                    num_samples=raw["num_samples"], sample_rate_hz=raw["sample_rate_hz"], words=words)
    return utt, raw.get("transcript_match", True)


def _parse_word(raw: dict, position: int, where: str, num_frames: int, path: str) -> Word:
    here = f"{where}, word #{position} ({raw['word']!r})"
    start, end = raw["start_s"], raw["end_s"]
    if end < start:
        raise UserError(f"alignment file {path}: {here} ends ({end} s) before it starts ({start} s); {_REMAKE}")
    first, last = raw["first_frame"], raw["last_frame"]
    if first > last:
        raise UserError(f"alignment file {path}: {here} has first_frame {first} > last_frame {last} (a word with "
                        f"no frame); {_REMAKE}")
    if first < 0 or last >= num_frames:
        raise UserError(f"alignment file {path}: {here} has frames {first}..{last} outside the audio's "
                        f"{num_frames} frames (0..{num_frames - 1}); {_REMAKE}")
    return Word(word=raw["word"], start_s=float(start), end_s=float(end), first_frame=first, last_frame=last)
