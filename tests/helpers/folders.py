"""Embedding and matrix folders written straight from numpy arrays, for the matrices, CKA and ASIF tests.

The folders follow the contract's on-disk format exactly (manifest.json, utts/<id>.npy,
done.shard-<i>-of-<n>.jsonl), written here with plain json/numpy and not with the store's writer, so the
tests also check that the matrices stage reads what the contract describes.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

VOCAB = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home", "big", "red", "sun"]


def make_utterances(rng: np.random.Generator, num_utts: int, min_words: int = 3, max_words: int = 9,
                    vocab: list[str] = VOCAB) -> dict[str, list[str]]:
    """``{utt_id: words}`` with LibriSpeech-like ids, unsorted insertion order on purpose."""
    out: dict[str, list[str]] = {}
    for k in rng.permutation(num_utts):
        utt = f"{1000 + int(k) % 3}-{2000 + int(k) // 3}-{int(k):04d}"
        out[utt] = [vocab[int(i)] for i in rng.integers(0, len(vocab), int(rng.integers(min_words, max_words + 1)))]
    return out


def random_arrays(rng: np.random.Generator, utterances: dict[str, list[str]], num_layers: int, dim: int
                  ) -> dict[str, np.ndarray]:
    return {u: rng.normal(size=(num_layers, len(w), dim)).astype(np.float32) for u, w in utterances.items()}


def write_embedding_folder(root: str | Path, slug: str, utterances: dict[str, list[str]],
                           arrays: dict[str, np.ndarray], *, model: str | None = None, dtype: str = "float16",
                           family: str = "hf-text", num_shards: int = 1) -> Path:
    """One model's folder ``root/slug`` in the contract's format; NaN rows are listed as missing."""
    folder = Path(root) / slug
    (folder / "utts").mkdir(parents=True, exist_ok=True)
    first = next(iter(arrays.values()))
    num_layers, _, dim = first.shape
    manifest = {
        "format": "wordreps.embeddings", "version": 1, "model": model or slug, "family": family,
        "num_layers": int(num_layers), "layer_names": [f"layer_{i}" for i in range(num_layers)], "dim": int(dim),
        "dtype": dtype, "geometry": None, "alignment_path": "alignments/test.json", "alignment_sha256": "0" * 64,
        "describe": {}, "versions": {},
        "utterances": {u: {"words": list(w), "shape": [int(num_layers), len(w), int(dim)]}
                       for u, w in utterances.items()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    lines: dict[int, list[str]] = {i: [] for i in range(num_shards)}
    for k, (utt, arr) in enumerate(sorted(arrays.items())):
        path = folder / "utts" / f"{utt}.npy"
        np.save(path, arr.astype(dtype))
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        missing = np.flatnonzero(~np.isfinite(arr.astype(dtype)).all(axis=(0, 2))).tolist()
        lines[k % num_shards].append(json.dumps({"utt": utt, "sha256": sha, "missing": missing}))
    for i, shard_lines in lines.items():
        (folder / f"done.shard-{i}-of-{num_shards}.jsonl").write_text("".join(x + "\n" for x in shard_lines))
    return folder


def stored(arr: np.ndarray, dtype: str = "float16") -> np.ndarray:
    """What a reader gets back for ``arr`` written as ``dtype``, as float32."""
    return arr.astype(dtype).astype(np.float32)


def related_layers(rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two models' layers (float32, as the matrices stage stores them) for the CKA and similarity tests.

    Model 1: 3 layers (n, 6), the same 4 latent factors plus 2 noise columns mixed, with noise 0.1, 0.5 and 3.0.
    Model 2: layer 0 (n, 5) a nonlinear map of the factors (+ noise, offset 7: centring matters), layer 1 pure noise.
    """
    z = rng.normal(size=(n, 4))
    m1 = [np.c_[z, rng.normal(size=(n, 2))] @ rng.normal(size=(6, 6)) + s * rng.normal(size=(n, 6))
          for s in (0.1, 0.5, 3.0)]
    m2 = [np.tanh(z @ rng.normal(size=(4, 5))) + 0.2 * rng.normal(size=(n, 5)) + 7.0, rng.normal(size=(n, 5))]
    return [m.astype(np.float32) for m in m1], [m.astype(np.float32) for m in m2]


def write_matrix_folder(root: Path, slug: str, layers: list[np.ndarray], keys_sha256: str = "k" * 64,
                        model: str | None = None, num_layers: int | None = None) -> Path:
    """A matrices folder (layer_<i>.npy + matrices.json) written directly, for CKA tests that need no embeddings."""
    folder = Path(root) / slug
    folder.mkdir(parents=True, exist_ok=True)
    for i, mat in enumerate(layers):
        np.save(folder / f"layer_{i}.npy", np.asarray(mat, dtype=np.float32))
    info = {"format": "wordreps.matrices", "version": 1, "model": model or slug, "slug": slug,
            "embeddings_dir": "none", "embeddings_fingerprint": "none", "keys_path": "keys.json",
            "keys_sha256": keys_sha256, "num_rows": int(layers[0].shape[0]), "dim": int(layers[0].shape[1]),
            "num_layers": num_layers or len(layers), "dtype": "float32", "layers": list(range(len(layers)))}
    (folder / "matrices.json").write_text(json.dumps(info))
    return folder
