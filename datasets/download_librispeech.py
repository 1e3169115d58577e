"""Download LibriSpeech dev-clean and its MFA TextGrid alignments, verify them and lay them out.

    python3 datasets/download_librispeech.py                 # -> datasets/librispeech-clean-16k/dev-clean
                                                             #    datasets/alignments/dev-clean

Resumes an interrupted download, checks md5s (dev-clean's from openslr, the alignments' from Zenodo's
records API), and does nothing when everything is already in place. See wordreps.corpora.librispeech.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from wordreps.common.cli import float_range, int_range
from wordreps.common.errors import run_cli
from wordreps.corpora.librispeech import (
    ALIGNMENTS_URL,
    SPLITS,
    ZENODO_API_URL,
    Request,
    prepare,
)

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "datasets",
                        help="folder that gets downloads/, librispeech-clean-16k/ and alignments/ (default: datasets)")
    parser.add_argument("--split", default="dev-clean",
                        help=f"LibriSpeech split (known: {', '.join(SPLITS)}; others need --url_audio and --md5_audio)")
    parser.add_argument("--url_audio", default=None, help="URL of the split's .tar.gz (default: openslr resource 12)")
    parser.add_argument("--md5_audio", default=None, help="md5 of that archive (default: the table's value)")
    parser.add_argument("--url_alignments", default=ALIGNMENTS_URL, help="URL of librispeech_alignments.zip")
    parser.add_argument("--md5_alignments", default=None,
                        help="md5 of the alignments zip; default: looked up at --zenodo_api")
    parser.add_argument("--zenodo_api", default=ZENODO_API_URL, help="Zenodo records API URL of record 2619474")
    parser.add_argument("--retries", type=int_range(0, 100), default=5,
                        help="retries after a cut connection, each resuming where the file ends")
    parser.add_argument("--retry_wait", type=float_range(0, 600), default=2.0,
                        help="seconds to wait before retry k, times k")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args()
    prepare(Request(root=args.root, split=args.split, url_audio=args.url_audio, md5_audio=args.md5_audio,
                    url_alignments=args.url_alignments, md5_alignments=args.md5_alignments,
                    zenodo_api=args.zenodo_api, retries=args.retries, retry_wait_s=args.retry_wait,
                    progress=not args.no_progress))
    return 0


if __name__ == "__main__":
    run_cli(main)
