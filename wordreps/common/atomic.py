"""Atomic file writes: a reader never sees a half-written file.

Everything is written to a temporary name in the destination folder and renamed into place with
``os.replace`` (atomic on POSIX within one file system). A full disk or a file-size limit raises
:class:`UserError` and removes the temporary file.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from wordreps.common.errors import UserError

_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes 0600 files; outputs should get the usual umask-based mode so a group can read them.
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in _NO_SPACE:
            raise UserError(
                f"no space left while writing {path} ({os.strerror(err.errno)}); "
                "free disk space or point the output folder elsewhere, then run the same command again"
            ) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> str:
    """Write ``array`` as .npy atomically and return the sha256 of the bytes written."""
    data = npy_bytes(array)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()
