"""Text backends: GloVe word vectors and Hugging Face text encoders (BERT, RoBERTa, MiniLM, ...).

Both read only the alignment's word lists (frames are ignored), so every word occurrence of the alignment
JSON gets a row, in the utterance's word order.

GloVe (``family="glove"``, one layer named ``"glove"``)
    Vectors are read from the usual files: GloVe text (no header, ``word v1 ... vD`` per line), word2vec
    text (a ``"count dim"`` header line first) and word2vec binary (``.bin``), each plain or compressed
    (``.gz``, ``.bz2``, ``.xz``: opened through ``gensim.utils.open``, i.e. smart_open), gensim ``.kv``, and a
    ``.npy`` matrix with a word list (``.txt`` or ``.parquet``; ``embeddings/vector_pairs.py``), given as the
    ``.npy`` file or the folder holding the pair. One streaming pass
    keeps only the corpus vocabulary (the alignment's words, lower-case), which is stored as a gensim
    ``KeyedVectors`` in a cache file (``outputs/cache/glove/<file-stem>-<key>.kv``, key = sha256 of the
    file's (or pair's files') size, mtime and the vocabulary), so a second run never reads the big file again.
    A word that is not in the file gets a row of NaN (the core records it as missing): never a zero
    vector, never dropped.

Hugging Face text encoders (``family="hf-text"``)
    The utterance's own words are given to the (fast) tokenizer as pre-split words
    (``is_split_into_words=True``) and ``word_ids()`` maps every sub-token back to its word, so a word's
    vector is exactly the mean of its own sub-tokens' hidden states, per layer. Layer 0 is the embeddings
    output (``hidden_states[0]``), layer i the output of block i. Byte-level BPE tokenizers (RoBERTa,
    GPT-2 style) are loaded with ``add_prefix_space=True``: each pre-split word is then encoded as
    ``" word"``, which is how the model saw words inside running text (and which transformers requires
    for pre-split input).

    Long utterances are never cut. When an utterance's sub-tokens (plus the model's special tokens) do not
    fit the model's limit (the smallest of ``max_position_embeddings`` minus RoBERTa's padding offset,
    ``tokenizer.model_max_length`` and ``max_tokens``), it is covered by overlapping windows made of whole
    words: each window holds as many whole words as fit, and the next one starts at the first word at least
    ``stride`` sub-tokens (default: half a window) after the previous start. Every word then takes all its
    vectors from the one window in which it is most central, i.e. where the smaller of its context on a
    cut side (sub-tokens between it and a window edge that is not the utterance's own start or end) is
    largest; ties go to the earlier window. An utterance that fits is one window, identical to a plain
    run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wordreps.common.atomic import atomic_path
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Backend, BatchItem, Utterance
from wordreps.embeddings.vector_pairs import find_pair, pair_stat_key, read_vector_pair

log = logging.getLogger(__name__)

GLOVE_DOWNLOAD_HINT = ("download glove.42B.300d.zip from https://nlp.stanford.edu/data/glove.42B.300d.zip, "
                       "unzip it into datasets/glove/ (or pass --glove PATH to another vector file)")
DEFAULT_GLOVE_CACHE = Path("outputs/cache/glove")
_CACHE_VERSION = 1
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
_FIRST_LINE_MAX_BYTES = 1 << 20   # a 4096-dim text line is ~50 kB; more than this is not a vector file
FORMATS = ("auto", "glove", "word2vec", "word2vec-bin", "kv", "npy")


# =============================================================================================== GloVe

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
        return "npy"  # a .npy matrix + word list (embeddings/vector_pairs.py)
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
        vec = np.array(values.split(b" "), dtype=np.float32)
    except ValueError as err:
        raise UserError(f"vector file {path}, line {line_no}: a value is not a number ({err}); the file is "
                        "damaged, re-download it") from err
    if vec.shape != (dim,):
        raise UserError(f"vector file {path}, line {line_no} has {vec.size} values, expected {dim}; "
                        "the file is damaged, re-download it")
    if not np.all(np.isfinite(vec)):
        raise UserError(f"vector file {path}, line {line_no} holds a NaN or infinite value; the file is damaged, "
                        "re-download it")
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
        kv = KeyedVectors.load(path, mmap="r")
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
    """``<cache_dir>/<file-stem>-<sha256(size, mtime, format, vocabulary)[:16]>.kv``.

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
    return Path(cache_dir) / f"{stem}-{digest}.kv"


