"""The one reader and writer of per-model embedding folders.

Layout of one model's folder (``outputs/embeddings/<slug>/``)::

    manifest.json                    what every file holds (identical for every shard, no timestamps)
    utts/<utt_id>.npy                (num_layers, num_words, dim) float16 or float32, rows in word order
    done.shard-<i>-of-<n>.jsonl      one line per finished utterance: {"utt", "sha256", "missing"}

A ``.npy`` is written to a temporary name and renamed into place; only then is its done record appended
(flush + fsync). An utterance counts as finished when its file exists and its sha256 equals the one in a
done record (of any shard file: a run resumed with another number of shards still skips finished work).
A torn last line (a worker killed mid-append) is ignored when read and cut off before the next append.

Readers (the experiments stage) use :class:`EmbeddingSet`; the extraction core uses
:func:`prepare_folder`, :class:`DoneLog` and :func:`finished_record`.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from wordreps.common.atomic import write_json_atomic
from wordreps.common.errors import UserError
from wordreps.common.hashing import sha256_file

FORMAT = "wordreps.embeddings"
VERSION = 1
MANIFEST = "manifest.json"
UTTS = "utts"
_DONE_RE = re.compile(r"^done\.shard-(\d+)-of-(\d+)\.jsonl$")
_SLUG_BAD = re.compile(r"[/\\\x00]")


# ---------------------------------------------------------------------------------------------- names

def slug_for(model_name: str) -> str:
    """Folder name for a model: a local path -> its folder's base name; a hub name -> "/" replaced by "__"."""
    text = str(model_name).strip()
    if text and os.path.exists(text):
        base = Path(text).resolve().name
        if base.endswith((".pt", ".ckpt", ".pth", ".bin")):  # checkpoint files: drop the extension
            base = base.rsplit(".", 1)[0]
        return base or "model"
    slug = text.replace("/", "__").replace("\\", "__")
    return slug or "model"


def check_slug(name: str) -> str:
    if not name or name in (".", "..") or _SLUG_BAD.search(name):
        raise UserError(f"--name {name!r} is not a usable folder name (no '/', '\\', '.' or '..'); "
                        "pass a plain name such as wav2vec2_large_960")
    return name


def model_dir(out_dir: str | os.PathLike, name: str) -> Path:
    """The folder of one model's embeddings: ``<out_dir>/<name>`` (``name`` is a slug, see :func:`slug_for`)."""
    return Path(out_dir) / check_slug(name)


def utt_path(folder: str | os.PathLike, utt_id: str) -> Path:
    return Path(folder) / UTTS / f"{utt_id}.npy"


def done_path(folder: str | os.PathLike, shard_id: int, num_shards: int) -> Path:
    return Path(folder) / f"done.shard-{shard_id}-of-{num_shards}.jsonl"


def npy_nbytes(shape: Iterable[int], dtype: str) -> int:
    """Exact size in bytes of the .npy file ``np.save`` writes for an array of ``shape`` and ``dtype``."""
    shape = tuple(int(s) for s in shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return len(buf.getvalue()) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


# ---------------------------------------------------------------------------------------------- done records

@dataclass(frozen=True)
class DoneRecord:
    utt: str
    sha256: str
    missing: tuple[int, ...]


def _read_done_file(path: Path) -> list[DoneRecord]:
    records: list[DoneRecord] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return records
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            records.append(DoneRecord(str(obj["utt"]), str(obj["sha256"]),
                                      tuple(int(i) for i in obj.get("missing", []))))
        except (ValueError, KeyError, TypeError):
            # a torn line (a worker killed mid-append) or garbage: that utterance is simply redone
            continue
    return records


def read_done_records(folder: str | os.PathLike) -> dict[str, list[DoneRecord]]:
    """All done records of all shard files, by utterance id (an utterance may have several)."""
    out: dict[str, list[DoneRecord]] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir()):
        if _DONE_RE.match(entry.name):
            for rec in _read_done_file(entry):
                out.setdefault(rec.utt, []).append(rec)
    return out


def finished_record(folder: str | os.PathLike, utt_id: str, records: list[DoneRecord] | None,
                    expected_nbytes: int | None = None, check_sha: bool = True) -> DoneRecord | None:
    """The done record that matches the utterance's file on disk, or None (missing, torn or changed file)."""
    if not records:
        return None
    path = utt_path(folder, utt_id)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if expected_nbytes is not None and size != expected_nbytes:
        return None
    if not check_sha:
        return records[-1]
    sha = sha256_file(path)
    for rec in reversed(records):
        if rec.sha256 == sha:
            return rec
    return None


