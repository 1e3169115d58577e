"""The whole chain on the real LibriSpeech test material, as tests/pipeline/test_real_librispeech.py runs it in a subprocess.

    PYTHONPATH=tests/fake_easyaudio python tests/helpers/real_chain.py OUT

Builds the tiny models (real architectures, random weights) into OUT/models, then runs the reproduction
runner's own plan over tests/data/real-librispeech: the 24 kHz copy, one alignment JSON per frame geometry,
embeddings for every family (GloVe: the real 6B 50d when installed, else a small .npy + word-list pair written
here; the real MiniLM-L6; an s3prl wav2vec2_custom checkpoint; a Hugging Face Wav2Vec2; an AST; the easyaudio
stand-in's EnCodecMAE and BEATs), the keys, every layer matrix, and CKA for two model pairs (ASIF and the other
CKA pairs are left out to keep the test short). Each stage is the stage script with its command line.
"""
from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "real-librispeech"
TEXTGRID = DATA / "alignments" / "dev-clean" / "1272" / "128104" / "1272-128104-0000.TextGrid"
FLAC = DATA / "librispeech-clean-16k" / "dev-clean" / "1272" / "128104" / "1272-128104-0000.flac"
CKA_PAIRS = [("glove", "tiny-wav2vec2"), ("all-MiniLM-L6-v2", "BEATs_iter3")]


def textgrid_words(path: Path) -> list[tuple[str, Fraction, Fraction]]:
    """Non-empty intervals of the words tier, times as exact fractions of the decimal text."""
    text = path.read_text()
    found = re.findall(r'xmin = ([\d.]+)\s+xmax = ([\d.]+)\s+text = "([^"]*)"', text)
    return [(w, Fraction(a), Fraction(b)) for a, b, w in found if w]


def frames_by_brute_force(words, sample_rate: int, hop: int, field: int, num_samples: int) -> list[tuple[int, int]]:
    """Each word's (first, last) frame by the frame rule, every frame centre tried (references.frame_span)."""
    from tests.helpers.references import frame_span  # here, not above: this file also runs as a script

    return [frame_span(start, end, num_samples, sample_rate, hop, field) for _, start, end in words]


def glove_for_the_test(out: Path, words: list[str]) -> Path:
    """The real GloVe 6B 50d folder, or (without it) a seeded .npy + .txt pair for ``words``."""
    from wordreps.embeddings.backends.vector_pairs import packaged_glove_6b_50d

    real = packaged_glove_6b_50d(required=False)
    if real is not None:
        return real
    folder = out / "glove-pair"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", np.random.default_rng(0).normal(size=(len(words), 50)).astype(np.float32))
    (folder / "vectors.txt").write_text("".join(w + "\n" for w in words), encoding="utf-8")
    return folder


def main(out: Path) -> int:
    from wordreps.embeddings.families import family
    from wordreps.embeddings.tiny import audio as tiny_audio
    from wordreps.embeddings.tiny import speech as tiny_speech
    from wordreps.embeddings.tiny.text import minilm_path
    from wordreps.pipeline import runner as P

    models = out / "models"
    transcript = (DATA / "librispeech-clean-16k/dev-clean/1272/128104/1272-128104.trans.txt").read_text()
    words = sorted(set(transcript.lower().split()[1:]))
    specs = [
        P.ModelSpec(family("glove"), str(glove_for_the_test(out, words)), "glove"),
        P.ModelSpec(family("hf-text"), str(minilm_path()), "all-MiniLM-L6-v2"),
        P.ModelSpec(family("s3prl"), str(tiny_speech.build_s3prl(models, "tiny-s3prl-wav2vec2-large.pt")),
                    "tiny-s3prl", geometry_name="wav2vec2"),
        P.ModelSpec(family("hf-speech"), str(tiny_speech.build_hf(models, "tiny-wav2vec2-layer")), "tiny-wav2vec2",
                    geometry_name="wav2vec2"),
        P.ModelSpec(family("hf-audio"), str(tiny_audio.build_tiny_ast(models / "tiny-ast")), "tiny-ast",
                    geometry_name="ast"),
        P.ModelSpec(family("easyaudio"), "encodecmae_base", "encodecmae_base"),
        P.ModelSpec(family("easyaudio"), "BEATs_iter3", "BEATs_iter3"),
    ]
    cfg = P.RunConfig(models=specs, textgrid_path=str(DATA / "alignments"),
                      audio_root_16k=str(DATA / "librispeech-clean-16k"), audio_root_24k=str(out / "audio-24k"),
                      alignments_dir=str(out / "alignments"), out_root=str(out),
                      keys_path=str(out / "words_in_order.json"), device="cpu",
                      precision="float32")  # the tests compare with float32 references
    keep = {f"layer similarity {a} vs {b}" for a, b in CKA_PAIRS}
    steps = [s for s in P.build_plan(cfg) if not s.name.startswith(("layer similarity ", "ASIF ")) or s.name in keep]
    assert len([s for s in steps if s.name in keep]) == len(keep), [s.name for s in steps]
    P.execute(steps)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
