"""ASIF word retrieval between an audio layer and a text layer (Norelli et al., NeurIPS 2023).

    python3 experiments/experiment_ASIF.py --path_layer1 outputs/matrices/wav2vec2_large_960/layer_12.npy \\
        --path_layer2 outputs/matrices/bert-base-uncased/layer_6.npy --k 600 --p 4 --keys words_in_order.json
    # a sweep in one run (writes accuracy_vs_k.png):  --k 100 300 600 --p 1 4 8

Holds out a seeded 15% of the occurrences as queries, uses the rest as paired anchors, retrieves in both
directions and scores by word identity (top-1, top-5, MRR, chance). Writes
``<out_dir>/<name>/asif_k<k>_p<p>.json`` (per query: true word, rank, top-5 words), ``summary.json``,
``summary.csv`` and ``accuracy_vs_k.png``. Logic and the choices made: :mod:`wordreps.analysis.retrieval`.
"""
from __future__ import annotations

import argparse

from wordreps.analysis.retrieval import run
from wordreps.common.cli import float_range, int_range
from wordreps.common.devices import DEVICE_HELP, device_arg
from wordreps.common.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path_layer1", required=True, help="matrix .npy of the first space (audio)")
    parser.add_argument("--path_layer2", required=True, help="matrix .npy of the second space (text)")
    parser.add_argument("--keys", required=True, help="keys file the matrices were assembled with")
    parser.add_argument("--k", nargs="+", type=int_range(1, None), default=[600],
                        help="anchors kept per relative representation, at most anchors - 1; several values make a "
                             "sweep (default: 600)")
    parser.add_argument("--p", nargs="+", type=float_range(0, None, lo_open=True), default=[4.0],
                        help="power applied to the kept similarities, > 0; several values make a sweep (default: 4)")
    parser.add_argument("--query_fraction", type=float_range(0, 1, lo_open=True, hi_open=True), default=0.15,
                        help="share of occurrences held out as queries (default: %(default)s)")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="seed of the split (default: 0)")
    parser.add_argument("--center", action="store_true", help="subtract the anchors' mean before L2-normalising")
    parser.add_argument("--chunk_size", type=int_range(1, 1_000_000), default=512,
                        help="query rows scored at a time (memory ~ chunk x anchors x 12 bytes; default: %(default)s)")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--names", nargs=2, default=["audio", "text"], metavar=("NAME1", "NAME2"),
                        help="names of the two spaces in the results (default: audio text)")
    parser.add_argument("--chance_draws", type=int_range(1, 1_000_000), default=1000,
                        help="simulations for the chance top-5 and MRR (default: %(default)s)")
    parser.add_argument("--out_dir", default="outputs/results/asif", help="default: %(default)s")
    parser.add_argument("--name", help="output folder name (default: derived from the two matrix paths)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder, result = run(args.path_layer1, args.path_layer2, args.keys, ks=args.k, ps=args.p,
                         query_fraction=args.query_fraction, seed=args.seed, center=args.center,
                         chunk_size=args.chunk_size, device=args.device, out_dir=args.out_dir, name=args.name,
                         names=tuple(args.names), chance_draws=args.chance_draws)
    chance = result["chance"]
    for cfg in result["configs"]:
        for name, d in cfg["directions"].items():
            m = d.metrics
            print(f"k={cfg['k']} p={cfg['p']:g} {name}: top1 {m['top1']:.3f} top5 {m['top5']:.3f} mrr {m['mrr']:.3f} "
                  f"(chance top1 {chance['top1']:.3f}, {m['num_queries']} queries)")
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    run_cli(main)
