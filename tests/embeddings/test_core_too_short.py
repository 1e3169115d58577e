"""Audio the model cannot take (issue 9): shorter than its receptive field (wav2vec2: 400 samples). Found from
the alignment's sample counts before anything is written, one line naming the utterance, its length and the
model's minimum; --skip_too_short skips and records them, and the run's summary says how many."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.helpers.faults import assert_refused
from tests.helpers.speech import run_speech, s3prl_reference, tiny_model
from wordreps.alignments.format import write_alignment
from wordreps.alignments.geometry import FrameGeometry
from wordreps.embeddings.base import Utterance, Word

MODEL = "tiny-s3prl-wav2vec2.pt"
LENGTHS = {"utt-a": 16000, "utt-b": 399, "utt-c": 400, "utt-d": 1}  # 400 = the receptive field: one frame


def _corpus(folder: Path, lengths: dict[str, int]) -> tuple[Path, dict[str, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    audio, utts = {}, []
    for utt_id, n in lengths.items():
        audio[utt_id] = (0.2 * rng.standard_normal(n)).astype(np.float32)
        path = folder / f"{utt_id}.flac"
        sf.write(path, audio[utt_id], 16000, subtype="PCM_24")
        audio[utt_id] = sf.read(path, dtype="float32")[0]  # what the loader will read back
        last = max(0, (n - 400) // 320)
        utts.append(Utterance(utt_id, str(path), "X", n, 16000, [Word("x", 0.0, n / 16000, 0, last)]))
    al = folder / "al.json"
    write_alignment(al, FrameGeometry(16000, 320, 400), utts)
    return al, audio


def test_too_short_audio_is_one_line_before_anything_is_written(tmp_path):
    al, _ = _corpus(tmp_path / "corpus", LENGTHS)
    out = tmp_path / "out"
    proc = run_speech(tiny_model(MODEL), al, out)
    assert_refused(proc, ["utterance utt-b", "399 samples (24.9 ms)", "400 samples (25.0 ms)", "receptive field",
                          "1 other utterance", "--skip_too_short"], absent=[out])


def test_skip_too_short_skips_records_and_extracts_the_rest(tmp_path):
    al, audio = _corpus(tmp_path / "corpus", LENGTHS)
    out = tmp_path / "out"
    proc = run_speech(tiny_model(MODEL), al, out, "--skip_too_short", "--dtype", "float32", "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "note: skipped 2 utterance(s) shorter than the 400 samples" in proc.stderr
    folder = out / Path(MODEL).stem
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["skipped_too_short"] == {"min_samples": 400, "utterances": {"utt-b": 399, "utt-d": 1}}
    assert sorted(manifest["utterances"]) == ["utt-a", "utt-c"]
    assert sorted(p.name for p in (folder / "utts").iterdir()) == ["utt-a.npy", "utt-c.npy"]
    # the shortest accepted utterance (exactly one frame) holds the model's own frame 0, layer by layer
    got = np.load(folder / "utts" / "utt-c.npy")
    want = np.stack([h[0] for h in s3prl_reference(tiny_model(MODEL), audio["utt-c"])])
    np.testing.assert_allclose(got[:, 0, :], want, rtol=1e-4, atol=1e-5)
    # without short utterances the flag changes nothing: no record, so the same manifest either way
    from types import SimpleNamespace

    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.extract import too_short_utterances

    al2, _ = _corpus(tmp_path / "long", {"utt-a": 16000, "utt-c": 400})
    alignment = load_alignment(al2)
    model = SimpleNamespace(min_samples=lambda: 400, model_name="m")
    assert too_short_utterances(model, alignment, skip=True) is None and len(alignment.utterances) == 2


def test_the_summary_says_how_many(tmp_path):
    from wordreps.pipeline.summary import too_short_lines

    manifest = {"skipped_too_short": {"min_samples": 400, "utterances": {"b": 399, "d": 1}}}
    lines = too_short_lines("tiny", manifest)
    assert "skipped **2** utterance(s)" in lines[-1] and "400 samples" in lines[-1] and "`b`, `d`" in lines[-1]
    assert too_short_lines("tiny", {"utterances": {}}) == []


def test_the_runner_passes_the_flags_on(tmp_path):
    """reproduce.py --skip_too_short reaches the audio models' steps only; --num_threads every torch step."""
    from argparse import Namespace

    from wordreps.pipeline import runner as P

    args = Namespace(models=None, out_root=str(tmp_path / "out"), device="cpu", units="words", glove_oov=None,
                     precision="auto", num_threads=1, no_progress=True, skip_too_short=True)
    steps = {s.name: s for s in P.build_plan(P.demo_config(args)) if s.name.startswith("embeddings of ")}
    assert len(steps) == 5
    for step in steps.values():
        audio = step.script in ("embeddings/speech_embedding.py", "embeddings/audio_embeddings.py")
        assert ("--skip_too_short" in step.args) == audio, step.command()
        if step.script == "embeddings/glove_embedding.py":
            assert "--num_threads" not in step.args, step.command()
        else:
            assert step.args[step.args.index("--num_threads") + 1] == "1", step.command()
        assert "--no_progress" in step.args