def load_vocab_vectors(path: str | os.PathLike, vocab: Iterable[str] | None, *,
                       cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto"):
    """``(KeyedVectors of the vocabulary words found in the file, info dict)``, from the cache when it exists.

    ``vocab=None`` loads every word (no cache: that copy would be as big as the file).
    """
    from gensim.models import KeyedVectors

    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"vector file {path} does not exist; {GLOVE_DOWNLOAD_HINT}")
    vocab_set = None if vocab is None else {w.lower() for w in vocab}
    cache = None
    if vocab_set is not None and cache_dir is not None:
        cache = glove_cache_path(path, vocab_set, cache_dir, fmt)
        if cache.exists():
            try:
                kv = KeyedVectors.load(str(cache))
                if not isinstance(kv, KeyedVectors):
                    raise TypeError(f"it holds a {type(kv).__name__}")
                return kv, {"cache_path": str(cache), "from_cache": True}
            except Exception as err:  # a cache from another gensim version, or damaged: rebuild it
                log.warning("GloVe cache %s cannot be loaded (%s); rebuilding it", cache, err)
    result = read_vector_file(path, vocab_set, fmt)
    kv = KeyedVectors(vector_size=result.dim, count=0, dtype=np.float32)
    if result.words:
        kv.add_vectors(result.words, result.vectors)
    info = {"cache_path": str(cache) if cache else None, "from_cache": False, "format": result.fmt,
            "file_vectors": result.lines_read}
    if cache is not None:
        try:
            with atomic_path(cache) as tmp:
                kv.save(str(tmp), separately=[])  # one self-contained file, renamed into place
        except OSError as err:  # a full disk is a UserError (atomic_path); a read-only cache folder only costs time
            log.warning("cannot write the GloVe cache %s (%s); the next run will read %s again", cache, err, path)
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
                 cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto") -> None:
        self.model_name = os.fspath(path)
        self.path = os.path.abspath(self.model_name)
        self.kv, self.info = load_vocab_vectors(path, vocab, cache_dir=cache_dir, fmt=fmt)
        self.vocab = None if vocab is None else sorted({w.lower() for w in vocab})
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

    def lookup(self, word: str) -> np.ndarray | None:
        key = word.lower()
        if key in self.kv.key_to_index:
            return self.kv.vectors[self.kv.key_to_index[key]]
        return None

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
        return {
            "vectors_path": self.path,
            "vectors_file_size": self._file_size,
            "word_list_path": self._word_list,
            "kept_vectors_sha256": self._vectors_sha256,
            "vocabulary_requested": None if self.vocab is None else len(self.vocab),
            "vocabulary_found": len(self.kv.key_to_index),
            "oov_words": oov,
            "lookup": "lower-cased word, exact match; missing word -> NaN row",
        }


def load_glove_backend(path: str | os.PathLike, *, vocab: Iterable[str] | None = None,
                       alignment: str | os.PathLike | None = None, utterances: Sequence[Utterance] | None = None,
                       cache_dir: str | os.PathLike | None = DEFAULT_GLOVE_CACHE, fmt: str = "auto",
                       **_ignored) -> GloVeBackend:
    """The GloVe backend restricted to a corpus vocabulary given as words, utterances or an alignment JSON."""
    if vocab is None and utterances is not None:
        vocab = vocabulary_of(utterances)
    if vocab is None and alignment is not None:
        from wordreps.alignments.align_format import load_alignment

        vocab = vocabulary_of(load_alignment(alignment).utterances)
    return GloVeBackend(path, vocab, cache_dir=cache_dir, fmt=fmt)


# ================================================================================== Hugging Face text

