"""Word embeddings from a Hugging Face text encoder (BERT, RoBERTa, MiniLM, ...), one vector per aligned word.

    python3 embeddings/nlp_embedding.py --model bert-base-uncased --path alignments/audio_alignments_20_16.json --device cuda

The alignment's own word sequence is fed as pre-split words; a word's vector is the mean of its sub-tokens'
hidden states, for every layer (0 = embeddings output, i = output of block i). Utterances longer than the
model's limit are covered by overlapping windows of whole words (see ``wordreps/embeddings/backends/hf_text.py``).
"""
from __future__ import annotations

import argparse

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.embeddings.extract import (
    add_extraction_args,
    resolve_device,
    run_extraction,
)
from wordreps.embeddings.families import load_backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="Hugging Face hub name (bert-base-uncased, roberta-base, ...) or a local model folder")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to load")
    parser.add_argument("--max_tokens", type=int_range(3, 1_000_000), default=None,
                        help="tokens per window, special tokens included (default: the model's limit, e.g. 512)")
    parser.add_argument("--window_stride", type=int_range(1, 1_000_000), default=None,
                        help="sub-tokens between the starts of two overlapping windows of a long utterance "
                             "(default: half a window)")
    add_extraction_args(parser, audio=False)
    args = parser.parse_args()
    device = resolve_device(args.device)
    backend = load_backend("text", args.model, str(device), max_tokens=args.max_tokens, stride=args.window_stride,
                           revision=args.revision, precision=args.precision)
    folder = run_extraction(backend, args)
    print(folder)
    return 0


if __name__ == "__main__":
    run_cli(main)
