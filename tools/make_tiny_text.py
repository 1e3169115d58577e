"""Tiny BERT and RoBERTa (real architectures, random weights) and a GloVe file, for tests and the demo.

    python3 tools/make_tiny_text.py --out outputs/models --vocab_from alignments/audio_alignments_20_16.json

writes ``<out>/tiny-bert``, ``<out>/tiny-roberta`` and ``<out>/tiny-glove.50d.txt``. Builders:
:mod:`wordreps.embeddings.tiny.text`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.embeddings.tiny.text import (
    DEMO_SENTENCES,
    build_tiny_bert,
    build_tiny_roberta,
    minilm_path,
    vocab_from_alignment,
    write_glove,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/models", help="folder for the tiny models (default: %(default)s)")
    parser.add_argument("--vocab_from", default=None,
                        help="alignment JSON whose words make the vocabulary (default: the built-in sentences)")
    parser.add_argument("--glove_dim", type=int_range(1, 4096), default=50, help="GloVe dimension (default: 50)")
    parser.add_argument("--glove_oov_every", type=int_range(0, None), default=7,
                        help="leave every N-th corpus word out of the GloVe file so the demo shows missing "
                             "words (0: keep all; default: %(default)s)")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0)
    args = parser.parse_args(argv)

    if args.vocab_from:
        words = vocab_from_alignment(args.vocab_from)
        sentences = list(DEMO_SENTENCES) + [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    else:
        words = sorted({w for s in DEMO_SENTENCES for w in s.split()})
        sentences = list(DEMO_SENTENCES)
    out = Path(args.out)
    bert = build_tiny_bert(out / "tiny-bert", words, seed=args.seed)
    roberta = build_tiny_roberta(out / "tiny-roberta", sentences, seed=args.seed)
    keep = [w for i, w in enumerate(words) if not args.glove_oov_every or i % args.glove_oov_every != 0]
    # a few words that are not in the corpus, so the vocabulary filter has something to drop
    extra = [w for w in ("zebra", "quartz", "xylophone") if w not in set(words)]
    glove = out / f"tiny-glove.{args.glove_dim}d.txt"
    write_glove(glove, keep + extra, args.glove_dim, args.seed)
    print(f"tiny BERT: {bert}\ntiny RoBERTa: {roberta}\ntiny GloVe: {glove} ({len(keep)} of {len(words)} corpus "
          f"words)\nMiniLM-L6 (real weights): {minilm_path()}")
    return 0


if __name__ == "__main__":
    run_cli(main)