class DoneLog:
    """Appends done records of one shard; each line is flushed and fsynced before the next file is trusted."""

    def __init__(self, folder: str | os.PathLike, shard_id: int, num_shards: int):
        self.path = done_path(folder, shard_id, num_shards)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        # a raw descriptor: no Python buffer that could flush half a record later
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair(self) -> None:
        # A worker killed mid-append leaves a line without its newline: cut it off so that the next record
        # starts on its own line (and a resumed run's file equals an uninterrupted run's).
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "rb+") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())

    def append(self, utt_id: str, sha256: str, missing: Iterable[int] = ()) -> None:
        self.append_many([(utt_id, sha256, list(missing))])

    def append_many(self, records: Iterable[tuple[str, str, Iterable[int]]]) -> None:
        """Append records (their .npy files already renamed into place), then flush and fsync once."""
        lines = "".join(json.dumps({"utt": u, "sha256": sha, "missing": [int(i) for i in missing]},
                                   separators=(",", ":")) + "\n" for u, sha, missing in records)
        data = memoryview(lines.encode("utf-8"))
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
            os.fsync(self._fd)
        except OSError as err:
            # never leave half a record behind: cut back to where these lines started
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                pass
            raise UserError(f"cannot append to {self.path} ({err.strerror}); free disk space or fix permissions, "
                            "then run the same command again to resume") from err

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------- manifest

def build_manifest(*, model: str, family: str, num_layers: int, layer_names: list[str], dim: int, dtype: str,
                   geometry: dict | None, alignment_path: str, alignment_sha256: str, describe: dict,
                   versions: dict, utterances: dict[str, dict], compute: dict | None = None) -> dict:
    """The manifest object; ``utterances`` maps id -> {"words": [...], "shape": [L, W, D]}; ``compute`` is the
    backend's device and precision record (``common/precision.compute_record``)."""
    return {
        "format": FORMAT, "version": VERSION, "model": model, "family": family,
        "num_layers": int(num_layers), "layer_names": list(layer_names), "dim": int(dim), "dtype": dtype,
        "compute": compute, "geometry": geometry, "alignment_path": alignment_path,
        "alignment_sha256": alignment_sha256, "describe": describe, "versions": versions, "utterances": utterances,
    }


def _compute_text(compute: dict) -> str:
    """``bfloat16 on cpu``, ``float32 on cuda (NVIDIA H100 80GB HBM3)``: a compute record in words."""
    where = str(compute.get("device_type"))
    if compute.get("gpu_name"):
        where += f" ({compute['gpu_name']})"
    return f"{compute.get('precision')} on {where}"


def _normalise(obj: Any) -> Any:
    """JSON round trip, so that tuples/lists and ints/floats compare the way they will read back."""
    return json.loads(json.dumps(obj, ensure_ascii=False, allow_nan=False))


def _diff_fields(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if old.get(k) != new.get(k)]


def read_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise UserError(f"{folder} holds no {MANIFEST}: it is not an embeddings folder (or its extraction never "
                        "started); run the embedding script for that model first")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} cannot be read as JSON ({err}); delete the folder and run the extraction again") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path} is not a wordreps embeddings manifest; point to a folder written by "
                        "embeddings/*_embedding.py")
    if obj.get("version") != VERSION:
        raise UserError(f"{path} has version {obj.get('version')!r}, this toolkit reads version {VERSION}; "
                        "run the extraction again with --overwrite")
    return obj


def prepare_folder(folder: str | os.PathLike, manifest: dict, *, overwrite: bool = False) -> Path:
    """Create ``folder`` and write ``manifest`` atomically, or check that the one there is the same.

    A folder whose manifest differs (another model, alignment file, dtype, compute precision or device, library
    versions, ...) is refused:
    mixing files from two runs would silently compare apples and oranges. ``overwrite`` replaces the manifest;
    finished files of the old run are then not trusted (see :func:`clear_for_overwrite`).
    """
    folder = Path(folder)
    manifest = _normalise(manifest)
    path = folder / MANIFEST
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            old = None
        if isinstance(old, dict) and isinstance(old.get("compute"), dict) and old["compute"] != manifest.get("compute"):
            # the one difference a user makes by accident (another machine, another --precision): said plainly
            before, now = old["compute"], manifest.get("compute") or {}
            same_device = {k: v for k, v in before.items() if k != "precision"} == \
                {k: v for k, v in now.items() if k != "precision"}
            how = f"--precision {before.get('precision')}" if same_device else "the same device and --precision"
            raise UserError(
                f"{folder} holds embeddings computed at {_compute_text(before)} but this run would compute at "
                f"{_compute_text(now)}; resume it with {how}, pass --overwrite to redo it, or --name/--out_dir to "
                "write elsewhere")
        if old != manifest:
            fields = _diff_fields(old, manifest) if isinstance(old, dict) else ["(unreadable manifest)"]
            raise UserError(
                f"{folder} already holds embeddings made with other settings (different {', '.join(fields)}); "
                "pass --overwrite to replace them, or --name/--out_dir to write elsewhere")
        (folder / UTTS).mkdir(parents=True, exist_ok=True)
        return folder
    (folder / UTTS).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, manifest, indent=1)
    return folder


