"""For the corpus-format tests: a TextGrid reader and the default marker rule written out here without the code
under test (the frame rule is tests/helpers/references.frame_span), the real MFA files of tests/data/mfa, and
the alignment script run as a subprocess or in-process."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.helpers.scripts import REPO, run_script, script_main

MFA = REPO / "tests" / "data" / "mfa"          # real MFA test files (see ATTRIBUTION.md there)
ALIGN = "alignments/alignments_and_trans.py"
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


def run_align(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The alignment script without its progress bar, as a subprocess from the repository root (or ``cwd``)."""
    return run_script(ALIGN, "--quiet", *args, cwd=cwd)


def align_in_process(*args: object) -> int:
    """The alignment script's main in this process (lhotse imports torch: a subprocess costs seconds); bad input
    raises UserError instead of exiting."""
    return script_main(ALIGN)(["--quiet", *map(str, args)])
