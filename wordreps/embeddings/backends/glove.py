"""GloVe word vectors: one layer, read from a vector file (the ``glove`` family).

The backend reads only the alignment's word lists (frames are ignored), so every word occurrence of the
alignment JSON gets a row, in the utterance's word order.

GloVe (``family="glove"``, one layer named ``"glove"``)
    Vectors are read from the usual files: GloVe text (no header, ``word v1 ... vD`` per line), word2vec
    text (a ``"count dim"`` header line first) and word2vec binary (``.bin``), each plain or compressed
    (``.gz``, ``.bz2``, ``.xz``: opened through ``gensim.utils.open``, i.e. smart_open), gensim ``.kv``, and a
    ``.npy`` matrix with a word list (``.txt`` or ``.parquet``; ``vector_pairs.py`` beside this file), given as the
    ``.npy`` file or the folder holding the pair. One streaming pass keeps only the corpus vocabulary (the
    alignment's words, lower-case), which is stored in a cache file (``outputs/cache/glove/<file-stem>-<key>.npz``:
    the words and a float32 matrix, read back with ``allow_pickle=False``; key = sha256 of the file's (or pair's
    files') size, mtime and the vocabulary), so a second run never reads the big file again. A gensim ``.kv``
    file (a pickle) is read with an unpickler that builds only gensim's ``KeyedVectors`` and numpy arrays: a
    pickle naming anything else (which could run code) is refused.
    A word that is not in the file gets a row of NaN (the core records it as missing): never a zero
    vector, never dropped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wordreps.common.atomic import atomic_path, check_output_dir
from wordreps.common.errors import UserError, one_line
from wordreps.embeddings.backends.vector_pairs import (
    find_pair,
    pair_stat_key,
    read_vector_pair,
)
from wordreps.embeddings.base import Backend, BatchItem, Utterance

log = logging.getLogger(__name__)

GLOVE_DOWNLOAD_HINT = ("download glove.42B.300d.zip from https://nlp.stanford.edu/data/glove.42B.300d.zip, "
                       "unzip it into datasets/glove/ (or pass --glove PATH to another vector file)")
DEFAULT_GLOVE_CACHE = Path("outputs/cache/glove")
_CACHE_VERSION = 2   # 2: .npz (words + vectors); 1 was a pickled KeyedVectors
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
_FIRST_LINE_MAX_BYTES = 1 << 20   # a 4096-dim text line is ~50 kB; more than this is not a vector file
FORMATS = ("auto", "glove", "word2vec", "word2vec-bin", "kv", "npy")


def _strip_compression(name: str) -> str:
    for ext in _COMPRESSED:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def vector_file_stem(path: str | os.PathLike) -> str:
    """``glove.42B.300d.txt.gz`` -> ``glove.42B.300d`` (the cache file's prefix)."""
    name = _strip_compression(Path(path).name)
    stem = Path(name).stem
    return stem or name


def detect_format(path: str | os.PathLike, fmt: str = "auto") -> str:
    """``"glove"`` (text, no header), ``"word2vec"`` (text, header), ``"word2vec-bin"`` or ``"kv"`` (gensim).

    ``auto``: a name ending in ``.bin`` (before any compression suffix) is binary word2vec, ``.kv`` a gensim
    ``KeyedVectors.save`` file; a text file whose first line is two integers is word2vec text; anything else
    is read as GloVe text.
    """
    if fmt != "auto":
        if fmt not in FORMATS:
            raise UserError(f"unknown vector file format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if find_pair(path) is not None:
        return "npy"  # a .npy matrix + word list (backends/vector_pairs.py)
    name = _strip_compression(Path(path).name).lower()
    if name.endswith(".bin"):
        return "word2vec-bin"
    if name.endswith(".kv"):
        return "kv"
    return "text"  # header or not is decided from the first line


def _open_vectors(path: str) -> "object":
    from gensim import utils as gensim_utils

    if not os.path.exists(path):
        raise UserError(f"vector file {path} does not exist; {GLOVE_DOWNLOAD_HINT}")
    if os.path.isdir(path):
        raise UserError(f"vector file {path} is a folder, not a word-vector file; pass the .txt/.bin file inside it")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise UserError(f"vector file {path} cannot be read ({err.strerror}); check its permissions") from err
    if magic.startswith(b"PK\x03\x04"):
        raise UserError(f"vector file {path} is a zip archive; unzip it first (glove.42B.300d.zip holds "
                        "glove.42B.300d.txt) and pass the .txt file")
    try:
        return gensim_utils.open(path, "rb")
    except OSError as err:
        raise UserError(f"vector file {path} cannot be opened ({err}); check the path and its permissions") from err


@dataclass
class VectorReadResult:
    words: list[str]
    vectors: np.ndarray     # (len(words), dim) float32
    dim: int
    fmt: str                # "glove" | "word2vec" | "word2vec-bin" | "kv"
    lines_read: int         # vectors in the file


def _not_vector_file(path: str, why: str) -> UserError:
    return UserError(f"{path} is not a word-vector file ({why}); pass a GloVe/word2vec text file or a word2vec "
                     ".bin file (plain, .gz or .bz2), or a gensim .kv file")


def _is_float(token: bytes) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _parse_values(values: bytes, dim: int, path: str, line_no: int) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # a value past float32's range becomes inf: refused below
            vec = np.array(values.split(b" "), dtype=np.float32)
    except ValueError as err:
        raise UserError(f"vector file {path}, line {line_no}: a value is not a number ({err}); the file is "
                        "damaged, re-download it") from err
    if vec.shape != (dim,):
        raise UserError(f"vector file {path}, line {line_no} has {vec.size} values, expected {dim}; "
                        "the file is damaged, re-download it")
    if not np.all(np.isfinite(vec)):
        raise UserError(f"vector file {path}, line {line_no} holds a value that is NaN, infinite or beyond "
                        "float32's range (+-3.4e38); the file is damaged, re-download it")
    return vec


def read_vector_file(path: str | os.PathLike, vocab: set[str] | None = None, fmt: str = "auto") -> VectorReadResult:
    """One streaming pass over a word-vector file keeping the words of ``vocab`` (all words when None).

    Every line's width is checked (cheaply, by counting separators); only kept lines are parsed. Bad input
    is a :class:`UserError` naming the file and the line: missing file, not a vector file, a line with the
    wrong number of values, a truncated last line or a word2vec header count that is not reached.
    """
    path = os.fspath(path)
    kind = detect_format(path, fmt)
    if kind == "npy":
        return _read_pair(path, vocab)
    fin = _open_vectors(path)
    if kind == "kv":
        fin.close()
        return _read_kv(path, vocab)
    try:
        try:
            if kind == "word2vec-bin":
                return _read_binary(fin, path, vocab)
            return _read_text(fin, path, vocab, kind)
        except EOFError as err:  # a compressed stream that ends early
            raise UserError(f"vector file {path} is truncated ({err}); re-download it") from err
        except (OSError, ValueError) as err:
            if isinstance(err, UserError):
                raise
            raise UserError(f"vector file {path} cannot be read ({err}); re-download it or check that the "
                            "compression suffix matches the content") from err
    finally:
        fin.close()


def _read_text(fin, path: str, vocab: set[str] | None, kind: str) -> VectorReadResult:
    wanted = None if vocab is None else {w.encode("utf-8") for w in vocab}
    first = fin.readline(_FIRST_LINE_MAX_BYTES)
    if not first:
        raise _not_vector_file(path, "it is empty")
    if not first.endswith(b"\n") and len(first) >= _FIRST_LINE_MAX_BYTES:
        raise _not_vector_file(path, f"its first line is longer than {_FIRST_LINE_MAX_BYTES} bytes")
    head = first.rstrip().split(b" ")
    declared: int | None = None
    line_no = 1
    if kind in ("text", "word2vec") and len(head) == 2 and head[0].isdigit() and head[1].isdigit():
        declared, dim = int(head[0]), int(head[1])
        kind = "word2vec"
        if dim <= 0:
            raise _not_vector_file(path, f"its header {first.strip()[:60]!r} declares {dim} dimensions")
        pending: bytes | None = None
    elif kind == "word2vec":
        raise _not_vector_file(path, f"line 1 {first.strip()[:60]!r} is not a word2vec 'count dim' header")
    else:
        kind = "glove"
        dim = len(head) - 1
        if dim < 1 or not all(_is_float(t) for t in head[1:]):
            raise _not_vector_file(path, f"line 1 {first.strip()[:60]!r} is not a word followed by numbers")
        pending = first
        line_no = 0

    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[bytes] = set()
    count = 0

    def lines():
        if pending is not None:
            yield pending
        yield from fin

    for raw in lines():
        line_no += 1
        body = raw.rstrip()
        if not body:
            continue  # blank lines (a trailing one is common) hold no vector
        count += 1
        if declared is not None and count > declared:
            raise UserError(f"vector file {path} has more vectors than its header declares ({declared}), the "
                            f"first extra one on line {line_no}; fix the header or re-download the file")
        spaces = body.count(b" ")
        if spaces == dim:
            cut = body.index(b" ")
            word_b, values = body[:cut], body[cut + 1:]
        elif spaces > dim:
            # GloVe 840B has a few words containing spaces: the last `dim` fields are the vector
            word_b = body.rsplit(b" ", dim)[0]
            values = body[len(word_b) + 1:]
            if all(_is_float(t) for t in word_b.split(b" ")[1:]):
                raise UserError(f"vector file {path}, line {line_no} has {spaces} values, expected {dim} "
                                f"(as on the first line); the file is damaged, re-download it")
        else:
            if not raw.endswith(b"\n") or not fin.readline():
                raise UserError(f"vector file {path} is truncated: its last line {line_no} has {spaces} of "
                                f"{dim} values; re-download it")
            raise UserError(f"vector file {path}, line {line_no} has {spaces} values, expected {dim} (as on the "
                            f"first line); the file is damaged, re-download it")
        if wanted is not None and word_b not in wanted:
            continue
        if word_b in seen:
            continue  # like gensim: the first occurrence of a duplicated word wins
        seen.add(word_b)
        rows.append(_parse_values(values, dim, path, line_no))
        words.append(word_b.decode("utf-8", errors="replace"))
    if declared is not None and count < declared:
        raise UserError(f"vector file {path} is truncated: its header declares {declared} vectors but it ends "
                        f"after {count} (line {line_no}); re-download it")
    if count == 0:
        raise _not_vector_file(path, "it holds no vectors")
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return VectorReadResult(words, vectors.astype(np.float32, copy=False), dim, kind, count)


# What a KeyedVectors.save pickle may name (gensim 4, numpy 1 and 2); anything else is refused unloaded.
_KV_PICKLE_GLOBALS = frozenset({
    ("gensim.models.keyedvectors", "KeyedVectors"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"), ("collections", "OrderedDict"),
})


class _KeyedVectorsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _KV_PICKLE_GLOBALS:
            raise _ForbiddenPickle(f"{module}.{name}")
        return super().find_class(module, name)


class _ForbiddenPickle(Exception):
    pass


def load_keyed_vectors(path: str):
    """``KeyedVectors.load(path, mmap="r")`` without running code from the file: the pickle may name only
    gensim's KeyedVectors and numpy's array types; arrays saved beside it are read with ``allow_pickle=False``."""
    from gensim import utils as gensim_utils

    try:
        with gensim_utils.open(path, "rb") as fh:
            kv = _KeyedVectorsUnpickler(fh, encoding="latin1").load()
    except _ForbiddenPickle as err:
        raise UserError(f"vector file {path} is a pickle that names {err}, which is not loaded (unpickling it could "
                        "run code); pass a GloVe/word2vec text or .bin file, or a .kv file saved by gensim's "
                        "KeyedVectors.save") from None
    compress, subname = gensim_utils.SaveLoad._adapt_by_suffix(path)
    kv._load_specials(path, None if compress else "r", compress, subname)
    return kv


def _read_pair(path: str, vocab: set[str] | None) -> VectorReadResult:
    pair = find_pair(path)
    if pair is None:
        raise UserError(f"{path} is not a .npy matrix or a folder holding one with its word list; "
                        "pass the .npy file (word list beside it) or the folder")
    words, vectors, dim, rows = read_vector_pair(pair, vocab)
    return VectorReadResult(words, vectors, dim, "npy", rows)


def _read_kv(path: str, vocab: set[str] | None) -> VectorReadResult:
    from gensim.models import KeyedVectors

    try:
        kv = load_keyed_vectors(path)
    except UserError:
        raise
    except Exception as err:  # pickle/unpickling errors of every kind
        raise _not_vector_file(path, f"gensim cannot load it as KeyedVectors: {type(err).__name__}") from err
    if not isinstance(kv, KeyedVectors):
        raise _not_vector_file(path, f"it holds a {type(kv).__name__}, not KeyedVectors")
    words = [w for w in kv.index_to_key if vocab is None or w in vocab]
    rows = np.asarray(kv.vectors[[kv.key_to_index[w] for w in words]], dtype=np.float32).reshape(len(words), -1)
    if not np.all(np.isfinite(rows)):
        raise UserError(f"vector file {path} holds NaN or infinite values; re-create it")
    return VectorReadResult([str(w) for w in words], rows, int(kv.vector_size), "kv", len(kv))


def _read_binary(fin, path: str, vocab: set[str] | None) -> VectorReadResult:
    header = fin.readline(256)
    parts = header.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise _not_vector_file(path, f"its first line {header[:60]!r} is not a word2vec 'count dim' header")
    declared, dim = int(parts[0]), int(parts[1])
    if dim <= 0:
        raise _not_vector_file(path, f"its header declares {dim} dimensions")
    wanted = None if vocab is None else {w.encode("utf-8") for w in vocab}
    record_bytes = 4 * dim
    words: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[bytes] = set()
    buf = b""
    pos = 0
    eof = False
    for index in range(declared):
        # refill so that one whole record (word up to 1000 bytes + vector) is in the buffer when possible
        while not eof and len(buf) - pos < 1000 + record_bytes + 2:
            chunk = fin.read(1 << 20)
            if not chunk:
                eof = True
            buf = buf[pos:] + chunk
            pos = 0
        space = buf.find(b" ", pos)
        if space < 0 or space - pos > 1000:
            if eof and len(buf) - pos <= 1000:
                raise UserError(f"vector file {path} is truncated: its header declares {declared} vectors but "
                                f"it ends after {index}; re-download it")
            raise _not_vector_file(path, f"record {index + 1} has no word followed by a space")
        word_b = buf[pos:space].lstrip(b"\n")
        start = space + 1
        if len(buf) - start < record_bytes:
            raise UserError(f"vector file {path} is truncated: record {index + 1} of {declared} ({word_b[:40]!r}) "
                            f"has {len(buf) - start} of {record_bytes} bytes; re-download it")
        if (wanted is None or word_b in wanted) and word_b not in seen:
            vec = np.frombuffer(buf, dtype="<f4", count=dim, offset=start).astype(np.float32)
            if not np.all(np.isfinite(vec)):
                raise UserError(f"vector file {path}, record {index + 1} ({word_b[:40]!r}) holds a NaN or "
                                "infinite value; the file is damaged, re-download it")
            seen.add(word_b)
            rows.append(vec)
            words.append(word_b.decode("utf-8", errors="replace"))
        pos = start + record_bytes
    vectors = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return VectorReadResult(words, vectors, dim, "word2vec-bin", declared)


def glove_cache_path(path: str | os.PathLike, vocab: Iterable[str], cache_dir: str | os.PathLike,
                     fmt: str = "auto") -> Path:
    """``<cache_dir>/<file-stem>-<sha256(size, mtime, format, vocabulary)[:16]>.npz``.

    For a ``.npy`` + word-list pair, the size and mtime of both files, and the stem of the matrix.
    """
    pair = find_pair(path)
    fields = {"v": _CACHE_VERSION}
    if pair is None:
        st = os.stat(path)
        fields.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    else:
        fields["files"] = pair_stat_key(pair)
    key = json.dumps({**fields, "format": fmt, "vocab": sorted(set(vocab))}, ensure_ascii=False,
                     separators=(",", ":"))
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    stem = vector_file_stem(path if pair is None else pair.vectors)
    return Path(cache_dir) / f"{stem}-{digest}.npz"


def _keyed_vectors(words: Sequence[str], vectors: np.ndarray, dim: int):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=dim, count=0, dtype=np.float32)
    if len(words):
        kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    return kv


def _read_cache(cache: Path):
    """The cached vocabulary's KeyedVectors (plain arrays, ``allow_pickle=False``)."""
    with np.load(cache, allow_pickle=False) as z:
        words, vectors = z["words"].tolist(), z["vectors"]
        if vectors.ndim != 2 or vectors.dtype != np.float32 or len(words) != vectors.shape[0]:
            raise ValueError(f"words {len(words)} and vectors {vectors.shape} {vectors.dtype} do not match")
        return _keyed_vectors(words, vectors, int(vectors.shape[1]))


def _write_cache(cache: Path, result: VectorReadResult) -> None:
    try:
        check_output_dir(cache.parent, "GloVe cache folder")
    except UserError as err:  # a read-only cache folder only costs time; a full disk (below) stops the run
        log.warning("%s; the next run will read the vector file again", err)
        return
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to a name
            np.savez(fh, words=np.asarray(result.words, dtype=str), vectors=result.vectors)


def load_vocab_vectors(path: str | os.PathLike, vocab: Iterable[str] | None, *,
                       cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto"):
    """``(KeyedVectors of the vocabulary words found in the file, info dict)``, from the cache when it exists.

    ``vocab=None`` loads every word (no cache: that copy would be as big as the file).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"vector file {path} does not exist; {GLOVE_DOWNLOAD_HINT}")
    vocab_set = None if vocab is None else {w.lower() for w in vocab}
    cache = None
    if vocab_set is not None and cache_dir is not None:
        cache = glove_cache_path(path, vocab_set, cache_dir, fmt)
        if cache.exists():
            try:
                return _read_cache(cache), {"cache_path": str(cache), "from_cache": True}
            except Exception as err:  # damaged, or written by another version: rebuild it
                log.warning("GloVe cache %s cannot be loaded (%s); rebuilding it", cache, one_line(err))
    result = read_vector_file(path, vocab_set, fmt)
    kv = _keyed_vectors(result.words, result.vectors, result.dim)
    info = {"cache_path": str(cache) if cache else None, "from_cache": False, "format": result.fmt,
            "file_vectors": result.lines_read}
    if cache is not None:
        _write_cache(cache, result)
    return kv, info


def vocabulary_of(utterances: Iterable[Utterance]) -> set[str]:
    """The corpus vocabulary: every aligned word, lower-case."""
    return {w.word.lower() for u in utterances for w in u.words}


class GloVeBackend(Backend):
    """Static word vectors: one layer, NaN rows for words that the vector file does not hold."""

    family = "glove"
    needs_audio = False
    words_can_be_missing = True   # out-of-vocabulary words are NaN rows, recorded as missing by the core

    def __init__(self, path: str | os.PathLike, vocab: Iterable[str] | None = None, *,
                 cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto",
                 oov: str = "missing") -> None:
        from wordreps.embeddings.backends.glove_oov import (
            OOV_CHOICES,
            composable_pieces,
        )

        if oov not in OOV_CHOICES:
            raise UserError(f"--oov {oov!r} is unknown; choose one of {', '.join(OOV_CHOICES)}")
        self.model_name = os.fspath(path)
        self.path = os.path.abspath(self.model_name)
        self.oov = oov
        self.vocab = None if vocab is None else sorted({w.lower() for w in vocab})
        self._vocab_set = frozenset(self.vocab or ())
        # the pieces GloVe's tokenizer makes of the corpus words are kept too, whichever choice is made, so
        # that the manifest can tell what each choice loses (backends/glove_oov.py)
        self.pieces = {} if self.vocab is None else composable_pieces(self.vocab)
        wanted = None if self.vocab is None else set(self.vocab).union(*self.pieces.values())
        self.kv, self.info = load_vocab_vectors(path, wanted, cache_dir=cache_dir, fmt=fmt)
        self.dim = int(self.kv.vector_size)
        self.num_layers = 1
        self.layer_names = ["glove"]
        pair = find_pair(self.path)
        self._word_list = None if pair is None else str(pair.words)
        self._file_size = os.stat(self.path if pair is None else pair.vectors).st_size
        # identity of what the outputs depend on: the kept words and their vectors, the same whether they came
        # from the file or from the cache (a re-downloaded, identical file gives the same manifest)
        digest = hashlib.sha256()
        for word in sorted(self.kv.key_to_index):
            digest.update(word.encode("utf-8") + b"\0")
            digest.update(np.ascontiguousarray(self.kv.vectors[self.kv.key_to_index[word]], dtype="<f4").tobytes())
        self._vectors_sha256 = digest.hexdigest()

    def cost(self, utterance: Utterance) -> float:
        return float(len(utterance.words))

    def _exact(self, word: str) -> np.ndarray | None:
        key = word.lower()
        if key in self.kv.key_to_index:
            return self.kv.vectors[self.kv.key_to_index[key]]
        return None

    def lookup(self, word: str) -> np.ndarray | None:
        """The word's vector; with ``oov="compose"`` a word the file lacks gets the mean of its pieces'."""
        vec = self._exact(word)
        if vec is None and self.oov == "compose":
            from wordreps.embeddings.backends.glove_oov import compose, compose_pieces

            key = word.lower()
            if self.vocab is not None and key in self._vocab_set:
                # a corpus word: split once in __init__ (self.pieces holds the words the tokenizer splits), not
                # again at each of its occurrences
                vec = compose_pieces(self.pieces.get(key, ()), self._exact)
            else:  # a word outside the corpus vocabulary the backend was loaded for
                vec = compose(word, self._exact)
        return vec

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        out = []
        for item in batch:
            words = item.utterance.words
            arr = np.full((1, len(words), self.dim), np.nan, dtype=np.float32)
            for i, w in enumerate(words):
                vec = self.lookup(w.word)
                if vec is not None:
                    arr[0, i] = vec
            out.append(arr)
        return out

    def describe(self) -> dict:
        oov = None if self.vocab is None else [w for w in self.vocab if w not in self.kv.key_to_index]
        composed = {w: self.pieces[w] for w in oov or [] if w in self.pieces
                    and all(p in self.kv.key_to_index for p in self.pieces[w])}
        return {
            "vectors_path": self.path,
            "vectors_file_size": self._file_size,
            "word_list_path": self._word_list,
            "kept_vectors_sha256": self._vectors_sha256,
            "vocabulary_requested": None if self.vocab is None else len(self.vocab),
            "vocabulary_found": len(self.kv.key_to_index) if self.vocab is None else len(self.vocab) - len(oov),
            "oov_words": oov,
            "oov": self.oov,
            # out-of-vocabulary words whose pieces (GloVe's tokenizer's split) all have vectors: what
            # --oov compose gives a vector (and, under --oov missing, would)
            "composable_oov_words": composed,
            "lookup": ("lower-cased word, exact match; a missing word the Stanford tokenizer splits -> mean of its "
                       "pieces' vectors; else NaN row" if self.oov == "compose" else
                       "lower-cased word, exact match; missing word -> NaN row"),
        }


def load_glove_backend(path: str | os.PathLike, device: object = None, *, vocab: Iterable[str] | None = None,
                       alignment: str | os.PathLike | None = None, utterances: Sequence[Utterance] | None = None,
                       cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto",
                       oov: str = "missing", **_ignored) -> GloVeBackend:
    """The GloVe backend restricted to a corpus vocabulary given as words, utterances or an alignment JSON
    (``device`` is accepted for the family table's uniform call and ignored: lookups run on the CPU)."""
    if vocab is None and utterances is not None:
        vocab = vocabulary_of(utterances)
    if vocab is None and alignment is not None:
        from wordreps.alignments.format import load_alignment

        vocab = vocabulary_of(load_alignment(alignment).utterances)
    return GloVeBackend(path, vocab, cache_dir=cache_dir, fmt=fmt, oov=oov)
