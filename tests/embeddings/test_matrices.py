"""embeddings/matrix_embeddings.py: keys file, per-layer matrices, bad input, kill -9 and resume.

Embedding folders are written by tests/helpers/folders.py straight from numpy arrays in the contract's
format; expected matrices are read back here with plain numpy (np.load of utts/<id>.npy).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.faults import assert_refused, limit_file_size
from tests.helpers.files import visible_files
from tests.helpers.folders import make_utterances, random_arrays, write_embedding_folder
from tests.helpers.references import linear_cka_features
from tests.helpers.scripts import REPO, run_script, script_cmd, script_env

SCRIPT = "embeddings/matrix_embeddings.py"


@pytest.fixture(scope="module")
def emb(tmp_path_factory) -> Path:
    """Three models over the same 12 utterances: a GloVe-like one with OOV rows, a text and a speech model."""
    root = tmp_path_factory.mktemp("emb")
    rng = np.random.default_rng(0)
    utts = make_utterances(rng, 12)
    glove = random_arrays(rng, utts, 1, 6)
    text = random_arrays(rng, utts, 4, 8)
    speech = random_arrays(rng, utts, 5, 10)
    ids = sorted(utts)
    glove[ids[0]][:, 2] = np.nan          # OOV words
    glove[ids[5]][:, 0] = np.nan
    speech[ids[3]][3, 1, 4] = np.inf      # a float16 overflow in one layer only
    write_embedding_folder(root, "glove", utts, glove, dtype="float32", family="glove")
    write_embedding_folder(root, "org__text", utts, text, model="org/text")
    write_embedding_folder(root, "speech", utts, speech, family="s3prl", num_shards=2)
    return root


def _expected_rows(emb: Path, models: list[str]) -> list[list]:
    """Occurrences finite in every layer of every model, read independently with numpy."""
    manifests = [json.loads((emb / m / "manifest.json").read_text()) for m in models]
    rows = []
    for utt in sorted(manifests[0]["utterances"]):
        words = manifests[0]["utterances"][utt]["words"]
        ok = np.ones(len(words), dtype=bool)
        for m in models:
            arr = np.load(emb / m / "utts" / f"{utt}.npy")
            ok &= np.isfinite(arr).all(axis=(0, 2))
        rows += [[utt, int(p), words[p]] for p in np.flatnonzero(ok)]
    return rows


def _write_keys(emb: Path, tmp: Path, models=("glove", "org/text", "speech"), name="keys.json") -> Path:
    proc = run_script(SCRIPT, "--models", *models, "--write_words", tmp / name, "--embeddings_dir", emb)
    assert proc.returncode == 0, proc.stderr
    return tmp / name


def test_keys_file_lists_shared_finite_occurrences_in_stable_order(emb, tmp_path):
    keys = json.loads(_write_keys(emb, tmp_path).read_text())
    assert keys["format"] == "wordreps.keys" and keys["version"] == 1
    assert keys["models"] == ["glove", "org/text", "speech"]
    expected = _expected_rows(emb, ["glove", "org__text", "speech"])
    assert keys["rows"] == expected
    total = sum(len(v["words"]) for v in json.loads((emb / "glove" / "manifest.json").read_text())["utterances"].values())
    assert len(expected) < total  # the NaN and Inf occurrences were dropped
    # same inputs, same bytes (the order does not depend on the models' order of listing)
    again = _write_keys(emb, tmp_path, models=("glove", "org/text", "speech"), name="again.json")
    assert again.read_bytes() == (tmp_path / "keys.json").read_bytes()


def test_layer_matrix_equals_the_per_utterance_arrays(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    proc = run_script(SCRIPT, "--layer", "3", "--model", "speech", "--words_path", keys,
                      "--embeddings_dir", emb, "--out_dir", tmp_path / "mats")
    assert proc.returncode == 0, proc.stderr
    mat = np.load(tmp_path / "mats" / "speech" / "layer_3.npy")
    rows = json.loads(keys.read_text())["rows"]
    assert mat.dtype == np.float32 and mat.shape == (len(rows), 10)
    expected = np.stack([np.load(emb / "speech" / "utts" / f"{u}.npy")[3, p].astype(np.float32) for u, p, _ in rows])
    assert np.array_equal(mat, expected)
    info = json.loads((tmp_path / "mats" / "speech" / "matrices.json").read_text())
    assert info["model"] == "speech" and info["num_rows"] == len(rows) and info["dim"] == 10
    assert info["layers"] == [3] and info["keys_sha256"] == hashlib.sha256(keys.read_bytes()).hexdigest()
    assert info["keys_path"] == str(keys)


def test_layer_all_equals_per_layer_runs(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    proc = run_script(SCRIPT, "--layer", "all", "--model", "org/text", "glove", "--words_path", keys,
                      "--embeddings_dir", emb, "--out_dir", tmp_path / "all")
    assert proc.returncode == 0, proc.stderr
    for layer in range(4):
        proc = run_script(SCRIPT, "--layer", str(layer), "--model", "org/text", "--words_path", keys,
                          "--embeddings_dir", emb, "--out_dir", tmp_path / "one")
        assert proc.returncode == 0, proc.stderr
    for layer in range(4):
        a = (tmp_path / "all" / "org__text" / f"layer_{layer}.npy").read_bytes()
        assert a == (tmp_path / "one" / "org__text" / f"layer_{layer}.npy").read_bytes()
    info = json.loads((tmp_path / "one" / "org__text" / "matrices.json").read_text())
    assert info["layers"] == [0, 1, 2, 3]  # per-layer runs accumulate
    assert (tmp_path / "all" / "org__text" / "matrices.json").read_bytes() == \
        (tmp_path / "one" / "org__text" / "matrices.json").read_bytes()
    rows = json.loads(keys.read_text())["rows"]
    glove = np.load(tmp_path / "all" / "glove" / "layer_0.npy")
    assert np.array_equal(glove, np.stack([np.load(emb / "glove" / "utts" / f"{u}.npy")[0, p] for u, p, _ in rows]))


def _fails(args: list, out: Path, expect: list[str]) -> str:
    proc = run_script(SCRIPT, *args)
    line = assert_refused(proc, expect)
    assert visible_files(out) == []
    return line


def _keys_file(path: Path, rows: list) -> Path:
    path.write_text(json.dumps({"format": "wordreps.keys", "version": 1, "models": ["x"], "rows": rows}))
    return path


def test_keys_that_do_not_match_the_embeddings(emb, tmp_path):
    out = tmp_path / "mats"
    good = json.loads(_write_keys(emb, tmp_path).read_text())["rows"]
    base = ["--layer", "all", "--model", "org/text", "--embeddings_dir", emb, "--out_dir", out]
    bad = _keys_file(tmp_path / "k1.json", good[:3] + [["9-9-9999", 0, "the"]] + good[3:])
    _fails(base + ["--words_path", bad], out, ["row 3", "9-9-9999", "not in the embeddings"])
    u, _, _ = good[5]
    bad = _keys_file(tmp_path / "k2.json", good[:5] + [[u, 99, "cat"]] + good[5:])
    _fails(base + ["--words_path", bad], out, ["row 5", "position 99 is out of range"])
    bad = _keys_file(tmp_path / "k3.json", good[:2] + [[good[2][0], good[2][1], "zebra"]] + good[3:])
    _fails(base + ["--words_path", bad], out, ["row 2", "'zebra'"])
    # keys made without glove include glove's OOV occurrences: the first such row is named
    text_keys = json.loads(_write_keys(emb, tmp_path, models=("org/text", "speech"), name="ts.json").read_text())
    first_oov = next(i for i, row in enumerate(text_keys["rows"]) if row not in good and row[2] is not None
                     and np.isnan(np.load(emb / "glove" / "utts" / f"{row[0]}.npy")[0, row[1]]).any())
    _fails(["--layer", "0", "--model", "glove", "--words_path", tmp_path / "ts.json", "--embeddings_dir", emb,
            "--out_dir", out], out, [f"row {first_oov} ", "no finite vector", "glove"])
    bad = _keys_file(tmp_path / "k4.json", [["u", "zero", "w"]])
    _fails(base + ["--words_path", bad], out, ["row 0", "rows[0][1]", "expected an integer >= 0"])
    _fails(base + ["--words_path", tmp_path / "missing.json"], out, ["does not exist"])


def test_bad_flags_and_layers(emb, tmp_path):
    out = tmp_path / "mats"
    keys = _write_keys(emb, tmp_path)
    _fails(["--layer", "7", "--model", "org/text", "--words_path", keys, "--embeddings_dir", emb, "--out_dir", out],
           out, ["layer 7", "0-3"])
    _fails(["--layer", "all", "--model", "nope", "--words_path", keys, "--embeddings_dir", emb, "--out_dir", out],
           out, ["no embeddings for model 'nope'", "glove, org__text, speech"])
    proc = run_script(SCRIPT, "--layer", "all", "--words_path", keys)
    # argparse's own refusal (usage + "matrix_embeddings.py: error: ..."), not the one-line error: form
    assert proc.returncode == 2 and "--layer needs --model" in proc.stderr and "Traceback" not in proc.stderr


def _copy(emb: Path, tmp: Path) -> Path:
    shutil.copytree(emb, tmp / "emb")
    return tmp / "emb"


def test_refuses_files_that_disagree_with_manifest_or_done_record(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    copy = _copy(emb, tmp_path)
    out = tmp_path / "mats"
    args = ["--layer", "all", "--model", "speech", "--words_path", keys, "--embeddings_dir", copy, "--out_dir", out]
    utt = sorted(json.loads((copy / "speech" / "manifest.json").read_text())["utterances"])[4]
    path = copy / "speech" / "utts" / f"{utt}.npy"
    original = path.read_bytes()
    arr = np.load(path)
    changed = arr.copy()
    changed[0, 0, 0] += 1
    np.save(path, changed)  # same size, other bytes: the sha256 no longer matches the done record
    _fails(args, out, [str(path), "sha256", "extraction"])
    # same byte count, other shape, done record updated to match: the shape check catches it
    np.save(path, arr.reshape(arr.shape[0], arr.shape[2], arr.shape[1]))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for done in (copy / "speech").glob("done.*.jsonl"):
        done.write_text(done.read_text().replace(hashlib.sha256(original).hexdigest(), sha))
    _fails(args, out, [str(path), "shape", "manifest"])
    path.write_bytes(original[:-20])  # truncated
    _fails(args, out, [str(path), "disagrees with its shape"])
    path.write_bytes(original)
    # an utterance without a done record: the extraction did not finish
    for done in (copy / "speech").glob("done.*.jsonl"):
        done.write_text("".join(line + "\n" for line in done.read_text().splitlines() if utt not in line))
    _fails(args, out, [str(path), "did not finish"])


def test_word_lists_that_differ_between_models(emb, tmp_path):
    copy = _copy(emb, tmp_path)
    manifest = json.loads((copy / "speech" / "manifest.json").read_text())
    utt = sorted(manifest["utterances"])[2]
    manifest["utterances"][utt]["words"][1] = "elephant"
    (copy / "speech" / "manifest.json").write_text(json.dumps(manifest))
    _fails(["--models", "org/text", "speech", "--write_words", tmp_path / "k.json", "--embeddings_dir", copy],
           tmp_path / "nothing", [utt, "position 1", "'elephant'", "org/text", "speech"])
    assert not (tmp_path / "k.json").exists()
    # word lists of different lengths (two self-consistent folders made from different alignments): the word
    # one model has and the other lacks is named as such
    rng = np.random.default_rng(3)
    base = {"1000-2000-0000": ["the", "cat", "sat"], "1000-2000-0001": ["a", "dog", "ran", "far"]}
    longer = {**base, "1000-2000-0001": base["1000-2000-0001"] + ["extra"]}
    for name, utts in (("short", base), ("long", longer)):
        write_embedding_folder(tmp_path / "lengths", name, utts, random_arrays(rng, utts, 2, 4))
    _fails(["--models", "short", "long", "--write_words", tmp_path / "k.json", "--embeddings_dir",
            tmp_path / "lengths"], tmp_path / "nothing", ["1000-2000-0001", "position 4", "'<none>' in short",
                                                        "'extra' in long"])
    assert not (tmp_path / "k.json").exists()
    _fails(["--models", "long", "short", "--write_words", tmp_path / "k.json", "--embeddings_dir",
            tmp_path / "lengths"], tmp_path / "nothing", ["1000-2000-0001", "position 4", "in long but '<none>' in short"])


def test_keys_hold_the_utterances_every_model_has_and_count_what_was_dropped(tmp_path):
    rng = np.random.default_rng(5)
    utts = make_utterances(rng, 6)
    ids = sorted(utts)
    a, b = random_arrays(rng, utts, 2, 4), random_arrays(rng, utts, 3, 3)
    a[ids[4]][:, 1] = np.nan  # one occurrence without a vector in model a
    write_embedding_folder(tmp_path / "emb", "a", utts, a)
    write_embedding_folder(tmp_path / "emb", "b", {u: utts[u] for u in ids if u != ids[2]},
                           {u: b[u] for u in ids if u != ids[2]})  # model b lacks one utterance
    expected = [[u, i, w] for u in ids if u != ids[2] for i, w in enumerate(utts[u]) if (u, i) != (ids[4], 1)]
    for order in (("a", "b"), ("b", "a")):
        keys = tmp_path / f"keys-{order[0]}.json"
        proc = run_script(SCRIPT, "--models", *order, "--write_words", keys, "--embeddings_dir", tmp_path / "emb")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(keys.read_text())["rows"] == expected, order
        assert (f"{len(expected)} occurrences from 5 utterances (1 dropped: no vector in some model; "
                "1 utterances left out: not extracted for every model)") in proc.stdout
    # a third model lacking another utterance: two of the six utterances are left out, each counted once
    c = random_arrays(rng, utts, 2, 2)
    write_embedding_folder(tmp_path / "emb", "c", {u: utts[u] for u in ids if u != ids[3]},
                           {u: c[u] for u in ids if u != ids[3]})
    proc = run_script(SCRIPT, "--models", "a", "b", "c", "--write_words", tmp_path / "abc.json",
                      "--embeddings_dir", tmp_path / "emb")
    assert proc.returncode == 0, proc.stderr
    assert "from 4 utterances" in proc.stdout and "; 2 utterances left out" in proc.stdout, proc.stdout


def test_changed_keys_make_old_layers_stale(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    other = _write_keys(emb, tmp_path, models=("org/text", "speech"), name="other.json")
    out = tmp_path / "mats"
    for k, layer in ((keys, "all"), (other, "1")):
        proc = run_script(SCRIPT, "--layer", layer, "--model", "org/text", "--words_path", k, "--embeddings_dir", emb,
                          "--out_dir", out)
        assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "org__text" / "matrices.json").read_text())
    assert info["layers"] == [1] and info["keys_path"] == str(other)
    assert [p.name for p in visible_files(out / "org__text")] == ["layer_1.npy", "matrices.json"]


def test_disk_full_is_a_clear_error_and_leaves_nothing(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    out = tmp_path / "mats"
    proc = run_script(SCRIPT, "--layer", "all", "--model", "speech", "--words_path", keys, "--embeddings_dir", emb,
                      "--out_dir", out, preexec_fn=limit_file_size(2000))
    assert_refused(proc, ["no space left"])
    assert [p for p in (out / "speech").iterdir() if p.name != ".lock"] == []


def _start(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen(script_cmd(SCRIPT, *args), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 30.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("the assembly never reached the kill point")


def test_kill_9_then_rerun_gives_byte_identical_outputs(emb, tmp_path):
    keys = _write_keys(emb, tmp_path)
    common = ["--layer", "all", "--model", "speech", "--words_path", keys, "--embeddings_dir", emb]
    ref = run_script(SCRIPT, *common, "--out_dir", tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    folder = out / "speech"
    slow = script_env(WORDREPS_TEST_SLOW_ASSEMBLY_S="0.05")
    temps = lambda: folder.is_dir() and any(folder.glob(".layer_*.tmp"))  # noqa: E731
    moment = float(np.random.default_rng(0).uniform(0.1, 0.6))  # seconds after start; seeded, so reproducible
    kill_points = [
        ("mid-read", lambda: temps() and time.monotonic() - started > 0.25),
        ("between renames", lambda: (folder / "layer_0.npy").exists() and not (folder / "layer_4.npy").exists()),
        ("random moment", lambda: time.monotonic() - started > moment),
    ]
    for name, ready in kill_points:
        started = time.monotonic()
        proc = _start(common + ["--out_dir", out], slow)
        assert _kill_when(proc, ready), f"finished before the kill point {name}"
        assert not (folder / "matrices.json").exists(), name  # nothing claims unfinished layers
        for path in visible_files(folder):  # whatever is visible is complete: a reader never sees half a file
            assert path.read_bytes() == (tmp_path / "ref" / "speech" / path.name).read_bytes(), (name, path.name)
    final = run_script(SCRIPT, *common, "--out_dir", out)
    assert final.returncode == 0, final.stderr
    got = {p.relative_to(out): p.read_bytes() for p in visible_files(out)}
    want = {p.relative_to(tmp_path / "ref"): p.read_bytes() for p in visible_files(tmp_path / "ref")}
    assert got.keys() == want.keys() and got == want
    assert list(folder.glob("*.tmp")) == [] and list(folder.glob(".*.tmp")) == []


def test_assembled_matrices_feed_cka_and_asif(emb, tmp_path):
    keys = _write_keys(emb, tmp_path, models=("org/text", "speech"), name="ts.json")
    for model in ("org/text", "speech"):
        proc = run_script(SCRIPT, "--layer", "all", "--model", model, "--words_path", keys, "--embeddings_dir", emb,
                          "--out_dir", tmp_path / "mats")
        assert proc.returncode == 0, proc.stderr
    proc = run_script("experiments/experiment_CKA.py", "--model1", "org/text", "--layer1", "3", "--model2", "speech",
                      "--layer2", "4", "--device", "cpu", "--matrices_dir", tmp_path / "mats",
                      "--out_dir", tmp_path / "cka")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "cka" / "org__text__vs__speech" / "linear.json").read_text())
    assert info["keys_sha256"] == hashlib.sha256(keys.read_bytes()).hexdigest()
    rows = json.loads(keys.read_text())["rows"]
    X = np.stack([np.load(emb / "org__text" / "utts" / f"{u}.npy")[2, p] for u, p, _ in rows]).astype(np.float64)
    Y = np.stack([np.load(emb / "speech" / "utts" / f"{u}.npy")[4, p] for u, p, _ in rows]).astype(np.float64)
    expected = linear_cka_features(X, Y)
    assert info["values"][2][4] == pytest.approx(expected, abs=1e-6)
    proc = run_script("experiments/experiment_ASIF.py", "--path_layer1", tmp_path / "mats/speech/layer_4.npy",
                      "--path_layer2", tmp_path / "mats/org__text/layer_2.npy", "--keys", keys, "--k", "8",
                      "--p", "4", "--device", "cpu", "--out_dir", tmp_path / "asif")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "asif" / "speech-layer_4__org__text-layer_2" / "summary.json").read_text())
    assert summary["keys_sha256"] == info["keys_sha256"] and len(summary["results"]) == 2


def test_a_second_assembly_into_the_same_folder_waits_its_turn(tmp_path):
    """Two matrix assemblies of one model at once: the second is refused (one line) while the first holds the folder,
    and leaves the first's files alone; the first's lock dies with it, so a later run goes through."""
    import fcntl

    rng = np.random.default_rng(1)
    utts = make_utterances(rng, 4)
    write_embedding_folder(tmp_path / "emb", "text", utts, random_arrays(rng, utts, 2, 4))
    keys = tmp_path / "keys.json"
    proc = run_script(SCRIPT, "--models", "text", "--write_words", keys, "--embeddings_dir", tmp_path / "emb")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "mats"
    args = ("--layer", "all", "--model", "text", "--words_path", keys, "--embeddings_dir", tmp_path / "emb",
            "--out_dir", out)
    (out / "text").mkdir(parents=True)
    with open(out / "text" / ".lock", "a+b") as held:  # what a running assembly holds
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = run_script(SCRIPT, *args)
    assert_refused(proc, [str(out / "text"), "another run is writing matrices"], no_temps_in=[out])
    assert visible_files(out) == []
    proc = run_script(SCRIPT, *args)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in visible_files(out)] == ["layer_0.npy", "layer_1.npy", "matrices.json"]
