"""Make a copy of a corpus at another sample rate: same layout, FLAC 16-bit, transcripts copied.

Resampling uses soxr at quality "VHQ" (very high quality: linear phase, passband to about 95 % of the lower
Nyquist frequency) on float64 samples; the result is rounded to 16-bit integers here, not by libsndfile,
so that the written samples are exactly reproducible. Output length is round(N * rate_out / rate_in).

Resumable: every file is written to a temporary name and renamed into place, so a file that exists is
complete; a file that exists at the right rate and length is skipped.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from wordreps.common.atomic import atomic_path, write_bytes_atomic
from wordreps.common.errors import UserError

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass(frozen=True)
class Plan:
    """Files of a source corpus, as paths relative to its root."""
    audio: list[Path]
    texts: list[Path]


def _visible(rel: Path) -> bool:
    # Hidden names are lay-out markers, staging folders and temporary files, not corpus data.
    return not any(part.startswith(".") for part in rel.parts)


def plan_corpus(src: Path) -> Plan:
    """List the audio files and ``*.txt`` files (transcripts) under ``src``, sorted."""
    if not src.is_dir():
        raise UserError(f"source corpus {src} is not a folder; give --src the folder that holds e.g. dev-clean/")
    audio, texts = [], []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(filenames):
            rel = (Path(dirpath) / name).relative_to(src)
            if not _visible(rel):
                continue
            if name.lower().endswith(AUDIO_SUFFIXES):
                audio.append(rel)
            elif name.endswith(".txt"):
                texts.append(rel)
    if not audio:
        raise UserError(f"source corpus {src} holds no .flac or .wav files; check --src")
    return Plan(audio, texts)


def expected_frames(num_frames: int, rate_in_hz: int, rate_out_hz: int) -> int:
    """soxr's output length for a whole signal: N * out / in rounded half up, in exact integers."""
    return (2 * num_frames * rate_out_hz + rate_in_hz) // (2 * rate_in_hz)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1) -> int16 with the 32768 scale soundfile uses when reading int16 as float."""
    return np.round(np.clip(x * 32768.0, -32768, 32767)).astype(np.int16)


def is_done(src_file: Path, dst_file: Path, rate_hz: int) -> bool:
    """True when ``dst_file`` exists at ``rate_hz`` with the length resampling ``src_file`` gives."""
    if not dst_file.exists():
        return False
    try:
        out, inp = sf.info(str(dst_file)), sf.info(str(src_file))
    except Exception:  # an unreadable destination is simply redone; the source error surfaces there
        return False
    want = inp.frames * rate_hz / inp.samplerate
    return out.samplerate == rate_hz and out.channels == inp.channels and abs(out.frames - want) <= 1


def resample_file(src_file: Path, dst_file: Path, rate_hz: int, quality: str = "VHQ") -> None:
    """Resample one file to ``rate_hz`` and write it as FLAC 16-bit, atomically."""
    try:
        x, rate_in = sf.read(str(src_file), dtype="float64", always_2d=False)
    except Exception as err:
        raise UserError(f"audio file {src_file} cannot be read ({err}); re-download or remove it, then run again") from err
    if x.size == 0:
        raise UserError(f"audio file {src_file} is empty (0 samples); re-download or remove it, then run again")
    y = x if rate_in == rate_hz else soxr.resample(x, rate_in, rate_hz, quality=quality)
    with atomic_path(dst_file.with_suffix(".flac")) as tmp:
        sf.write(str(tmp), to_int16(y), rate_hz, format="FLAC", subtype="PCM_16")


def _job(args: tuple[Path, Path, int, str]) -> None:
    resample_file(*args)


def resample_corpus(src: Path, dst: Path, rate_hz: int, quality: str = "VHQ", workers: int = 1,
                    progress: bool = True) -> dict[str, int]:
    """Resample every audio file under ``src`` into the same relative path under ``dst``; copy ``*.txt``.

    Returns counts: ``resampled``, ``skipped`` (already done), ``texts`` (transcripts written or verified).
    """
    if quality not in QUALITIES:
        raise UserError(f"soxr quality {quality!r} is unknown; use one of {', '.join(QUALITIES)}")
    src, dst = src.resolve(), dst.resolve()
    if dst == src or dst.is_relative_to(src):
        raise UserError(f"--dst {dst} lies inside --src {src}; give a separate output folder")
    plan = plan_corpus(src)

    texts = 0
    for rel in plan.texts:
        data = (src / rel).read_bytes()
        target = dst / rel
        if not target.exists() or target.read_bytes() != data:
            write_bytes_atomic(target, data)
        texts += 1

    todo, skipped = [], 0
    for rel in plan.audio:
        dst_file = (dst / rel).with_suffix(".flac")
        if is_done(src / rel, dst_file, rate_hz):
            skipped += 1
        else:
            todo.append((src / rel, dst_file, rate_hz, quality))

    bar = tqdm(total=len(plan.audio), initial=skipped, desc=f"resampling to {rate_hz} Hz", unit=" files",
               disable=not progress, mininterval=0.5)
    with bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(_job, todo, chunksize=8):
                    bar.update(1)
        else:
            for job in todo:
                _job(job)
                bar.update(1)
    return {"resampled": len(todo), "skipped": skipped, "texts": texts}
