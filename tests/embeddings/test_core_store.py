"""The extraction core and the store with a stand-in backend: layout, reader checks, resume rules, dtype checks."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.files import temp_files
from tests.helpers.speech import random_corpus
from wordreps.alignments.format import load_alignment
from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError
from wordreps.embeddings import store
from wordreps.embeddings.base import Backend
from wordreps.embeddings.extract import add_extraction_args, finalize_array, run_extraction
from wordreps.embeddings.store import EmbeddingSet


class StandIn(Backend):
    """Deterministic vectors from (utterance, position); optional huge values or missing words."""

    family = "stand-in"

    def __init__(self, *, huge_at=None, missing=(), can_miss=True, geometry=None, needs_audio=False):
        self.model_name = "org/stand-in"
        self.num_layers, self.dim = 2, 4
        self.layer_names = ["layer_0", "layer_1"]
        self.huge_at, self.missing_words, self.words_can_be_missing = huge_at, set(missing), can_miss
        self.geometry = geometry
        self.needs_audio = needs_audio
        self.sample_rate_hz = 16000 if needs_audio else None
        self.seen: list[list[str]] = []

    def cost(self, utterance):
        return len(utterance.words)

    def embed(self, batch):
        self.seen.append([i.utterance.utt_id for i in batch])
        out = []
        for item in batch:
            u = item.utterance
            k = int(u.utt_id.split("-")[-1])
            a = np.arange(self.num_layers * len(u.words) * self.dim, dtype=np.float32)
            a = a.reshape(self.num_layers, len(u.words), self.dim) / 7.0 + k
            for pos, w in enumerate(u.words):
                if (u.utt_id, pos) == self.huge_at:
                    a[1, pos, 2] = 1e5
                if w.word in self.missing_words:
                    a[:, pos, :] = np.nan
            out.append(a)
        return out


def _args(al, out_dir, *extra):
    p = argparse.ArgumentParser()
    add_extraction_args(p, audio=False)
    return p.parse_args(["--path", str(al), "--out_dir", str(out_dir), "--no_progress", *extra])


@pytest.fixture
def corpus(tmp_path):
    return random_corpus(tmp_path / "corpus", [1.5, 2.2, 1.0, 3.1, 2.0], seed=1)


def test_layout_manifest_and_reader(corpus, tmp_path):
    folder = run_extraction(StandIn(), _args(corpus, tmp_path / "emb", "--batch_tokens", "10"))
    assert folder == tmp_path / "emb" / "org__stand-in"
    alignment = load_alignment(corpus)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "wordreps.embeddings" and manifest["dtype"] == "float16"
    assert manifest["alignment_sha256"] == alignment.sha256 and manifest["num_layers"] == 2
    assert "timestamp" not in json.dumps(manifest) and manifest["versions"]["numpy"] == np.__version__
    emb = EmbeddingSet.open(folder)
    assert emb.utterance_ids == sorted(u.utt_id for u in alignment.utterances)
    assert emb.is_complete(verify=True)
    for u in alignment.utterances:
        arr = emb.load(u.utt_id)
        assert arr.shape == (2, len(u.words), 4) and arr.dtype == np.float16
        # the values the stand-in produces, written out here: (layer, word, d) -> (index in C order) / 7 + k
        k = int(u.utt_id.split("-")[-1])
        index = np.arange(2 * len(u.words) * 4).reshape(2, len(u.words), 4)
        assert np.array_equal(arr, (index / 7.0 + k).astype(np.float32).astype(np.float16)), u.utt_id
        assert emb.words(u.utt_id) == [w.word for w in u.words]
        assert (folder / "utts" / f"{u.utt_id}.npy").stat().st_size == store.npy_nbytes(arr.shape, "float16")
    lines = (folder / "done.shard-0-of-1.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(x)["missing"] == [] for x in lines)
    assert temp_files(tmp_path) == []


def test_changed_file_is_refused_then_redone(corpus, tmp_path):
    folder = run_extraction(StandIn(), _args(corpus, tmp_path / "emb", "--batch_tokens", "1"))  # batches of one
    before = {p.name: p.read_bytes() for p in (folder / "utts").iterdir()}
    target = folder / "utts" / "utt-003.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"utt-003\.npy does not match its done record .* run the extraction"):
        EmbeddingSet.open(folder).load("utt-003")
    (folder / "utts" / "utt-001.npy").write_bytes(before["utt-001.npy"][:50])  # truncated: wrong size
    backend = StandIn()
    run_extraction(backend, _args(corpus, tmp_path / "emb", "--batch_tokens", "1"))
    assert sorted(x for b in backend.seen for x in b) == ["utt-001", "utt-003"]  # only those two redone
    records = [json.loads(x)["utt"] for x in (folder / "done.shard-0-of-1.jsonl").read_text().splitlines()]
    assert len(records) == 7 and sorted(records[5:]) == ["utt-001", "utt-003"]
    after = {p.name: p.read_bytes() for p in (folder / "utts").iterdir()}
    assert after == before
    EmbeddingSet.open(folder).load("utt-003")


def test_shape_disagreeing_with_manifest_is_refused(corpus, tmp_path):
    folder = run_extraction(StandIn(), _args(corpus, tmp_path / "emb"))
    np.save(folder / "utts" / "utt-002.npy", np.zeros((2, 1, 4), np.float16))
    with pytest.raises(UserError, match=r"utt-002\.npy has shape \(2, 1, 4\) float16, the manifest says"):
        EmbeddingSet.open(folder).load("utt-002", verify=False)


def test_torn_done_line_is_ignored_and_cut_before_appending(corpus, tmp_path):
    folder = run_extraction(StandIn(), _args(corpus, tmp_path / "emb"))
    done = folder / "done.shard-0-of-1.jsonl"
    full = done.read_bytes()
    lines = full.splitlines(keepends=True)
    done.write_bytes(b"".join(lines[:3]) + lines[3][:20])  # killed in the middle of the 4th record
    assert not EmbeddingSet.open(folder).is_complete()
    run_extraction(StandIn(), _args(corpus, tmp_path / "emb"))
    assert done.read_bytes() == full


def test_other_settings_in_the_same_folder_are_refused_unless_overwrite(corpus, tmp_path):
    run_extraction(StandIn(), _args(corpus, tmp_path / "emb"))
    with pytest.raises(UserError, match=r"other settings \(different dtype\); pass --overwrite"):
        run_extraction(StandIn(), _args(corpus, tmp_path / "emb", "--dtype", "float32"))
    folder = run_extraction(StandIn(), _args(corpus, tmp_path / "emb", "--dtype", "float32", "--overwrite"))
    emb = EmbeddingSet.open(folder)
    assert emb.dtype == "float32" and emb.load("utt-000").dtype == np.float32 and emb.is_complete(verify=True)


def test_value_outside_float16_range_stops_with_a_float32_hint(corpus, tmp_path):
    backend = StandIn(huge_at=("utt-002", 1))
    with pytest.raises(UserError, match=r"utterance utt-002, word #1 .* layer 1 .* outside float16's range .*"
                                        r"--dtype float32"):
        run_extraction(backend, _args(corpus, tmp_path / "emb"))
    folder = tmp_path / "emb" / "org__stand-in"
    assert not (folder / "utts" / "utt-002.npy").exists()
    assert temp_files(tmp_path) == []
    for f in (folder / "utts").glob("*.npy"):
        assert np.isfinite(np.load(f)).all()  # never an Inf on disk
    run_extraction(backend, _args(corpus, tmp_path / "f32", "--dtype", "float32"))
    assert EmbeddingSet.open(tmp_path / "f32" / "org__stand-in").load("utt-002")[1, 1, 2] == 1e5


def test_missing_words_are_nan_rows_and_recorded(corpus, tmp_path):
    folder = run_extraction(StandIn(missing={"w1"}), _args(corpus, tmp_path / "emb"))
    emb = EmbeddingSet.open(folder)
    for uid in emb.utterance_ids:
        words = emb.words(uid)
        expect = [i for i, w in enumerate(words) if w == "w1"]
        assert emb.missing(uid) == expect
        arr = emb.load(uid)
        assert np.isnan(arr[:, expect]).all() and np.isfinite(np.delete(arr, expect, axis=1)).all()
    # a backend that cannot miss words producing NaN is the model's overflow, not a missing word; the stand-in is
    # a float32 text model: neither --precision float32 nor an audio file can be the advice
    with pytest.raises(UserError, match="non-finite value") as refused:
        run_extraction(StandIn(missing={"w1"}, can_miss=False), _args(corpus, tmp_path / "emb2"))
    assert str(refused.value).endswith("layer 0; it computed in float32 from text, so check the model's weights "
                                       "(a damaged or untrained checkpoint)")


def test_finalize_rejects_partial_nan_and_inf():
    from wordreps.embeddings.base import Utterance, Word
    u = Utterance("u", "a", "", 100, 16000, [Word("a", 0, 1, 0, 0), Word("b", 1, 2, 0, 0)])
    arr = np.ones((2, 2, 3), np.float32)
    arr[0, 1, 0] = np.nan
    with pytest.raises(UserError, match=r"word #1 \('b'\), layer 0; run it in full precision \(--precision float32\) "
                                        r"or check the audio file a for corrupt samples$"):
        finalize_array(u, arr, num_layers=2, dim=3, dtype="float16", words_can_be_missing=True, model_name="m",
                       precision="bfloat16", needs_audio=True)
    arr[0, 1, 0] = np.inf
    # already float32: only the audio is left to suspect
    with pytest.raises(UserError, match=r"non-finite value \(NaN/Inf\) .*layer 0; check the audio file a for "
                                        r"corrupt samples$"):
        finalize_array(u, arr, num_layers=2, dim=3, dtype="float32", words_can_be_missing=True, model_name="m",
                       precision="float32", needs_audio=True)
    # a text model at bfloat16: no audio file to check
    with pytest.raises(UserError, match=r"layer 0; run it in full precision \(--precision float32\)$"):
        finalize_array(u, arr, num_layers=2, dim=3, dtype="float32", words_can_be_missing=True, model_name="m",
                       precision="bfloat16", needs_audio=False)


def test_geometry_mismatch_names_the_alignment_to_make(corpus, tmp_path):
    backend = StandIn(geometry=FrameGeometry(24000, 320, 320))
    with pytest.raises(UserError, match=r"al\.json was made for .*alignments_and_trans\.py --sample_rate 24 "
                                        r"--hop_samples 320 --receptive_field 320 --output "
                                        r"alignments/audio_alignments_13\.33_24\.json"):
        run_extraction(backend, _args(corpus, tmp_path / "emb"))
    assert not (tmp_path / "emb").exists()


def test_audio_shorter_than_the_alignment_says_is_refused(tmp_path):
    al = random_corpus(tmp_path / "corpus", [1.0, 1.2], seed=2)
    alignment = load_alignment(al)
    u = alignment.utterances[1]
    audio, _ = sf.read(u.audio_path, dtype="float32")
    sf.write(u.audio_path, audio[:-640], 16000, subtype="PCM_24")
    backend = StandIn(geometry=FrameGeometry(16000, 320, 400), needs_audio=True)
    with pytest.raises(UserError, match=rf"{u.audio_path} has {len(audio) - 640} samples but the alignment JSON says "
                                        rf"{len(audio)}"):
        run_extraction(backend, _args(al, tmp_path / "emb"))
    assert temp_files(tmp_path) == []


def test_done_log_never_keeps_half_a_record(tmp_path, monkeypatch):
    import errno
    import os as _os

    log = store.DoneLog(tmp_path, 0, 1)
    log.append("a", "0" * 64)
    before = (tmp_path / "done.shard-0-of-1.jsonl").read_bytes()
    real_write = _os.write

    def half_then_full(fd, data):
        if len(data) > 10:
            real_write(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(store.os, "write", half_then_full)
    with pytest.raises(UserError, match=r"cannot append to .*done\.shard-0-of-1\.jsonl \(No space left"):
        log.append_many([("b", "1" * 64, []), ("c", "2" * 64, [3])])
    monkeypatch.undo()
    assert (tmp_path / "done.shard-0-of-1.jsonl").read_bytes() == before
    log.append("d", "3" * 64)
    log.close()
    assert [r.utt for r in sum(store.read_done_records(tmp_path).values(), [])] == ["a", "d"]


def test_cuda_asked_for_without_a_gpu_is_one_clear_error():
    import torch

    from wordreps.embeddings.extract import resolve_device
    if torch.cuda.is_available():
        assert resolve_device("cuda", {"LOCAL_RANK": "0"}).index == 0
        return
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(UserError, match="no usable CUDA GPU; pass --device cpu"):
        resolve_device("cuda:1")


def test_out_of_memory_becomes_advice_on_the_batch_budget(corpus, tmp_path):
    class Oom(StandIn):
        def embed(self, batch):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(UserError, match=r"ran out of memory on a batch of 5 utterances .* smaller --batch_tokens "
                                        r"\(now 8192\)"):
        run_extraction(Oom(), _args(corpus, tmp_path / "emb"))
