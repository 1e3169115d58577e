"""One writer per output folder: an exclusive lock on a ``.lock`` file, removed when the writer is done.

The lock file exists only while a run holds it (a killed run may leave it; the next run takes it over and
removes it), so finished output folders hold only outputs. Removing a lock file that others may open is safe
here because a run checks, once it holds the lock, that the file it locked is still the one at ``.lock``: a
run that locked a file which was removed meanwhile starts over with the new one.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from wordreps.common.atomic import ensure_dir, os_error_to_user
from wordreps.common.errors import UserError

LOCK_NAME = ".lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, busy_message: str) -> Iterator[Path]:
    """Hold ``<folder>/.lock`` exclusively for the ``with`` block (made if missing); a second run is refused
    at once with ``busy_message``. Yields the folder."""
    folder = ensure_dir(folder)
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise os_error_to_user(err, path) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(busy_message) from None
        except OSError as err:  # a file system without locks (some network mounts)
            os.close(fd)
            raise UserError(f"cannot lock {path} ({os.strerror(err.errno or 0)}); write to a local folder "
                            "instead") from err
        if _same_file(fd, path):
            break
        os.close(fd)  # the file was removed by the run that held it: lock the new one
    try:
        yield folder
    finally:
        # removed while still held, so no other run can hold a lock on a file that is gone
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
