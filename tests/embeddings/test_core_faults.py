"""Faults with real subprocesses of embeddings/speech_embedding.py: kill -9 and resume, two concurrent shards,
a full disk, and bad input (one `error:` line, exit 2, no output left).

The model is the tiny s3prl checkpoint with a layer-norm feature encoder (batches mix lengths, so a resumed
run really has to reproduce the same batches to be byte-identical).
"""
from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import limit_file_size
from tests.helpers.files import folder_bytes, temp_files
from tests.helpers.scripts import REPO, error_lines, script_env
from tests.helpers.speech import run_speech, speech_cmd, tiny_model, write_corpus
from wordreps.alignments.geometry import FrameGeometry

MODEL = "tiny-s3prl-wav2vec2-large.pt"
SLUG = "tiny-s3prl-wav2vec2-large"
BATCH = ("--batch_seconds", "5")


def _corpus(folder: Path) -> Path:
    rng = np.random.default_rng(11)
    utts = {}
    for i in range(22):
        dur = float(rng.uniform(0.8, 2.6))
        n = int(dur * 16000)
        audio = (0.1 * rng.standard_normal(n)).astype(np.float32)
        k = max(1, int(dur * 2.5))
        edges = np.linspace(0.05, dur - 0.05, k + 1)
        utts[f"spk-{i:03d}"] = (audio, [(f"w{j}", float(edges[j]), float(edges[j + 1] - 0.01)) for j in range(k)])
    # one long utterance with many words: the largest .npy (used by the full-disk test)
    n = 6 * 16000
    edges = np.linspace(0.05, 5.95, 49)
    utts["spk-999"] = ((0.1 * rng.standard_normal(n)).astype(np.float32),
                       [(f"x{j}", float(edges[j]), float(edges[j + 1] - 0.01)) for j in range(48)])
    return write_corpus(folder, utts)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    al = _corpus(base / "corpus")
    model = tiny_model(MODEL)
    proc = run_speech(model, al, base / "ref", *BATCH)
    assert proc.returncode == 0, proc.stderr
    return {"al": al, "model": model, "ref": base / "ref" / SLUG}


def _done_lines(folder: Path) -> int:
    total = 0
    for f in folder.glob("done.*.jsonl"):
        total += f.read_bytes().count(b"\n")
    return total


