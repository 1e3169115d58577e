"""Tiny speech encoders (real wav2vec2/HuBERT/WavLM/Data2VecAudio architectures, random weights), offline.

    python3 tools/make_tiny_speech.py --out outputs/models [--only tiny-wav2vec2-layer tiny-s3prl-wav2vec2-large.pt]

Builders: :mod:`wordreps.embeddings.tiny.speech`.
"""
from __future__ import annotations

import argparse

from wordreps.common.cli import int_range
from wordreps.common.errors import UserError, run_cli
from wordreps.embeddings.tiny.speech import (
    HF_VARIANTS,
    S3PRL_VARIANTS,
    build_hf,
    build_s3prl,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="outputs/models", help="folder for the tiny models (default: %(default)s)")
    parser.add_argument("--only", nargs="*", default=None,
                        help=f"build only these ({', '.join(list(HF_VARIANTS) + list(S3PRL_VARIANTS))})")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="weights seed (default: 0)")
    args = parser.parse_args()
    names = args.only or list(HF_VARIANTS) + list(S3PRL_VARIANTS)
    for name in names:
        if name in HF_VARIANTS:
            print(build_hf(args.out, name, args.seed))
        elif name in S3PRL_VARIANTS:
            print(build_s3prl(args.out, name, args.seed))
        else:
            raise UserError(f"--only {name}: unknown tiny model; choose from "
                            f"{', '.join(list(HF_VARIANTS) + list(S3PRL_VARIANTS))}")
    return 0


if __name__ == "__main__":
    run_cli(main)
