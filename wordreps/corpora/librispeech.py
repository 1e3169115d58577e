"""Download LibriSpeech and the MFA word/phone alignments, verify them, and lay them out.

Layout made under ``root`` (default ``datasets/``)::

    downloads/<split>.tar.gz, downloads/librispeech_alignments.zip   archives (may be deleted afterwards)
    librispeech-clean-16k/<split>/<speaker>/<chapter>/...             from LibriSpeech/<split>/ in the tar
    alignments/<split>/<speaker>/<chapter>/<utt>.TextGrid             from <split>/ in the zip (any top folder)

How it stays safe to interrupt and re-run:
- A download streams into ``<name>.part``; a cut connection is retried with an HTTP ``Range`` request that
  continues where the file ends, and an interrupted command resumes the same way when run again.
- The md5 is checked before anything is unpacked. A mismatch keeps the file as ``<name>.bad`` (so it can
  be looked at) and stops with one error line.
- Archives are unpacked into a hidden staging folder beside the target, which is renamed into place
  (atomic on one file system); then a marker ``.<split>.done.json`` recording the archive's md5 and the file
  count is written atomically. A run that finds the markers and the files in place does nothing.
- Archive members that are absolute, contain ``..`` or are links are refused.
"""
from __future__ import annotations

import errno
import gzip
import json
import lzma
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import requests
import urllib3
from tqdm import tqdm

from wordreps.common.atomic import check_output_dir, ensure_dir, write_json_atomic
from wordreps.common.errors import UserError, one_line
from wordreps.common.hashing import file_digest
from wordreps.common.locks import folder_lock

# One entry per LibriSpeech split this command knows; add more here (openslr resource 12 publishes the md5s).
SPLITS: dict[str, dict[str, str]] = {
    "dev-clean": {
        "audio_url": "https://www.openslr.org/resources/12/dev-clean.tar.gz",
        "audio_md5": "42e2234ba48799c1f50f24a7926300a1",
    },
}

# Montreal Forced Aligner TextGrids for every LibriSpeech split in one zip (Zenodo record 2619474).
ALIGNMENTS_KEY = "librispeech_alignments.zip"
ALIGNMENTS_URL = "https://zenodo.org/records/2619474/files/librispeech_alignments.zip?download=1"
ZENODO_API_URL = "https://zenodo.org/api/records/2619474"

AUDIO_DIR = "librispeech-clean-16k"
ALIGNMENTS_DIR = "alignments"
DOWNLOADS_DIR = "downloads"
MARKER_FORMAT = "wordreps.layout"

_CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 30.0  # connect, and longest wait for the next bytes: a stall costs one try, not minutes
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              urllib3.exceptions.HTTPError)
_MD5 = re.compile(r"^[0-9a-f]{32}$")

Log = Callable[[str], None]


class _Incomplete(Exception):
    """The server closed the body early or answered in a way that needs another request."""


def _say(message: str) -> None:
    print(message, flush=True)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def normalise_md5(value: str, what: str) -> str:
    md5 = value.strip().lower()
    if md5.startswith("md5:"):
        md5 = md5[4:]
    if not _MD5.match(md5):
        raise UserError(f"{what} {value!r} is not an md5 (32 hex digits); give the archive's md5")
    return md5


# --------------------------------------------------------------------------------------------- downloading

