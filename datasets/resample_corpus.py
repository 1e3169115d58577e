"""Make a copy of a LibriSpeech-layout corpus at another sample rate (soxr VHQ, FLAC 16-bit).

    python3 datasets/resample_corpus.py --src datasets/librispeech-clean-16k \\
        --dst datasets/librispeech-clean-24k --rate 24000

Same relative paths, transcripts (*.txt) copied. Files already done are skipped, so an interrupted run
continues when run again. See wordreps.corpora.resample.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli
from wordreps.corpora.resample import QUALITIES, resample_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="source corpus root (holds e.g. dev-clean/)")
    parser.add_argument("--dst", type=Path, required=True, help="output corpus root")
    parser.add_argument("--rate", type=int_range(8000, 192000), default=24000, help="output sample rate in Hz")
    parser.add_argument("--quality", choices=QUALITIES, default="VHQ", help="soxr quality (default VHQ)")
    parser.add_argument("--workers", type=int_range(1, 256), default=1, help="worker processes")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args()
    counts = resample_corpus(args.src, args.dst, args.rate, args.quality, args.workers, not args.no_progress)
    print(f"{args.dst}: {counts['resampled']} files resampled to {args.rate} Hz, {counts['skipped']} already done, "
          f"{counts['texts']} transcripts copied")
    return 0


if __name__ == "__main__":
    run_cli(main)
