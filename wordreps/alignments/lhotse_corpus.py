"""Read lhotse manifests (a RecordingSet with a SupervisionSet, or a CutSet) into alignment utterances.

Read with lhotse itself (``lhotse.load_manifest``). An utterance is a **supervision**: its id (made safe for
file names), its transcript (``text``), and the alignment items of the chosen kind in its ``alignment`` dict
(``--tier words``: the ``word`` kind, as lhotse's LibriSpeech recipe stores MFA's word alignments; ``phones``:
``phone``; any other name: that kind). Supervisions without that kind are skipped and listed.

Times, as lhotse defines them: a supervision's ``start`` is relative to its recording (SupervisionSet) or to
its cut (CutSet, whose ``start`` is relative to the recording); an ``AlignmentItem``'s ``start`` is relative
to the **recording** (lhotse's docstring: "start time (w.r.t. the start of recording)"). The utterance's audio
is the supervision's span of the recording, ``[s, s + duration)`` with ``s`` = cut start + supervision
start, so a unit's time in the utterance is ``item.start - s``.

Audio: when the supervision is a whole mono recording stored as one file at the geometry's sample rate (the
common case: lhotse's LibriSpeech, TIMIT, ... manifests), that file is the utterance's audio, as for the other
formats. Anything else (a span of a longer recording, one channel of a multi-channel recording, a source that
is a URL, a command or in memory, a recording with transforms or at another sample rate) is refused with one
line, unless ``--lhotse_audio_dir DIR`` is given: then the span is loaded with lhotse's own
``Recording.load_audio(channels, offset, duration)`` (after ``Recording.resample`` when the rate differs) and
written to ``DIR/<id>.wav`` (32-bit float, exact), which becomes the utterance's audio. A supervision on
several channels at once is refused: the models take mono audio. MixedCut and PaddingCut are refused.

Which manifests: ``--path`` is a CutSet file, a SupervisionSet file (its RecordingSet is the file of the same
name with "supervisions" replaced by "recordings"), or a folder holding them (lhotse's
``<corpus>_{recordings,supervisions}_<split>.jsonl.gz`` names; with several splits, the one named by --split).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wordreps.alignments.corpus import audio_num_samples
from wordreps.alignments.geometry import FrameGeometry
from wordreps.alignments.markers import MarkerCounts
from wordreps.alignments.textgrids import PHONES_TIER, WORDS_TIER, WordInterval
from wordreps.alignments.utterances import (
    CorpusAlignment,
    CorpusBuilder,
    UnitOptions,
    safe_utterance_ids,
    unit_noun,
)
from wordreps.common.atomic import atomic_path
from wordreps.common.errors import UserError, one_line

MANIFEST_RE = re.compile(r"\.(jsonl|json)(\.gz)?$", re.I)
KINDS = ("cuts", "recordings", "supervisions")
_TOLERANCE_S = 1e-6   # lhotse rounds times to 8 decimals


def is_manifest_name(name: str) -> bool:
    return bool(MANIFEST_RE.search(name))


def manifest_kind(name: str) -> str | None:
    """"cuts", "recordings" or "supervisions" from a lhotse manifest's file name, else None."""
    if not is_manifest_name(name):
        return None
    low = name.lower()
    for kind in KINDS:
        if kind in low or kind.rstrip("s") + "_" in low:
            return kind
    return None