def remove_stale_temps(folder: str | os.PathLike, utt_ids: Iterable[str]) -> int:
    """Delete temporary files a killed worker left for these utterances (only this shard writes them)."""
    wanted = {f".{u}.npy." for u in utt_ids}
    removed = 0
    utts = Path(folder) / UTTS
    if not utts.is_dir():
        return 0
    for entry in utts.iterdir():
        name = entry.name
        if name.startswith(".") and name.endswith(".tmp") and name[: name.find(".npy.") + 5] in wanted:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def clear_for_overwrite(folder: str | os.PathLike, utt_ids: Iterable[str], shard_id: int, num_shards: int) -> None:
    """--overwrite: delete this shard's utterance files and its done file (other shards clear their own)."""
    folder = Path(folder)
    for utt_id in utt_ids:
        utt_path(folder, utt_id).unlink(missing_ok=True)
    done_path(folder, shard_id, num_shards).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- reader

class EmbeddingSet:
    """Read side of one model's folder. Open with :meth:`open`."""

    def __init__(self, folder: Path, manifest: dict, done: dict[str, list[DoneRecord]]):
        self.folder = folder
        self.manifest = manifest
        self._done = done
        self._utts: dict[str, dict] = manifest["utterances"]

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "EmbeddingSet":
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"embeddings folder {folder} does not exist; run the embedding script for that model "
                            "(or pass the right --out_dir/--name)")
        manifest = read_manifest(folder)
        return cls(folder, manifest, read_done_records(folder))

    # -- what the manifest says
    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def num_layers(self) -> int:
        return int(self.manifest["num_layers"])

    @property
    def layer_names(self) -> list[str]:
        return list(self.manifest["layer_names"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def dtype(self) -> str:
        return self.manifest["dtype"]

    @property
    def utterance_ids(self) -> list[str]:
        """All utterances of the alignment, sorted (finished or not: see :meth:`is_done`)."""
        return sorted(self._utts)

    def words(self, utt_id: str) -> list[str]:
        return list(self._entry(utt_id)["words"])

    def shape(self, utt_id: str) -> tuple[int, int, int]:
        return tuple(int(s) for s in self._entry(utt_id)["shape"])  # type: ignore[return-value]

    def path(self, utt_id: str) -> Path:
        return utt_path(self.folder, utt_id)

    def _entry(self, utt_id: str) -> dict:
        try:
            return self._utts[utt_id]
        except KeyError:
            raise UserError(f"utterance {utt_id} is not in {self.folder / MANIFEST}; the embeddings were made from "
                            "another alignment file") from None

    # -- what is on disk
    def _record(self, utt_id: str, check_sha: bool) -> DoneRecord | None:
        return finished_record(self.folder, utt_id, self._done.get(utt_id),
                               npy_nbytes(self.shape(utt_id), self.dtype), check_sha=check_sha)

    def is_done(self, utt_id: str, verify: bool = False) -> bool:
        return self._record(utt_id, check_sha=verify) is not None

    def done_ids(self, verify: bool = False) -> list[str]:
        return [u for u in self.utterance_ids if self.is_done(u, verify=verify)]

    def is_complete(self, verify: bool = False) -> bool:
        """Every utterance of the manifest has a file and a done record (checksums too if ``verify``)."""
        return all(self.is_done(u, verify=verify) for u in self.utterance_ids)

    def missing(self, utt_id: str) -> list[int]:
        """Word positions of ``utt_id`` with no vector (NaN rows), as recorded when the file was written."""
        rec = self._record(utt_id, check_sha=False)
        if rec is None:
            raise self._not_done(utt_id)
        return list(rec.missing)

    def _not_done(self, utt_id: str) -> UserError:
        return UserError(f"{self.path(utt_id)} is missing or unfinished (no matching done record in {self.folder}); "
                         "run the extraction command again to finish it")

    def load(self, utt_id: str, verify: bool = True, mmap: bool = False) -> np.ndarray:
        """The (num_layers, num_words, dim) array of one utterance.

        Refuses a file whose shape or dtype disagrees with the manifest, or (``verify``) whose sha256 matches
        no done record: run the extraction again, which redoes such files.
        """
        path = self.path(utt_id)
        records = self._done.get(utt_id)
        if not records or not path.exists():
            raise self._not_done(utt_id)
        expected = self.shape(utt_id)
        redo = ("delete it and run the extraction command again (it redoes that utterance), "
                "or run it with --overwrite")
        if verify:
            sha = sha256_file(path)
            if not any(r.sha256 == sha for r in records):
                raise UserError(f"{path} does not match its done record (sha256 differs: changed or half-written "
                                f"file); {redo}")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UserError(f"{path} cannot be read as .npy ({err}); {redo}") from err
        if tuple(array.shape) != expected or array.dtype != np.dtype(self.dtype):
            raise UserError(f"{path} has shape {tuple(array.shape)} {array.dtype}, the manifest says {expected} "
                            f"{self.dtype}; {redo}")
        return array
