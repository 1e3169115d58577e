"""The thesis's own command, as its README writes it, in both layouts, as real subprocesses in temporary folders:

    python3 alignments/alignments_and_trans.py --sample_rate 16 --stride 10 --path '../datasets/alignments'

run from the repository, with ``datasets/`` beside the repository (the thesis's layout), and the toolkit's own
``--path datasets/alignments`` with the data inside it. Without --audio_root the audio is found in either place,
and one line says which folder was used.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.helpers.references import frame_span
from tests.helpers.scripts import REPO, run_script
from tests.helpers.textgrids import make_corpus
from wordreps.alignments.format import load_alignment

UTTS = {"100-200-0000": {"num_samples": 24000, "words": [(0.10, 0.16, "the"), (0.2, 0.5, "cat")]},
        "101-300-0000": {"num_samples": 20000, "words": [(0.1, 0.3, "dog"), (0.3, 0.9, "ran")]}}
THESIS_ARGS = ["--sample_rate", "16", "--stride", "10"]


def _layout(root: Path, data_inside: bool) -> Path:
    """root/repo holding the script (run as alignments/alignments_and_trans.py), and the data in root/datasets
    (beside) or root/repo/datasets (inside). Returns the repository folder."""
    repo = root / "repo"
    (repo / "alignments").mkdir(parents=True)
    shutil.copyfile(REPO / "alignments" / "alignments_and_trans.py", repo / "alignments" / "alignments_and_trans.py")
    datasets = (repo if data_inside else root) / "datasets"
    tg, audio = make_corpus(root / "made", UTTS)
    datasets.mkdir()
    tg.rename(datasets / "alignments")
    audio.rename(datasets / "librispeech-clean-16k")
    return repo


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """The copy of the script in ``repo``, run from ``repo``."""
    return run_script(repo / "alignments" / "alignments_and_trans.py", *args, cwd=repo)


def _check(repo: Path, audio_root: str) -> None:
    out = repo / "alignments" / "audio_alignments_10_16.json"
    al = load_alignment(out)
    assert (al.geometry.sample_rate_hz, al.geometry.hop_samples, al.geometry.receptive_field_samples) == \
        (16000, 160, 160)
    for utt in al.utterances:
        spk, chap, _ = utt.utt_id.split("-")
        assert utt.audio_path == f"{audio_root}/dev-clean/{spk}/{chap}/{utt.utt_id}.flac"
        assert (repo / utt.audio_path).is_file()
        expected = [(w, s, e, *frame_span(s, e, UTTS[utt.utt_id]["num_samples"], hop_samples=160, receptive_field_samples=160))
                    for s, e, w in UTTS[utt.utt_id]["words"]]
        assert [(w.word, w.start_s, w.end_s, w.first_frame, w.last_frame) for w in utt.words] == expected


def test_thesis_command_with_the_data_beside_the_repository(tmp_path):
    repo = _layout(tmp_path, data_inside=False)
    proc = _run(repo, *THESIS_ARGS, "--path", "../datasets/alignments")
    assert proc.returncode == 0, proc.stderr
    assert ("note: audio from ../datasets/librispeech-clean-16k (beside the TextGrid folder; no --audio_root "
            "given)") in proc.stderr
    assert "corpus format: librispeech" in proc.stderr
    _check(repo, "../datasets/librispeech-clean-16k")


def test_toolkit_command_with_the_data_inside_the_repository(tmp_path):
    repo = _layout(tmp_path, data_inside=True)
    proc = _run(repo, *THESIS_ARGS, "--path", "datasets/alignments")
    assert proc.returncode == 0, proc.stderr
    assert "note: audio from datasets/librispeech-clean-16k (the default folder; no --audio_root given)" in \
        proc.stderr
    _check(repo, "datasets/librispeech-clean-16k")
    # the thesis's path names a folder beside the repository, which this layout does not have: one clear line
    proc = _run(repo, *THESIS_ARGS, "--path", "../datasets/alignments")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: TextGrid folder ../datasets/alignments does not exist; pass the right --path" in proc.stderr


def test_no_audio_in_either_place_names_both(tmp_path):
    repo = _layout(tmp_path, data_inside=False)
    shutil.rmtree(tmp_path / "datasets" / "librispeech-clean-16k")
    proc = _run(repo, *THESIS_ARGS, "--path", "../datasets/alignments")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: no audio folder at datasets/librispeech-clean-16k or ../datasets/librispeech-clean-16k (looked there "
        "because no --audio_root was given); pass --audio_root, or put the audio in one of them"]
    assert not (repo / "alignments" / "audio_alignments_10_16.json").exists()