def folder_manifests(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """The lhotse manifests directly in ``folder``, by kind."""
    out: dict[str, list[Path]] = {k: [] for k in KINDS}
    for p in sorted(Path(folder).iterdir()):
        kind = manifest_kind(p.name) if p.is_file() else None
        if kind:
            out[kind].append(p)
    return out


@dataclass
class ManifestFiles:
    cuts: Path | None = None
    recordings: Path | None = None
    supervisions: Path | None = None

    def describe(self) -> str:
        return " + ".join(str(p) for p in (self.cuts, self.recordings, self.supervisions) if p is not None)


def _pick(paths: list[Path], split: str | None, kind: str, folder: str) -> Path | None:
    if len(paths) <= 1:
        return paths[0] if paths else None
    if split:
        named = [p for p in paths if re.search(rf"(^|[_.\-]){re.escape(split)}([_.\-]|$)", p.name)]
        if len(named) == 1:
            return named[0]
    raise UserError(f"folder {folder} holds {len(paths)} {kind} manifests ({', '.join(p.name for p in paths)}); "
                    "pick one with --split (a part of its name, e.g. dev-clean) or pass the file as --path")


def find_manifests(path: str, split: str | None) -> ManifestFiles:
    """Which manifest files ``--path`` names (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"lhotse manifest {path} does not exist; pass a CutSet or SupervisionSet file (.jsonl.gz) "
                        "or the folder holding them as --path")
    if p.is_dir():
        found = folder_manifests(p)
        cuts = _pick(found["cuts"], split, "cuts", path)
        recs = _pick(found["recordings"], split, "recordings", path)
        sups = _pick(found["supervisions"], split, "supervisions", path)
        if sups is not None and recs is not None:
            return ManifestFiles(recordings=recs, supervisions=sups)
        if cuts is not None:
            return ManifestFiles(cuts=cuts)
        raise UserError(f"folder {path} holds no lhotse CutSet, nor a RecordingSet with a SupervisionSet "
                        "(files named *cuts*/*recordings*/*supervisions*.jsonl.gz); pass the manifests' folder")
    kind = manifest_kind(p.name)
    if kind == "supervisions":
        recs = p.with_name(re.sub("supervisions", "recordings", p.name, flags=re.I))
        if not recs.is_file():
            raise UserError(f"supervision manifest {path} needs its RecordingSet {recs}, which does not exist; put "
                            "the recordings manifest beside it under that name")
        return ManifestFiles(recordings=recs, supervisions=p)
    if kind == "recordings":
        sups = p.with_name(re.sub("recordings", "supervisions", p.name, flags=re.I))
        if not sups.is_file():
            raise UserError(f"recording manifest {path} holds no alignments; pass its SupervisionSet (expected "
                            f"at {sups}) or a CutSet")
        return ManifestFiles(recordings=p, supervisions=sups)
    return ManifestFiles(cuts=p)  # a CutSet, or whatever lhotse finds it to be


def _load(path: Path, expected: str):
    import lhotse

    try:
        manifest = lhotse.load_manifest(path)
    except Exception as err:  # lhotse raises ValueError, KeyError, JSON errors, ... on a bad file
        detail = one_line(f"{type(err).__name__}: {err}")
        raise UserError(f"{path} cannot be read as a lhotse manifest ({detail}); re-create it with lhotse") from err
    name = type(manifest).__name__
    if name != expected:
        raise UserError(f"{path} is a lhotse {name}, expected a {expected}; pass the right manifest")
    return manifest


def alignment_kinds(tier: str) -> tuple[str, ...]:
    """Alignment dict keys tried for a tier: words -> word(s), phones -> phone(s), NAME -> NAME."""
    key = tier.strip().lower()
    if key == WORDS_TIER:
        return ("word", "words")
    if key == PHONES_TIER:
        return ("phone", "phones")
    return (tier.strip(),)


def _items_to_units(items, start_s: float, duration_s: float, where: str, options: UnitOptions,
                    lower: bool) -> tuple[list[WordInterval], MarkerCounts]:
    units: list[WordInterval] = []
    skipped = MarkerCounts()
    prev_end = -np.inf
    for number, item in enumerate(items, start=1):
        sym = str(item.symbol)
        # lhotse keeps times to 8 decimals (AlignmentItem.end); so do we, for times in the utterance
        a, d = round(float(item.start) - start_s, 8), float(item.duration)
        b = round(float(item.end) - start_s, 8)
        if d < 0:
            raise UserError(f"{where}, item {number} ({sym!r}) has a negative duration {d}; fix the manifest")
        if a < prev_end - _TOLERANCE_S:
            raise UserError(f"{where}, item {number} ({sym!r}, {item.start}-{item.end} s) overlaps or precedes the "
                            "item before it; fix the manifest")
        if a < -_TOLERANCE_S or a > duration_s + _TOLERANCE_S:
            raise UserError(f"{where}, item {number} ({sym!r}) starts at {item.start} s of its recording, outside "
                            f"the supervision's span ({start_s}-{start_s + duration_s} s); alignment times are "
                            "relative to the recording in lhotse: fix the manifest")
        prev_end = b
        if options.markers.is_marker(sym):
            skipped.add(sym)
            continue
        text = sym.strip()
        units.append(WordInterval(text.lower() if lower else text, max(a, 0.0), max(b, 0.0)))
    return units, skipped


def _whole_file(rec, sup, start_s: float, sample_rate_hz: int) -> tuple[str | None, str]:
    """(the file that is exactly this supervision's audio, or None with why not)."""
    from lhotse.utils import compute_num_samples

    channel = sup.channel
    channels = channel if isinstance(channel, (list, tuple)) else [channel]
    if len(channels) > 1:
        return None, f"is on {len(channels)} channels at once"
    if rec.num_channels != 1:
        return None, f"is on channel {channels[0]} of a {rec.num_channels}-channel recording"
    if len(rec.sources) != 1 or rec.sources[0].type != "file":
        kinds = ", ".join(sorted({s.type for s in rec.sources}))
        return None, f"has a recording whose audio is not one file (sources: {kinds})"
    if rec.transforms:
        return None, "has a recording with transforms (speed, volume, resampling)"
    if rec.sampling_rate != sample_rate_hz:
        return None, f"has a recording at {rec.sampling_rate} Hz, not the geometry's {sample_rate_hz} Hz"
    first = compute_num_samples(start_s, rec.sampling_rate)
    count = compute_num_samples(sup.duration, rec.sampling_rate)
    if first != 0 or abs(count - rec.num_samples) > 1:
        return None, (f"covers {start_s:.3f}-{start_s + sup.duration:.3f} s of a {rec.duration:.3f} s recording")
    return str(rec.sources[0].source), ""


def _write_span(rec, sup, start_s: float, sample_rate_hz: int, out: Path) -> int:
    """Load the supervision's span with lhotse (resampled if needed) and write it as float WAV; its length."""
    import soundfile as sf

    channel = sup.channel[0] if isinstance(sup.channel, (list, tuple)) else sup.channel
    if rec.sampling_rate != sample_rate_hz:
        rec = rec.resample(sample_rate_hz)
    try:
        samples = rec.load_audio(channels=channel, offset=start_s, duration=sup.duration)
    except Exception as err:  # missing file, URL unreachable, bad channel: lhotse raises many kinds
        detail = one_line(f"{type(err).__name__}: {err}")
        raise UserError(f"audio of supervision {sup.id} (recording {rec.id}) cannot be loaded with lhotse "
                        f"({detail}); check the recording's sources") from err
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size == 0:
        raise UserError(f"supervision {sup.id} (recording {rec.id}) has no audio samples; remove it")
    with atomic_path(out) as tmp:
        sf.write(str(tmp), samples, sample_rate_hz, subtype="FLOAT", format="WAV")
    return int(samples.size)


def _supervisions(files: ManifestFiles):
    """(recording, supervision, start of the supervision in its recording, in seconds) for every supervision."""
    from lhotse.cut import MixedCut, PaddingCut

    if files.cuts is not None:
        cuts = _load(files.cuts, "CutSet")
        for cut in cuts:
            if isinstance(cut, (MixedCut, PaddingCut)) or not getattr(cut, "has_recording", False):
                raise UserError(f"cut {cut.id} in {files.cuts} is a {type(cut).__name__} without one recording; "
                                "pass plain cuts (MonoCut) or the RecordingSet and SupervisionSet")
            for sup in cut.supervisions:
                yield cut.recording, sup, float(cut.start) + float(sup.start)
        return
    recordings = _load(files.recordings, "RecordingSet")
    supervisions = _load(files.supervisions, "SupervisionSet")
    by_id = {r.id: r for r in recordings}
    for sup in supervisions:
        rec = by_id.get(sup.recording_id)
        if rec is None:
            raise UserError(f"supervision {sup.id} in {files.supervisions} names recording {sup.recording_id}, "
                            f"which {files.recordings} does not hold; pass matching manifests")
        yield rec, sup, float(sup.start)


def align_lhotse(path: str, split: str | None, geometry: FrameGeometry, options: UnitOptions, *,
                 audio_dir: str | None = None) -> CorpusAlignment:
    """Every supervision with an alignment of the chosen kind (see the module docstring)."""
    files = find_manifests(path, split)
    kinds = alignment_kinds(options.tier)
    entries = list(_supervisions(files))
    ids = safe_utterance_ids([sup.id for _, sup, _ in entries])
    builder = CorpusBuilder(geometry, options)
    sr = geometry.sample_rate_hz
    lower = options.unit == WORDS_TIER
    skipped: list[str] = []
    for rec, sup, start_s in entries:
        alignment = sup.alignment or {}
        kind = next((k for k in kinds if k in alignment), None)
        if kind is None:
            skipped.append(sup.id)
            continue
        where = f"supervision {sup.id} ({files.describe()}), {kind!r} alignment"
        units, markers = _items_to_units(alignment[kind], start_s, float(sup.duration), where, options, lower)
        words = None
        word_kind = next((k for k in ("word", "words") if k in alignment), None)
        if word_kind == kind and lower:  # the words tier: its units are the words, read once
            words = [w.word for w in units]
        elif word_kind is not None:
            word_units, _ = _items_to_units(alignment[word_kind], start_s, float(sup.duration), where, options,
                                            lower=True)
            words = [w.word for w in word_units]
        file, why = _whole_file(rec, sup, start_s, sr)
        if file is not None:
            num_samples = audio_num_samples(file, sr)
            if num_samples != rec.num_samples:
                raise UserError(f"audio file {file} has {num_samples} samples but recording {rec.id} says "
                                f"{rec.num_samples}; the file changed since the manifest was made: re-create it")
            audio_path = file
        elif audio_dir is None:
            raise UserError(f"supervision {sup.id} {why}; the models need one mono file per utterance: pass "
                            "--lhotse_audio_dir DIR to write each such supervision's audio there, loaded with lhotse")
        elif isinstance(sup.channel, (list, tuple)) and len(sup.channel) > 1:
            raise UserError(f"supervision {sup.id} is on channels {list(sup.channel)} at once; the models take mono "
                            f"audio: give each {unit_noun(options.unit)} alignment one channel in the manifest")
        else:
            audio_path = os.path.join(audio_dir, ids[sup.id] + ".wav")
            num_samples = _write_span(rec, sup, start_s, sr, Path(audio_path))
        builder.add(ids[sup.id], audio_path, num_samples, units, where=where,
                    transcript=sup.text, words=words,
                    transcript_where="the supervision's text", skipped=markers)
    if not builder.utterances and skipped:
        raise UserError(f"no supervision in {files.describe()} has a {' or '.join(map(repr, kinds))} alignment "
                        f"({len(skipped)} without); add alignments (e.g. lhotse's LibriSpeech recipe with MFA "
                        "alignments) or pick another --tier")
    return builder.result(textgrid_root=files.describe(), audio_root=audio_dir or "", corpus_format="lhotse",
                          skipped=skipped, skipped_what=f"supervision(s) without a {kinds[0]!r} alignment")
