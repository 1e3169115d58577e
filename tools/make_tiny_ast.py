"""A tiny Audio Spectrogram Transformer (real architecture and patch geometry, random weights), offline.

    python3 tools/make_tiny_ast.py --out outputs/models      # -> outputs/models/tiny-ast

Builder: :mod:`wordreps.embeddings.tiny.audio`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.embeddings.tiny.audio import TINY_AST_NAME, build_tiny_ast


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="outputs/models", help="parent folder; the model goes to <out>/tiny-ast")
    parser.add_argument("--name", default=TINY_AST_NAME, help="folder name under --out (default: %(default)s)")
    parser.add_argument("--max_length", type=int_range(16, 4096), default=128,
                        help="input length in 10 ms fbank frames (default: %(default)s)")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0)
    args = parser.parse_args()
    path = build_tiny_ast(Path(args.out) / args.name, max_length=args.max_length, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    run_cli(main)
