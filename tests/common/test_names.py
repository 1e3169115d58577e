"""Names that become paths (issue 9): checked once where they enter, refused with one line; nothing a file or a
flag says places a file outside the output folder; loading never runs code from data.

The names come from alignment JSONs (utterance ids), keys files, manifests, corpus file names, --name and the
runner's ``kind:model@folder``; the one checker is wordreps.common.names.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.faults import assert_refused
from tests.helpers.files import visible_files
from tests.helpers.folders import random_arrays, write_embedding_folder
from tests.helpers.scripts import REPO
from tests.helpers.scripts import run_script as run
from tests.helpers.text import all_words, write_alignment_json
from tests.helpers.textgrids import make_corpus
from wordreps.alignments.format import load_alignment
from wordreps.common.errors import UserError
from wordreps.common.names import MAX_NAME_BYTES, check_name, name_problem
from wordreps.embeddings.matrices import keys_text, load_keys
from wordreps.embeddings.store import EmbeddingSet
from wordreps.embeddings.tiny.text import write_glove

GLOVE = "embeddings/glove_embedding.py"
ALIGN = "alignments/alignments_and_trans.py"

# names that must never become a file name: escapes, hidden files, separators, control characters, overlong
BAD_NAMES = st.one_of(
    st.sampled_from(["", ".", "..", "../X", "../../../X", "a/../../X", "/etc/X", "a\\..\\X", ".X", "x\x00y",
                     "two\nlines", "tab\there", "a" * (MAX_NAME_BYTES + 1), "é" * 101]),
    st.text(min_size=0, max_size=12).map(lambda s: "../" + s),
    st.text(min_size=1, max_size=12).map(lambda s: "." + s),
    st.tuples(st.text(max_size=8), st.text(max_size=8)).map(lambda ab: ab[0] + "/" + ab[1]),
    st.tuples(st.text(max_size=8), st.characters(max_codepoint=31), st.text(max_size=8)).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_an_accepted_name_is_one_plain_file_inside_the_folder(name):
    """Independently of how the checker decides: whatever it accepts stays a direct, visible child."""
    if name_problem(name) is not None:
        with pytest.raises(UserError):
            check_name(name, "name", "test", "fix it")
        return
    out = Path("/tmp/out-folder")
    joined = Path(os.path.normpath(out / f"{name}.npy"))
    assert joined.parent == out and joined.name == f"{name}.npy"
    assert not name.startswith(".") and len(name.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
    assert not any(ord(c) < 32 or ord(c) == 127 for c in name)


@settings(max_examples=80, deadline=None)
@given(BAD_NAMES)
def test_bad_names_are_refused_by_the_checker(name):
    assert name_problem(name) is not None
    with pytest.raises(UserError, match="cannot be used as a file name"):
        check_name(name, "utterance id", "somewhere.json", "rename it")


# ------------------------------------------------------------------------------------- where names enter

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=BAD_NAMES, which=st.integers(0, 4))
def test_utterance_ids_of_an_alignment_json(tmp_path, bad, which):
    obj = json.loads(write_alignment_json(tmp_path / "good.json").read_text())
    obj["utterances"][which]["id"] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(UserError) as info:
        load_alignment(path)
    message = str(info.value)
    assert str(path) in message and f"utterances[{which}].id" in message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=BAD_NAMES)
def test_utterance_ids_of_a_keys_file(tmp_path, bad):
    rows = [("1-1-0001", 0, "a"), ("1-1-0001", 1, "b"), (bad, 0, "c")]
    path = tmp_path / "keys.json"
    path.write_text(keys_text(["m"], rows))
    with pytest.raises(UserError) as info:
        load_keys(path)
    assert str(path) in str(info.value) and "rows[2][0]" in str(info.value) and "row 2" in str(info.value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=BAD_NAMES)
def test_utterance_ids_of_a_manifest(tmp_path, bad):
    rng = np.random.default_rng(0)
    utts = {"1-1-0001": ["a", "b"], "1-1-0002": ["c"]}
    folder = write_embedding_folder(tmp_path / "emb", "m", utts, random_arrays(rng, utts, 2, 4))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["utterances"][bad] = manifest["utterances"].pop("1-1-0002")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError) as info:
        EmbeddingSet.open(folder)
    assert str(folder / "manifest.json") in str(info.value) and "utterances[" in str(info.value)


def test_runner_folder_names():
    from wordreps.pipeline.runner import parse_model

    assert parse_model("text:org/model@my-bert").slug == "my-bert"
    for text in ("text:org/model@../x", "text:org/model@.hidden", "speech:wav2vec2@a/b"):
        with pytest.raises(UserError, match="cannot be used as a file name"):
            parse_model(text)


# -------------------------------------------------------------------------- scripts: nothing outside, one line

@pytest.mark.parametrize("bad", ["../../../X", "sub/../../../X", ".X"])
def test_an_edited_utterance_id_writes_nothing_outside_the_output_folder(tmp_path, bad):
    """The issue's case: an id edited to ../../../X made glove_embedding.py write X.npy outside --out_dir."""
    cwd = tmp_path / "deep" / "er" / "cwd"
    cwd.mkdir(parents=True)
    obj = json.loads(write_alignment_json(tmp_path / "good.json").read_text())
    obj["utterances"][0]["id"] = bad
    al = tmp_path / "al.json"
    al.write_text(json.dumps(obj))
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    before = set(visible_files(tmp_path))
    proc = run(GLOVE, "--glove", glove, "--path", al, "--out_dir", "out", "--glove_cache", tmp_path / "cache",
               "--no_progress", cwd=cwd)
    assert_refused(proc, [str(al), "utterances[0].id"], absent=[cwd / "out", tmp_path / "cache"],
                   no_temps_in=[tmp_path])
    assert set(visible_files(tmp_path)) == before


