"""Tiny LibriSpeech-layout corpora for the alignment tests: silent FLACs, hand-written TextGrids, trans.txt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

Interval = tuple[float, float, str]


def fill_silences(words: list[Interval], xmax: float) -> list[Interval]:
    """Add the empty intervals MFA writes between words, so the tier covers [0, xmax]."""
    out: list[Interval] = []
    t = 0.0
    for start, end, label in words:
        if start > t:
            out.append((t, start, ""))
        out.append((start, end, label))
        t = max(t, end)
    if xmax > t:
        out.append((t, xmax, ""))
    return out


def long_textgrid(xmax: float, tiers: dict[str, list[Interval]]) -> str:
    """A Praat long ("ooTextFile") TextGrid, written out by hand."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0 ", f"xmax = {xmax} ",
             "tiers? <exists> ", f"size = {len(tiers)} ", "item []: "]
    for i, (name, intervals) in enumerate(tiers.items(), start=1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier" ', f'        name = "{name}" ',
                  "        xmin = 0 ", f"        xmax = {xmax} ", f"        intervals: size = {len(intervals)} "]
        for j, (start, end, label) in enumerate(intervals, start=1):
            lines += [f"        intervals [{j}]:", f"            xmin = {start} ", f"            xmax = {end} ",
                      f'            text = "{label}" ']
    return "\n".join(lines) + "\n"


def short_textgrid(xmax: float, tiers: dict[str, list[Interval]]) -> str:
    """A Praat short ("ooTextFile short") TextGrid: the same values, one per line, no keys."""
    lines = ['File type = "ooTextFile short"', '"TextGrid"', "", "0", f"{xmax}", "<exists>", f"{len(tiers)}"]
    for name, intervals in tiers.items():
        lines += ['"IntervalTier"', f'"{name}"', "0", f"{xmax}", f"{len(intervals)}"]
        for start, end, label in intervals:
            lines += [f"{start}", f"{end}", f'"{label}"']
    return "\n".join(lines) + "\n"


def write_silent_flac(path: Path, num_samples: int, sample_rate_hz: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((num_samples, channels), dtype=np.int16) if channels > 1 else np.zeros(num_samples, np.int16)
    sf.write(str(path), data, sample_rate_hz, subtype="PCM_16", format="FLAC")


def make_corpus(root: Path, utterances: dict[str, dict], *, sample_rate_hz: int = 16000, fmt: str = "long",
                split: str = "dev-clean") -> tuple[Path, Path]:
    """Write a corpus; ``utterances`` maps ids "SPK-CHAP-NNNN" to {"num_samples", "words": [(s, e, label)],
    optional "transcript" (default: the labels upper-cased), optional "textgrid" (raw text to write instead)}.
    Returns (textgrid_root, audio_root)."""
    tg_root, audio_root = root / "textgrids", root / "audio"
    trans: dict[Path, list[str]] = {}
    for utt_id, spec in sorted(utterances.items()):
        speaker, chapter, _ = utt_id.split("-")
        n = spec["num_samples"]
        xmax = round(n / sample_rate_hz, 4)
        write_silent_flac(audio_root / split / speaker / chapter / f"{utt_id}.flac", n, sample_rate_hz)
        tg_path = tg_root / split / speaker / chapter / f"{utt_id}.TextGrid"
        tg_path.parent.mkdir(parents=True, exist_ok=True)
        if "textgrid" in spec:
            text = spec["textgrid"]
        else:
            words = spec["words"]
            tiers = {"words": fill_silences(words, xmax), "phones": fill_silences(words, xmax)}
            text = (long_textgrid if fmt == "long" else short_textgrid)(xmax, tiers)
        tg_path.write_text(text, encoding="utf-8")
        transcript = spec.get("transcript", " ".join(w[2] for w in spec.get("words", [])).upper())
        trans.setdefault(audio_root / split / speaker / chapter / f"{speaker}-{chapter}.trans.txt", []).append(
            f"{utt_id} {transcript}")
    for path, lines in trans.items():
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tg_root, audio_root

