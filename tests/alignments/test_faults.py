"""Gaps of the alignment stage's bad-input tests, and bad alignment JSONs given to an embedding script.

- alignments/alignments_and_trans.py on a corpus with a zero-length FLAC (0 bytes, or a FLAC header counting
  0 samples, which libsndfile reports as endless) and with a full disk;
- embeddings/glove_embedding.py (the quickest embedding script to start; every script reads the alignment JSON
  through the same loader) given JSONs that are not the alignment tool's, or hold a word with no frame.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.faults import assert_refused, limit_file_size
from tests.helpers.scripts import run_script
from tests.helpers.text import all_words, write_alignment_json
from tests.helpers.textgrids import make_corpus, write_silent_flac
from wordreps.embeddings.tiny.text import write_glove

ALIGN = "alignments/alignments_and_trans.py"
GLOVE = "embeddings/glove_embedding.py"

UTTS = {
    "100-200-0000": {"num_samples": 24000, "words": [(0.1, 0.16, "the"), (0.2, 0.5, "cat")]},
    "101-300-0000": {"num_samples": 20000, "words": [(0.1, 0.3, "dog"), (0.3, 0.9, "ran")]},
}
BAD_FLAC = Path("dev-clean") / "101" / "300" / "101-300-0000.flac"


def _zero_samples(path: Path) -> None:
    """A FLAC marker and STREAMINFO only, its 36-bit total-samples field 0 (bits 128..163 from the block's end)."""
    write_silent_flac(path, 16000)
    data = path.read_bytes()
    info = int.from_bytes(data[8:42], "big") & ~(((1 << 36) - 1) << 128)
    path.write_bytes(b"fLaC" + bytes([0x80]) + data[5:8] + info.to_bytes(34, "big"))


@pytest.mark.parametrize("case", ["zero_bytes", "zero_samples_header"])
def test_zero_length_flac_is_refused_by_the_alignment_stage(case, tmp_path):
    tg, audio = make_corpus(tmp_path, UTTS)
    bad = audio / BAD_FLAC
    if case == "zero_bytes":
        bad.write_bytes(b"")
    else:
        _zero_samples(bad)
    out = tmp_path / "out" / "al.json"
    proc = run_script(ALIGN, "--quiet", "--sample_rate", "16", "--stride", "20", "--path", tg, "--audio_root", audio,
               "--output", out)
    assert_refused(proc, [str(bad), "is empty (0 samples)"], absent=[out], no_temps_in=[tmp_path])


def test_full_disk_while_writing_the_alignment_json(tmp_path):
    tg, audio = make_corpus(tmp_path, UTTS)
    out = tmp_path / "out" / "al.json"
    args = ["--quiet", "--sample_rate", "16", "--stride", "20", "--path", tg, "--audio_root", audio, "--output", out]
    proc = run_script(ALIGN, *args, preexec_fn=limit_file_size(300))  # the JSON is about 1.5 kB
    line = assert_refused(proc, [str(out), "no space left", "run the same command again"], absent=[out],
                          no_temps_in=[tmp_path])
    assert "free disk space" in line
    proc = run_script(ALIGN, *args)  # space freed: the same command writes the file
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["format"] == "wordreps.alignments"


# ------------------------------------------------------------------------------ alignment JSONs, embedding stage

def _good_alignment(tmp_path: Path) -> dict:
    return json.loads(write_alignment_json(tmp_path / "good.json").read_text())


def _keys_file(obj: dict) -> dict:
    return {"format": "wordreps.keys", "version": 1, "models": ["glove"], "rows": [["1272-128104-0000", 0, "mister"]]}


def _version_2(obj: dict) -> dict:
    return {**obj, "version": 2}


def _word_without_frame(obj: dict) -> dict:
    word = obj["utterances"][1]["words"][3]
    word["first_frame"], word["last_frame"] = word["last_frame"] + 1, word["last_frame"]
    return obj


def _frames_past_the_audio(obj: dict) -> dict:
    obj["utterances"][2]["words"][-1]["last_frame"] = 100000
    return obj


ALIGNMENT_CASES = {
    "not_json": (None, "is not JSON"),
    "keys_file_instead": (_keys_file, "is not a wordreps alignment file (format 'wordreps.keys'"),
    "other_version": (_version_2, "version 2"),
    "word_with_no_frame": (_word_without_frame, "word #3"),
    "frames_past_the_audio": (_frames_past_the_audio, "outside the audio"),
}


@pytest.mark.parametrize("case", list(ALIGNMENT_CASES))
def test_bad_alignment_json_given_to_an_embedding_script(case, tmp_path):
    mutate, says = ALIGNMENT_CASES[case]
    path = tmp_path / "al.json"
    if mutate is None:
        path.write_text('{"format": "wordreps.alignments", "version": 1, "utterances": [')  # cut short
    else:
        path.write_text(json.dumps(mutate(_good_alignment(tmp_path))))
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    out, cache = tmp_path / "emb", tmp_path / "cache"
    proc = run_script(GLOVE, "--glove", glove, "--path", path, "--out_dir", out, "--glove_cache", cache,
                      "--no_progress")
    line = assert_refused(proc, [str(path), says], absent=[out, cache], no_temps_in=[tmp_path])
    if case == "word_with_no_frame":
        assert "1272-128104-0001" in line  # the utterance is named too
