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
# errors that say the location is unusable (not a bug): turned into one line by os_error_to_user
_LOCATION_ERRNOS = _NO_SPACE | {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.EISDIR,
                                errno.ENOTDIR, errno.EEXIST, errno.ELOOP}
_UMASK = os.umask(0)
os.umask(_UMASK)
# the temporary name adds ".", ".<8 random>.tmp" to the file's name
_TEMP_EXTRA_BYTES = 14


# ---------------------------------------------------------------------------------------------- output locations
#
# Every output file and folder of every script is made here (atomic_path, ensure_dir), so an output location
# the user cannot use (an --output that is a folder, a parent that is a file, a read-only place, a name too
# long for the file system) is one UserError naming it, never an OSError traceback; check_output_file and
# check_output_dir say the same before a long computation whose result would have nowhere to go.

def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _existing_ancestor(path: Path) -> Path:
    """The deepest existing path among ``path`` and its parents (a file, if a parent is one)."""
    probe = Path(os.path.abspath(path))
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    return probe


def _location_problem(path: Path, *, folder: bool, extra_bytes: int = 0) -> str | None:
    """Why ``path`` cannot be made (as a folder, or as a file whose folders are made), or None."""
    if os.path.lexists(path):
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
    # an existing file is replaced: only its folders need to be made
    base = _existing_ancestor(path if folder else path.parent)
    if not base.is_dir():
        return f"{base} is a file, not a folder, so nothing can be made inside it"
    missing = Path(os.path.abspath(path)).relative_to(base).parts if not os.path.lexists(path) else ()
    limit = _name_max(base)
    for i, part in enumerate(missing):
        size = len(os.fsencode(part)) + (extra_bytes if i == len(missing) - 1 else 0)
        if size > limit:
            return (f"the name {part[:40]!r}... is {len(os.fsencode(part))} bytes, too long for the file system "
                    f"(at most {limit - (extra_bytes if i == len(missing) - 1 else 0)} here)")
    target = path if folder and path.is_dir() else (path.parent if path.parent.is_dir() else base)
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{target} is not writable ({'read-only file system' if _read_only(target) else 'no permission'})"
    return None


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


_LOCATION_HINT = "choose another output location (a folder you can write to, names of at most 255 bytes)"


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Refuse (:class:`UserError`) an output file that cannot be written, before any work is done."""
    path = Path(path)
    why = _location_problem(path, folder=False, extra_bytes=_TEMP_EXTRA_BYTES)
    if why is not None:
        raise UserError(f"cannot write the {what} {path}: {why}; {_LOCATION_HINT}")
    return path


def check_output_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Refuse (:class:`UserError`) an output folder that cannot be made or written into, before any work."""
    folder = Path(folder)
    why = _location_problem(folder, folder=True)
    if why is not None:
        raise UserError(f"cannot write into the {what} {folder}: {why}; {_LOCATION_HINT}")
    return folder


def os_error_to_user(err: OSError, path: str | os.PathLike, action: str = "write") -> UserError:
    """An operating-system error met while writing ``path``, as one line saying what to do."""
    path = Path(path)
    reason = os.strerror(err.errno) if err.errno else str(err)
    if err.errno in _NO_SPACE:
        return UserError(f"no space left while writing {path} ({reason}); free disk space or point the output "
                         "folder elsewhere, then run the same command again")
    why = _location_problem(path, folder=False)
    return UserError(f"cannot {action} {path}: {why or reason}; {_LOCATION_HINT}")


def ensure_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """``mkdir -p folder``, with a location that cannot be made turned into one :class:`UserError`."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = _location_problem(folder, folder=True) or os.strerror(err.errno or 0)
        raise UserError(f"cannot make the {what} {folder}: {why}; {_LOCATION_HINT}") from err
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``."""
    path = Path(path)
    check_output_file(path)
    ensure_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise os_error_to_user(err, path) from err
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
        if err.errno not in _LOCATION_ERRNOS or not _about_this_output(err, tmp, path):
            raise
        raise os_error_to_user(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _about_this_output(err: OSError, tmp: Path, path: Path) -> bool:
    """Whether ``err`` is about writing the output, not about something else the caller's block did (a file it
    read): "choose another output location" would send the user after the wrong file."""
    if err.errno in _NO_SPACE:
        return True  # a write that ran out of room names no file (fh.write, fsync); reads never run out of room
    ours = {os.path.abspath(tmp), os.path.abspath(path)}
    named = [f for f in (err.filename, err.filename2) if f is not None]
    return any(isinstance(f, (str, bytes, os.PathLike)) and os.path.abspath(os.fsdecode(f)) in ours for f in named)


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
