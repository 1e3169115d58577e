"""Independent references for the corpus-format tests: a TextGrid reader, the frame rule and the default
marker rule written out here without the code under test, and the real MFA files of tests/data/mfa."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
MFA = REPO / "tests" / "data" / "mfa"          # real MFA test files (see ATTRIBUTION.md there)
SCRIPT = REPO / "alignments" / "alignments_and_trans.py"
SR = 16000

Interval = tuple[str, str, str]   # (start, end, label) exactly as written in the file


def textgrid_text(path: Path) -> str:
    raw = path.read_bytes()
    return raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8")


def parse_textgrid(text: str) -> dict[str, list[Interval]]:
    """{tier name: [(start, end, label)]} from a long or short Praat TextGrid (interval tiers only)."""
    text = text.replace("\r\n", "\n")
    if "item [" in text:  # long format: one block per tier, one block per interval
        tiers = {}
        for block in re.split(r"\n\s*item \[\d+\]:\n", text)[1:]:
            name = re.search(r'name = "(.*?)"', block).group(1)
            tiers[name] = re.findall(r'intervals \[\d+\]:\s*\n\s*xmin = (\S+)\s*\n\s*xmax = (\S+)\s*\n\s*'
                                     r'text = "(.*?)"\s*\n', block + "\n", flags=re.S)
        return tiers
    # short format: every value on its own line, strings quoted (a string may span lines)
    values = re.findall(r'"((?:[^"]|"")*)"|(\S+)', text)
    tokens = [a if a or b == "" else b for a, b in values]
    tokens = tokens[tokens.index("TextGrid") + 1:]
    pos = 4  # xmin, xmax, <exists>, size
    tiers = {}
    while pos < len(tokens):
        assert tokens[pos] == "IntervalTier", tokens[pos]
        name, count = tokens[pos + 1], int(tokens[pos + 4])
        pos += 5
        tiers[name] = [tuple(tokens[pos + 3 * i: pos + 3 * i + 3]) for i in range(count)]
        pos += 3 * count
    return tiers


def default_marker(label: str) -> bool:
    """The documented default rule: empty, sil, sp, spn, <eps>, <unk>, or wholly in [], <>, {} or ()."""
    x = label.strip().lower()
    return x in {"", "sil", "sp", "spn", "<eps>", "<unk>"} or (len(x) >= 2 and x[0] + x[-1] in ("[]", "<>", "{}",
                                                                                                 "()"))


def frames(start_s: float, end_s: float, num_samples: int, hop: int = 320, rf: int = 400,
           sr: int = SR) -> tuple[int, int]:
    """The frame rule, exactly (Fractions): frames whose centre (t*hop + rf/2)/sr lies in [start, end), else the
    frame whose centre is nearest the midpoint (tie: the later one), within 0 .. N-1."""
    n = 1 if num_samples <= rf else (num_samples - rf) // hop + 1
    a, b = Fraction(str(start_s)), Fraction(str(end_s))
    centre = [Fraction(2 * t * hop + rf, 2 * sr) for t in range(n)]
    inside = [t for t in range(n) if a <= centre[t] < b]
    if inside:
        return inside[0], inside[-1]
    mid = (a + b) / 2
    best = min(range(n), key=lambda t: (abs(centre[t] - mid), -t))
    return best, best


def noise(num_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    return (0.1 * rng.standard_normal(num_samples) + 0.2 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sr, subtype="PCM_16")


def copy_mfa(name: str, folder: Path, *suffixes: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes:
        shutil.copyfile(MFA / f"{name}{suffix}", folder / f"{name}{suffix}")


def textgrid_seconds(name: str) -> float:
    """A real TextGrid's end time (its xmax), read here."""
    text = textgrid_text(MFA / f"{name}.TextGrid")
    m = re.search(r"^xmax = (\S+)", text, flags=re.M)
    return float(m.group(1) if m else re.findall(r"^(\S+)\s*$", text, flags=re.M)[1])


def run_align(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--quiet", *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=180)


def align_in_process(*args: str) -> int:
    """The alignment script's main in this process (lhotse imports torch: a subprocess costs seconds); bad input
    raises UserError instead of exiting."""
    import runpy

    return runpy.run_path(str(SCRIPT), run_name="alignments_script")["main"](["--quiet", *map(str, args)])


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def assert_one_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    errors = error_lines(proc)
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
