"""The family table (wordreps/embeddings/families.py): which family a name belongs to, the geometry it implies,
and that every row's script, loader and flags exist."""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from tests.helpers.scripts import help_text
from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError
from wordreps.embeddings.families import (
    AST,
    BEATS,
    ENCODECMAE,
    FAMILIES,
    KINDS,
    WAV2VEC2_CONV,
    family,
    family_for,
    geometry_for_model,
    is_s3prl_checkpoint,
)
from wordreps.pipeline.runner import parse_model


@pytest.mark.parametrize("name,expected", [
    ("glove", "glove"), ("datasets/glove/glove.42B.300d.txt", "glove"), ("vectors.bin", "glove"), ("w.kv", "glove"),
    ("encodecmae_base", "easyaudio"), ("BEATs_iter3", "easyaudio"), ("beats_iter3+_AS2M", "easyaudio"),
    ("MIT/ast-finetuned-audioset-10-10-0.4593", "hf-audio"), ("ast", "hf-audio"),
    ("wav2vec2_large_960", "s3prl"), ("hubert_large_ll60k", "s3prl"), ("wavlm_large", "s3prl"),
    ("models/converted.pt", "s3prl"),
    ("facebook/wav2vec2-base", "hf-speech"), ("microsoft/wavlm-large", "hf-speech"),
    ("facebook/hubert-large-ll60k", "hf-speech"),
    ("bert-base-uncased", "hf-text"), ("roberta-base", "hf-text"), ("sentence-transformers/all-MiniLM-L6-v2", "hf-text"),
    ("bastard", "hf-text"),  # "ast" inside a word is not AST
])
def test_bare_names_go_to_their_family(name, expected):
    assert family_for(name).name == expected


def _folder(tmp_path: Path, name: str, config: dict) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_local_folders_are_recognised_by_their_config(tmp_path):
    speech = _folder(tmp_path, "my-speech", {"model_type": "hubert", "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
                                             "conv_stride": [5, 2, 2, 2, 2, 2, 2]})
    audio = _folder(tmp_path, "my-audio", {"model_type": "audio-spectrogram-transformer", "patch_size": 16,
                                           "time_stride": 12})
    text = _folder(tmp_path, "my-text", {"model_type": "bert"})
    assert [family_for(p).name for p in (speech, audio, text)] == ["hf-speech", "hf-audio", "hf-text"]
    # geometry from the config alone: hop = product of strides, R = 1 + sum (k - 1) * jump; AST: hop = stride * 10 ms
    assert geometry_for_model(speech) == WAV2VEC2_CONV
    assert geometry_for_model(audio) == FrameGeometry(16000, 12 * 160, 15 * 160 + 400)
    odd = _folder(tmp_path, "odd-speech", {"model_type": "wav2vec2", "conv_kernel": [4, 2], "conv_stride": [2, 3]})
    assert geometry_for_model(odd) == FrameGeometry(16000, 6, 1 + 3 * 1 + 1 * 2)


@pytest.mark.parametrize("name,geometry", [
    ("wav2vec2", WAV2VEC2_CONV), ("facebook/wav2vec2-base", WAV2VEC2_CONV), ("encodecmae_large", ENCODECMAE),
    ("BEATs_iter3", BEATS), ("MIT/ast-finetuned-audioset-10-10-0.4593", AST), ("models/x.pt", WAV2VEC2_CONV),
])
def test_geometry_of_known_names(name, geometry):
    assert geometry_for_model(name) == geometry


@pytest.mark.parametrize("name", ["bert-base-uncased", "glove", "fbank"])
def test_names_without_frames_have_no_geometry(name):
    with pytest.raises(UserError, match="no frame geometry is known"):
        geometry_for_model(name)


def test_within_a_kind_unknown_names_go_to_the_kinds_default_family():
    assert family_for("no_such_model", "speech").name == "hf-speech"
    assert family_for("no_such_model", "audio").name == "hf-audio"
    assert family_for("anything.txt", "text").name == "hf-text"
    assert family_for("wav2vec2", "speech").name == "s3prl"
    with pytest.raises(UserError, match="unknown model kind 'video'"):
        family_for("x", "video")


def test_an_s3prl_checkpoint_is_a_file_or_a_checkpoint_name_never_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "converted").write_bytes(b"\0")          # an existing file, whatever its name
    (tmp_path / "odd.pt").mkdir()                          # a folder, whatever its name
    (tmp_path / "wav2vec2").mkdir()                        # a folder named like an s3prl upstream
    (tmp_path / "wav2vec2" / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    assert [is_s3prl_checkpoint(n) for n in ("converted", "later/made.pt", "x.ckpt", "odd.pt", "wav2vec2", "hubert")] \
        == [True, True, True, False, False, False]
    assert family_for("wav2vec2", "speech").name == "hf-speech"   # the local folder, not s3prl's upstream
    assert family_for("hubert", "speech").name == "s3prl"         # no such folder here: the hub name
    assert family("s3prl").model_args("converted") == ["--s3prl_ckpt", "converted"]
    assert family("s3prl").model_args("odd.pt") == ["--model", "odd.pt"]


def test_the_runner_reads_kinds_and_folders_from_the_table():
    spec = parse_model("speech:some/path/my-model@mine")
    assert (spec.family.name, spec.kind, spec.modality, spec.slug) == ("hf-speech", "speech", "audio", "mine")
    assert parse_model("glove:/data/vectors.txt").slug == "glove"
    assert parse_model("text:org/model").slug == "org__model"
    assert family("s3prl").model_args("ckpt.pt") == ["--s3prl_ckpt", "ckpt.pt"]
    assert family("glove").model_args("v.txt") == ["--glove", "v.txt"]


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_every_row_names_a_real_script_loader_and_flag(fam):
    assert fam.kind in KINDS and fam.modality in ("text", "audio")
    module, _, function = fam.loader.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    shown = help_text(fam.script)
    assert fam.model_flag in shown
    takes_precision = re.search(r"^\s*--precision\b", shown, flags=re.M) is not None
    assert takes_precision == fam.takes_precision
    assert (fam.geometry is None) == (fam.modality == "text")


def test_the_runner_gives_easyaudio_flags_only_to_the_models_they_concern():
    from argparse import Namespace

    from wordreps.pipeline.runner import _easyaudio_args

    args = Namespace(beats_checkpoint="ckpt/BEATs_iter3.pt", torch_compile=True)
    assert _easyaudio_args(args, parse_model("BEATs_iter3")) == ["--beats_checkpoint", "ckpt/BEATs_iter3.pt"]
    assert _easyaudio_args(args, parse_model("encodecmae_base")) == ["--torch_compile"]
    assert _easyaudio_args(args, parse_model("wav2vec2_large_960")) == []
    assert _easyaudio_args(Namespace(beats_checkpoint=None, torch_compile=False), parse_model("BEATs_iter3")) == []
