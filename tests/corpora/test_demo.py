"""The committed demo corpus: layout, formats, ground-truth word spans, size, and exact regeneration."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from praatio import textgrid

from tests.helpers.scripts import REPO, run_script

MAKE_DEMO = "datasets/make_demo_corpus.py"
DEMO = REPO / "datasets" / "demo"
AUDIO = DEMO / "librispeech-clean-16k" / "dev-clean"
GRIDS = DEMO / "alignments" / "dev-clean"
SR = 16000


def transcripts(audio_root: Path) -> dict[str, list[str]]:
    out = {}
    for trans in sorted(audio_root.glob("*/*/*.trans.txt")):
        spk, chap = trans.parent.parent.name, trans.parent.name
        assert trans.name == f"{spk}-{chap}.trans.txt"
        for line in trans.read_text().splitlines():
            utt, *words = line.split()
            assert utt.startswith(f"{spk}-{chap}-")
            out[utt] = words
    return out


def words_tier(path: Path) -> list[tuple[float, float, str]]:
    grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    assert set(grid.tierNames) == {"words", "phones"}
    return [(e.start, e.end, e.label) for e in grid.getTier("words").entries]


def test_layout_formats_and_words_match_transcripts() -> None:
    texts = transcripts(AUDIO)
    flacs = sorted(AUDIO.glob("*/*/*.flac"))
    assert {f.stem for f in flacs} == set(texts)
    speakers = {f.parent.parent.name for f in flacs}
    assert len(speakers) >= 2 and len(flacs) >= 12
    tokens = []
    for flac in flacs:
        info = sf.info(flac)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        grid = GRIDS / flac.parent.parent.name / flac.parent.name / f"{flac.stem}.TextGrid"
        assert grid.read_text().startswith('File type = "ooTextFile"')  # long format
        entries = words_tier(grid)
        words = [label for _, _, label in entries if label]
        assert words == [w.lower() for w in texts[flac.stem]]
        assert all(w == w.upper() for w in texts[flac.stem])
        assert 6 <= len(words) <= 12
        assert entries[0][0] == 0.0 and abs(entries[-1][1] - info.frames / SR) < 1e-9
        tokens += words
    counts = Counter(tokens)
    assert len(counts) <= 45 and len(tokens) >= 3 * len(counts)  # small vocabulary, many repeats
    assert any(max(Counter(texts[u]).values()) >= 2 for u in texts)  # a word twice in one utterance


def test_word_spans_are_ground_truth() -> None:
    """Independently of the generator: every sample outside the word intervals is digital silence, every
    interval holds sound right up to its edges, and the phones tile each word exactly."""
    for flac in sorted(AUDIO.glob("*/*/*.flac")):
        x, _ = sf.read(flac, dtype="int16")
        grid_path = GRIDS / flac.parent.parent.name / flac.parent.name / f"{flac.stem}.TextGrid"
        inside = np.zeros(len(x), dtype=bool)
        words = [(a, b) for a, b, label in words_tier(grid_path) if label]
        edge = int(0.015 * SR)
        for a, b in words:
            i, j = round(a * SR), round(b * SR)
            assert abs(i - a * SR) < 1e-6 and abs(j - b * SR) < 1e-6  # whole samples
            inside[i:j] = True
            seg = np.abs(x[i:j].astype(np.int32))
            assert seg[:edge].max() > 0 and seg[-edge:].max() > 0
            assert seg.max() > 3000
        assert not np.any(x[~inside]), flac.name
        grid = textgrid.openTextgrid(str(grid_path), includeEmptyIntervals=False)
        phones = [(e.start, e.end) for e in grid.getTier("phones").entries]
        for a, b in words:
            mine = [(p, q) for p, q in phones if a <= p < b]
            assert mine and mine[0][0] == a and mine[-1][1] == b
            assert all(q1 == p2 for (_, q1), (p2, _) in zip(mine, mine[1:]))


def test_voices_differ() -> None:
    """The two speakers are different voices: their median pitch (autocorrelation over voiced frames) differs."""
    def median_f0(speaker: str) -> float:
        f0s = []
        for flac in sorted((AUDIO / speaker).glob("*/*.flac"))[:3]:
            x, _ = sf.read(flac, dtype="float64")
            for start in range(0, len(x) - 640, 320):
                frame = x[start:start + 640] - x[start:start + 640].mean()
                if np.sqrt(np.mean(frame ** 2)) < 0.05:
                    continue
                ac = np.correlate(frame, frame, "full")[639:]
                lo, hi = SR // 400, SR // 70
                lag = lo + int(np.argmax(ac[lo:hi]))
                if ac[lag] > 0.5 * ac[0]:
                    f0s.append(SR / lag)
        return float(np.median(f0s))
    speakers = sorted(p.name for p in AUDIO.iterdir() if p.is_dir())
    f0 = [median_f0(s) for s in speakers[:2]]
    assert abs(f0[0] - f0[1]) > 30, f0


def test_size_under_2_mb() -> None:
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file()
                and "librispeech-clean-24k" not in p.parts)
    assert total < 2_000_000


def test_regeneration_is_identical(tmp_path: Path) -> None:
    result = run_script(MAKE_DEMO, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for rel_root, pattern in (("alignments/dev-clean", "*/*/*.TextGrid"),
                              ("librispeech-clean-16k/dev-clean", "*/*/*.trans.txt")):
        committed = sorted(p.relative_to(DEMO) for p in (DEMO / rel_root).glob(pattern))
        fresh = sorted(p.relative_to(tmp_path) for p in (tmp_path / rel_root).glob(pattern))
        assert committed == fresh and committed
        for rel in committed:
            assert (DEMO / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    flacs = sorted(p.relative_to(DEMO) for p in AUDIO.glob("*/*/*.flac"))
    assert flacs == sorted(p.relative_to(tmp_path) for p in (tmp_path / "librispeech-clean-16k").rglob("*.flac"))
    for rel in flacs:
        a, _ = sf.read(DEMO / rel, dtype="int16")
        b, _ = sf.read(tmp_path / rel, dtype="int16")
        assert np.array_equal(a, b), rel
