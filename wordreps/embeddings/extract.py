"""The extraction core shared by every embedding script (speech, text, GloVe, general audio).

``run_extraction(backend, args)``:

1. loads and validates the alignment JSON and checks that it was made for the backend's frame geometry;
2. writes (or checks) the model folder's manifest before the first utterance (identical for every shard);
3. plans length-sorted batches under a budget over ALL selected utterances, then hands batch ``j`` to shard
   ``j % num_shards``. The plan never depends on the shard count or on what is already finished, so every
   utterance is always computed in the same batch: a resumed run, or two shards, give files byte-identical
   to one uninterrupted worker's (on a deterministic device);
4. skips batches whose utterances are all finished (file on disk whose sha256 is in a done record); a batch
   with any unfinished utterance is run again and only its unfinished utterances are written;
5. loads audio on background threads (prefetch), runs ``backend.embed`` on the main thread, and converts,
   checks and writes each ``.npy`` on a background writer thread (bounded queue, errors re-raised here).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from wordreps.common.atomic import check_output_dir, save_npy_atomic
from wordreps.common.cli import add_common_args, float_range, int_range
from wordreps.common.devices import (  # noqa: F401 (re-exported)
    DEVICE_HELP,
    device_arg,
    is_out_of_memory,
    resolve_device,
)
from wordreps.common.errors import UserError
from wordreps.common.precision import PRECISION_HELP, exact_float32, precision_arg
from wordreps.common.threads import io_threads
from wordreps.embeddings import store
from wordreps.embeddings.base import Backend, BatchItem, Utterance

DEFAULT_OUT_DIR = "outputs/embeddings"
DEFAULT_BATCH_SECONDS = 200.0      # on a GPU: big batches keep it busy
DEFAULT_BATCH_SECONDS_CPU = 20.0   # on a CPU, padding costs more than batching saves (measured by bench_pipeline)
DEFAULT_BATCH_TOKENS = 8192
_FP16_MAX = float(np.finfo(np.float16).max)  # 65504


# ---------------------------------------------------------------------------------------------- command line

def add_extraction_args(parser: argparse.ArgumentParser, *, audio: bool, model: bool = True) -> argparse.ArgumentParser:
    """The flags every embedding script shares. ``audio`` picks --batch_seconds (audio) or --batch_tokens;
    ``model=False`` (GloVe: vectors read from a file, no torch) leaves out --precision and --num_threads (the
    common flags: :func:`wordreps.common.cli.add_common_args`)."""
    g = parser.add_argument_group("extraction")
    g.add_argument("--path", required=True,
                   help="alignment JSON written by alignments/alignments_and_trans.py "
                        "(e.g. alignments/audio_alignments_20_16.json)")
    g.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    if model:
        g.add_argument("--precision", type=precision_arg, default="auto", help=PRECISION_HELP)
    g.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="dtype of the stored vectors, whatever --precision; pooling is always computed in float32 "
                        "(default: float16)")
    g.add_argument("--out_dir", default=DEFAULT_OUT_DIR,
                   help=f"root of the per-model folders (default: {DEFAULT_OUT_DIR})")
    g.add_argument("--name", default=None,
                   help="folder name under --out_dir (default: the model name with '/' -> '__', or a local "
                        "path's base name)")
    if audio:
        g.add_argument("--skip_too_short", action="store_true",
                       help="skip utterances shorter than the model's receptive field (e.g. 400 samples, 25 ms, for "
                            "wav2vec2) instead of stopping; they are listed in the manifest (skipped_too_short)")
        g.add_argument("--batch_seconds", type=float_range(0.0, 1e6, lo_open=True), default=None,
                       help=f"padded audio seconds per batch (default: {DEFAULT_BATCH_SECONDS:g} on a GPU, "
                            f"{DEFAULT_BATCH_SECONDS_CPU:g} on a CPU; lower it if the GPU runs out of memory)")
    else:
        g.add_argument("--batch_tokens", type=int_range(1, 10**8), default=DEFAULT_BATCH_TOKENS,
                       help="padded tokens per batch (default: %(default)s)")
    g.add_argument("--num_shards", type=int_range(1, 100000), default=None,
                   help="number of workers sharing the run (default: torchrun WORLD_SIZE, a Slurm array's task "
                        "count, else 1)")
    g.add_argument("--shard_id", type=int_range(0, 99999), default=None,
                   help="this worker's shard, 0-based (default: torchrun RANK, the Slurm array task index, else 0)")
    g.add_argument("--limit", type=int_range(1, None), default=None,
                   help="process only the first N utterances (sorted by id), for smoke tests")
    g.add_argument("--overwrite", action="store_true",
                   help="replace this shard's existing files (and a manifest made with other settings)")
    add_common_args(parser, torch=model)
    return parser


def check_extraction_args(args: argparse.Namespace) -> argparse.Namespace:
    """What can be refused before a model or a vector file is loaded: an --out_dir that cannot be written,
    a --name that is not a plain folder name (the folder name made from a model's name is checked once the
    model is known, in :func:`prepare_run`)."""
    check_output_dir(args.out_dir, "--out_dir folder")
    if getattr(args, "name", None):
        store.check_slug(args.name)
    return args


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(shard_id, num_shards) from torchrun (RANK, WORLD_SIZE) or a Slurm array, else (0, 1)."""
    env = os.environ if env is None else env

    def as_int(key: str) -> int:
        try:
            return int(env[key])
        except ValueError:
            raise UserError(f"environment variable {key}={env[key]!r} is not an integer; unset it or pass "
                            "--shard_id/--num_shards") from None

    if "WORLD_SIZE" in env and "RANK" in env:
        return as_int("RANK"), as_int("WORLD_SIZE")
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        lo = as_int("SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        step = as_int("SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
        return (as_int("SLURM_ARRAY_TASK_ID") - lo) // max(step, 1), as_int("SLURM_ARRAY_TASK_COUNT")
    return 0, 1


def resolve_shard(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    env_id, env_n = shard_from_env(env)
    num = args.num_shards if getattr(args, "num_shards", None) is not None else env_n
    sid = args.shard_id if getattr(args, "shard_id", None) is not None else env_id
    if num < 1 or not 0 <= sid < num:
        raise UserError(f"shard {sid} of {num} does not exist (--shard_id must be in 0..{num - 1}); "
                        "check --shard_id/--num_shards or RANK/WORLD_SIZE/SLURM_ARRAY_* variables")
    return sid, num


# ---------------------------------------------------------------------------------------------- helpers

def select_shard_items(items: Sequence, shard_id: int, num_shards: int) -> list:
    """Stable assignment: item ``j`` goes to shard ``j % num_shards``."""
    return [x for j, x in enumerate(items) if j % num_shards == shard_id]


def plan_batches(utterances: Sequence[Utterance], cost: Callable[[Utterance], float], budget: float, *,
                 padding_sensitive: bool = False, equal_key: Callable[[Utterance], object] | None = None
                 ) -> list[list[Utterance]]:
    """Length-sorted batches whose padded cost (size x longest cost) stays under ``budget``.

    Longest first, so that a batch too big for the GPU fails at once, not after an hour. An utterance over
    the budget gets a batch of its own. ``padding_sensitive``: a batch only holds utterances with equal
    ``equal_key`` (default: equal ``num_samples``), so no item is ever padded. Deterministic: ties are broken
    by utterance id.
    """
    key = equal_key or (lambda u: u.num_samples)
    ordered = sorted(utterances, key=lambda u: (-cost(u), u.utt_id))
    if padding_sensitive:
        # group equal lengths; groups in longest-first order
        groups: dict[object, list[Utterance]] = {}
        for u in ordered:
            groups.setdefault(key(u), []).append(u)
        streams = list(groups.values())
    else:
        streams = [ordered]
    batches: list[list[Utterance]] = []
    for stream in streams:
        current: list[Utterance] = []
        longest = 0.0
        for u in stream:
            c = float(cost(u))
            new_longest = max(longest, c)
            if current and new_longest * (len(current) + 1) > budget:
                batches.append(current)
                current, new_longest = [], c
            current.append(u)
            longest = new_longest
        if current:
            batches.append(current)
    return batches


def finalize_array(utt: Utterance, array: np.ndarray, *, num_layers: int, dim: int, dtype: str,
                   words_can_be_missing: bool, model_name: str, precision: str = "float32",
                   needs_audio: bool = False) -> tuple[np.ndarray, list[int]]:
    """Check one backend output and convert it to the stored dtype; returns (array, missing positions).

    A row that is NaN in every layer is a word with no vector (allowed only for backends that can miss
    words, e.g. GloVe's out-of-vocabulary words); any other NaN or Inf is the model's overflow, refused with
    the advice that fits the run (``precision``: the backend's compute precision; ``needs_audio``: an audio
    model, whose input file may be damaged). A finite value outside float16's range stops the run with a hint
    to use --dtype float32: never an Inf on disk.
    """
    expected = (num_layers, len(utt.words), dim)
    array = np.asarray(array)
    if array.shape != expected:
        raise RuntimeError(f"backend for {model_name} returned shape {array.shape} for utterance {utt.utt_id}, "
                           f"expected {expected}")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    missing: list[int] = []
    if not finite.all():
        nan_rows = np.isnan(array).all(axis=(0, 2))
        missing = [int(i) for i in np.flatnonzero(nan_rows)]
        bad = ~finite
        bad[:, nan_rows, :] = False
        if missing and not words_can_be_missing:
            bad[:, nan_rows, :] = True
        if bad.any():
            layer, pos, _ = (int(i) for i in np.argwhere(bad)[0])
            advice = []
            if precision != "float32":  # a float32 run cannot be helped by asking for float32
                advice.append("run it in full precision (--precision float32)")
            if needs_audio:
                advice.append(f"check the audio file {utt.audio_path} for corrupt samples")
            if not advice:
                advice.append("it computed in float32 from text, so check the model's weights (a damaged or "
                              "untrained checkpoint)")
            raise UserError(f"{model_name} produced a non-finite value (NaN/Inf) for utterance {utt.utt_id}, "
                            f"word #{pos} ({utt.words[pos].word!r}), layer {layer}; {' or '.join(advice)}")
    if dtype == "float16" and array.size:
        peak = np.abs(np.where(finite, array, 0.0))
        if float(peak.max()) > _FP16_MAX:
            layer, pos, _ = (int(i) for i in np.unravel_index(int(np.argmax(peak)), peak.shape))
            raise UserError(f"utterance {utt.utt_id}, word #{pos} ({utt.words[pos].word!r}), layer {layer} of "
                            f"{model_name}: value {float(array[layer, pos].flat[np.argmax(peak[layer, pos])]):.6g} "
                            f"is outside float16's range (+-{_FP16_MAX:g}); run again with --dtype float32 "
                            "--overwrite")
    return array.astype(np.dtype(dtype), copy=False), missing


def library_versions(family_name: str) -> dict[str, str]:
    """Versions of the libraries that shape a family's numbers (the family table's ``libraries``), with python
    and numpy. The same for every process: never "whatever happens to be imported" (the runner runs stages in
    one process, after other families' libraries were loaded)."""
    from wordreps.common.versions import module_version
    from wordreps.embeddings.families import family

    try:
        libraries = family(family_name).libraries
    except UserError:  # a backend outside the table (a test's stand-in): python and numpy only
        libraries = ()
    out = {"python": f"{sys.version_info.major}.{sys.version_info.minor}", "numpy": np.__version__}
    for name in libraries:
        version = module_version(name)
        if version is not None:
            out[name] = version
    return out


def _stable_path(path: str) -> str:
    """Path as recorded in the manifest: relative to the working directory when inside it."""
    absolute = os.path.abspath(path)
    try:
        rel = os.path.relpath(absolute, os.getcwd())
    except ValueError:
        return absolute
    return absolute if rel.startswith("..") else rel


# ---------------------------------------------------------------------------------------------- threads

class _Writer:
    """Background writing: checks, converts and writes .npy files on a few threads, and appends their done
    records in submission order (so the done file is deterministic) from one sequencer thread, grouping the
    records of files that finished together under one fsync.

    An error (full disk, dtype overflow) is kept and re-raised in the main thread at its next ``put`` or at
    ``close``; files finished after the failing one get no record, so a resumed run redoes them.
    """

    def __init__(self, folder: Path, log: store.DoneLog, finalize: Callable, workers: int | None = None,
                 max_pending: int = 64):
        self.folder = folder
        self.log = log
        self.finalize = finalize
        self.max_pending = max_pending
        self.error: BaseException | None = None
        self.written = 0
        self._pool = ThreadPoolExecutor(max_workers=workers or io_threads(), thread_name_prefix="npy-writer")
        self._pending: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._sequence, name="done-records", daemon=True)
        self._thread.start()

    def _write(self, utt: Utterance, array: np.ndarray) -> tuple[str, str, list[int]]:
        data, missing = self.finalize(utt, array)
        sha = save_npy_atomic(store.utt_path(self.folder, utt.utt_id), data)
        return utt.utt_id, sha, missing

    def _notify(self, _future=None) -> None:
        with self._cv:
            self._cv.notify_all()

    def _sequence(self) -> None:
        while True:
            with self._cv:
                while not (self._pending and self._pending[0].done()) and not (self._closing and not self._pending):
                    self._cv.wait(0.5)
                if not self._pending:
                    return
                ready = []
                while self._pending and self._pending[0].done():
                    ready.append(self._pending.popleft())
                self._cv.notify_all()
            records = []
            for fut in ready:
                if self.error is not None:
                    break
                try:
                    records.append(fut.result())
                except BaseException as err:  # noqa: BLE001 - handed to the main thread
                    self.error = err
            if records:
                try:
                    self.log.append_many(records)
                    self.written += len(records)
                except BaseException as err:  # noqa: BLE001
                    self.error = self.error or err

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, utt: Utterance, array: np.ndarray) -> None:
        with self._cv:
            while len(self._pending) >= self.max_pending and self.error is None:
                self._cv.wait(0.5)
        self.check()
        fut = self._pool.submit(self._write, utt, array)
        with self._cv:
            self._pending.append(fut)
        fut.add_done_callback(self._notify)

    def _finish(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def close(self) -> None:
        """Wait for every file and record (errors re-raised)."""
        self._finish()
        self.check()

    def abort(self) -> None:
        """The main thread failed: let started writes finish, so that no temporary file is left behind."""
        self._finish()


def _check_length(u: Utterance, num_samples: int) -> None:
    if num_samples != u.num_samples:
        raise UserError(f"audio file {u.audio_path} has {num_samples} samples but the alignment JSON says "
                        f"{u.num_samples} for utterance {u.utt_id}; the audio changed since the alignment was "
                        "made: re-create the alignment JSON")


def check_audio_headers(utterances: Sequence[Utterance], rate_hz: int, num_workers: int | None = None) -> None:
    """Header-only audio checks (exists, readable, not empty, mono, rate, length) of every utterance, in order.

    Run before anything is written, so a bad file stops the run with an empty output folder instead of hours in.
    A file whose header is fine but whose data is damaged is still caught when it is decoded.
    """
    from wordreps.common.audio import check_audio

    def check(u: Utterance) -> None:
        _check_length(u, check_audio(u.audio_path, rate_hz))

    with ThreadPoolExecutor(max_workers=num_workers or io_threads(), thread_name_prefix="audio-check") as pool:
        for _ in pool.map(check, utterances):  # re-raises the first failure in utterance order
            pass


def _prefetch(batches: Sequence[list[Utterance]], backend: Backend, num_workers: int | None = None,
              depth: int = 2) -> Iterator[list[BatchItem]]:
    """Yield BatchItems with audio loaded by background threads, ``depth`` batches ahead."""
    if not backend.needs_audio:
        for batch in batches:
            yield [BatchItem(u) for u in batch]
        return

    from wordreps.common.audio import load_audio

    rate = int(backend.sample_rate_hz)

    def load(u: Utterance) -> BatchItem:
        audio = load_audio(u.audio_path, rate)
        _check_length(u, len(audio))
        return BatchItem(u, audio)

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def producer() -> None:
        with ThreadPoolExecutor(max_workers=num_workers or io_threads(), thread_name_prefix="audio-loader") as pool:
            try:
                for batch in batches:
                    if stop.is_set():
                        return
                    items = list(pool.map(load, batch))
                    while not stop.is_set():
                        try:
                            q.put(items, timeout=0.2)
                            break
                        except queue.Full:
                            continue
            except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
                q.put(err)
                return
        q.put(None)

    thread = threading.Thread(target=producer, name="audio-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            got = q.get()
            if got is None:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()


# ---------------------------------------------------------------------------------------------- the run

@dataclass
class RunPlan:
    """What one worker will do (exposed for tests and the benchmark)."""
    folder: Path
    batches: list[list[Utterance]]          # this shard's batches, in run order
    todo: list[list[Utterance]]             # batches with at least one unfinished utterance
    finished: set[str]                      # utterance ids already finished
    shard_id: int
    num_shards: int
    skipped_too_short: dict | None = None   # the manifest's record of utterances skipped (--skip_too_short)


def too_short_utterances(backend: Backend, alignment, skip: bool) -> dict | None:
    """Utterances shorter than the model's receptive field (:meth:`Backend.min_samples`), found from the
    alignment's sample counts before anything is read or written: refused with one line naming the first, or
    (``skip``) removed from ``alignment`` and returned as the manifest's ``skipped_too_short`` record."""
    minimum = backend.min_samples()
    if minimum is None:
        return None
    short = sorted((u for u in alignment.utterances if u.num_samples < minimum), key=lambda u: u.utt_id)
    if not short:
        return None
    rate = alignment.geometry.sample_rate_hz
    if not skip:
        first = short[0]
        others = f" ({len(short) - 1} other utterance(s) are too short as well)" if len(short) > 1 else ""
        raise UserError(f"utterance {first.utt_id} in {alignment.path} has {first.num_samples} samples "
                        f"({1000 * first.num_samples / rate:.1f} ms), fewer than the {minimum} samples "
                        f"({1000 * minimum / rate:.1f} ms) {backend.model_name} needs (its receptive field){others}; "
                        "pass --skip_too_short to skip such utterances (they are listed in the manifest), or remove "
                        "them from the corpus")
    gone = {u.utt_id for u in short}
    alignment.utterances = [u for u in alignment.utterances if u.utt_id not in gone]
    if not alignment.utterances:
        raise UserError(f"every utterance of {alignment.path} is shorter than the {minimum} samples "
                        f"{backend.model_name} needs (its receptive field); nothing to extract")
    return {"min_samples": minimum, "utterances": {u.utt_id: u.num_samples for u in short}}


def build_manifest_for(backend: Backend, alignment, dtype: str, skipped_too_short: dict | None = None) -> dict:
    manifest = store.build_manifest(
        model=backend.model_name, family=backend.family, num_layers=backend.num_layers,
        layer_names=list(backend.layer_names), dim=backend.dim, dtype=dtype,
        geometry=backend.geometry.to_dict() if backend.geometry is not None else None,
        alignment_path=_stable_path(alignment.path), alignment_sha256=alignment.sha256,
        describe=backend.describe(), versions=library_versions(backend.family), compute=backend.compute(),
        utterances={u.utt_id: {"words": [w.word for w in u.words],
                               "shape": [backend.num_layers, len(u.words), backend.dim]}
                    for u in sorted(alignment.utterances, key=lambda u: u.utt_id)},
    )
    if skipped_too_short:  # only then: a run that skips nothing writes the same manifest with or without the flag
        manifest["skipped_too_short"] = skipped_too_short
    return manifest


def _default_batch_seconds(backend: Backend) -> float:
    device = getattr(backend, "device", None)
    return DEFAULT_BATCH_SECONDS if getattr(device, "type", "cpu") == "cuda" else DEFAULT_BATCH_SECONDS_CPU


def prepare_run(backend: Backend, args: argparse.Namespace, alignment=None) -> tuple[RunPlan, object]:
    """Everything before the first forward pass: alignment (``args.path``, unless the caller has read it),
    geometry check, manifest, shard plan, resume."""
    from wordreps.alignments.format import load_alignment

    alignment = load_alignment(args.path) if alignment is None else alignment
    if not backend.needs_audio:
        alignment.require_words(backend.model_name)  # text models have no phones
    if backend.geometry is not None:
        alignment.require_geometry(backend.geometry, backend.model_name)
    if backend.sample_rate_hz is not None and backend.needs_audio and \
            alignment.geometry.sample_rate_hz != backend.sample_rate_hz:
        raise UserError(f"alignment file {args.path} is for {alignment.geometry.sample_rate_hz} Hz audio but "
                        f"{backend.model_name} takes {backend.sample_rate_hz} Hz; use the alignment JSON made for "
                        "that rate")
    skipped = too_short_utterances(backend, alignment, bool(getattr(args, "skip_too_short", False)))
    shard_id, num_shards = resolve_shard(args)
    if getattr(args, "name", None):
        folder = store.model_dir(args.out_dir, args.name)
    else:
        folder = store.model_dir(args.out_dir, store.slug_for(backend.model_name),
                                 f"the folder name made from model {backend.model_name}")
    check_output_dir(folder, "embeddings folder")  # before hours of work, not after
    manifest = build_manifest_for(backend, alignment, args.dtype, skipped)

    utterances = sorted(alignment.utterances, key=lambda u: u.utt_id)
    if getattr(args, "limit", None):
        utterances = utterances[: args.limit]
    budget = float(getattr(args, "batch_seconds", None) or getattr(args, "batch_tokens", None)
                   or (_default_batch_seconds(backend) if backend.needs_audio else DEFAULT_BATCH_TOKENS))
    equal_key = (lambda u: u.num_samples) if backend.needs_audio else backend.cost
    all_batches = plan_batches(utterances, backend.cost, budget, padding_sensitive=backend.padding_sensitive,
                               equal_key=equal_key)
    mine = select_shard_items(all_batches, shard_id, num_shards)
    my_ids = [u.utt_id for b in mine for u in b]
    overwrite = bool(getattr(args, "overwrite", False))
    # read once: --overwrite deletes this shard's files below, so none of their records can match then
    records = {} if overwrite else store.read_done_records(folder)
    if backend.needs_audio:
        # utterances with a done record are skipped here (their files are checked below, and redone if changed)
        check_audio_headers([u for b in mine for u in b if u.utt_id not in records], int(backend.sample_rate_hz))
    store.prepare_folder(folder, manifest, overwrite=overwrite)
    store.remove_stale_temps(folder, my_ids)  # left by a worker killed mid-write
    if overwrite:
        store.clear_for_overwrite(folder, my_ids, shard_id, num_shards)
    finished = set()
    for b in mine:
        for u in b:
            nbytes = store.npy_nbytes((backend.num_layers, len(u.words), backend.dim), args.dtype)
            if store.finished_record(folder, u.utt_id, records.get(u.utt_id), nbytes) is not None:
                finished.add(u.utt_id)
    todo = [b for b in mine if any(u.utt_id not in finished for u in b)]
    return RunPlan(folder, mine, todo, finished, shard_id, num_shards, skipped), alignment


def _first_words(err: BaseException, limit: int = 80) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _embed_or_explain(backend: Backend, items: list[BatchItem], args: argparse.Namespace) -> list[np.ndarray]:
    """backend.embed, with running out of memory (torch, cuBLAS, cuDNN, the CPU allocator) turned into advice on
    the batch budget."""
    try:
        return backend.embed(items)
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        budget = ("--batch_seconds", getattr(args, "batch_seconds", None) or _default_batch_seconds(backend)) \
            if backend.needs_audio else \
            ("--batch_tokens", getattr(args, "batch_tokens", None))
        size = sum(backend.cost(i.utterance) for i in items)
        raise UserError(f"{backend.model_name} ran out of memory on a batch of {len(items)} utterances "
                        f"({size:.0f} {'s of audio' if backend.needs_audio else 'tokens'}, first "
                        f"{items[0].utterance.utt_id}); run again with a smaller {budget[0]} (now {budget[1]}): "
                        f"finished utterances are kept (the error: {_first_words(err)})") from err


def run_extraction(backend: Backend, args: argparse.Namespace, alignment=None) -> Path:
    """Extract this shard's utterances into the model folder (resuming) and return the folder. ``alignment``:
    ``args.path`` already loaded (GloVe reads it first for the vocabulary)."""
    # full float32 wherever the model computes in float32 (no TF32), deterministic cuDNN; the user's settings come
    # back when the run ends (common/precision.exact_float32). A backend without a torch device (GloVe's table
    # lookups) has no such settings to fix, and importing torch for them would cost it seconds for nothing.
    settings = exact_float32(deterministic=True) if backend.device is not None else contextlib.nullcontext()
    with settings:
        return _run_extraction(backend, args, alignment)


def _run_extraction(backend: Backend, args: argparse.Namespace, alignment=None) -> Path:
    plan, alignment = prepare_run(backend, args, alignment)
    if plan.skipped_too_short:
        ids = sorted(plan.skipped_too_short["utterances"])
        print(f"note: skipped {len(ids)} utterance(s) shorter than the {plan.skipped_too_short['min_samples']} "
              f"samples {backend.model_name} needs: {', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''} (listed "
              f"in {plan.folder / store.MANIFEST}, skipped_too_short)", file=sys.stderr)
    total_utts = sum(len(b) for b in plan.batches)
    todo_utts = sum(1 for b in plan.todo for u in b if u.utt_id not in plan.finished)
    progress = None
    if not getattr(args, "no_progress", False):
        from tqdm import tqdm
        progress = tqdm(total=total_utts, initial=total_utts - todo_utts, unit="utt", dynamic_ncols=True,
                        desc=f"{plan.folder.name} shard {plan.shard_id}/{plan.num_shards}",
                        file=sys.stderr)
    can_miss = bool(backend.words_can_be_missing)

    def finalize(utt: Utterance, array: np.ndarray):
        return finalize_array(utt, array, num_layers=backend.num_layers, dim=backend.dim, dtype=args.dtype,
                              words_can_be_missing=can_miss, model_name=backend.model_name,
                              precision=backend.precision, needs_audio=backend.needs_audio)

    log = store.DoneLog(plan.folder, plan.shard_id, plan.num_shards)
    writer = _Writer(plan.folder, log, finalize)
    start = time.perf_counter()
    audio_s = 0.0
    words = 0
    try:
        for items in _prefetch(plan.todo, backend):
            outputs = _embed_or_explain(backend, items, args)
            if len(outputs) != len(items):
                raise RuntimeError(f"backend {backend.model_name} returned {len(outputs)} arrays for "
                                   f"{len(items)} utterances")
            for item, out in zip(items, outputs):
                u = item.utterance
                if u.utt_id in plan.finished:
                    continue  # recomputed only because its batch had unfinished members
                writer.put(u, out)
                audio_s += u.duration_s
                words += len(u.words)
                if progress is not None:
                    progress.update(1)
            if progress is not None:
                elapsed = max(time.perf_counter() - start, 1e-9)
                if backend.needs_audio:
                    progress.set_postfix_str(f"{words} words, {audio_s / elapsed:.1f}x real time", refresh=False)
                else:
                    progress.set_postfix_str(f"{words} words, {words / elapsed:.0f} words/s", refresh=False)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        log.close()
        if progress is not None:
            progress.close()
    return plan.folder
