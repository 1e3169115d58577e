"""The one way files are hashed: streamed in 1 MiB chunks, as hex digests."""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

CHUNK_BYTES = 1 << 20


def _update(digest, path: str | os.PathLike) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of one file's bytes (``algorithm``: any hashlib name; downloads are checked with md5)."""
    digest = hashlib.new(algorithm)
    _update(digest, path)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    return file_digest(path, "sha256")


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """One sha256 over several files (a model's weights): each file's name, then its bytes, in name order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=os.fspath):
        digest.update(os.path.basename(os.fspath(path)).encode())
        _update(digest, path)
    return digest.hexdigest()
