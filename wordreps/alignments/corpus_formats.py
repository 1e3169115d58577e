"""Which reader a corpus needs, found from what ``--path`` holds, and one call that runs it.

Formats (``--corpus_format``; ``auto`` detects, and the stage says in one line what it chose and why):

- ``librispeech``: ``<path>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.TextGrid`` with the audio and
  ``trans.txt`` transcripts in the same layout under ``--audio_root`` (``wordreps/alignments/corpus.py``);
- ``mfa``: a Montreal Forced Aligner corpus or output folder, TextGrids at any depth, audio beside them or in
  the parallel tree under ``--audio_root`` (``wordreps/alignments/mfa_corpus.py``);
- ``lhotse``: lhotse manifests, a CutSet or a RecordingSet + SupervisionSet (``wordreps/alignments/lhotse_corpus.py``).

Detection, in order: a lhotse manifest file, or a folder holding lhotse manifests -> lhotse; a folder with
``<path>/<split>`` or LibriSpeech-named TextGrids three levels down (``<spk>/<chap>/<spk>-<chap>-*.TextGrid``,
under any split folder or in ``<path>`` itself) -> librispeech; a folder with TextGrids at any depth -> mfa.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from wordreps.alignments.geometry import FrameGeometry
from wordreps.alignments.utterances import CorpusAlignment, UnitOptions
from wordreps.common.errors import UserError

FORMATS = ("auto", "librispeech", "mfa", "lhotse")
DEFAULT_SPLIT = "dev-clean"


def _librispeech_named(tg: Path) -> bool:
    """``<spk>/<chap>/<spk>-<chap>-*.TextGrid``: LibriSpeech's naming."""
    return tg.name.startswith(f"{tg.parent.parent.name}-{tg.parent.name}-")


def _first(paths, n: int = 20) -> list[Path]:
    return list(itertools.islice((p for p in paths if p.suffix.lower() == ".textgrid"), n))


def detect_format(path: str, split: str | None) -> tuple[str, str]:
    """(format, why) for ``--path`` (see the module docstring); a :class:`UserError` when nothing fits."""
    from wordreps.alignments.lhotse_corpus import folder_manifests, is_manifest_name

    p = Path(path)
    if not p.exists():
        raise UserError(f"TextGrid folder {path} does not exist; pass the right --path (datasets/download script "
                        "fetches LibriSpeech and its alignments)")
    if p.is_file():
        if is_manifest_name(p.name):
            return "lhotse", f"{path} is a lhotse manifest file"
        raise UserError(f"--path {path} is a file; pass the folder holding the TextGrids (or a lhotse manifest "
                        ".jsonl.gz)")
    found = folder_manifests(p)
    if any(found.values()):
        names = ", ".join(x.name for x in itertools.chain(*found.values()))
        return "lhotse", f"{path} holds lhotse manifests ({names})"
    split = split or DEFAULT_SPLIT
    if (p / split).is_dir():
        return "librispeech", f"{path}/{split} exists (<split>/<speaker>/<chapter>/<utt>.TextGrid)"
    for pattern, what in (("*/*/*/*", "<split>/<speaker>/<chapter>/"), ("*/*/*", "<speaker>/<chapter>/")):
        grids = _first(p.glob(pattern))
        if grids and all(_librispeech_named(g) for g in grids):
            return "librispeech", f"{path} holds LibriSpeech-named TextGrids as {what}<speaker>-<chapter>-<n>.TextGrid"
    if _first(p.rglob("*"), 1):
        return "mfa", f"{path} holds TextGrids outside the LibriSpeech layout (an MFA corpus or output folder)"
    raise UserError(f"{path} holds no TextGrid (at any depth) and no lhotse manifest; pass the folder of "
                    "TextGrids, an MFA output folder or a lhotse manifest as --path")


def read_corpus(fmt: str, path: str, audio_root: str | None, split: str | None, geometry: FrameGeometry,
                options: UnitOptions, *, lhotse_audio_dir: str | None = None, progress: bool = True
                ) -> CorpusAlignment:
    """Run the reader of ``fmt`` (not "auto"). ``audio_root`` None: the format's own default (LibriSpeech:
    the caller resolves it first; MFA: ``path`` itself, audio side by side; lhotse: the manifests' paths)."""
    if fmt == "librispeech":
        from wordreps.alignments.corpus import align_corpus

        assert audio_root is not None
        return align_corpus(path, audio_root, split or DEFAULT_SPLIT, geometry, strict=options.strict,
                            allow_past_end=options.allow_past_end, progress=progress, tier=options.tier,
                            markers=options.markers)
    if fmt == "mfa":
        from wordreps.alignments.mfa_corpus import align_mfa_corpus

        return align_mfa_corpus(path, audio_root or path, geometry, options, progress=progress)
    if fmt == "lhotse":
        from wordreps.alignments.lhotse_corpus import align_lhotse

        if audio_root is not None:
            raise UserError("--audio_root does not apply to lhotse manifests (they name their audio files); "
                            "drop it, or pass --lhotse_audio_dir for audio that must be cut out of recordings")
        return align_lhotse(path, split, geometry, options, audio_dir=lhotse_audio_dir)
    raise UserError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
