"""Keys files and per-layer matrices of shared word occurrences.

Two steps turn per-utterance embedding folders (see :mod:`wordreps.embeddings.store`) into the matrices the
experiments read:

1. **Keys** (``--write_words words_in_order.json``): the word occurrences, identified by
   (utterance id, position in the utterance's word list), that have a finite vector in *every* layer of
   *every* named model. Rows are ordered by utterance id (as strings) then position, so the same inputs
   always give the same file::

       {"format": "wordreps.keys", "version": 1, "models": [...], "rows": [[utt_id, position, word], ...]}

2. **Matrices** (``--layer 5`` or ``--layer all``): ``<out_dir>/<slug>/layer_<i>.npy``, float32, one row per
   keys row in keys order, plus ``matrices.json`` describing them. Every utterance file is read once,
   whatever the number of layers: each layer is written into its own memory-mapped ``.npy`` under a
   temporary name (so memory stays bounded at 25 layers x 54k rows x 1024) and renamed into place at the end.

Faults: a run killed at any moment leaves only finished layer files (renamed atomically) and temporary
files, which the next run deletes; ``matrices.json`` lists a layer only once its file is in place, and a
re-run rewrites the requested layers byte for byte. Bad input (a keys file that does not match the
embeddings, a file whose shape or checksum disagrees with its manifest or done record, a layer the model does
not have) is one :class:`UserError` naming the first offending row or file.

Embedding folders are read only through :func:`open_embeddings` (a thin wrapper over
:class:`wordreps.embeddings.store.EmbeddingSet`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from wordreps.common import schema as S
from wordreps.common.atomic import atomic_path, write_json_atomic, write_text_atomic
from wordreps.common.errors import UserError
from wordreps.common.hashing import sha256_file
from wordreps.common.locks import folder_lock
from wordreps.embeddings.store import EmbeddingSet, read_done_records, slug_for

KEYS_FORMAT = "wordreps.keys"
KEYS_VERSION = 1
MATRICES_FORMAT = "wordreps.matrices"
MATRICES_VERSION = 1
MATRICES_JSON = "matrices.json"
# Tests set this to slow assembly down (seconds per utterance and per renamed layer) so that a real
# SIGKILL can land mid-run; it changes nothing else.
SLOW_ENV = "WORDREPS_TEST_SLOW_ASSEMBLY_S"

# The declared shapes of the keys file and of matrices.json (version 1 of each).
KEYS_SCHEMA = S.Obj({"rows": S.List(S.Tuple((S.Str(nonempty=True, file_name=True), S.Int(lo=0), S.Str())),
                                    label=lambda i, _row: f"row {i}")},
                    optional={"models": S.List(S.Str())})
MATRICES_SCHEMA = S.Obj({
    "model": S.Str(nonempty=True), "slug": S.Str(nonempty=True, file_name=True), "embeddings_dir": S.Str(),
    "embeddings_fingerprint": S.Str(), "keys_path": S.Str(), "keys_sha256": S.Str(), "num_rows": S.Int(lo=1),
    "dim": S.Int(lo=1), "num_layers": S.Int(lo=1), "dtype": S.Str(choices=("float32",)),
    "layers": S.List(S.Int(lo=0)),
})


# ---------------------------------------------------------------------------------------------- embeddings

def resolve_embeddings(embeddings_dir: str | os.PathLike, model: str) -> Path:
    """The folder of ``model``'s embeddings: ``<embeddings_dir>/<slug>``, or ``model`` itself if it is such a folder."""
    root = Path(embeddings_dir)
    for name in (model.replace("/", "__").replace("\\", "__"), slug_for(model)):
        if name and (root / name / "manifest.json").is_file():
            return root / name
    if (Path(model) / "manifest.json").is_file():
        return Path(model)
    available = sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file()) if root.is_dir() else []
    raise UserError(f"no embeddings for model {model!r} in {root} (available: {', '.join(available) or 'none'}); "
                    "run the embedding script for it first, or pass --embeddings_dir")


def open_embeddings(folder: str | os.PathLike) -> EmbeddingSet:
    """The one place this module opens an embedding folder (the store's reader)."""
    return EmbeddingSet.open(folder)


