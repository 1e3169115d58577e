"""Alignment JSONs of LibriSpeech-like sentences and an independent sub-token pooling reference for the text tests."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from wordreps.alignments.format import write_alignment
from wordreps.alignments.geometry import FrameGeometry
from wordreps.embeddings.base import BatchItem, Utterance, Word

GEOMETRY = FrameGeometry(16000, 320, 400)
WORD_S = 0.3  # every word lasts 0.3 s: frames do not matter to text models, they only have to be valid

# LibriSpeech-like utterances with apostrophes and long words, so that some words split into sub-tokens
UTTERANCES: dict[str, list[str]] = {
    "1272-128104-0000": "mister quilter is the apostle of the middle classes and we are glad to welcome his gospel".split(),
    "1272-128104-0001": "nor is mister quilter's manner less interesting than his matter".split(),
    "1272-128104-0002": "he tells us that at this festive season of the year with christmas and roast beef".split(),
    "1272-128104-0003": "similes drawn from eating".split(),
    "1272-128104-0004": "linnell's pictures are a sort of up guards and at em paintings".split(),
}


def utterance(utt_id: str, words: Sequence[str]) -> Utterance:
    hop_s = GEOMETRY.hop_s
    out = []
    for i, w in enumerate(words):
        start, end = i * WORD_S, (i + 1) * WORD_S
        first = int(round(start / hop_s))
        out.append(Word(w, start, end, first, first + int(WORD_S / hop_s) - 2))
    num_samples = int(round((len(words) * WORD_S + 0.1) * GEOMETRY.sample_rate_hz))
    return Utterance(utt_id, f"audio/{utt_id}.flac", " ".join(words).upper(), num_samples,
                     GEOMETRY.sample_rate_hz, out)


def utterances(spec: dict[str, list[str]] | None = None) -> list[Utterance]:
    spec = UTTERANCES if spec is None else spec
    return [utterance(k, v) for k, v in sorted(spec.items())]


def write_alignment_json(path: Path, spec: dict[str, list[str]] | None = None) -> Path:
    write_alignment(path, GEOMETRY, utterances(spec))
    return path


def all_words(spec: dict[str, list[str]] | None = None) -> list[str]:
    spec = UTTERANCES if spec is None else spec
    return sorted({w for ws in spec.values() for w in ws})


def items(utts: Sequence[Utterance]) -> list[BatchItem]:
    return [BatchItem(u) for u in utts]


# ------------------------------------------------------------------------------------ the reference

def word_pieces(tokenizer, word: str, byte_level: bool) -> list[int]:
    """The ids of one word tokenized on its own (byte-level BPE: with the space that precedes it in text)."""
    text = " " + word if byte_level else word
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def reference_vectors(folder: str | os.PathLike, words: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """(layers, words, dim) float64 means of each word's sub-token hidden states, computed without word_ids.

    The sequence is built by hand: [CLS]/<s>, every word's own pieces in order, [SEP]/</s>; the model runs
    once on it and each word's span is averaged with numpy. Returns the vectors and the pieces per word.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, add_prefix_space=False)
    byte_level = "roberta" in type(tokenizer).__name__.lower()
    pieces = [word_pieces(tokenizer, w, byte_level) for w in words]
    ids = [tokenizer.cls_token_id] + [i for p in pieces for i in p] + [tokenizer.sep_token_id]
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hidden = np.stack([h[0].double().numpy() for h in out.hidden_states])  # (layers, tokens, dim)
    vectors = np.zeros((hidden.shape[0], len(words), hidden.shape[2]))
    pos = 1
    for i, p in enumerate(pieces):
        vectors[:, i] = hidden[:, pos:pos + len(p)].mean(axis=1)
        pos += len(p)
    return vectors, [len(p) for p in pieces]
