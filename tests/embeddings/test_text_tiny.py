"""The tiny text models and GloVe file of tools/make_tiny_text.py (used by the tests and the demo)."""
from __future__ import annotations

import json

import numpy as np

from tests.helpers.scripts import script_main
from tests.helpers.text import all_words, write_alignment_json
from wordreps.embeddings.tiny.text import minilm_path, wordpiece_vocab


def test_wordpiece_vocab_is_dense_and_keeps_every_other_word():
    vocab = wordpiece_vocab(["b", "apple", "cherry", "date", "s"])
    assert len(vocab) == len(set(vocab)) and vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # sorted: apple b cherry date s -> apple, cherry and s are kept whole ("b", "s" are letters anyway)
    assert "apple" in vocab and "cherry" in vocab and "date" not in vocab


def test_cli_builds_loadable_models_from_an_alignment(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    alignment = write_alignment_json(tmp_path / "al.json")
    out = tmp_path / "models"
    main = script_main("tools/make_tiny_text.py")
    assert main(["--out", str(out), "--vocab_from", str(alignment), "--glove_oov_every", "5"]) == 0
    words = all_words()
    for name, model_type in (("tiny-bert", "bert"), ("tiny-roberta", "roberta")):
        config = AutoConfig.from_pretrained(out / name)
        assert (config.model_type, config.hidden_size, config.num_hidden_layers) == (model_type, 32, 2)
        tok = AutoTokenizer.from_pretrained(out / name)
        assert tok.is_fast
        lengths = [len(tok(w if model_type == "bert" else " " + w, add_special_tokens=False)["input_ids"])
                   for w in words]
        assert min(lengths) == 1 and max(lengths) >= 3  # some words whole, some split
        assert tok.unk_token_id not in tok(" ".join(words))["input_ids"]
    glove = (out / "tiny-glove.50d.txt").read_text().splitlines()
    glove_words = [line.split(" ")[0] for line in glove]
    assert all(len(line.split(" ")) == 51 for line in glove)
    kept = [w for i, w in enumerate(words) if i % 5 != 0]
    assert [w for w in glove_words if w in set(words)] == kept
    values = np.array([[float(x) for x in line.split(" ")[1:]] for line in glove])
    assert np.isfinite(values).all() and values.std() > 0.5


def test_minilm_path_holds_real_weights():
    folder = minilm_path()
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (6, 384)
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