def test_name_flags_are_refused(tmp_path):
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    al = write_alignment_json(tmp_path / "al.json")
    out = tmp_path / "a" / "out"
    proc = run(GLOVE, "--glove", glove, "--path", al, "--out_dir", out, "--name", "../X", "--no_progress",
               "--glove_cache", tmp_path / "cache")
    assert_refused(proc, ["--name", "'../X'"], absent=[tmp_path / "a"])
    # ASIF's --name (the second case) is refused before anything is read or written
    mats = tmp_path / "mats"
    proc = run("experiments/experiment_ASIF.py", "--path_layer1", mats / "a" / "layer_0.npy", "--path_layer2",
               mats / "b" / "layer_0.npy", "--keys", tmp_path / "keys.json", "--out_dir", out, "--name", "../../X")
    assert_refused(proc, ["--name", "'../../X'"], absent=[tmp_path / "a", tmp_path / "X"])


def test_a_corpus_file_name_that_is_not_a_plain_name(tmp_path):
    """Ids of the alignment stage come from file names: a hidden TextGrid (here an AppleDouble-like ._ file)
    is refused naming the TextGrid, before anything is written."""
    utts = {"100-200-0000": {"num_samples": 24000, "words": [(0.1, 0.3, "the"), (0.3, 0.9, "cat")]}}
    tg_root, audio_root = make_corpus(tmp_path / "corpus", utts)
    chapter = tg_root / "dev-clean" / "100" / "200"
    (chapter / "._100-200-0000.TextGrid").write_bytes((chapter / "100-200-0000.TextGrid").read_bytes())
    achapter = audio_root / "dev-clean" / "100" / "200"
    (achapter / "._100-200-0000.flac").write_bytes((achapter / "100-200-0000.flac").read_bytes())
    trans = achapter / "100-200.trans.txt"
    trans.write_text(trans.read_text() + "._100-200-0000 THE CAT\n")
    out = tmp_path / "al.json"
    proc = run(ALIGN, "--model", "wav2vec2", "--path", tg_root, "--audio_root", audio_root, "--output", out, "--quiet")
    assert_refused(proc, ["._100-200-0000.TextGrid", "utterance id", "'._100-200-0000'"], absent=[out],
                   no_temps_in=[tmp_path])


# ---------------------------------------------------------------------------------- no code run from data

class _Bomb:
    """Unpickling this runs ``open(MARK, "w")`` (any callable would do: os.system, subprocess ...)."""

    def __init__(self, mark: Path):
        self.mark = str(mark)

    def __reduce__(self):
        return (open, (self.mark, "w"))


