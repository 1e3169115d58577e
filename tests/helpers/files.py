"""Looking at what a run left on disk."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def visible_files(folder: Path) -> list[Path]:
    """Files under ``folder`` whose names do not start with a dot (a run's outputs), sorted; [] if it is absent."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def temp_files(*folders: Path) -> list[Path]:
    """Temporary files the atomic writers use (``.<name>.<random>.tmp``) or a download's ``.part``."""
    found: list[Path] = []
    for folder in folders:
        if Path(folder).exists():
            found += [p for p in Path(folder).rglob("*") if p.name.endswith((".tmp", ".part"))]
    return found


def folder_bytes(folder: Path, *, with_done: bool = True, hidden: bool = True) -> dict[str, bytes]:
    """Every file under ``folder`` as relative path -> bytes.

    ``with_done=False`` leaves out the done records (their names hold the shard count); ``hidden=False`` leaves out
    every path with a part starting with a dot.
    """
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or (not with_done and p.name.startswith("done.")):
            continue
        if not hidden and any(part.startswith(".") for part in rel.parts):
            continue
        out[str(rel)] = p.read_bytes()
    return out


def read_embeddings(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """An embeddings folder read with plain json/numpy: (manifest, {utt_id: array})."""
    manifest = json.loads((folder / "manifest.json").read_text())
    arrays = {p.stem: np.load(p) for p in sorted((folder / "utts").glob("*.npy"))}
    return manifest, arrays
