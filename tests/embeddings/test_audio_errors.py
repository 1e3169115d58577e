"""Bad input for the general-audio script: easyaudio absent, unknown models, folders that are not models."""
from __future__ import annotations

import importlib.util

import pytest

from tests.helpers.audio import SCRIPT, make_corpus
from tests.helpers.faults import assert_refused
from tests.helpers.scripts import error_lines, run_script, script_env
from tests.helpers.text import write_alignment_json
from wordreps.embeddings.families import BEATS, ENCODECMAE
from wordreps.common.errors import UserError

INSTALL = "git clone --recursive https://github.com/mrpep/easyaudio && cd easyaudio && bash install.sh"


def test_the_real_easyaudio_is_not_installed_here():
    # The tests below rely on it; if it ever is installed, they must hide it another way.
    assert importlib.util.find_spec("easyaudio") is None


def test_easyaudio_absent_is_one_line_with_the_install_command(tmp_path):
    json_path, _ = make_corpus(tmp_path, ENCODECMAE, {"a": {"duration_s": 1.0}})
    out_dir = tmp_path / "emb"
    # the thesis command, without the stand-in on the path
    res = run_script(SCRIPT, "--model", "encodecmae_base", "--path", json_path, "--device", "cpu",
                             "--out_dir", out_dir)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    (line,) = error_lines(res.stderr)
    assert "easyaudio is not installed" in line and "'encodecmae_base'" in line
    assert INSTALL in line and "see docs/models.md: Installing easyaudio" in line
    assert not out_dir.exists()


def test_easyaudio_absent_in_process():
    from wordreps.embeddings.families import load_backend
    with pytest.raises(UserError, match="easyaudio is not installed") as info:
        load_backend("audio", "BEATs_iter3", "cpu")
    assert INSTALL in str(info.value) and "\n" not in str(info.value)


def test_unknown_model_from_the_command_line(tmp_path):
    json_path, _ = make_corpus(tmp_path, BEATS, {"a": {"duration_s": 1.0}})
    out_dir = tmp_path / "emb"
    res = run_script(SCRIPT, "--model", "BEATs_iter7", "--path", json_path, "--out_dir", out_dir,
                     env=script_env(easyaudio=True))
    assert res.returncode == 2
    (line,) = error_lines(res.stderr)
    assert "unknown easyaudio model 'BEATs_iter7'" in line and "BEATs_iter3" in line
    assert not out_dir.exists()


def test_a_folder_that_is_not_a_model(tmp_path):
    from wordreps.embeddings.families import load_backend
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"is not a model folder \(no config.json"):
        load_backend("audio", str(tmp_path / "empty"), "cpu")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1, '
                                      '"num_attention_heads": 1, "intermediate_size": 8, "vocab_size": 10}')
    with pytest.raises(UserError, match=r"is a 'bert' model, not an Audio Spectrogram Transformer"):
        load_backend("audio", str(bert), "cpu")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot load Audio Spectrogram Transformer folder"):
        load_backend("audio", str(broken), "cpu")


def test_audio_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 64)
    al = write_alignment_json(tmp_path / "al.json")
    out = tmp_path / "emb"
    proc = run_script(SCRIPT, "--model", folder, "--path", al, "--out_dir", out, "--device", "cpu")
    assert_refused(proc, [str(folder), "is not a model folder (no config.json", "BEATs_iter3"], absent=[out],
                   no_temps_in=[tmp_path])
