"""Build the bundled demo corpus (synthesized speech, exact word boundaries) in the LibriSpeech layout.

    python3 datasets/make_demo_corpus.py                  # regenerates datasets/demo/ (committed)
    python3 datasets/make_demo_corpus.py --out /tmp/demo  # anywhere else

See wordreps.corpora.demo for how the words and their intervals are made.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.corpora.demo import DEFAULT_SEED, build_utterances, write_corpus

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "datasets" / "demo",
                        help="output folder; gets librispeech-clean-16k/dev-clean and alignments/dev-clean")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=DEFAULT_SEED,
                        help="seed of the pauses and prosody jitter (the committed corpus uses the default)")
    args = parser.parse_args()
    stats = write_corpus(args.out, build_utterances(args.seed))
    print(f"demo corpus in {args.out}: {stats['speakers']} speakers, {stats['utterances']} utterances, "
          f"{stats['words']} words ({stats['distinct_words']} distinct), {stats['seconds']} s, "
          f"{stats['bytes'] / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    run_cli(main)
