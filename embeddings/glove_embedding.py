"""Word embeddings from GloVe (or word2vec) vectors: one layer, NaN rows for words the file does not hold.

    python3 embeddings/glove_embedding.py --path alignments/audio_alignments_20_16.json

The vector file (``--glove``, default ``datasets/glove/glove.42B.300d.txt``; GloVe or word2vec text, word2vec
``.bin``, plain or ``.gz``/``.bz2``, a gensim ``.kv`` file, or a ``.npy`` matrix with its word list, given as the
``.npy`` file or their folder) is read once, keeping only the alignment's
words, into a cache under ``--glove_cache``; later runs read the cache. Out-of-vocabulary words are stored
as NaN rows and listed as missing in the done records and in the manifest (``describe.oov_words``).
``--oov compose`` gives a word the file lacks but GloVe's own tokenizer splits (``i'm`` -> ``i`` + ``'m``,
``don't`` -> ``do`` + ``n't``) the mean of its pieces' vectors (``wordreps/embeddings/backends/glove_oov.py``); the manifest
records the choice and which words each choice leaves without a vector.
"""
from __future__ import annotations

import argparse

from wordreps.alignments.format import load_alignment
from wordreps.common.cli import apply_common_args
from wordreps.common.errors import run_cli
from wordreps.embeddings.backends.glove import (
    DEFAULT_GLOVE_CACHE,
    FORMATS,
    vocabulary_of,
)
from wordreps.embeddings.extract import add_extraction_args, check_extraction_args, run_extraction
from wordreps.embeddings.backends.glove_oov import OOV_CHOICES
from wordreps.embeddings.families import load_backend

DEFAULT_GLOVE = "datasets/glove/glove.42B.300d.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glove", default=DEFAULT_GLOVE,
                        help="word-vector file (default: %(default)s, from https://nlp.stanford.edu/data/glove.42B.300d.zip)")
    parser.add_argument("--glove_format", choices=FORMATS, default="auto",
                        help="auto: .bin = word2vec binary, .kv = gensim KeyedVectors, a .npy file or a folder "
                             "holding one = .npy matrix + word list (.txt or .parquet), a 'count dim' first line = "
                             "word2vec text, else GloVe text (default: auto)")
    parser.add_argument("--glove_cache", default=str(DEFAULT_GLOVE_CACHE),
                        help="folder for the corpus-vocabulary cache (default: %(default)s)")
    parser.add_argument("--oov", choices=OOV_CHOICES, default="missing",
                        help="a word the vector file lacks: missing = no vector (its occurrences leave the shared "
                             "keys); compose = mean of the vectors of GloVe's own split of it (i'm -> i + 'm, "
                             "don't -> do + n't), when all pieces have one (default: %(default)s)")
    add_extraction_args(parser, audio=False, model=False)
    parser.set_defaults(name="glove")
    args = check_extraction_args(apply_common_args(parser.parse_args()))
    alignment = load_alignment(args.path)
    alignment.require_words(args.glove)  # before the (multi-GB) vector file is read
    # the corpus vocabulary decides which lines of the vector file are kept
    vocab = vocabulary_of(alignment.utterances)
    backend = load_backend("glove", args.glove, vocab=vocab, cache_dir=args.glove_cache, fmt=args.glove_format,
                           oov=args.oov)
    folder = run_extraction(backend, args, alignment)
    print(folder)
    return 0


if __name__ == "__main__":
    run_cli(main)
