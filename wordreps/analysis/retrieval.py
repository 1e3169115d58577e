"""ASIF retrieval between two spaces (audio and text) through relative representations over shared anchors.

Norelli, Fumero, Maiorca, Moschella, Rodolà, Locatello (2023). ASIF: Coupled Data Turns Unimodal Models to
Multimodal without Training. NeurIPS.

Procedure (one layer of an audio model, one of a text model, rows = the keys file's word occurrences):

1. Every row of both matrices is L2-normalised (with ``center``: the anchors' mean of its own space is
   subtracted first), so that dot products are cosine similarities.
2. A seeded ``query_fraction`` of the occurrences are queries; the rest are anchors, each one a *pair*
   (audio vector, text vector of the same occurrence).
3. Relative representation of a vector: its similarities to the anchors of its own space, of which only the
   k largest are kept (ties at the k-th place broken towards the lower anchor index, so the set is
   deterministic even when identical vectors, such as GloVe's, tie), clipped at 0 (a negative similarity
   raised to an even p would turn into a strong positive one), raised to the power p and L2-normalised.
   It is sparse: k (anchor index, value) pairs. An anchor's own relative representation leaves the anchor
   itself out (its similarity to itself is 1 in both spaces, which would let a query reach a candidate
   through the candidate's paired vector in the query's own space rather than by comparing the two spaces).
4. Audio -> text: a query's audio relative representation is compared (dot product over anchor indices) with
   the relative representation of every anchor's *text* vector. Text -> audio is the mirror image.

Candidates and scoring (our choice, documented because the word-level task differs from ASIF's
classification): every anchor occurrence is a candidate; a candidate word type is scored by its
best-scoring occurrence; word types are ranked by that score (ties: the type whose best occurrence has the
lower anchor index first). Top-1, top-5 and the mean reciprocal rank are computed on this ranking of
distinct words and judged by word identity. A query whose word never occurs among the anchors cannot be
right; it counts as a miss (reciprocal rank 0), and ``num_answerable`` says how many queries could be.

Chance (reported beside every result): the same procedure with random scores. Then the best occurrence is
a uniformly random anchor occurrence, so chance top-1 is frequency-weighted:
mean over queries of count_anchors(true word) / num_anchors (exact). Chance top-5 and MRR come from
``chance_draws`` seeded simulations of that ranking (word order = order of each type's first occurrence in a
random permutation of the anchors). The uniform figures over the distinct words (1/W, 5/W, H_W/W, times the
answerable fraction) are reported too, as ``uniform``.

Memory: similarities are computed ``chunk_size`` rows at a time (never n x anchors at once); relative
representations are kept as (indices, values); scores of a chunk of queries against all candidates are one
sparse product (CPU: sparse x sparse; CUDA: sparse candidates x dense chunk).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from wordreps.analysis import reliability as R
from wordreps.analysis.plots import plot_sweep
from wordreps.common.atomic import (
    check_output_dir,
    write_json_atomic,
    write_text_atomic,
)
from wordreps.common.errors import UserError
from wordreps.common.names import check_name
from wordreps.embeddings.matrices import (
    MATRICES_JSON,
    Keys,
    load_keys,
    load_matrix,
    read_matrices_json,
)

SUMMARY_FIELDS = ["k", "p", "direction", "top1", "top5", "mrr", "chance_top1", "chance_top5", "chance_mrr",
                  "uniform_top1", "num_queries", "num_answerable", "num_candidate_words", "num_anchors"]


# ---------------------------------------------------------------------------------------------- inputs

def load_inputs(path1: str | Path, path2: str | Path, keys_path: str | Path) -> tuple[np.ndarray, np.ndarray, Keys]:
    """Both matrices and the keys, checked: same rows as the keys, same keys file, finite rows."""
    keys = load_keys(keys_path)
    mats = []
    for path in (path1, path2):
        path = Path(path)
        info = read_matrices_json(path.parent) if (path.parent / MATRICES_JSON).is_file() else None
        if info is not None and info.get("keys_sha256") != keys.sha256:
            raise UserError(f"{path} was assembled from another keys file than {keys.path} (sha256 "
                            f"{str(info.get('keys_sha256'))[:12]} vs {keys.sha256[:12]}); pass the keys file the "
                            "matrices were assembled with, or assemble them again with --words_path")
        mats.append(load_matrix(path))
    a, t = mats
    if a.shape[0] != t.shape[0]:
        raise UserError(f"{path1} has {a.shape[0]} rows but {path2} has {t.shape[0]}: the two matrices do not pair "
                        "the same occurrences; assemble both from the same keys file")
    if a.shape[0] != len(keys.rows):
        raise UserError(f"{path1} has {a.shape[0]} rows but keys file {keys.path} has {len(keys.rows)}; pass the "
                        "keys file the matrices were assembled with")
    return a, t, keys


def split_rows(n: int, query_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, anchors): sorted row indices, a seeded ``round(query_fraction * n)`` of them queries."""
    num_queries = int(round(query_fraction * n))
    if num_queries < 1 or num_queries > n - 1:
        raise UserError(f"--query_fraction {query_fraction} of {n} rows leaves {num_queries} queries and "
                        f"{n - num_queries} anchors; both need at least one, choose another fraction")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:num_queries]), np.sort(order[num_queries:])