def load_utterance(emb: EmbeddingSet, utt_id: str) -> np.ndarray:
    """(num_layers, num_words, dim) array of one utterance, its sha256 checked against the done record."""
    return emb.load(utt_id, verify=True)


def embeddings_fingerprint(emb: EmbeddingSet, utt_ids: Sequence[str]) -> str:
    """sha256 over the manifest and the done records' checksums of ``utt_ids``: changes when any is re-extracted."""
    done = read_done_records(emb.folder)
    digest = hashlib.sha256(sha256_file(emb.folder / "manifest.json").encode())
    for utt in sorted(set(utt_ids)):
        shas = sorted({rec.sha256 for rec in done.get(utt, [])})
        digest.update(json.dumps([utt, shas]).encode())
    return digest.hexdigest()


def _check_finished(emb: EmbeddingSet, utt_ids: Sequence[str]) -> None:
    """Every utterance has its file and a done record, and the file's size fits the manifest's shape."""
    done = read_done_records(emb.folder)
    for utt in utt_ids:
        if emb.is_done(utt):
            continue
        path = emb.path(utt)
        if path.exists() and done.get(utt):
            raise UserError(f"{path} has {path.stat().st_size} bytes, which disagrees with its shape "
                            f"{list(emb.shape(utt))} {emb.dtype} in the manifest (a truncated or replaced file); "
                            "delete it and run the extraction command again, which redoes that utterance")
        raise UserError(f"{path} is missing or unfinished (no done record in {emb.folder}): the extraction of "
                        "that model did not finish; run its extraction command again")


