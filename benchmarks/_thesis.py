"""The thesis's per-utterance extraction work, shared by every benchmark's thesis loop (bench_pipeline.py,
bench_busy.py, bench_extract.py), so that all of them time the same faithful baseline.

One utterance, as the thesis's code does it: a forward pass with every hidden state copied to the host as
float32 numpy, each word's vector per layer a numpy mean over its frames (or sub-tokens), and one JSON file per
utterance, ``embeddings_words_<utt>.json`` holding ``{utt: {word: ...}}`` written with ``json.dump(...,
indent=4)``. One deviation, so that the benchmarks can compare rows value by value: where the thesis kept only
the first occurrence of a word repeated in an utterance, here ``{word: [occurrence][layer][dim]}`` lists every
occurrence (see bench_pipeline.py's docstring).

The forward runs in full float32 (:func:`wordreps.common.precision.exact_float32`, deterministic cuDNN: no TF32
on a GPU), as the toolkit's float32 stage does. A module beside the scripts, not a script; they import it with

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _thesis
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def forward_to_host(forward: Callable[[], Sequence]) -> list[np.ndarray]:
    """``forward()`` (returning every layer's hidden states, batch of one) without gradients in exact float32;
    every layer copied to the host as a float32 (frames, dim) array."""
    import torch

    from wordreps.common.precision import exact_float32

    with torch.no_grad(), exact_float32(deterministic=True):
        states = forward()
        return [h[0].float().cpu().numpy() for h in states]


def word_means(reps: Sequence[np.ndarray], selections: Sequence) -> list[list[list[float]]]:
    """Per word (a slice of frames or a list of sub-token positions), per layer: the numpy mean, as lists."""
    return [[np.mean(r[sel], axis=0).tolist() for r in reps] for sel in selections]


def frame_spans(utterance) -> list[slice]:
    """Each word's frames from the alignment (first_frame..last_frame inclusive)."""
    return [slice(w.first_frame, w.last_frame + 1) for w in utterance.words]


def write_utterance(out_dir: Path, utt_id: str, words: Sequence[str], vectors: Sequence) -> Path:
    """``embeddings_words_<utt>.json``: ``{utt: {word: [occurrence][layer][dim]}}``, indent=4, as the thesis wrote."""
    emb: dict[str, list] = {}
    for word, vec in zip(words, vectors):
        emb.setdefault(word, []).append(vec)
    path = Path(out_dir) / f"embeddings_words_{utt_id}.json"
    with open(path, "w") as fh:
        json.dump({utt_id: emb}, fh, indent=4)
    return path


def utterance(forward: Callable[[], Sequence], utt_id: str, words: Sequence[str], selections: Sequence,
              out_dir: Path) -> Path:
    """One utterance of the thesis loop: forward (all layers to the host), word means, the JSON file."""
    reps = forward_to_host(forward)
    return write_utterance(out_dir, utt_id, words, word_means(reps, selections))