def plan_windows(word_lengths: Sequence[int], max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """Overlapping windows of whole words, as ``(first_word, end_word)`` half-open ranges.

    ``word_lengths[i]`` = sub-tokens of word i; a window holds at most ``max_tokens`` sub-tokens; each next
    window starts at the first word whose first sub-token is at least ``stride`` sub-tokens after the previous
    window's start, but never after the previous window's end (no word is skipped) and late enough that it
    reaches at least one word further (no window is a subset of the previous one).
    """
    n = len(word_lengths)
    offsets = np.concatenate([[0], np.cumsum(word_lengths)]).astype(int)
    if offsets[-1] <= max_tokens:
        return [(0, n)]
    windows: list[tuple[int, int]] = []
    s = 0
    while True:
        e = s
        while e < n and offsets[e + 1] - offsets[s] <= max_tokens:
            e += 1
        if e == s:
            raise ValueError(f"word {s} alone has {word_lengths[s]} sub-tokens, more than a window's {max_tokens}")
        windows.append((s, e))
        if e == n:
            return windows
        target = offsets[s] + stride
        nxt = next((j for j in range(s + 1, e + 1) if offsets[j] >= target), e)
        # the next window must reach past this one (hold word e), or it would be a useless subset of it
        while nxt < e and offsets[e + 1] - offsets[nxt] > max_tokens:
            nxt += 1
        s = nxt


def assign_windows(word_lengths: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[int]:
    """For each word, the index of the window where it is most central (see the module docstring)."""
    n = len(word_lengths)
    offsets = np.concatenate([[0], np.cumsum(word_lengths)]).astype(int)
    best = [-1] * n
    best_score = [-1.0] * n
    for k, (s, e) in enumerate(windows):
        lo, hi = offsets[s], offsets[e]
        for i in range(s, e):
            left = math.inf if s == 0 else offsets[i] - lo
            right = math.inf if e == n else hi - offsets[i + 1]
            score = min(left, right)
            if score > best_score[i]:
                best[i], best_score[i] = k, score
    return best


@dataclass
class _Tokenized:
    word_lengths: list[int]   # sub-tokens per word
    input_ids: list[int]      # whole utterance with special tokens
    word_ids: list[int]       # per position of input_ids: word index, -1 for special tokens


def _is_local_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)


def _offline_error(name: str, err: Exception) -> UserError:
    detail = " ".join(str(err).split())
    detail = detail.split(". ")[0][:160]  # the hub's first sentence; the rest is advice that does not apply here
    return UserError(f"{name} is not a local model folder and could not be fetched from the Hugging Face hub "
                     f"(offline?); pass a folder with config.json or a hub name ({type(err).__name__}: {detail})")


def _resolve_device(device: str):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} asked for a GPU but torch sees none (CUDA not available); "
                        "use --device cpu or run on a GPU machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) visible")
    return dev


def _weights_sha256(folder: str) -> dict[str, str]:
    from wordreps.common.atomic import sha256_file

    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith((".safetensors", ".bin")) and os.path.isfile(os.path.join(folder, name)):
            out[name] = sha256_file(os.path.join(folder, name))
    return out


