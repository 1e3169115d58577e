"""CKA between every layer pair of two models (or of one model with itself).

    python3 experiments/experiment_CKA.py --model1 bert-base-uncased --layer1 12 \\
        --model2 wav2vec2_large_960 --layer2 24 [--metric linear debiased rbf] [--bootstrap 100 --permutations 20]

Compares layers 0..LAYER1 of MODEL1 with layers 0..LAYER2 of MODEL2 on the shared word occurrences, reading
``<matrices_dir>/<slug>/layer_<i>.npy`` (written by embeddings/matrix_embeddings.py), and writes
``<out_dir>/<slug1>__vs__<slug2>/<metric>.{json,csv,png}``. Logic: :mod:`wordreps.analysis.compare`.
"""
from __future__ import annotations

import argparse

from wordreps.analysis.compare import add_layer_pair_args, layer_pair_kwargs, run
from wordreps.analysis.measures import CKA_NAMES
from wordreps.common.cli import add_common_args, apply_common_args
from wordreps.common.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_layer_pair_args(parser, names=CKA_NAMES, default=["linear"])
    parser.add_argument("--out_dir", default="outputs/results/cka", help="default: %(default)s")
    add_common_args(parser, torch=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = apply_common_args(build_parser().parse_args(argv))
    written = run(**layer_pair_kwargs(args))
    for metric, paths in written.items():
        print(f"{metric}: wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}")
    return 0


if __name__ == "__main__":
    run_cli(main)
