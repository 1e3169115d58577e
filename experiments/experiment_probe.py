"""Linear probe of every layer of one model: is word identity (or any per-occurrence label) linearly decodable?

    python3 experiments/experiment_probe.py --model bert-base-uncased                 # all assembled layers
    python3 experiments/experiment_probe.py --model wav2vec2_large_960 --layer 0 6 12 --split_by speaker
    python3 experiments/experiment_probe.py --model bert-base-uncased --labels pos_tags.tsv

Reads ``<matrices_dir>/<slug>/layer_<i>.npy`` (written by embeddings/matrix_embeddings.py) and the keys file
they were assembled from (the word and utterance of each row), fits a softmax regression per layer on a
seeded split by utterance (or speaker) and writes ``<out_dir>/<slug>/probe_<task>.{json,csv,png}``: accuracy,
macro-F1, the majority-class and chance baselines per layer, and a line plot across layers. Logic:
:mod:`wordreps.analysis.probe`.
"""
from __future__ import annotations

import argparse

from wordreps.analysis import probe
from wordreps.analysis.compare import layer_bar
from wordreps.common.cli import add_common_args, apply_common_args, float_range, int_range
from wordreps.common.devices import DEVICE_HELP, device_arg
from wordreps.common.errors import UserError, run_cli
from wordreps.embeddings.matrices import open_model_matrices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model (name as extracted, or its matrices folder)")
    parser.add_argument("--layer", nargs="+", type=int_range(0, None), default=None,
                        help="layers to probe (default: every assembled layer)")
    parser.add_argument("--labels", default=None,
                        help="TSV file 'utterance id<TAB>position<TAB>label' (default: word identity)")
    parser.add_argument("--top_k", type=int_range(2, 10**6), default=probe.TOP_K,
                        help="keep the K most frequent words (or labels) as classes (default: %(default)s)")
    parser.add_argument("--split_by", choices=probe.SPLIT_BY, default="utterance",
                        help="no utterance (or speaker) has rows on both sides of the split (default: %(default)s)")
    parser.add_argument("--test_fraction", type=float_range(0, 1, lo_open=True, hi_open=True),
                        default=probe.TEST_FRACTION, help="fraction of the groups held out (default: %(default)s)")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="seed of the split (default: 0)")
    parser.add_argument("--l2", type=float_range(0, None), default=probe.L2,
                        help="L2 penalty on the weights, per training row (default: %(default)s)")
    parser.add_argument("--max_iter", type=int_range(1, 100000), default=probe.MAX_ITER,
                        help="L-BFGS iterations per layer at most (default: %(default)s)")
    parser.add_argument("--implementation", choices=sorted(probe.IMPLEMENTATIONS), default="torch",
                        help="torch (float32 L-BFGS, GPU when present) or sklearn (float64 lbfgs) (default: torch)")
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="where the torch probe runs: " + DEVICE_HELP)
    parser.add_argument("--words_path", default=None,
                        help="the keys file the matrices were assembled from (default: the one matrices.json names)")
    parser.add_argument("--matrices_dir", default="outputs/matrices", help="default: %(default)s")
    parser.add_argument("--out_dir", default="outputs/results/probe", help="default: %(default)s")
    add_common_args(parser, torch=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = apply_common_args(build_parser().parse_args(argv))
    matrices = open_model_matrices(args.matrices_dir, args.model)
    layers = args.layer if args.layer is not None else matrices.layers
    if not layers:
        raise UserError(f"{matrices.folder} has no assembled layer; run embeddings/matrix_embeddings.py --layer all first")
    matrices.check_layers(layers)
    keys = probe.open_keys_for(matrices, args.words_path)
    task = (probe.label_file_task(args.labels, keys, args.top_k) if args.labels
            else probe.word_identity_task(keys, args.top_k))
    probe.output_folder(args.out_dir, matrices)  # a bad --out_dir is said now, not after the fits
    from wordreps.common.devices import resolve_device

    device = resolve_device(args.device) if args.implementation == "torch" else "cpu"
    bar = layer_bar(len(layers), not args.no_progress, desc="probe layers")
    result = probe.probe_layers(matrices, keys, task, layers, split_by=args.split_by,
                                test_fraction=args.test_fraction, seed=args.seed, l2=args.l2,
                                max_iter=args.max_iter, implementation=args.implementation, device=device,
                                progress=(lambda: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    paths = probe.write_outputs(args.out_dir, matrices, keys, result, str(device))
    best = max(result.layers, key=lambda s: s.accuracy)
    print(f"{task.name}: {len(task.classes)} classes, {int(result.test_mask.sum())} test rows; best layer "
          f"{best.layer} (accuracy {best.accuracy:.3f}, majority class {result.baselines['majority_accuracy']:.3f}); "
          f"wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}")
    return 0


if __name__ == "__main__":
    run_cli(main)