def normalise(X: np.ndarray, anchors: np.ndarray, center: bool, path: str | Path) -> np.ndarray:
    """Rows L2-normalised (float32); with ``center`` the anchors' mean is subtracted first."""
    X = np.array(X, dtype=np.float64)
    if center:
        X -= X[anchors].mean(axis=0, keepdims=True)
    norms = np.linalg.norm(X, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise UserError(f"{path}, row {int(zero[0])} has length 0{' after centring' if center else ''} and cannot "
                        "be L2-normalised; drop that occurrence from the keys and assemble the matrices again")
    return (X / norms[:, None]).astype(np.float32)


# ---------------------------------------------------------------------------------------------- chance

def chance_levels(anchor_word: np.ndarray, query_word: np.ndarray, num_words: int, seed: int, draws: int = 1000
                  ) -> dict:
    """Top-1/top-5/MRR of random scores over the per-occurrence candidates (see module doc), and the uniform ones."""
    counts = np.bincount(anchor_word, minlength=num_words).astype(np.float64)
    answerable = query_word >= 0
    frac = float(answerable.mean()) if len(query_word) else 0.0
    top1 = float(np.where(answerable, counts[np.maximum(query_word, 0)] / counts.sum(), 0.0).mean())
    rng = np.random.default_rng(seed)
    hits5 = np.zeros(num_words)
    recip = np.zeros(num_words)
    batch = max(1, min(draws, 2_000_000 // max(num_words, 1)))
    done = 0
    while done < draws:
        b = min(batch, draws - done)
        # a type's first place in a random permutation of the anchors: the minimum of `count` uniforms
        first = 1.0 - rng.random((b, num_words)) ** (1.0 / counts)
        ranks = np.empty_like(first, dtype=np.int64)
        np.put_along_axis(ranks, np.argsort(first, axis=1), np.arange(1, num_words + 1)[None, :], axis=1)
        hits5 += (ranks <= 5).sum(axis=0)
        recip += (1.0 / ranks).sum(axis=0)
        done += b
    hits5 /= draws
    recip /= draws
    safe = np.maximum(query_word, 0)
    harmonic = float(np.sum(1.0 / np.arange(1, num_words + 1)))
    return {
        "top1": top1,
        "top5": float(np.where(answerable, hits5[safe], 0.0).mean()),
        "mrr": float(np.where(answerable, recip[safe], 0.0).mean()),
        "method": "random scores over the per-occurrence candidates: top-1 exact (frequency-weighted), "
                  f"top-5 and MRR from {draws} seeded simulations",
        "uniform": {"top1": frac / num_words, "top5": frac * min(5, num_words) / num_words,
                    "mrr": frac * harmonic / num_words,
                    "method": "uniformly random ranking of the distinct candidate words"},
    }


def _pname(p: float) -> str:
    return f"{p:g}"


def default_name(path1: str | Path, path2: str | Path) -> str:
    """``<model folder>-<layer file stem>__<model folder>-<layer file stem>``."""
    def one(path: str | Path) -> str:
        path = Path(path)
        return f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem
    return f"{one(path1)}__{one(path2)}"


def write_results(out_folder: Path, result: dict, keys: Keys, settings: dict, inputs: dict,
                  warning_lines: Sequence[str] = ()) -> list[Path]:
    """Per (k, p) a JSON with per-query retrievals; summary.json, summary.csv and accuracy_vs_k.png.
    ``warning_lines``: what was said on stderr about the inputs (few rows, a constant layer), kept in the JSONs."""
    vocab = result["vocab"]
    queries = result["queries"]
    written: list[Path] = []
    summary_rows = []
    for cfg in result["configs"]:
        k, p = cfg["k"], cfg["p"]
        directions = {}
        for name, d in cfg["directions"].items():
            per_query = []
            for j, row in enumerate(queries.tolist()):
                utt, pos, word = keys.rows[row]
                per_query.append({"row": row, "utt": utt, "position": pos, "word": word,
                                  "rank": int(d.ranks[j]) if d.ranks[j] > 0 else None,
                                  "top5": [vocab[w] for w in d.top[j].tolist()]})
            directions[name] = {"metrics": d.metrics, "chance": result["chance"], "queries": per_query}
            summary_rows.append({"k": k, "p": p, "direction": name, **{m: d.metrics[m] for m in ("top1", "top5", "mrr")},
                                 "chance_top1": result["chance"]["top1"], "chance_top5": result["chance"]["top5"],
                                 "chance_mrr": result["chance"]["mrr"],
                                 "uniform_top1": result["chance"]["uniform"]["top1"],
                                 "num_queries": d.metrics["num_queries"], "num_answerable": d.metrics["num_answerable"],
                                 "num_candidate_words": d.metrics["num_candidate_words"],
                                 "num_anchors": len(result["anchors"])})
        obj = {"format": "wordreps.asif", "version": 1, "keys_sha256": inputs["keys_sha256"],
               "settings": {**settings, "k": k, "p": p},
               "inputs": inputs, "split": {"num_queries": len(queries), "num_anchors": len(result["anchors"])},
               "warnings": list(warning_lines),
               "directions": directions}
        path = out_folder / f"asif_k{k}_p{_pname(p)}.json"
        write_json_atomic(path, obj, indent=None)
        written.append(path)
    summary = {"format": "wordreps.asif-summary", "version": 1, "keys_sha256": inputs["keys_sha256"],
               "settings": settings, "inputs": inputs, "warnings": list(warning_lines),
               "chance": result["chance"], "results": summary_rows}
    write_json_atomic(out_folder / "summary.json", summary)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows:
        writer.writerow({key: (format(v, ".6g") if isinstance(v, float) else v) for key, v in row.items()})
    write_text_atomic(out_folder / "summary.csv", buf.getvalue())
    plot_sweep(out_folder / "accuracy_vs_k.png", summary_rows, result["chance"])
    return written + [out_folder / "summary.json", out_folder / "summary.csv", out_folder / "accuracy_vs_k.png"]


def run(path1: str | Path, path2: str | Path, keys_path: str | Path, *, ks: Sequence[int], ps: Sequence[float],
        query_fraction: float = 0.15, seed: int = 0, center: bool = False, chunk_size: int = 512,
        device: str = "auto", out_dir: str | Path = "outputs/results/asif", name: str | None = None,
        names: tuple[str, str] = ("audio", "text"), chance_draws: int = 1000) -> tuple[Path, dict]:
    """The CLI's work: load, check, run every (k, p), write; returns the output folder and the summary rows."""
    if name is not None:
        check_name(name, "folder name", "--name", "pass a plain name such as wav2vec2-layer_12__bert-layer_6")
    else:
        name = check_name(default_name(path1, path2), "folder name", f"the folder name made from {path1} and {path2}",
                          "pass --name")
    folder = check_output_dir(Path(out_dir) / name, "results folder")  # before computing
    a, t, keys = load_inputs(path1, path2, keys_path)
    n = a.shape[0]
    warned = [R.few_rows_warning(n, "retrieval accuracies (a held-out share of them are the queries)")]
    warned += [f"{p}: all {n} rows are equal (no variance), so every query ties with every anchor in that space "
               "and its retrieval is at chance" for p, m in ((path1, a), (path2, t)) if R.is_constant(m)]
    warned = [w for w in warned if w]
    R.say(warned)
    queries, anchors = split_rows(n, query_fraction, seed)
    if max(ks) > len(anchors) - 1:
        raise UserError(f"--k {max(ks)} is larger than the anchors an anchor can use ({len(anchors)} anchors of {n} "
                        f"occurrences with --query_fraction {query_fraction}, itself left out); "
                        f"use k <= {len(anchors) - 1}")
    from wordreps.analysis.asif import (
        run_asif,  # torch: imported only once the inputs are known good
    )

    result = run_asif(a, t, keys.words, queries, anchors, ks=ks, ps=ps, seed=seed, center=center,
                      chunk_size=chunk_size, device=device, names=names, chance_draws=chance_draws,
                      paths=(str(path1), str(path2)))
    settings = {"ks": sorted(set(int(k) for k in ks)), "ps": [float(p) for p in ps], "query_fraction": query_fraction,
                "seed": seed, "center": center, "names": list(names), "chance_draws": chance_draws,
                "candidates": "every anchor occurrence; words ranked by their best occurrence (ties: lower anchor "
                              "index first)", "product": result["method"], "device": result["device"]}
    inputs = {"path_layer1": str(path1), "path_layer2": str(path2), "keys_path": str(keys_path),
              "keys_sha256": keys.sha256, "num_rows": int(a.shape[0]), "dims": [int(a.shape[1]), int(t.shape[1])]}
    write_results(folder, result, keys, settings, inputs, warned)
    return folder, result
