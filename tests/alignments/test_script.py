"""alignments/alignments_and_trans.py end to end, in a subprocess, on corpora written in tmp_path."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from tests.helpers.scripts import REPO, error_lines, run_script
from tests.helpers.textgrids import long_textgrid, make_corpus, write_silent_flac
from wordreps.alignments.format import load_alignment

ALIGN = "alignments/alignments_and_trans.py"


def run_align(args: list[str], cwd: Path | None = None):
    """The alignment script without its progress bar, from the repository root (or ``cwd``)."""
    return run_script(ALIGN, "--quiet", *args, cwd=cwd)

# 16 kHz, hop 320, R 400: frame t is centred at 12.5 ms + 20 ms * t.
BASE = {
    # 24000 samples = 1.5 s -> (24000 - 400) // 320 + 1 = 74 frames (0..73, last centre 1472.5 ms).
    "100-200-0000": {"num_samples": 24000, "words": [(0.10, 0.16, "the"), (0.2, 0.5, "cat"), (0.6, 0.605, "a"),
                                                     (0.7, 1.0, "the")]},
    # 16000 samples = 1.0 s -> 49 frames (0..48); "world" ends 10 ms past the audio (within one 20 ms hop).
    "100-200-0001": {"num_samples": 16000, "words": [(0.1, 0.3, "hello"), (0.95, 1.01, "world")]},
    "101-300-0000": {"num_samples": 20000, "words": [(0.1, 0.3, "dog"), (0.3, 0.9, "ran")]},
}
# By hand from the centres above:
#   the [100, 160) -> 112.5, 132.5, 152.5 -> t 5..7       cat [200, 500) -> 212.5 .. 492.5 -> t 10..24
#   a [600, 605): no centre; midpoint 602.5 is 10 ms from 592.5 (t=29) and 612.5 (t=30): tie -> later, t 30
#   the [700, 1000) -> 712.5 .. 992.5 -> t 35..49       hello [100, 300) -> t 5..14
#   world [950, 1010) -> 952.5 (47), 972.5 (48), 992.5 (49: past the 49 frames 0..48) -> t 47..48
#   dog [100, 300) -> t 5..14; ran [300, 900) -> 312.5 .. 892.5 -> t 15..44 (20000 samples: 61 frames)
EXPECTED_FRAMES = {"100-200-0000": [(5, 7), (10, 24), (30, 30), (35, 49)],
                   "100-200-0001": [(5, 14), (47, 48)],
                   "101-300-0000": [(5, 14), (15, 44)]}


def _corpus(tmp_path: Path, utterances: dict | None = None, **kw) -> tuple[Path, Path]:
    return make_corpus(tmp_path, utterances or BASE, **kw)


def test_writes_default_file_with_hand_computed_frames(tmp_path):
    _corpus(tmp_path)
    proc = run_align(["--sample_rate", "16", "--stride", "20", "--path", "textgrids", "--audio_root", "audio"],
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "alignments" / "audio_alignments_20_16.json"
    assert "3 utterances, 8 words, 0 transcript mismatches" in proc.stdout and str(out.relative_to(tmp_path)) in \
        proc.stdout
    al = load_alignment(out)
    assert [u.utt_id for u in al.utterances] == sorted(BASE)
    for utt in al.utterances:
        assert [(w.first_frame, w.last_frame) for w in utt.words] == EXPECTED_FRAMES[utt.utt_id]
        assert [(w.start_s, w.end_s, w.word) for w in utt.words] == BASE[utt.utt_id]["words"]
        speaker, chapter, _ = utt.utt_id.split("-")
        # stored as given: relative to the working directory
        assert utt.audio_path == os.path.join("audio", "dev-clean", speaker, chapter, utt.utt_id + ".flac")
        assert utt.num_samples == BASE[utt.utt_id]["num_samples"]
    raw = json.loads(out.read_text())
    assert raw["utterances"][0]["transcript"] == "THE CAT A THE"
    assert all(u["transcript_match"] for u in raw["utterances"])


def test_short_format_and_split_folder_paths_give_the_same_file(tmp_path):
    long_tg, audio = _corpus(tmp_path / "long")
    short_tg, _ = _corpus(tmp_path / "short", fmt="short")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert run_align(["--sample_rate", "16", "--stride", "20", "--path", str(long_tg), "--audio_root", str(audio),
                       "--output", str(a)]).returncode == 0
    # --path and --audio_root pointing straight at the split folders
    proc = run_align(["--sample_rate", "16", "--stride", "20", "--path", str(short_tg / "dev-clean"),
                       "--audio_root", str(audio / "dev-clean"), "--output", str(b)])
    assert proc.returncode == 0, proc.stderr
    ua, ub = load_alignment(a).utterances, load_alignment(b).utterances
    assert ua == ub


def test_24_khz_names_and_geometries_agree(tmp_path):
    # 75 Hz at 24 kHz, R = 320: centres at (320 t + 160) / 24000 s. "word" [0.14, 0.2) holds 140 ms (t=10,
    # exactly on its start), 153.3, 166.7, 180, 193.3 ms (t=14).
    utts = {"7-8-0000": {"num_samples": 24000, "words": [(0.14, 0.2, "word"), (0.3, 0.5, "two")]}}
    make_corpus(tmp_path, utts, sample_rate_hz=24000)
    outs = []
    for flags in (["--stride", "13.33", "--sample_rate", "24"], ["--model", "encodecmae_base"],
                  ["--frame_rate", "75", "--sample_rate", "24"]):
        out = tmp_path / "alignments" / "audio_alignments_13.33_24.json"
        out.unlink(missing_ok=True)
        proc = run_align([*flags, "--path", "textgrids", "--audio_root", "audio"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    al = load_alignment(tmp_path / "alignments" / "audio_alignments_13.33_24.json")
    assert (al.geometry.sample_rate_hz, al.geometry.hop_samples, al.geometry.receptive_field_samples) == \
        (24000, 320, 320)
    # "two" [300, 500) ms: (300*24 - 160) / 320 = 22 -> t=22 centred at 300 ms exactly (in);
    # (500*24 - 160) / 320 = 37 -> t=37 centred at 500 ms (out): t 22..36.
    assert [(w.first_frame, w.last_frame) for w in al.utterances[0].words] == [(10, 14), (22, 36)]


def test_transcript_mismatch_is_recorded_and_strict_refuses(tmp_path):
    utts = dict(BASE)
    utts["100-200-0001"] = {**BASE["100-200-0001"], "transcript": "HELLO THERE WORLD"}
    utts["101-300-0000"] = {**BASE["101-300-0000"], "transcript": "dog RAN"}  # case differs only: a match
    tg, audio = _corpus(tmp_path, utts)
    out = tmp_path / "out.json"
    args = ["--sample_rate", "16", "--stride", "20", "--path", str(tg), "--audio_root", str(audio), "--output",
            str(out)]
    proc = run_align(args)
    assert proc.returncode == 0, proc.stderr
    assert "1 transcript mismatches" in proc.stdout
    assert "1 utterance(s) whose TextGrid words differ" in proc.stderr and "100-200-0001" in proc.stderr
    raw = json.loads(out.read_text())
    assert {u["id"]: u["transcript_match"] for u in raw["utterances"]} == \
        {"100-200-0000": True, "100-200-0001": False, "101-300-0000": True}
    out.unlink()
    proc = run_align([*args, "--strict"])
    _assert_refused(proc, out, "100-200-0001.TextGrid")
    assert "100-200.trans.txt" in error_lines(proc)[0] and "'world' vs transcript 'there'" in proc.stderr


def test_allow_past_end_clips(tmp_path):
    utts = {"1-2-0000": {"num_samples": 16000, "words": [(0.1, 0.3, "in"), (0.9, 1.2, "past")],
                         "textgrid": long_textgrid(1.2, {"words": [(0.1, 0.3, "in"), (0.9, 1.2, "past")]})}}
    tg, audio = _corpus(tmp_path, utts)
    out = tmp_path / "o.json"
    args = ["--sample_rate", "16", "--stride", "20", "--path", str(tg), "--audio_root", str(audio), "--output", str(out)]
    _assert_refused(run_align(args), out, "1-2-0000.TextGrid")
    proc = run_align([*args, "--allow_past_end"])
    assert proc.returncode == 0 and "1 word(s) ending past their audio were clipped" in proc.stderr
    words = load_alignment(out).utterances[0].words
    # [0.9, 1.0) after clipping: centres 912.5 (45) .. 972.5 (48); 992.5 would be t=49, past the 49 frames.
    assert (words[1].start_s, words[1].end_s, words[1].first_frame, words[1].last_frame) == (0.9, 1.0, 45, 48)


# ---------------------------------------------------------------------------------------------- bad input

def _assert_refused(proc, out: Path, names: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = error_lines(proc)
    assert len(errors) == 1, proc.stderr
    assert names in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith("." + out.name)]  # no temp file left


def _tg(words_tier, name="words", xmax=1.0) -> str:
    return long_textgrid(xmax, {name: words_tier, "phones": []})


# Each case: (id, mutate(tmp_path, tg_root, audio_root) -> file the error must name, extra flags)
def _set_tg(text: str | bytes):
    def mutate(tg: Path, audio: Path) -> str:
        path = tg / "dev-clean" / "100" / "200" / "100-200-0001.TextGrid"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return "100-200-0001.TextGrid"
    return mutate


def _remove_trans(tg: Path, audio: Path) -> str:
    (audio / "dev-clean" / "101" / "300" / "101-300.trans.txt").unlink()
    return "101-300.trans.txt"


def _drop_trans_line(tg: Path, audio: Path) -> str:
    path = audio / "dev-clean" / "100" / "200" / "100-200.trans.txt"
    path.write_text("".join(line for line in path.read_text().splitlines(True) if "0001" not in line))
    return "100-200.trans.txt"


def _remove_audio(tg: Path, audio: Path) -> str:
    (audio / "dev-clean" / "101" / "300" / "101-300-0000.flac").unlink()
    return "101-300-0000.flac"


def _stereo(tg: Path, audio: Path) -> str:
    write_silent_flac(audio / "dev-clean" / "101" / "300" / "101-300-0000.flac", 20000, 16000, channels=2)
    return "101-300-0000.flac"


def _corrupt_audio(tg: Path, audio: Path) -> str:
    (audio / "dev-clean" / "101" / "300" / "101-300-0000.flac").write_bytes(b"fLaC not really")
    return "101-300-0000.flac"


def _rate_24k(tg: Path, audio: Path) -> str:
    write_silent_flac(audio / "dev-clean" / "101" / "300" / "101-300-0000.flac", 30000, 24000)
    return "101-300-0000.flac"


BAD_CASES = [
    ("unreadable", _set_tg(b"\x80\x81 not text \xfe"), "not UTF-8"),
    ("garbage", _set_tg("this is not a TextGrid\n"), "cannot be parsed"),
    ("empty", _set_tg(""), "is empty"),
    ("no_words_tier", _set_tg(_tg([(0.1, 0.3, "hello")], name="orthography")), "tiers: 'orthography', 'phones'"),
    ("out_of_order", _set_tg(_tg([(0.5, 0.7, "world"), (0.1, 0.3, "hello")])), "out of order"),
    ("overlapping", _set_tg(_tg([(0.1, 0.3, "hello"), (0.25, 0.7, "world")])), "overlaps"),
    ("end_before_start", _set_tg(_tg([(0.1, 0.3, "hello"), (0.7, 0.5, "world")])), "before it starts"),
    # 1.05 s ends 50 ms after the 1.0 s audio, more than one 20 ms hop
    ("end_past_audio", _set_tg(_tg([(0.1, 0.3, "hello"), (0.5, 1.05, "world")], xmax=1.05)), "--allow_past_end"),
    ("missing_transcript_file", _remove_trans, "does not exist"),
    ("missing_transcript_line", _drop_trans_line, "no line for utterance 100-200-0001"),
    ("missing_audio", _remove_audio, "does not exist"),
    ("stereo_audio", _stereo, "2 channels"),
    ("corrupt_audio", _corrupt_audio, "cannot be read"),
    ("wrong_rate", _rate_24k, "resample_corpus.py --src"),
]


@pytest.mark.parametrize("mutate,says", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_one_error_line_and_no_output(tmp_path, mutate, says):
    tg, audio = _corpus(tmp_path)
    names = mutate(tg, audio)
    out = tmp_path / "out" / "al.json"
    out.parent.mkdir()
    proc = run_align(["--sample_rate", "16", "--stride", "20", "--path", str(tg), "--audio_root", str(audio),
                       "--output", str(out)])
    _assert_refused(proc, out, names)
    assert says in error_lines(proc)[0]


def test_bad_paths_and_geometry_flags(tmp_path):
    tg, audio = _corpus(tmp_path)
    out = tmp_path / "al.json"
    base = ["--path", str(tg), "--audio_root", str(audio), "--output", str(out)]
    _assert_refused(run_align(["--sample_rate", "16", "--stride", "20", *base[2:], "--path", str(tmp_path / "nope")]),
                    out, "nope")
    _assert_refused(run_align(["--sample_rate", "16", "--stride", "20", *base, "--split", "test-other"]), out,
                    "test-other")
    proc = run_align(["--sample_rate", "16", "--stride", "0.7", *base])  # 11.2 samples
    _assert_refused(proc, out, "--stride 0.7")
    assert "--frame_rate" in error_lines(proc)[0]
    _assert_refused(run_align(["--model", "bert-base-uncased", *base]), out, "bert-base-uncased")
    # the 24 kHz copy not made yet: the error gives the command that makes it
    (tmp_path / "audio").rename(tmp_path / "audio-16k")
    proc = run_align(["--model", "encodecmae_base", "--path", "textgrids", "--audio_root", "audio-24k", "--output",
                       str(out)], cwd=tmp_path)
    _assert_refused(proc, out, "audio-24k")
    assert "resample_corpus.py --src audio-16k --dst audio-24k --rate 24000" in error_lines(proc)[0]


# ------------------------------------------------------------------------------------------- demo corpus

DEMO_TG = REPO / "datasets" / "demo" / "alignments"
DEMO_AUDIO = REPO / "datasets" / "demo" / "librispeech-clean-16k"


@pytest.mark.skipif(not (DEMO_TG / "dev-clean").is_dir(), reason="demo corpus not built")
def test_demo_corpus_frames_hold_every_centre_inside_each_word(tmp_path):
    out = tmp_path / "demo.json"
    proc = run_align(["--sample_rate", "16", "--stride", "20", "--path", "datasets/demo/alignments",
                       "--audio_root", "datasets/demo/librispeech-clean-16k", "--output", str(out)])
    assert proc.returncode == 0, proc.stderr
    al = load_alignment(out)
    assert len(al.utterances) >= 12 and all(al.transcript_match.values())  # synthesized: ground truth
    g = al.geometry
    for utt in al.utterances:
        assert utt.words and os.path.exists(REPO / utt.audio_path)
        n = g.num_frames(utt.num_samples)
        for w in utt.words:
            a, b = Fraction(str(w.start_s)), Fraction(str(w.end_s))
            inside = [t for t in range(n)
                      if a <= Fraction(2 * t * g.hop_samples + g.receptive_field_samples, 2 * g.sample_rate_hz) < b]
            assert 0 <= w.first_frame <= w.last_frame < n
            if inside:
                assert (w.first_frame, w.last_frame) == (inside[0], inside[-1]), (utt.utt_id, w)
            else:  # too short for a centre: one frame
                assert w.first_frame == w.last_frame