def _progress(iterable, total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is pinned in requirements.txt; stay usable without it
        return iterable
    # disable=None: a bar on a terminal, nothing in a log file
    return tqdm(iterable, total=total, desc=desc, unit="utt", disable=None, leave=False)


def _slow_down() -> None:
    delay = os.environ.get(SLOW_ENV)
    if delay:
        time.sleep(float(delay))


# ---------------------------------------------------------------------------------------------- keys

@dataclass(frozen=True)
class Keys:
    """A loaded keys file: ``rows[i] = (utt_id, position, word)``; ``sha256`` of the file's bytes."""
    path: Path
    models: list[str]
    rows: list[tuple[str, int, str]]
    sha256: str

    @property
    def words(self) -> list[str]:
        return [w for _, _, w in self.rows]


def keys_text(models: Sequence[str], rows: Sequence[tuple[str, int, str]]) -> str:
    """The keys file's text: one row per line, so that diffs of two keys files are readable."""
    head = json.dumps({"format": KEYS_FORMAT, "version": KEYS_VERSION, "models": list(models)}, ensure_ascii=False)
    body = ",\n".join(json.dumps([u, int(p), w], ensure_ascii=False) for u, p, w in rows)
    return head[:-1] + ', "rows": [\n' + body + ("\n" if rows else "") + "]}\n"


def load_keys(path: str | os.PathLike) -> Keys:
    """Read and check a keys file; a malformed one is a UserError naming the first bad row."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"keys file {path} does not exist; write it with embeddings/matrix_embeddings.py "
                        f"--models ... --write_words {path}") from None
    except OSError as err:
        raise UserError(f"keys file {path} cannot be read ({err.strerror}); check its permissions") from err
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise UserError(f"keys file {path} is not valid JSON ({err}); write it again with "
                        "embeddings/matrix_embeddings.py --write_words") from err
    again = "write it again with embeddings/matrix_embeddings.py --write_words"
    S.check_format(obj, KEYS_FORMAT, KEYS_VERSION, f"keys file {path}", "wordreps keys file", again)
    S.validate(obj, KEYS_SCHEMA, f"keys file {path}", again)
    rows: list[tuple[str, int, str]] = []
    seen: dict[tuple[str, int], int] = {}
    for i, (utt, pos, word) in enumerate(obj["rows"]):
        if (utt, pos) in seen:
            raise UserError(f"keys file {path}, row {i}: occurrence ({utt}, {pos}) repeats row {seen[utt, pos]}; "
                            "each occurrence may appear once, write the keys file again")
        seen[utt, pos] = i
        rows.append((utt, pos, word))
    models = list(obj.get("models", []))
    return Keys(path=path, models=models, rows=rows, sha256=hashlib.sha256(data).hexdigest())


def build_keys(embeddings_dir: str | os.PathLike, models: Sequence[str], progress: bool = True
               ) -> tuple[list[tuple[str, int, str]], dict]:
    """Rows of the keys file for ``models`` and a summary dict.

    A row is an occurrence (utterance, position) present in every model's manifest whose vector is finite in
    every layer of every model. The word text at each (utterance, position) must agree between models: a
    mismatch means the embeddings were made from different alignments, and is an error naming it.
    """
    if not models:
        raise UserError("--write_words needs --models (two or more model names, e.g. glove bert-base-uncased)")
    if len(set(models)) != len(models):
        raise UserError(f"--models names a model twice ({' '.join(models)}); name each once")
    sets = [open_embeddings(resolve_embeddings(embeddings_dir, m)) for m in models]
    common = set(sets[0].utterance_ids)
    every = set(sets[0].utterance_ids)
    for emb in sets[1:]:
        common &= set(emb.utterance_ids)
        every |= set(emb.utterance_ids)
    utt_ids = sorted(common)
    if not utt_ids:
        raise UserError(f"models {', '.join(models)} share no utterance; extract them from the same alignment "
                        "(same TextGrids) first")
    # words must agree before anything is read from disk
    for utt in utt_ids:
        ref = sets[0].words(utt)
        for name, emb in zip(models[1:], sets[1:]):
            other = emb.words(utt)
            for pos in range(max(len(ref), len(other))):
                a = ref[pos] if pos < len(ref) else "<none>"
                b = other[pos] if pos < len(other) else "<none>"
                if a != b:
                    raise UserError(
                        f"word at utterance {utt}, position {pos} is {a!r} in {models[0]} but {b!r} in {name}: "
                        "the embeddings were made from different word lists; extract both models from the same "
                        "alignment's TextGrids")
    for emb in sets:
        _check_finished(emb, utt_ids)
    rows: list[tuple[str, int, str]] = []
    dropped = 0
    for utt in (_progress(utt_ids, len(utt_ids), "keys") if progress else utt_ids):
        words = sets[0].words(utt)
        finite = np.ones(len(words), dtype=bool)
        for emb in sets:
            arr = load_utterance(emb, utt)
            finite &= np.isfinite(arr).all(axis=(0, 2))
        dropped += int((~finite).sum())
        rows.extend((utt, pos, words[pos]) for pos in np.flatnonzero(finite).tolist())
    summary = {"utterances": len(utt_ids), "rows": len(rows), "dropped_no_vector": dropped,
               "utterances_not_shared": len(every) - len(utt_ids)}
    return rows, summary


def write_keys(path: str | os.PathLike, embeddings_dir: str | os.PathLike, models: Sequence[str],
               progress: bool = True) -> dict:
    rows, summary = build_keys(embeddings_dir, models, progress)
    if not rows:
        raise UserError(f"no word occurrence has a vector in every one of {', '.join(models)}; nothing to write to "
                        f"{path} (check the models' done records and missing lists)")
    text = keys_text(models, rows)
    write_text_atomic(path, text)
    summary["path"] = str(path)
    summary["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()  # the bytes just written, not re-read
    return summary


# ---------------------------------------------------------------------------------------------- assembly

def layer_file(folder: str | os.PathLike, layer: int) -> Path:
    return Path(folder) / f"layer_{int(layer)}.npy"


def describe_layers(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    layers = sorted(set(int(x) for x in layers))
    parts: list[str] = []
    start = prev = None
    for x in layers + [None]:
        if start is None:
            start = prev = x
        elif x is not None and x == prev + 1:
            prev = x
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = x
    return ", ".join(parts) if parts else "none"


def parse_layers(spec: str, num_layers: int, model: str) -> list[int]:
    """``"all"`` or a list such as ``"5"``, ``"0,3,5"``, ``"2-4"`` -> sorted layer indices, checked against the depth."""
    if spec.strip().lower() == "all":
        return list(range(num_layers))
    out: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        try:
            if "-" in part.lstrip("-"):
                lo, hi = part.split("-", 1)
                values = range(int(lo), int(hi) + 1)
            else:
                values = [int(part)]
        except ValueError:
            raise UserError(f"--layer {spec!r} is not 'all', a layer number or a list such as 0,3,5 or 2-4") from None
        for v in values:
            if not 0 <= v < num_layers:
                raise UserError(f"layer {v} is past the depth of {model}: it has layers 0-{num_layers - 1}; "
                                f"pass --layer 0..{num_layers - 1} or all")
            out.add(v)
    if not out:
        raise UserError(f"--layer {spec!r} names no layer")
    return sorted(out)


def _validate_keys_against(emb: EmbeddingSet, keys: Keys, model: str) -> None:
    """Every row's utterance exists, its position is in range and its word matches (first bad row is named)."""
    utts = set(emb.utterance_ids)
    for i, (utt, pos, word) in enumerate(keys.rows):
        where = f"keys file {keys.path}, row {i} ({utt}, {pos}, {word!r})"
        if utt not in utts:
            raise UserError(f"{where}: utterance {utt} is not in the embeddings of {model} ({emb.folder}); the keys "
                            "were made for other embeddings, write them again with --write_words")
        words = emb.words(utt)
        if pos >= len(words):
            raise UserError(f"{where}: position {pos} is out of range, utterance {utt} has {len(words)} words in "
                            f"{model}; write the keys file again with --write_words")
        if words[pos] != word:
            raise UserError(f"{where}: the word there is {words[pos]!r} in {model}; the keys were made from another "
                            "alignment, write them again with --write_words")


def _group_rows(keys: Keys) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(utt, positions, keys rows) per utterance, utterances ordered by their first keys row."""
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for i, (utt, pos, _) in enumerate(keys.rows):
        entry = groups.setdefault(utt, ([], []))
        entry[0].append(pos)
        entry[1].append(i)
    return [(u, np.asarray(p, dtype=np.int64), np.asarray(r, dtype=np.int64)) for u, (p, r) in groups.items()]


def _clear_temporaries(folder: Path) -> None:
    # temporaries of a killed run (atomic_path names them ".<name>.<random>.tmp"); safe under the lock
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def read_matrices_json(folder: str | os.PathLike) -> dict | None:
    """``<folder>/matrices.json`` validated against :data:`MATRICES_SCHEMA`, or None when there is none."""
    path = Path(folder) / MATRICES_JSON
    again = "delete it and run embeddings/matrix_embeddings.py again"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({err}); {again}") from err
    S.check_format(obj, MATRICES_FORMAT, MATRICES_VERSION, str(path), "wordreps matrices description", again)
    S.validate(obj, MATRICES_SCHEMA, str(path), again)
    past = [x for x in obj["layers"] if x >= obj["num_layers"]]
    if past:
        raise UserError(f"{path}: field layers lists layer {past[0]}, but num_layers is {obj['num_layers']}; {again}")
    return obj


def assemble(model: str, keys_path: str | os.PathLike, layer_spec: str, *,
             embeddings_dir: str | os.PathLike = "outputs/embeddings",
             out_dir: str | os.PathLike = "outputs/matrices", progress: bool = True) -> dict:
    """Write ``layer_<i>.npy`` (float32, rows in keys order) for the requested layers of ``model``.

    Returns the ``matrices.json`` object written. Each utterance file is read once for all layers.
    """
    folder = resolve_embeddings(embeddings_dir, model)
    emb = open_embeddings(folder)
    keys = load_keys(keys_path)
    if not keys.rows:
        raise UserError(f"keys file {keys.path} has no rows; write it again with --write_words")
    layers = parse_layers(layer_spec, emb.num_layers, model)
    _validate_keys_against(emb, keys, model)
    groups = _group_rows(keys)
    _check_finished(emb, [g[0] for g in groups])
    slug = folder.name
    out = Path(out_dir) / slug
    source = {
        "model": emb.model, "slug": slug, "embeddings_dir": str(folder),
        "embeddings_fingerprint": embeddings_fingerprint(emb, [g[0] for g in groups]),
        "keys_path": str(keys_path), "keys_sha256": keys.sha256,
        "num_rows": len(keys.rows), "dim": emb.dim, "num_layers": emb.num_layers, "dtype": "float32",
    }
    busy = f"another run is writing matrices into {out}; wait for it to finish, then run this command again"
    with folder_lock(out, busy):
        _clear_temporaries(out)
        old = read_matrices_json(out)
        kept: list[int] = []
        if old is not None:
            # stale = made from other keys or other embedding files; paths may be spelled differently
            same = ("model", "embeddings_fingerprint", "keys_sha256", "num_rows", "dim", "num_layers", "dtype")
            if all(old.get(k) == source[k] for k in same):
                kept = [int(x) for x in old.get("layers", []) if int(x) not in layers]
            else:
                # other keys or re-extracted embeddings: the old layers are stale. The description goes first,
                # so that a run killed now leaves no description claiming them.
                (out / MATRICES_JSON).unlink()
                for x in old.get("layers", []):
                    layer_file(out, int(x)).unlink(missing_ok=True)
        _write_layers(emb, groups, layers, out, len(keys.rows), keys.path, model, progress)
        info = {"format": MATRICES_FORMAT, "version": MATRICES_VERSION, **source,
                "layers": sorted(set(kept) | set(layers))}
        write_json_atomic(out / MATRICES_JSON, info)
    return info


def _write_layers(emb: EmbeddingSet, groups, layers: list[int], out: Path, num_rows: int, keys_path: Path,
                  model: str, progress: bool) -> None:
    shape = (num_rows, emb.dim)
    slow = bool(os.environ.get(SLOW_ENV))
    with contextlib.ExitStack() as stack:
        temps: dict[int, Path] = {}
        # entered in reverse so that the renames on exit run layer 0 first
        for layer in reversed(layers):
            temps[layer] = stack.enter_context(atomic_path(layer_file(out, layer)))
            if slow:
                stack.callback(_slow_down)  # a test's SIGKILL may then land between two renames
        maps: dict[int, np.memmap] = {}
        for layer in layers:
            maps[layer] = np.lib.format.open_memmap(temps[layer], mode="w+", dtype=np.float32, shape=shape)
            # reserve the blocks now: a full disk is an ENOSPC here (a clear error), not a SIGBUS mid-write
            with open(temps[layer], "rb+") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(temps[layer]))
        layer_idx = np.asarray(layers, dtype=np.int64)
        first_bad: tuple[int, str, int, int] | None = None  # (keys row, utt, position, layer)
        bar = _progress(groups, len(groups), f"{emb.model} layers {describe_layers(layers)}") if progress else groups
        for utt, positions, rows in bar:
            if first_bad is not None and rows.min() > first_bad[0]:
                continue  # a bad row is known already; only earlier rows could still be reported first
            arr = load_utterance(emb, utt)
            block = arr[layer_idx][:, positions, :]  # (layers, rows, dim)
            finite = np.isfinite(block).all(axis=2)  # (layers, rows)
            if not finite.all():
                li, ri = np.nonzero(~finite)
                k = int(np.argmin(rows[ri]))
                cand = (int(rows[ri[k]]), utt, int(positions[ri[k]]), int(layer_idx[li[k]]))
                if first_bad is None or cand[0] < first_bad[0]:
                    first_bad = cand
                continue
            if first_bad is None:
                for j, layer in enumerate(layers):
                    maps[layer][rows] = block[j]
            _slow_down()
        if first_bad is not None:
            row, utt, pos, layer = first_bad
            raise UserError(f"keys file {keys_path}, row {row} ({utt}, position {pos}): {model} has no finite vector "
                            f"there (layer {layer} of {emb.path(utt)}); the keys do not match these embeddings, write "
                            "them again with --write_words naming this model")
        for layer in layers:
            maps[layer].flush()
        maps.clear()


# ---------------------------------------------------------------------------------------------- readers

@dataclass
class ModelMatrices:
    """One model's assembled matrices: ``info`` is its matrices.json."""
    folder: Path
    info: dict

    @property
    def name(self) -> str:
        return str(self.info.get("model", self.folder.name))

    @property
    def slug(self) -> str:
        return self.folder.name

    @property
    def layers(self) -> list[int]:
        return [int(x) for x in self.info.get("layers", [])]

    @property
    def num_rows(self) -> int:
        return int(self.info["num_rows"])

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def keys_sha256(self) -> str:
        return str(self.info["keys_sha256"])

    def path(self, layer: int) -> Path:
        return layer_file(self.folder, layer)

    def check_layers(self, layers: Sequence[int]) -> None:
        depth = int(self.info.get("num_layers", max(self.layers, default=-1) + 1))
        for layer in sorted(layers, reverse=True):  # the deepest asked for names the problem best
            if not 0 <= layer < depth:
                raise UserError(f"layer {layer} is past the depth of {self.name}: it has layers 0-{depth - 1} "
                                f"(assembled: {describe_layers(self.layers)}); ask for layers up to {depth - 1}")
            if layer not in self.layers:
                raise UserError(f"layer {layer} of {self.name} is not assembled in {self.folder} (assembled: "
                                f"{describe_layers(self.layers)}); run embeddings/matrix_embeddings.py --layer all "
                                f"--model {self.name} --words_path {self.info.get('keys_path')}")

    def load(self, layer: int, mmap: bool = True) -> np.ndarray:
        """The (num_rows, dim) float32 matrix of one layer, checked against matrices.json and for NaN/Inf rows."""
        self.check_layers([layer])
        return load_matrix(self.path(layer), rows=self.num_rows, dim=self.dim, mmap=mmap)


def load_matrix(path: str | os.PathLike, rows: int | None = None, dim: int | None = None,
                mmap: bool = True, check_finite: bool = True) -> np.ndarray:
    """A 2-D float32 ``.npy``, refused with a clear message if truncated, misshapen or holding NaN/Inf rows."""
    path = Path(path)
    redo = "run embeddings/matrix_embeddings.py again for it"
    if not path.is_file():
        raise UserError(f"matrix file {path} does not exist; {redo}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"{path} cannot be read as .npy ({err}); the file is truncated or not a matrix, {redo}") from err
    if arr.ndim != 2 or arr.dtype != np.float32:
        raise UserError(f"{path} holds a {arr.dtype} array of shape {arr.shape}, expected a 2-D float32 matrix; {redo}")
    if (rows is not None and arr.shape[0] != rows) or (dim is not None and arr.shape[1] != dim):
        raise UserError(f"{path} has shape {arr.shape}, its matrices.json says ({rows}, {dim}); {redo}")
    if check_finite:
        first = first_nonfinite_row(arr)
        if first is not None:
            raise UserError(f"{path}, row {first} holds NaN or Inf; drop that occurrence from the keys (write them "
                            "again with --write_words) and assemble the matrices again")
    return arr


def first_nonfinite_row(arr: np.ndarray, chunk_rows: int = 8192) -> int | None:
    for start in range(0, arr.shape[0], chunk_rows):
        bad = ~np.isfinite(arr[start:start + chunk_rows]).all(axis=1)
        if bad.any():
            return start + int(np.argmax(bad))
    return None


def open_model_matrices(matrices_dir: str | os.PathLike, model: str) -> ModelMatrices:
    """The assembled matrices of ``model`` (a name, slug or folder) under ``matrices_dir``."""
    root = Path(matrices_dir)
    candidates = [root / model.replace("/", "__").replace("\\", "__"), root / slug_for(model), Path(model)]
    for folder in candidates:
        if (folder / MATRICES_JSON).is_file():
            info = read_matrices_json(folder)
            assert info is not None
            return ModelMatrices(folder=folder, info=info)
    available = sorted(p.name for p in root.iterdir() if (p / MATRICES_JSON).is_file()) if root.is_dir() else []
    raise UserError(f"no assembled matrices for model {model!r} in {root} (available: {', '.join(available) or 'none'}); "
                    "run embeddings/matrix_embeddings.py --layer all --model ... first, or pass --matrices_dir")