def _run_and_kill(cmd, folder: Path, *, after_records: int | None = None, after_s: float | None = None) -> int:
    """Start ``cmd`` and SIGKILL it after ``after_records`` done lines (or ``after_s`` seconds); returns rc."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        while proc.poll() is None and time.monotonic() - start < 90:
            if after_records is not None and _done_lines(folder) >= after_records:
                break
            if after_s is not None and time.monotonic() - start >= after_s:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_kill_9_at_several_points_then_resume_is_byte_identical(setup, tmp_path):
    out = tmp_path / "emb"
    folder = out / SLUG
    cmd = speech_cmd(setup["model"], setup["al"], out, *BATCH)
    killed = 0
    rng = random.Random(5)
    rc = _run_and_kill(cmd, folder, after_s=rng.uniform(2.0, 4.0))  # a random moment (maybe before any file)
    killed += rc == -signal.SIGKILL
    for k in (3, 10, 17):
        rc = _run_and_kill(cmd, folder, after_records=k)
        killed += rc == -signal.SIGKILL
        # whatever is on disk now is whole: every visible .npy with a done record loads
        for line in (folder / "done.shard-0-of-1.jsonl").read_bytes().splitlines():
            try:
                utt = json.loads(line)["utt"]
            except ValueError:
                continue  # a torn last line
            np.load(folder / "utts" / f"{utt}.npy")
    assert killed >= 2, "the run finished before it could be killed; make the corpus bigger"
    proc = run_speech(setup["model"], setup["al"], out, *BATCH)
    assert proc.returncode == 0, proc.stderr
    assert temp_files(folder) == []
    assert folder_bytes(folder) == folder_bytes(setup["ref"])  # done file included: same records, same order


def _batches(al: Path, budget_s: float) -> list[list[str]]:
    """The batch plan as the extraction core documents it, written out here: utterances longest first (ties by
    id), a batch grows while (its size + 1) x its longest duration stays within the budget."""
    utts = sorted(json.loads(al.read_text())["utterances"], key=lambda u: (-u["num_samples"], u["id"]))
    batches: list[list[str]] = []
    longest = 0.0
    for u in utts:
        seconds = u["num_samples"] / u["sample_rate_hz"]
        if batches and batches[-1] and max(longest, seconds) * (len(batches[-1]) + 1) <= budget_s:
            batches[-1].append(u["id"])
            longest = max(longest, seconds)
        else:
            batches.append([u["id"]])
            longest = seconds
    return batches


def test_resume_with_partly_finished_batches_redoes_only_their_missing_utterances(setup, tmp_path):
    """Two partly finished batches: one utterance removed from the middle of one (its file and its done record),
    and the run cut in the middle of a later one (as a kill between two record groups leaves it). The resumed
    run writes exactly the missing utterances, leaves every finished file alone, and the folder equals an
    uninterrupted run's byte for byte; the done file holds the same records, the new ones appended in plan order."""
    ref = setup["ref"]
    records = (ref / "done.shard-0-of-1.jsonl").read_bytes().splitlines(keepends=True)
    order = [json.loads(r)["utt"] for r in records]
    batches = _batches(setup["al"], float(BATCH[1]))
    assert order == [u for b in batches for u in b]  # the plan written out here is the one the run followed
    multi = [b for b in batches if len(b) >= 3]
    assert len(multi) >= 2, [len(b) for b in batches]
    removed = multi[0][len(multi[0]) // 2]  # in the middle of a batch whose other members are finished
    cut = order.index(multi[-1][len(multi[-1]) // 2])  # the later batch keeps its first members only
    folder = tmp_path / "emb" / SLUG
    shutil.copytree(ref, folder)
    gone = {removed, *order[cut:]}
    for utt in gone:
        (folder / "utts" / f"{utt}.npy").unlink()
    kept_records = [r for r, u in zip(records, order[:cut]) if u != removed]
    (folder / "done.shard-0-of-1.jsonl").write_bytes(b"".join(kept_records))
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "utts").iterdir()}
    proc = run_speech(setup["model"], setup["al"], tmp_path / "emb", *BATCH)
    assert proc.returncode == 0, proc.stderr
    # no finished file was written again (the writer replaces a file by renaming a new one over it)
    assert {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in
            ((n, folder / "utts" / n) for n in kept)} == kept
    assert sorted(p.stem for p in (folder / "utts").iterdir() if p.name not in kept) == sorted(gone)
    assert folder_bytes(folder, with_done=False) == folder_bytes(ref, with_done=False)
    done = (folder / "done.shard-0-of-1.jsonl").read_bytes()
    assert done == b"".join(kept_records + [records[order.index(removed)]] + records[cut:])


def test_two_concurrent_shards_equal_one_worker(setup, tmp_path):
    out = tmp_path / "emb"
    first = subprocess.Popen(speech_cmd(setup["model"], setup["al"], out, *BATCH, "--num_shards", "2",
                                        "--shard_id", "0"),
                             cwd=REPO, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the second worker takes its shard from torchrun's variables, and its checkpoint from --s3prl_ckpt
    cmd = speech_cmd(setup["model"], setup["al"], out, *BATCH)
    i = cmd.index("--model")
    cmd[i:i + 2] = ["--s3prl_ckpt", str(setup["model"])]
    second = subprocess.Popen(cmd, cwd=REPO,
                              env=script_env(RANK="1", WORLD_SIZE="2"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    for proc in (first, second):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    folder = out / SLUG
    assert sorted(p.name for p in folder.glob("done.*")) == ["done.shard-0-of-2.jsonl", "done.shard-1-of-2.jsonl"]
    assert folder_bytes(folder, with_done=False) == folder_bytes(setup["ref"], with_done=False)

    def records(files):
        return sorted(line for f in files for line in f.read_text().splitlines())

    assert records(folder.glob("done.*")) == records(setup["ref"].glob("done.*"))
    shard0 = {json.loads(x)["utt"] for x in (folder / "done.shard-0-of-2.jsonl").read_text().splitlines()}
    assert 0 < len(shard0) < 23  # both shards did work


def test_full_disk_gives_one_error_line_and_no_partial_file(setup, tmp_path):
    ref = setup["ref"]
    big = (ref / "utts" / "spk-999.npy").stat().st_size
    others = max([p.stat().st_size for p in ref.rglob("*") if p.is_file() and p.name != "spk-999.npy"])
    assert others < big
    limit = (others + big) // 2
    out = tmp_path / "emb"
    proc = run_speech(setup["model"], setup["al"], out, *BATCH, preexec_fn=limit_file_size(limit))
    assert proc.returncode == 2, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "spk-999.npy" in errors[0] and "free disk space" in errors[0]
    folder = out / SLUG
    assert not (folder / "utts" / "spk-999.npy").exists()
    assert temp_files(out) == []
    # after freeing space, the same command finishes the job, identical to an uninterrupted run
    proc = run_speech(setup["model"], setup["al"], out, *BATCH)
    assert proc.returncode == 0, proc.stderr
    assert folder_bytes(folder, with_done=False) == folder_bytes(ref, with_done=False)


def test_alignment_for_another_geometry_names_the_file_to_make(setup, tmp_path):
    data = json.loads(setup["al"].read_text())
    data["geometry"] = FrameGeometry(16000, 160, 400).to_dict()
    for u in data["utterances"]:
        for w in u["words"]:
            w["first_frame"], w["last_frame"] = 2 * w["first_frame"], 2 * w["last_frame"]
    wrong = tmp_path / "audio_alignments_10_16.json"
    wrong.write_text(json.dumps(data))
    proc = run_speech(setup["model"], wrong, tmp_path / "emb")
    assert proc.returncode == 2
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert str(wrong) in errors[0]
    assert "--hop_samples 320 --receptive_field 400" in errors[0]
    assert "alignments/audio_alignments_20_16.json" in errors[0]
    assert not (tmp_path / "emb").exists()


def test_bad_models_give_one_line(setup, tmp_path):
    not_model = tmp_path / "some_folder"
    not_model.mkdir()
    (not_model / "weights.bin").write_bytes(b"\0" * 10)
    not_ckpt = tmp_path / "model.pt"
    not_ckpt.write_text("not a checkpoint")
    missing = tmp_path / "missing.pt"  # a checkpoint name, not an s3prl upstream to download
    cases = {
        "no_such_model": "unknown model no_such_model: not an s3prl upstream",
        str(not_model): "without config.json",
        str(not_ckpt): "cannot be loaded",
        str(missing): f"s3prl checkpoint file {missing} does not exist; check the path",
    }
    procs = {m: subprocess.Popen(speech_cmd(m, setup["al"], tmp_path / "emb"), cwd=REPO, env=script_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in cases}
    for model, expected in cases.items():
        _, err = procs[model].communicate(timeout=120)
        assert procs[model].returncode == 2, err
        errors = error_lines(err)
        assert len(errors) == 1 and "Traceback" not in err, err
        assert expected in errors[0]
    assert not (tmp_path / "emb").exists()
