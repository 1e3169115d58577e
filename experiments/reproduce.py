"""Reproduce the thesis, or run the same chain on the bundled demo corpus.

    python3 experiments/reproduce.py            # LibriSpeech dev-clean, the thesis's five models (GPU, network)
    python3 experiments/reproduce.py --demo     # bundled demo corpus, tiny local models, CPU, offline
    python3 experiments/reproduce.py --demo --units phones   # the same chain on phones, audio models only

Every step is one of the stage scripts with the flags a user would type; a step whose outputs are complete is
skipped, so a killed run resumes by running the same command again. Ends by printing where the summary is.
"""
from __future__ import annotations

import argparse
import time

from wordreps.common.atomic import check_output_dir
from wordreps.common.cli import add_common_args, apply_common_args
from wordreps.common.devices import DEVICE_HELP, device_arg
from wordreps.common.errors import run_cli
from wordreps.common.precision import PRECISION_HELP, precision_arg
from wordreps.pipeline import runner as P
from wordreps.pipeline.summary import write_summary

THESIS_MODELS = ["glove", "bert-base-uncased", "wav2vec2_large_960", "encodecmae_base", "BEATs_iter3"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--demo", action="store_true", help="run on the bundled demo corpus with tiny local models")
    parser.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                        help="models to compare: a name (kind guessed), or kind:name[@folder] with kind one of "
                             "glove, text, speech, audio (default: the thesis's five: %s)" % " ".join(THESIS_MODELS))
    parser.add_argument("--glove", default="datasets/glove/glove.42B.300d.txt",
                        help="GloVe vectors file for the model 'glove' (default: %(default)s)")
    parser.add_argument("--glove_oov", choices=("missing", "compose"), default=None,
                        help="GloVe's words without a vector: missing (default) or compose (mean of GloVe's own "
                             "split, i'm -> i + 'm); the summary shows what each choice loses")
    parser.add_argument("--units", choices=("words", "phones"), default="words",
                        help="compare word occurrences, or phone occurrences (the TextGrids' phones tier; audio "
                             "models only: text models are left out of the default list) (default: %(default)s)")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", type=precision_arg, default=None,
                        help=PRECISION_HELP.replace("(default: auto)", "(default: auto; float32 with --demo, whose "
                                                    "figures the docs quote and must not depend on the CPU)"))
    parser.add_argument("--out_root", default=None,
                        help="where embeddings/, matrices/, results/ and summary.md go "
                             "(default: outputs, or outputs/demo with --demo)")
    parser.add_argument("--no_download", action="store_true",
                        help="do not download LibriSpeech (the data is already under datasets/)")
    parser.add_argument("--isolate", action="store_true",
                        help="run each step in its own process (frees memory between models on a full run)")
    parser.add_argument("--skip_too_short", action="store_true",
                        help="audio models skip utterances shorter than their receptive field instead of stopping; "
                             "the summary says how many")
    parser.add_argument("--beats_checkpoint", default=None, metavar="FILE",
                        help="a local BEATs_*.pt checkpoint for the BEATs model of the run (easyaudio otherwise asks "
                             "the Hugging Face hub, so an offline machine needs it)")
    parser.add_argument("--torch_compile", action="store_true",
                        help="keep encodecmae's torch.compile on for EnCodecMAE models (about 7%% faster once "
                             "compiled; pays off after about an hour of audio)")
    parser.add_argument("--dry_run", action="store_true", help="print the steps and whether each is done, then stop")
    add_common_args(parser, torch=True)
    args = apply_common_args(parser.parse_args())

    cfg = P.demo_config(args) if args.demo else P.thesis_config(args)
    check_output_dir(cfg.out_root, "--out_root folder")
    steps = P.build_plan(cfg)
    if args.dry_run:
        for step in steps:
            if not step.script:
                print(f"[skip] {step.name}")
            elif isinstance(step, P.LazyStep):
                print(f"[plan] {step.name}: python3 {step.script} (arguments from earlier outputs)")
            else:
                print(f"[{'done' if step.complete() else 'plan'}] {step.name}: {step.command()}")
        return 0
    start = time.perf_counter()
    records = P.execute(steps, isolate=args.isolate)
    summary = write_summary(cfg, records, time.perf_counter() - start)
    print(f"\nsummary: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
