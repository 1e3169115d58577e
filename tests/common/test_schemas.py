"""Hand-edited or damaged metadata (issue 9): a wrong type in any field of an alignment JSON, manifest.json, a
keys file or matrices.json is one line naming the file and the field, never a ValueError from deep inside.

Broken files are generated: any node of a good file is replaced by a value of another JSON type. The fields the
formats declare are listed here, independently of the schemas in the code (docs/formats.md describes them).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.faults import assert_refused
from tests.helpers.folders import (
    random_arrays,
    write_embedding_folder,
    write_matrix_folder,
)
from tests.helpers.scripts import run_script as run
from tests.helpers.text import all_words, write_alignment_json
from wordreps.alignments.format import load_alignment
from wordreps.common.errors import UserError
from wordreps.embeddings.matrices import keys_text, load_keys, read_matrices_json
from wordreps.embeddings.store import EmbeddingSet
from wordreps.embeddings.tiny.text import write_glove

REPLACEMENTS = ["many", "", None, -3, 0, 2.5, True, [], [1, "x"], {}, {"a": 1}]

ALIGNMENT = {"geometry", "geometry.sample_rate_hz", "geometry.hop_samples", "geometry.receptive_field_samples",
             "utterances", "utterances[]", *(f"utterances[].{f}" for f in (
                 "id", "audio_path", "transcript", "num_samples", "sample_rate_hz", "transcript_match", "words")),
             "utterances[].words[]", *(f"utterances[].words[].{f}" for f in (
                 "word", "start_s", "end_s", "first_frame", "last_frame")),
             "unit", "tier", "frame_rule", "textgrid_root", "audio_root"}
MANIFEST = {"model", "family", "num_layers", "layer_names", "layer_names[]", "dim", "dtype", "geometry",
            "alignment_path", "alignment_sha256", "describe", "versions", "utterances", "utterances{}",
            "utterances{}.words", "utterances{}.words[]", "utterances{}.shape", "utterances{}.shape[]"}
KEYS = {"rows", "rows[]", "rows[][]", "models", "models[]"}
MATRICES = {"model", "slug", "embeddings_dir", "embeddings_fingerprint", "keys_path", "keys_sha256", "num_rows", "dim",
            "num_layers", "dtype", "layers", "layers[]"}
MAPS = {"utterances"}  # in a manifest, "utterances" maps ids to entries (rendered utterances["id"])
NULL_ALLOWED = {"geometry"}  # a manifest's geometry is null for text models


def json_type(value) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list", dict: "object",
            type(None): "null"}[type(value)]


def nodes(obj, path=()):
    """Every node below the root, as a path of keys and indices."""
    children = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in children:
        yield path + (key,)
        yield from nodes(value, path + (key,))


def render(path, maps: bool) -> tuple[str, str]:
    """(the field as messages name it, its shape for the declared sets above)."""
    text, shape = "", ""
    for depth, key in enumerate(path):
        if isinstance(key, int):
            text, shape = text + f"[{key}]", shape + "[]"
        elif maps and depth == 1 and path[0] in MAPS:
            text, shape = text + f"[{json.dumps(key)}]", shape + "{}"
        else:
            text, shape = text + f".{key}", shape + f".{key}"
    return text.lstrip("."), shape.lstrip(".")


def get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def mutated(obj, path, value):
    out = copy.deepcopy(obj)
    get(out, path[:-1])[path[-1]] = value
    return out


def check_one(load, path_on_disk: Path, good: dict, declared: set[str], data, maps: bool = False) -> None:
    paths = [p for p in nodes(good) if p[0] not in ("format", "version")]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(st.sampled_from(REPLACEMENTS))
    path_on_disk.write_text(json.dumps(mutated(good, path, value)))
    try:
        load(path_on_disk)
    except UserError as err:
        message = str(err)
        assert str(path_on_disk) in message and "\n" not in message, message
        field, shape = render(path, maps)
        original = get(good, path)
        if shape in declared and json_type(value) != json_type(original) and \
                not (value is None and shape in NULL_ALLOWED):
            assert f"field {field}" in message, (field, message)
        return
    # loaded: the replacement was acceptable, so it was not a type change of a declared field
    field, shape = render(path, maps)
    assert shape not in declared or json_type(value) == json_type(get(good, path)) or \
        (value is None and shape in NULL_ALLOWED), (field, value)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.data())
def test_alignment_json(tmp_path, data):
    good = json.loads(write_alignment_json(tmp_path / "good.json").read_text())
    good["utterances"] = good["utterances"][:2]
    good["utterances"][0]["words"] = good["utterances"][0]["words"][:3]
    check_one(load_alignment, tmp_path / "bad.json", good, ALIGNMENT, data)


@FUZZ
@given(st.data())
def test_manifest(tmp_path, data):
    rng = np.random.default_rng(0)
    utts = {"1-1-0001": ["a", "b"], "1-1-0002": ["c"]}
    folder = write_embedding_folder(tmp_path / "emb", "m", utts, random_arrays(rng, utts, 2, 4))
    good = json.loads((folder / "manifest.json").read_text())
    good["geometry"] = {"sample_rate_hz": 16000, "hop_samples": 320, "receptive_field_samples": 400}
    check_one(lambda p: EmbeddingSet.open(p.parent), folder / "manifest.json", good, MANIFEST, data, maps=True)


@FUZZ
@given(st.data())
def test_keys_file(tmp_path, data):
    good = json.loads(keys_text(["a", "b"], [("1-1-0001", 0, "x"), ("1-1-0001", 1, "y"), ("1-1-0002", 0, "z")]))
    check_one(load_keys, tmp_path / "keys.json", good, KEYS, data)


@FUZZ
@given(st.data())
def test_matrices_json(tmp_path, data):
    folder = write_matrix_folder(tmp_path / "mats", "a", [np.ones((5, 3)), np.eye(5, 3)])
    good = json.loads((folder / "matrices.json").read_text())
    check_one(lambda p: read_matrices_json(p.parent), folder / "matrices.json", good, MATRICES, data)


def test_counts_that_disagree_inside_a_manifest(tmp_path):
    rng = np.random.default_rng(0)
    utts = {"1-1-0001": ["a", "b"]}
    folder = write_embedding_folder(tmp_path / "emb", "m", utts, random_arrays(rng, utts, 2, 4))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["utterances"]["1-1-0001"]["shape"] = [2, 5, 4]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r'utterances\["1-1-0001"\].shape is \[2, 5, 4\]'):
        EmbeddingSet.open(folder)


# ---------------------------------------------------------------------------- each format through a script

def test_alignment_num_samples_many(tmp_path):
    obj = json.loads(write_alignment_json(tmp_path / "good.json").read_text())
    obj["utterances"][3]["num_samples"] = "many"
    al = tmp_path / "al.json"
    al.write_text(json.dumps(obj))
    glove = tmp_path / "glove.txt"
    write_glove(glove, all_words(), 8)
    proc = run("embeddings/glove_embedding.py", "--glove", glove, "--path", al, "--out_dir", tmp_path / "out",
               "--glove_cache", tmp_path / "cache", "--no_progress")
    assert_refused(proc, [str(al), "field utterances[3].num_samples", "1272-128104-0003", "'many'"],
                   absent=[tmp_path / "out", tmp_path / "cache"])


def test_manifest_and_keys_through_the_matrices_stage(tmp_path):
    rng = np.random.default_rng(2)
    utts = {"1-1-0001": ["a", "b", "c"], "1-1-0002": ["c", "d"]}
    for slug in ("x", "y"):
        write_embedding_folder(tmp_path / "emb", slug, utts, random_arrays(rng, utts, 2, 4))
    keys = tmp_path / "keys.json"
    proc = run("embeddings/matrix_embeddings.py", "--models", "x", "y", "--write_words", keys, "--embeddings_dir",
               tmp_path / "emb", "--no_progress")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(keys.read_text())
    obj["rows"][2][1] = "many"
    keys.write_text(json.dumps(obj))
    out = tmp_path / "mats"
    proc = run("embeddings/matrix_embeddings.py", "--layer", "all", "--model", "x", "--words_path", keys,
               "--embeddings_dir", tmp_path / "emb", "--out_dir", out)
    assert_refused(proc, [str(keys), "field rows[2][1]", "row 2", "'many'"], absent=[out])
    manifest = tmp_path / "emb" / "y" / "manifest.json"
    obj = json.loads(manifest.read_text())
    obj["dim"] = "many"
    manifest.write_text(json.dumps(obj))
    proc = run("embeddings/matrix_embeddings.py", "--models", "x", "y", "--write_words", tmp_path / "k2.json",
               "--embeddings_dir", tmp_path / "emb")
    assert_refused(proc, [str(manifest), "field dim", "'many'"], absent=[tmp_path / "k2.json"])


def test_matrices_json_num_rows_many(tmp_path):
    folder = write_matrix_folder(tmp_path / "mats", "a", [np.random.default_rng(0).normal(size=(20, 3))] * 2)
    info = json.loads((folder / "matrices.json").read_text())
    info["num_rows"] = "many"
    (folder / "matrices.json").write_text(json.dumps(info))
    proc = run("experiments/experiment_CKA.py", "--model1", "a", "--layer1", 1, "--model2", "a", "--layer2", 1,
               "--matrices_dir", tmp_path / "mats", "--out_dir", tmp_path / "res", "--device", "cpu")
    assert_refused(proc, [str(folder / "matrices.json"), "field num_rows", "'many'"], absent=[tmp_path / "res"])


def test_element_labels_are_built_only_for_the_element_that_fails():
    """A label names the bad element in the message; building one per element of every file loaded (54k words
    per alignment) was wasted work."""
    from wordreps.common import schema as S
    from wordreps.common.errors import UserError

    built = []

    def label(i, element):
        built.append(i)
        return f"word #{i} ({element.get('word')!r})"

    def key_label(k, v):
        built.append(k)
        return f"utterance {k}"

    spec = S.Obj({"words": S.List(S.Obj({"word": S.Str(), "n": S.Int()}), label=label),
                  "utts": S.Map(S.Int(), label=key_label)})
    good = {"words": [{"word": f"w{i}", "n": i} for i in range(1000)], "utts": {f"u{i}": i for i in range(100)}}
    S.validate(good, spec, "file f.json", "fix it")
    assert built == []
    bad = copy.deepcopy(good)
    bad["words"][7]["n"] = "seven"
    with pytest.raises(UserError) as info:
        S.validate(bad, spec, "file f.json", "fix it")
    assert built == [7]
    assert str(info.value) == "file f.json: field words[7].n (word #7 ('w7')) is 'seven' (a string), expected an " \
                              "integer; fix it"
    bad = copy.deepcopy(good)
    bad["utts"]["u3"] = None
    with pytest.raises(UserError) as info:
        S.validate(bad, spec, "file f.json", "fix it")
    assert str(info.value) == 'file f.json: field utts["u3"] (utterance u3) is null, expected an integer; fix it'
    assert built == [7, "u3"]
