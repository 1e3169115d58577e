"""Every layer pair of two models (or of one model with itself) under several similarity measures at once.

    python3 experiments/experiment_similarity.py --model1 bert-base-uncased --layer1 12 \\
        --model2 wav2vec2_large_960 --layer2 24 --metric linear debiased svcca pwcca procrustes rsa

Compares layers 0..LAYER1 of MODEL1 with layers 0..LAYER2 of MODEL2 on the shared word occurrences, reading
``<matrices_dir>/<slug>/layer_<i>.npy`` (written by embeddings/matrix_embeddings.py), and writes
``<out_dir>/<slug1>__vs__<slug2>/<metric>.{json,csv,png}`` in exactly experiment_CKA.py's layout and fields,
plus ``correspondence.{csv,png}``: for each layer of MODEL1, the best-matching layer of MODEL2 under each
measure. The measures are the rows of ``wordreps/analysis/measures.py``; definitions in docs/measures.md.
Logic: :mod:`wordreps.analysis.compare`.
"""
from __future__ import annotations

import argparse

from wordreps.analysis.compare import add_layer_pair_args, layer_pair_kwargs, run
from wordreps.analysis.measures import DEFAULT_SIMILARITY, NAMES, OPTION_DEFAULTS
from wordreps.common.cli import add_common_args, apply_common_args, float_range, int_range
from wordreps.common.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_layer_pair_args(parser, names=NAMES, default=DEFAULT_SIMILARITY)
    parser.add_argument("--svcca_variance", type=float_range(0, 1, lo_open=True), default=OPTION_DEFAULTS["svcca_variance"],
                        help="SVCCA keeps the top singular directions explaining this fraction of each layer's "
                             "variance (default: %(default)s)")
    parser.add_argument("--cca_rank_tol", type=float_range(0, 1, lo_open=True, hi_open=True),
                        default=OPTION_DEFAULTS["cca_rank_tol"],
                        help="singular values below this fraction of the largest count as zero in the CCA family "
                             "(default: %(default)s)")
    parser.add_argument("--rsa_sample", type=int_range(3, 100000), default=OPTION_DEFAULTS["rsa_sample"],
                        help="rows sampled (seeded) for RSA's n x n dissimilarity matrices (default: %(default)s)")
    parser.add_argument("--out_dir", default="outputs/results/cka",
                        help="default: %(default)s (the folder experiment_CKA.py writes: the same files)")
    add_common_args(parser, torch=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = apply_common_args(build_parser().parse_args(argv))
    options = {"svcca_variance": args.svcca_variance, "cca_rank_tol": args.cca_rank_tol, "rsa_sample": args.rsa_sample}
    written = run(**layer_pair_kwargs(args), options=options, correspondence=True)
    for metric, paths in written.items():
        first = paths.get("json", paths["csv"])
        rest = ", ".join(p.name for p in paths.values() if p != first)
        print(f"{metric}: wrote {first}, {rest}")
    return 0


if __name__ == "__main__":
    run_cli(main)