def test_a_pickled_s3prl_checkpoint_runs_no_code(tmp_path):
    """torch.load inside s3prl's loader (torch 2.8 defaults to weights_only=True): the pickle is refused."""
    import torch

    mark = tmp_path / "MARK"
    ckpt = tmp_path / "evil.pt"
    torch.save({"task_cfg": {}, "model_cfg": _Bomb(mark), "model_weight": {}}, ckpt)
    al = write_alignment_json(tmp_path / "al.json")
    proc = run("embeddings/speech_embedding.py", "--s3prl_ckpt", ckpt, "--path", al, "--out_dir", tmp_path / "out",
               "--device", "cpu", "--no_progress")
    assert_refused(proc, [str(ckpt), "cannot be loaded"], absent=[tmp_path / "out"])
    assert not mark.exists()


def test_a_pickled_vector_file_and_cache_run_no_code(tmp_path):
    from wordreps.embeddings.backends.glove import glove_cache_path, load_vocab_vectors

    mark = tmp_path / "MARK"
    kv = tmp_path / "vectors.kv"
    kv.write_bytes(pickle.dumps(_Bomb(mark)))
    al = write_alignment_json(tmp_path / "al.json")
    proc = run(GLOVE, "--glove", kv, "--path", al, "--out_dir", tmp_path / "out", "--no_progress",
               "--glove_cache", tmp_path / "cache")
    assert_refused(proc, [str(kv), "names io.open", "not loaded"], absent=[tmp_path / "out", tmp_path / "cache"])
    assert not mark.exists()
    # a pickle planted where the vocabulary cache goes is never unpickled: the cache is rebuilt from the file
    glove = tmp_path / "glove.txt"
    rows = write_glove(glove, all_words(), 8)
    cache = glove_cache_path(glove, all_words(), tmp_path / "cache")
    cache.parent.mkdir()
    cache.write_bytes(pickle.dumps(_Bomb(mark)))
    got, info = load_vocab_vectors(glove, all_words(), cache_dir=tmp_path / "cache")
    assert not info["from_cache"] and not mark.exists()
    np.testing.assert_allclose(got["the"], rows["the"], atol=1e-6)


def test_a_pickled_matrix_runs_no_code(tmp_path):
    from tests.helpers.folders import write_matrix_folder

    mark = tmp_path / "MARK"
    folder = write_matrix_folder(tmp_path / "mats", "a", [np.ones((8, 3)), np.eye(8, 3)])
    np.save(folder / "layer_1.npy", np.array([_Bomb(mark)], dtype=object), allow_pickle=True)
    proc = run("experiments/experiment_CKA.py", "--model1", "a", "--layer1", 1, "--model2", "a", "--layer2", 1,
               "--matrices_dir", tmp_path / "mats", "--out_dir", tmp_path / "res", "--device", "cpu")
    assert_refused(proc, ["layer_1.npy"], absent=[tmp_path / "res"])
    assert not mark.exists()


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "attr", None) == name or getattr(n.func, "id", None) == name)]


def test_every_loader_in_the_code_refuses_pickles():
    """The class, not the examples: np.load always with allow_pickle=False, torch.load with weights_only=True,
    and no unpickling (pickle.load, KeyedVectors.load) other than the restricted .kv unpickler."""
    files = [p for folder in ("wordreps", "alignments", "embeddings", "experiments", "datasets")
             for p in (REPO / folder).rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text())
        for call in _calls(tree, "load"):
            owner = ast.unparse(call.func)
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if owner in ("np.load", "numpy.load"):
                assert keywords.get("allow_pickle") == "False", f"{path}: {ast.unparse(call)}"
            elif owner == "torch.load":
                assert keywords.get("weights_only") == "True", f"{path}: {ast.unparse(call)}"
            elif owner.endswith("Unpickler(fh, encoding='latin1').load") or owner == "json.load":
                continue
            else:
                assert owner not in ("pickle.load", "KeyedVectors.load", "_pickle.load"), f"{path}: {ast.unparse(call)}"
        assert not _calls(tree, "loads") or all(ast.unparse(c.func) == "json.loads" for c in _calls(tree, "loads")), path
