"""CKA between every layer pair of two models (or of one model with itself).

    python3 experiments/experiment_CKA.py --model1 bert-base-uncased --layer1 12 \\
        --model2 wav2vec2_large_960 --layer2 24 [--metric linear debiased rbf] [--bootstrap 100 --permutations 20]

Compares layers 0..LAYER1 of MODEL1 with layers 0..LAYER2 of MODEL2 on the shared word occurrences, reading
``<matrices_dir>/<slug>/layer_<i>.npy`` (written by embeddings/matrix_embeddings.py), and writes
``<out_dir>/<slug1>__vs__<slug2>/<metric>.{json,csv,png}``. Logic: :mod:`wordreps.analysis.compare`.
"""
from __future__ import annotations

import argparse

from wordreps.analysis.compare import run
from wordreps.analysis.measures import CKA_NAMES, PRECISIONS
from wordreps.common.cli import float_range, int_range
from wordreps.common.devices import DEVICE_HELP, device_arg
from wordreps.common.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model1", required=True, help="first model (name as extracted, or its matrices folder)")
    parser.add_argument("--layer1", required=True, type=int_range(0, None), help="compare layers 0..LAYER1 of model1")
    parser.add_argument("--model2", required=True, help="second model (may equal model1: within-model map)")
    parser.add_argument("--layer2", required=True, type=int_range(0, None), help="compare layers 0..LAYER2 of model2")
    parser.add_argument("--metric", nargs="+", choices=CKA_NAMES, default=["linear"],
                        help="one or more of %(choices)s (default: linear)")
    parser.add_argument("--bootstrap", type=int_range(0, 100000), default=0,
                        help="bootstrap resamples of the rows for a 95%% interval (default: 0, none)")
    parser.add_argument("--permutations", type=int_range(0, 100000), default=0,
                        help="shuffles of model2's rows for a no-correspondence baseline (default: 0, none)")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="seed of every resampling (default: 0)")
    parser.add_argument("--rbf_sample", type=int_range(4, 100000), default=5000,
                        help="rows sampled (seeded) for RBF CKA, which needs n x n Gram matrices (default: %(default)s)")
    parser.add_argument("--rbf_sigma", type=float_range(0, None, lo_open=True), default=0.8,
                        help="RBF bandwidth as a multiple of the median distance (default: %(default)s)")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=PRECISIONS, default="mixed",
                        help="mixed: float32 products summed in float64 over row chunks; float64: all float64 "
                             "(default: %(default)s)")
    parser.add_argument("--chunk_rows", type=int_range(64, 10**7), default=16384,
                        help="rows per float32 product before summing in float64 (default: %(default)s)")
    parser.add_argument("--matrices_dir", default="outputs/matrices", help="default: %(default)s")
    parser.add_argument("--out_dir", default="outputs/results/cka", help="default: %(default)s")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    written = run(args.model1, args.layer1, args.model2, args.layer2, matrices_dir=args.matrices_dir,
                  out_dir=args.out_dir, metrics=args.metric, bootstrap=args.bootstrap,
                  permutations=args.permutations, seed=args.seed, rbf_sample=args.rbf_sample,
                  rbf_sigma=args.rbf_sigma, device=args.device, precision=args.precision,
                  chunk_rows=args.chunk_rows, progress=not args.no_progress)
    for metric, paths in written.items():
        print(f"{metric}: wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}")
    return 0


if __name__ == "__main__":
    run_cli(main)
