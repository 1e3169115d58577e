"""The alignment JSON: round trip, checksum, and every malformed file refused with file + utterance named."""
from __future__ import annotations

import copy
import hashlib
import json
import shlex
from pathlib import Path

import pytest

from wordreps.alignments.format import load_alignment, write_alignment
from wordreps.alignments.geometry import FrameGeometry, default_alignment_file
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Utterance, Word

G = FrameGeometry(16000, 320, 400)


def _utterances() -> list[Utterance]:
    # 16000 samples -> (16000 - 400) // 320 + 1 = 49 frames, 0..48.
    return [
        Utterance("9-9-0002", "a/9-9-0002.flac", "THE CAT THE", 16000, 16000,
                  [Word("the", 0.1, 0.16, 5, 7), Word("cat", 0.2, 0.5, 10, 24), Word("the", 0.6, 0.7, 30, 34)]),
        Utterance("9-9-0001", "a/9-9-0001.flac", "HI", 16000, 16000, [Word("hi", 0.9, 1.02, 45, 48)]),
    ]


def test_round_trip_sorted_with_checksum(tmp_path):
    path = tmp_path / "al.json"
    sha = write_alignment(path, G, _utterances(), textgrid_root="tg", audio_root="au",
                          transcript_match={"9-9-0002": False})
    al = load_alignment(path)
    assert al.geometry == G
    assert [u.utt_id for u in al.utterances] == ["9-9-0001", "9-9-0002"]  # sorted by id
    assert al.utterances[1].words == _utterances()[0].words  # repeats kept as separate occurrences
    assert al.transcript_match == {"9-9-0001": True, "9-9-0002": False}
    assert al.sha256 == sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert al.path == str(path) and al.num_words == 4
    raw = json.loads(path.read_text())
    assert raw["format"] == "wordreps.alignments" and raw["version"] == 1
    assert raw["frame_rule"] == "centre-in-word, nearest-to-midpoint fallback"
    assert set(raw["utterances"][0]) == {"id", "audio_path", "transcript", "num_samples", "sample_rate_hz",
                                         "transcript_match", "words"}


def _good(tmp_path: Path) -> dict:
    path = tmp_path / "good.json"
    write_alignment(path, G, _utterances())
    return json.loads(path.read_text())


def _refused(tmp_path: Path, obj_or_text, match: str) -> str:
    path = tmp_path / "bad.json"
    path.write_text(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    with pytest.raises(UserError, match=match) as info:
        load_alignment(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_alignment(tmp_path / "none.json")


def test_not_json(tmp_path):
    _refused(tmp_path, "{not json", "is not JSON")


def test_not_this_format(tmp_path):
    _refused(tmp_path, {"format": "wordreps.keys", "version": 1}, "not a wordreps alignment file")
    _refused(tmp_path, [1, 2], "not a wordreps alignment file")


def test_wrong_version(tmp_path):
    obj = _good(tmp_path)
    obj["version"] = 2
    _refused(tmp_path, obj, "version 2")


def test_missing_fields(tmp_path):
    obj = _good(tmp_path)
    del obj["geometry"]
    _refused(tmp_path, obj, "field geometry is missing")
    obj = _good(tmp_path)
    del obj["utterances"][1]["num_samples"]
    assert "9-9-0002" in _refused(tmp_path, obj, "num_samples")
    obj = _good(tmp_path)
    del obj["utterances"][1]["words"][2]["end_s"]
    message = _refused(tmp_path, obj, "end_s")
    assert "9-9-0002" in message and "word #2" in message


def test_end_before_start(tmp_path):
    obj = _good(tmp_path)
    obj["utterances"][1]["words"][1]["end_s"] = 0.1
    assert "9-9-0002" in _refused(tmp_path, obj, "before it starts")


def test_word_with_no_frame(tmp_path):
    obj = _good(tmp_path)
    obj["utterances"][0]["words"][0]["first_frame"] = 47
    obj["utterances"][0]["words"][0]["last_frame"] = 46
    assert "9-9-0001" in _refused(tmp_path, obj, "first_frame 47 > last_frame 46")


def test_frames_outside_the_audio(tmp_path):
    obj = _good(tmp_path)
    obj["utterances"][0]["words"][0]["last_frame"] = 49  # 49 frames: 0..48
    assert "9-9-0001" in _refused(tmp_path, obj, "outside the audio")


def test_sample_rate_disagrees_with_geometry_and_duplicate_ids(tmp_path):
    obj = _good(tmp_path)
    obj["utterances"][0]["sample_rate_hz"] = 24000
    _refused(tmp_path, obj, "24000 Hz")
    obj = _good(tmp_path)
    obj["utterances"].append(copy.deepcopy(obj["utterances"][0]))
    _refused(tmp_path, obj, "appears twice")


def test_write_refuses_what_load_would_refuse(tmp_path):
    bad = _utterances()
    bad[0].words[0] = Word("the", 0.1, 0.16, 5, 49)
    with pytest.raises(UserError, match="outside the audio"):
        write_alignment(tmp_path / "x.json", G, bad)
    assert list(tmp_path.iterdir()) == []


def test_require_geometry_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "al.json"
    write_alignment(path, G, _utterances())
    al = load_alignment(path)
    al.require_geometry(FrameGeometry(16000, 320, 400), "wavlm_large")  # same geometry: fine
    with pytest.raises(UserError) as info:
        al.require_geometry(FrameGeometry(24000, 320, 320), "encodecmae_base")
    message = str(info.value)
    assert str(path) in message and "encodecmae_base" in message
    assert "--sample_rate 24 --hop_samples 320 --receptive_field 320" in message


def test_require_geometry_command_for_a_tier_pastes_into_a_shell(tmp_path):
    """The suggested command quotes a tier name with a space, and names the file alignments_and_trans.py
    would write by default for that tier (the one naming rule, geometry.default_alignment_file)."""
    path = tmp_path / "al.json"
    write_alignment(path, G, _utterances(), unit="My Tier", tier="My Tier")
    with pytest.raises(UserError) as info:
        load_alignment(path).require_geometry(FrameGeometry(24000, 320, 320), "encodecmae_base")
    command = str(info.value).split("`")[1]
    argv = shlex.split(command)
    assert argv[argv.index("--tier") + 1] == "My Tier"
    assert argv[argv.index("--output") + 1] == "alignments/audio_alignments_13.33_24_My_Tier.json"
    assert default_alignment_file(FrameGeometry(24000, 320, 320), "My Tier") == argv[argv.index("--output") + 1]
    assert default_alignment_file(G) == "alignments/audio_alignments_20_16.json"
    assert default_alignment_file(G, "phones", stride="20.0") == "alignments/audio_alignments_20.0_16_phones.json"
