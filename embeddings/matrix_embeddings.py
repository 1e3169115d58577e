"""Keys file and per-layer matrices of the word occurrences shared by several models.

    # the occurrences with a vector in every model, in a stable order
    python3 embeddings/matrix_embeddings.py --models glove bert-base-uncased wav2vec2_large_960 \\
        --write_words words_in_order.json
    # one layer (the thesis command) or every layer in one pass over the files
    python3 embeddings/matrix_embeddings.py --layer 5 --model wav2vec2_large_960 --words_path words_in_order.json
    python3 embeddings/matrix_embeddings.py --layer all --model wav2vec2_large_960 bert-base-uncased \\
        --words_path words_in_order.json

Writes ``<out_dir>/<slug>/layer_<i>.npy`` (float32, rows in the keys file's order) and ``matrices.json``.
Logic: :mod:`wordreps.embeddings.matrices`.
"""
from __future__ import annotations

import argparse

from wordreps.common.atomic import check_output_dir, check_output_file
from wordreps.common.cli import add_common_args, apply_common_args
from wordreps.common.errors import UserError, run_cli
from wordreps.embeddings.matrices import assemble, describe_layers, write_keys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="models whose shared occurrences make the keys file (with --write_words)")
    parser.add_argument("--write_words", metavar="KEYS_JSON", help="write the keys file here")
    parser.add_argument("--layer", metavar="LAYER",
                        help="layer to assemble: a number, a list (0,3,5 or 2-4) or 'all'")
    parser.add_argument("--model", nargs="+", metavar="MODEL", help="model(s) whose matrices to assemble (with --layer)")
    parser.add_argument("--words_path", metavar="KEYS_JSON",
                        help="keys file giving the rows (default: the --write_words file of this run)")
    parser.add_argument("--embeddings_dir", default="outputs/embeddings",
                        help="folder holding one embeddings folder per model (default: %(default)s)")
    parser.add_argument("--out_dir", default="outputs/matrices",
                        help="matrices are written to OUT_DIR/<model slug>/ (default: %(default)s)")
    add_common_args(parser, torch=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = apply_common_args(parser.parse_args(argv))
    if args.write_words is None and args.layer is None:
        parser.error("nothing to do: pass --models ... --write_words KEYS_JSON and/or --layer N --model M "
                     "--words_path KEYS_JSON")
    if args.write_words is not None and not args.models:
        parser.error("--write_words needs --models (the models whose shared occurrences make the keys)")
    if args.models and args.write_words is None:
        parser.error("--models goes with --write_words; to assemble matrices use --model with --layer")
    if args.layer is not None and not args.model:
        parser.error("--layer needs --model (the model whose matrices to assemble)")
    if args.model and args.layer is None:
        parser.error("--model goes with --layer (a number, a list or 'all')")
    progress = not args.no_progress
    if args.write_words is not None:
        check_output_file(args.write_words, "keys file")
    if args.layer is not None:
        check_output_dir(args.out_dir, "--out_dir folder")
    if args.write_words is not None:
        summary = write_keys(args.write_words, args.embeddings_dir, args.models, progress=progress)
        print(f"wrote {summary['path']}: {summary['rows']} occurrences from {summary['utterances']} utterances "
              f"({summary['dropped_no_vector']} dropped: no vector in some model; "
              f"{summary['utterances_not_shared']} utterances left out: not extracted for every model) "
              f"sha256 {summary['sha256'][:12]}")
    if args.layer is not None:
        keys = args.words_path or args.write_words
        if keys is None:
            raise UserError("--layer needs --words_path KEYS_JSON (the keys file written with --write_words)")
        for model in args.model:
            info = assemble(model, keys, args.layer, embeddings_dir=args.embeddings_dir, out_dir=args.out_dir,
                            progress=progress)
            print(f"wrote {args.out_dir}/{info['slug']}: layers {describe_layers(info['layers'])}, "
                  f"{info['num_rows']} rows x {info['dim']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