def _content_range(header: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """Parse ``bytes a-b/N`` or ``bytes */N`` into (a, N); unknown parts are None."""
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", header or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _is_stall(err: BaseException) -> bool:
    """A timeout: the server accepted no connection, or sent nothing for the timeout, within one try."""
    while err is not None:
        if isinstance(err, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return True
        err = err.__context__ or (err.args[1] if len(err.args) > 1 and isinstance(err.args[1], BaseException)
                                  else None)
    return False


def _reason(err: BaseException, timeout_s: float) -> str:
    if _is_stall(err):
        return f"the server stalled: no data for {timeout_s:g} s (--timeout)"
    # urllib3 wraps the cause as (message, exception); the message alone reads better
    return one_line(err.args[0] if err.args else err)


def _fetch_once(session: requests.Session, url: str, part: Path, progress: bool, label: str,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """One GET that appends to ``part`` from its current size; returns when the body is complete.

    Raises a transient error (retried by the caller) when the connection breaks or the body is short.
    """
    offset = part.stat().st_size if part.exists() else 0
    # identity: a server that gzips on the fly would make byte offsets and the md5 meaningless.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with session.get(url, headers=headers, stream=True, timeout=(timeout_s, timeout_s), allow_redirects=True) as resp:
        if resp.status_code == 416 and offset:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total == offset:
                return  # the part file already holds the whole body
            part.unlink()
            raise _Incomplete(f"the server refused to resume at byte {offset}; starting again")
        if resp.status_code == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Incomplete(f"the server resumed at byte {start}, not {offset}; starting again")
            mode = "ab"
        elif resp.status_code == 200:
            mode, offset = "wb", 0  # the server ignores Range: start over
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        elif resp.status_code >= 500 or resp.status_code == 429:
            raise _Incomplete(f"the server answered HTTP {resp.status_code} {resp.reason}")
        else:
            raise UserError(f"{url} answered HTTP {resp.status_code} {resp.reason}; check the URL "
                            "(--url_audio / --url_alignments) and run again")
        with open(part, mode) as fh, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                           unit_divisor=1024, desc=label, disable=not progress,
                                           mininterval=0.5, file=sys.stderr) as bar:
            try:
                # read1: what has arrived (up to a chunk), so a stall loses none of the bytes received before it
                while chunk := resp.raw.read1(_CHUNK_BYTES, decode_content=False):
                    fh.write(chunk)
                    bar.update(len(chunk))
            finally:
                fh.flush()
                os.fsync(fh.fileno())
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Incomplete(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Incomplete(f"got {size} bytes but the server announced {total}; starting again")


def download(url: str, dest: Path, expected_md5: str, retries: int = 5, retry_wait_s: float = 2.0,
             session: Optional[requests.Session] = None, progress: bool = True, log: Log = _say,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` through ``dest.part`` (resumable), then check its md5.

    A wrong md5 renames the file to ``dest.bad`` and raises :class:`UserError`. A connection that keeps
    failing after ``retries`` retries keeps the ``.part`` file so that the next run resumes it. A try ends
    when no connection is made, or no byte arrives, for ``timeout_s``: a stalled server holds the command at
    most ``(retries + 1) * timeout_s`` plus the waits between tries (:func:`worst_wait_s`).
    """
    ensure_dir(dest.parent, "downloads folder")
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        log(f"checking {dest} (already downloaded)")
        _verify(dest, expected_md5, url)
        return
    session = session or requests.Session()
    failures = 0
    while True:
        try:
            resumed = part.exists() and part.stat().st_size > 0
            log(f"{'resuming' if resumed else 'downloading'} {url} -> {dest}"
                + (f" at byte {part.stat().st_size}" if resumed else ""))
            _fetch_once(session, url, part, progress, dest.name, timeout_s)
            break
        except (_Incomplete, *_TRANSIENT) as err:
            failures += 1
            reason = _reason(err, timeout_s)
            if failures > retries:
                kept = f"; {part.stat().st_size} bytes are kept in {part}" if part.exists() else ""
                raise UserError(f"download of {url} failed after {retries} retries ({reason}){kept}; "
                                "check the network and run the same command again to resume (--timeout and "
                                "--retries set how long a stalled server is waited for)") from err
            wait_s = retry_wait_s * failures
            _warn(f"download interrupted ({reason}); retry {failures} of {retries} in {wait_s:g} s")
            time.sleep(wait_s)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            raise UserError(f"no space left while downloading {url} to {part} ({os.strerror(err.errno)}); "
                            "free disk space and run the same command again to resume") from err
    _verify(part, expected_md5, url, final=dest)


def _verify(path: Path, expected_md5: str, url: str, final: Optional[Path] = None) -> None:
    """Check ``path``'s md5; on success rename it to ``final`` (if given), else quarantine it as ``.bad``."""
    target = final or path
    got = file_digest(path, "md5")
    if got != expected_md5:
        bad = target.with_name(target.name + ".bad")
        os.replace(path, bad)
        raise UserError(f"checksum mismatch for {target} from {url}: md5 {got}, expected {expected_md5}; "
                        f"the file was moved to {bad} (delete it), check the URL and md5 and run again")
    if final is not None:
        os.replace(path, final)


def worst_wait_s(retries: int, retry_wait_s: float, timeout_s: float) -> float:
    """The longest a server that stalls every try holds one download: every try times out, then waits."""
    return (retries + 1) * timeout_s + retry_wait_s * retries * (retries + 1) / 2


def _get_json(session: requests.Session, url: str, retries: int, retry_wait_s: float,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    for attempt in range(retries + 1):
        try:
            resp = session.get(url, timeout=(timeout_s, timeout_s), headers={"Accept": "application/json"})
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _Incomplete(f"HTTP {resp.status_code} {resp.reason}")
            break
        except (_Incomplete, *_TRANSIENT) as err:
            if attempt == retries:
                raise UserError(f"cannot reach {url} ({_reason(err, timeout_s)}); check the network, "
                                "or give the alignments' md5 with --md5_alignments") from err
            time.sleep(retry_wait_s * (attempt + 1))
    if resp.status_code != 200:
        raise UserError(f"{url} answered HTTP {resp.status_code} {resp.reason}; check --zenodo_api, "
                        "or give the alignments' md5 with --md5_alignments")
    try:
        return resp.json()
    except ValueError as err:
        raise UserError(f"{url} did not return JSON; check --zenodo_api, or give the md5 with --md5_alignments") from err


def zenodo_md5(api_url: str, key: str, retries: int = 5, retry_wait_s: float = 2.0,
               session: Optional[requests.Session] = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The md5 Zenodo's records API publishes for the file ``key`` (``files[].checksum == "md5:..."``)."""
    record = _get_json(session or requests.Session(), api_url, retries, retry_wait_s, timeout_s)
    files = record.get("files") if isinstance(record, dict) else None
    if isinstance(files, dict):  # newer InvenioRDM answers nest the list under "entries"
        files = files.get("entries")
    if isinstance(files, dict):
        files = list(files.values())
    entries = [f for f in files or [] if isinstance(f, dict)]
    for entry in entries:
        if entry.get("key", entry.get("filename")) == key:
            checksum = str(entry.get("checksum", ""))
            if not checksum.startswith("md5:"):
                raise UserError(f"{api_url} gives {key} the checksum {checksum!r}, not an md5; "
                                "give the md5 with --md5_alignments")
            return normalise_md5(checksum, f"checksum of {key} at {api_url}")
    names = ", ".join(str(e.get("key", e.get("filename"))) for e in entries) or "none"
    raise UserError(f"{api_url} lists no file {key} (files: {names}); check --zenodo_api "
                    "or give the md5 with --md5_alignments")


# --------------------------------------------------------------------------------------------- unpacking

def _split_relpath(name: str, split: str, archive: Path) -> Optional[PurePosixPath]:
    """Where an archive member goes inside the split's folder, or None if it lies outside the split.

    Refuses (UserError) absolute names and names with ``..``: they could write outside the target.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
        raise UserError(f"archive {archive} holds the unsafe member name {name!r} (absolute or with '..'); "
                        "refusing to unpack it; delete the archive and download it from the official URL")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or parts[0] == "__MACOSX" or split not in parts:
        return None
    rel = parts[parts.index(split) + 1:]
    return PurePosixPath(*rel) if rel else None


def _destination(staging: Path, rel: PurePosixPath) -> Path:
    dest = staging.joinpath(*rel.parts)
    # Belt and braces beside the name check: the resolved path must stay inside the staging folder.
    if not dest.resolve().is_relative_to(staging.resolve()):
        raise UserError(f"archive member {rel} would be written outside {staging}; refusing to unpack it")
    return dest


def _write_member(src, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK_BYTES)


def extract_tar_split(archive: Path, split: str, staging: Path, progress: bool = True) -> int:
    """Unpack the members under ``<...>/<split>/`` of a tar(.gz) into ``staging``; return the file count."""
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar, \
                tqdm(desc=f"unpacking {archive.name}", unit=" files", disable=not progress,
                     mininterval=0.5, file=sys.stderr) as bar:
            for member in tar:
                rel = _split_relpath(member.name, split, archive)
                if member.issym() or member.islnk() or member.isdev():
                    raise UserError(f"archive {archive} holds the link or device {member.name!r}; refusing to "
                                    "unpack it; delete the archive and download it from the official URL")
                if rel is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src:
                    _write_member(src, _destination(staging, rel))
                count += 1
                bar.update(1)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as err:
        raise UserError(f"archive {archive} cannot be read ({err}); delete it and run again to download it anew") from err
    return count


def extract_zip_split(archive: Path, split: str, staging: Path, progress: bool = True) -> int:
    """Unpack the members under ``[top/]<split>/`` of a zip into ``staging``; return the file count."""
    count = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            with tqdm(total=len(infos), desc=f"unpacking {archive.name}", unit=" entries", disable=not progress,
                      mininterval=0.5, file=sys.stderr) as bar:
                for info in infos:
                    bar.update(1)
                    rel = _split_relpath(info.filename, split, archive)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise UserError(f"archive {archive} holds the link {info.filename!r}; refusing to unpack "
                                        "it; delete the archive and download it from the official URL")
                    if rel is None or info.is_dir():
                        continue
                    with zf.open(info) as src:
                        _write_member(src, _destination(staging, rel))
                    count += 1
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise UserError(f"archive {archive} cannot be read ({err}); delete it and run again to download it anew") from err
    return count


# --------------------------------------------------------------------------------------------- lay-out

@dataclass(frozen=True)
class Part:
    """One thing to fetch and lay out: an archive and the folder its split goes to."""
    name: str                # "audio" or "alignments", for messages
    url: str
    archive: Path            # downloads/<file>
    target: Path             # <root>/<dir>/<split>
    split: str
    extract: Callable[[Path, str, Path, bool], int]

    @property
    def marker(self) -> Path:
        return self.target.parent / f".{self.split}.done.json"


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def check_in_place(part: Part, expected_md5: Optional[str]) -> tuple[bool, str]:
    """(True, "") when the marker and the files are in place; else (False, why)."""
    if not part.marker.exists():
        return False, f"no marker {part.marker}"
    try:
        marker = json.loads(part.marker.read_text())
        md5, num_files = marker["md5"], int(marker["num_files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, f"unreadable marker {part.marker}"
    if expected_md5 is not None and md5 != expected_md5:
        return False, f"{part.target} was laid out from an archive with md5 {md5}, not {expected_md5}"
    if not part.target.is_dir():
        return False, f"{part.target} is missing"
    found = _count_files(part.target)
    if found != num_files:
        return False, f"{part.target} holds {found} files, the marker {part.marker} says {num_files}"
    return True, ""


def lay_out(part: Part, md5: str, progress: bool = True, log: Log = _say) -> int:
    """Unpack ``part.archive``'s split into ``part.target`` through a staging folder, then write the marker."""
    ensure_dir(part.target.parent)
    if part.target.exists():
        _, why = check_in_place(part, md5)
        raise UserError(f"{part.target} exists but is not a complete lay-out of {part.archive.name} ({why}); "
                        f"delete {part.target} and run the same command again")
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{part.split}-", dir=part.target.parent))
    try:
        log(f"unpacking {part.archive} -> {part.target}")
        try:
            count = part.extract(part.archive, part.split, staging, progress)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise UserError(f"no space left while unpacking {part.archive} into {part.target.parent} "
                                f"({os.strerror(err.errno)}); free disk space and run the same command again") from err
            raise
        if count == 0:
            raise UserError(f"archive {part.archive} holds no files under a {part.split}/ folder; check that "
                            f"--url_{part.name} points at the right archive, delete it and run again")
        os.rename(staging, part.target)  # the folder appears complete or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json_atomic(part.marker, {"format": MARKER_FORMAT, "version": 1, "split": part.split,
                                    "archive": part.archive.name, "url": part.url, "md5": md5,
                                    "num_files": count})
    return count


def _exclusive(downloads: Path):
    """Refuse a second concurrent run on the same folder: both would append to the same .part files."""
    return folder_lock(downloads, f"another download is running on {downloads}; wait for it to finish")


def _remove_stale_staging(folder: Path) -> None:
    if folder.is_dir():
        for stale in folder.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)


@dataclass
class Request:
    """What to fetch: the split, its URLs, known md5s (None = look up), and how to retry."""
    root: Path
    split: str = "dev-clean"
    url_audio: Optional[str] = None
    md5_audio: Optional[str] = None
    url_alignments: str = ALIGNMENTS_URL
    md5_alignments: Optional[str] = None
    zenodo_api: str = ZENODO_API_URL
    retries: int = 5
    retry_wait_s: float = 2.0
    progress: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S


def prepare(req: Request, log: Log = _say) -> None:
    """Make ``<root>/librispeech-clean-16k/<split>`` and ``<root>/alignments/<split>``; idempotent."""
    known = SPLITS.get(req.split, {})
    url_audio = req.url_audio or known.get("audio_url")
    md5_audio = req.md5_audio or known.get("audio_md5")
    if not url_audio or not md5_audio:
        raise UserError(f"split {req.split!r} is not in the table ({', '.join(SPLITS)}); give its archive with "
                        "--url_audio and --md5_audio, or add it to SPLITS in wordreps/corpora/librispeech.py")
    md5_audio = normalise_md5(md5_audio, "--md5_audio")
    md5_alignments = normalise_md5(req.md5_alignments, "--md5_alignments") if req.md5_alignments else None

    check_output_dir(req.root, "--root folder")
    downloads = req.root / DOWNLOADS_DIR
    audio = Part("audio", url_audio, downloads / f"{req.split}.tar.gz", req.root / AUDIO_DIR / req.split,
                 req.split, extract_tar_split)
    alignments = Part("alignments", req.url_alignments, downloads / ALIGNMENTS_KEY,
                      req.root / ALIGNMENTS_DIR / req.split, req.split, extract_zip_split)

    # Decide from the markers alone, so that a finished set-up needs no network and no archives.
    audio_done, _ = check_in_place(audio, md5_audio)
    align_done, _ = check_in_place(alignments, md5_alignments)
    if audio_done and align_done:
        log(f"LibriSpeech {req.split} and its alignments are already in place ({audio.target}, "
            f"{alignments.target}); nothing to do")
        return

    session = requests.Session()
    with _exclusive(downloads):
        for part, done in ((audio, audio_done), (alignments, align_done)):
            if done:
                log(f"{part.name}: already in place in {part.target}")
                continue
            _remove_stale_staging(part.target.parent)
            md5 = md5_audio if part is audio else md5_alignments
            if md5 is None:
                log(f"looking up the md5 of {ALIGNMENTS_KEY} at {req.zenodo_api}")
                md5 = zenodo_md5(req.zenodo_api, ALIGNMENTS_KEY, req.retries, req.retry_wait_s, session,
                                 req.timeout_s)
            download(part.url, part.archive, md5, req.retries, req.retry_wait_s, session, req.progress, log,
                     req.timeout_s)
            count = lay_out(part, md5, req.progress, log)
            log(f"{part.name}: {count} files in {part.target}")
    log(f"LibriSpeech {req.split} is ready: {audio.target} and {alignments.target} "
        f"(the archives in {downloads} may be deleted)")