class HFTextBackend(Backend):
    """A Hugging Face text encoder; word vector = mean of the word's sub-token hidden states, per layer."""

    family = "hf-text"
    needs_audio = False
    words_can_be_missing = False  # every word has at least one sub-token (checked when tokenizing)

    def __init__(self, model: str, device: str = "cpu", *, max_tokens: int | None = None,
                 stride: int | None = None, revision: str | None = None) -> None:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.model_name = model
        self.device = _resolve_device(device)
        local = _is_local_path(model)
        if local:
            if not os.path.isdir(model):
                raise UserError(f"model path {model} does not exist or is not a folder; pass a Hugging Face model "
                                "folder (with config.json) or a hub name such as bert-base-uncased")
            if not os.path.isfile(os.path.join(model, "config.json")):
                raise UserError(f"model folder {model} has no config.json, so it is not a Hugging Face model "
                                "folder; pass the folder that save_pretrained wrote, or a hub name")
        try:
            config = AutoConfig.from_pretrained(model, revision=revision)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError) as err:
            raise UserError(f"{model} is not a model transformers can load ({' '.join(str(err).split())[:200]}); "
                            "pass a Hugging Face text encoder folder or hub name") from err
        if getattr(config, "is_encoder_decoder", False):
            raise UserError(f"{model} is an encoder-decoder model ({config.model_type}); only text encoders "
                            "(BERT, RoBERTa, MiniLM, ...) are supported")
        try:
            # add_prefix_space only changes byte-level BPE pre-tokenizers (RoBERTa, GPT-2 style); others ignore it
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, use_fast=True, add_prefix_space=True)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"the tokenizer of {model} cannot be loaded ({' '.join(str(err).split())[:200]})") from err
        if not getattr(tokenizer, "is_fast", False):
            raise UserError(f"{model} has no fast (Rust) tokenizer, which is needed to map sub-tokens to words; "
                            "pass a model folder with tokenizer.json")
        try:
            net = AutoModel.from_pretrained(model, revision=revision, config=config)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError) as err:
            raise UserError(f"{model} has no text encoder transformers can load "
                            f"({' '.join(str(err).split())[:200]})") from err
        net.eval().to(self.device)
        self.config, self.tokenizer, self.model = config, tokenizer, net
        self._torch = torch

        num_hidden = getattr(config, "num_hidden_layers", None)
        if num_hidden is None:
            raise UserError(f"{model}: its config has no num_hidden_layers, so it is not a supported encoder")
        self.num_layers = int(num_hidden) + 1
        self.layer_names = ["embeddings"] + [f"layer_{i}" for i in range(1, self.num_layers)]
        self.dim = int(config.hidden_size)

        # sequence limit in tokens, special tokens included
        limits = []
        mpe = getattr(config, "max_position_embeddings", None)
        if mpe:
            embeddings = getattr(net, "embeddings", None)
            # RoBERTa-style embeddings number positions from padding_idx + 1 (514 positions -> 512 tokens)
            offset = int(getattr(embeddings, "padding_idx", -1)) + 1 if hasattr(embeddings, "padding_idx") else 0
            limits.append(int(mpe) - offset)
        tml = getattr(tokenizer, "model_max_length", None)
        if tml and tml < 1_000_000:
            limits.append(int(tml))
        if max_tokens is not None:
            limits.append(int(max_tokens))
        if not limits:
            limits.append(512)
        self.max_len = min(limits)
        self.num_special = int(tokenizer.num_special_tokens_to_add(pair=False))
        self.window_tokens = self.max_len - self.num_special
        if self.window_tokens < 1:
            raise UserError(f"a window of {self.max_len} tokens leaves no room next to the model's {self.num_special} "
                            "special tokens; raise --max_tokens")
        self.stride = int(stride) if stride else max(1, self.window_tokens // 2)
        if self.stride > self.window_tokens:
            raise UserError(f"--window_stride {self.stride} is larger than a window's {self.window_tokens} "
                            "sub-tokens, which would skip words; use a smaller stride")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.autocast = self.device.type == "cuda"
        self._tok_cache: dict[str, _Tokenized] = {}
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}
        self._local_path = os.path.abspath(model) if local else None
        self._weights = _weights_sha256(model) if local else None

    # ------------------------------------------------------------------------------------------ tokens

    def _tokenize(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=True, verbose=False)
        ids = list(enc["input_ids"])
        wids = [-1 if w is None else int(w) for w in enc.word_ids()]
        return ids, wids

    def tokenize_utterance(self, utterance: Utterance) -> _Tokenized:
        cached = self._tok_cache.get(utterance.utt_id)
        if cached is not None:
            return cached
        words = [w.word for w in utterance.words]
        ids, wids = self._tokenize(words) if words else ([], [])
        lengths = [0] * len(words)
        for w in wids:
            if w >= 0:
                lengths[w] += 1
        empty = [i for i, n in enumerate(lengths) if n == 0]
        if empty:
            i = empty[0]
            raise UserError(f"utterance {utterance.utt_id}, word #{i} ({words[i]!r}): the tokenizer of "
                            f"{self.model_name} turns it into no sub-token at all, so it has no vector; fix the "
                            "word in the alignment JSON or use another model")
        tok = _Tokenized(lengths, ids, wids)
        self._tok_cache[utterance.utt_id] = tok
        return tok

    def windows_for(self, utterance: Utterance) -> list[tuple[list[int], list[int]]]:
        """``(input_ids, slot per position)`` per window; slot = word position whose vector the token feeds, or -1."""
        tok = self.tokenize_utterance(utterance)
        if not tok.word_lengths:
            return []
        try:
            windows = plan_windows(tok.word_lengths, self.window_tokens, self.stride)
        except ValueError as err:
            raise UserError(f"utterance {utterance.utt_id}: {err}; raise --max_tokens") from err
        if len(windows) == 1:
            return [(tok.input_ids, tok.word_ids)]
        owner = assign_windows(tok.word_lengths, windows)
        words = [w.word for w in utterance.words]
        out = []
        for k, (s, e) in enumerate(windows):
            ids, wids = self._tokenize(words[s:e])
            slots = [-1 if w < 0 or owner[s + w] != k else s + w for w in wids]
            out.append((ids, slots))
        return out

    def cost(self, utterance: Utterance) -> float:
        """Sub-tokens fed to the model (special tokens and window overlaps included)."""
        tok = self.tokenize_utterance(utterance)
        if not tok.word_lengths:
            return 0.0
        total = sum(tok.word_lengths)
        if total <= self.window_tokens:
            return float(len(tok.input_ids))
        try:
            windows = plan_windows(tok.word_lengths, self.window_tokens, self.stride)
        except ValueError:
            return float(total + self.num_special)
        offsets = np.concatenate([[0], np.cumsum(tok.word_lengths)])
        return float(sum(offsets[e] - offsets[s] + self.num_special for s, e in windows))

    # ------------------------------------------------------------------------------------------- model

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        seqs: list[list[int]] = []
        slots: list[list[int]] = []
        word_base: list[int] = []
        total_words = 0
        for item in batch:
            word_base.append(total_words)
            for ids, sl in self.windows_for(item.utterance):
                seqs.append(ids)
                slots.append([-1 if s < 0 else total_words + s for s in sl])
            total_words += len(item.utterance.words)
            self._tok_cache.pop(item.utterance.utt_id, None)
        result = np.full((self.num_layers, total_words, self.dim), np.nan, dtype=np.float32)
        if seqs:
            result = self._forward_pool(seqs, slots, total_words)
        out = []
        for item, base in zip(batch, word_base):
            n = len(item.utterance.words)
            out.append(np.ascontiguousarray(result[:, base:base + n]))
        return out

    def _forward_pool(self, seqs: list[list[int]], slots: list[list[int]], total_words: int) -> np.ndarray:
        torch = self._torch
        dev = self.device
        # longest first keeps similar lengths together should the caller's batch be large
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        width = len(seqs[order[0]])
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        slot = torch.full((len(seqs), width), -1, dtype=torch.long)
        for row, i in enumerate(order):
            n = len(seqs[i])
            ids[row, :n] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, :n] = 1
            slot[row, :n] = torch.tensor(slots[i], dtype=torch.long)
        ids, mask, slot = ids.to(dev), mask.to(dev), slot.to(dev).reshape(-1)
        keep = torch.nonzero(slot >= 0).squeeze(1)
        target = slot[keep]
        counts = torch.bincount(target, minlength=total_words).to(torch.float32)
        sums = torch.zeros((self.num_layers, total_words, self.dim), dtype=torch.float32, device=dev)
        with torch.inference_mode():
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)
            hidden = out.hidden_states
            if hidden is None or len(hidden) != self.num_layers:
                raise UserError(f"{self.model_name} returned {0 if hidden is None else len(hidden)} hidden states, "
                                f"expected {self.num_layers}; it is not a supported encoder")
            for layer, h in enumerate(hidden):
                flat = h.reshape(-1, h.shape[-1])
                sums[layer].index_add_(0, target, flat.index_select(0, keep).to(torch.float32))
            means = sums / counts.clamp(min=1.0)[None, :, None]
            # a word whose text the tokenizer drops entirely (e.g. only control characters) has no vector
            means[:, counts == 0] = float("nan")
        return means.cpu().numpy()

    def _pre_tokenizer(self) -> dict | None:
        """Type (and add_prefix_space, for byte-level BPE) of the tokenizer's pre-tokenizer, for the manifest."""
        try:
            pre = json.loads(self.tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
        except Exception:  # noqa: BLE001 - informative only
            return None
        parts = pre.get("pretokenizers", [pre])
        return {"type": pre.get("type"),
                "add_prefix_space": any(bool(p.get("add_prefix_space")) for p in parts if isinstance(p, dict))}

    def describe(self) -> dict:
        return {
            "model_id": self.model_name,
            "revision": getattr(self.config, "_commit_hash", None) or self._local_path,
            "local_path": self._local_path,
            "weights_sha256": self._weights,
            "model_type": self.config.model_type,
            "tokenizer": type(self.tokenizer).__name__,
            "pre_tokenizer": self._pre_tokenizer(),
            "max_window_tokens": self.max_len,
            "window_stride_tokens": self.stride,
            "windows": "whole-word windows; each word from the window where it is most central",
            "pooling": "mean of the word's sub-token hidden states (word_ids of pre-split words), float32",
            "layers": "0 = embeddings output, i = output of block i",
            "compute": "bf16 autocast" if self.autocast else "fp32",
            "versions": self._versions,
        }


def load_hf_text_backend(model: str, device: str = "cpu", **opts) -> HFTextBackend:
    """The registry's entry point for ``load_backend("text", model, device, **opts)``."""
    allowed = {"max_tokens", "stride", "revision"}
    return HFTextBackend(model, device, **{k: v for k, v in opts.items() if k in allowed and v is not None})
