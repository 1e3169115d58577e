"""Tiny speech encoders (real wav2vec2/HuBERT/WavLM/Data2VecAudio architectures, random weights), offline.

    python3 tools/make_tiny_speech.py --out outputs/models [--only tiny-wav2vec2-layer tiny-s3prl-wav2vec2-large.pt]

Builders: :mod:`wordreps.embeddings.tiny.speech`.
"""
from __future__ import annotations

import argparse

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.embeddings.tiny.speech import (
    HF_VARIANTS,
    S3PRL_VARIANTS,
    build_hf,
    build_s3prl,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="outputs/models", help="folder for the tiny models (default: %(default)s)")
    names = list(HF_VARIANTS) + list(S3PRL_VARIANTS)
    parser.add_argument("--only", nargs="*", default=None, choices=names, metavar="NAME",
                        help=f"build only these ({', '.join(names)}); every name is checked before any is built")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="weights seed (default: 0)")
    args = parser.parse_args()
    for name in args.only or names:
        if name in HF_VARIANTS:
            print(build_hf(args.out, name, args.seed))
        else:
            print(build_s3prl(args.out, name, args.seed))
    return 0


if __name__ == "__main__":
    run_cli(main)
