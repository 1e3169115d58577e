"""Word-level embeddings from a speech encoder (s3prl upstream or Hugging Face), every layer.

    python3 embeddings/speech_embedding.py --model wav2vec2_large_960 \
        --path alignments/audio_alignments_20_16.json --device cuda

Writes outputs/embeddings/<model>/ (manifest.json, utts/<utt_id>.npy of shape (layers, words, dim)).
Interrupted runs resume when the same command is run again.
"""
from __future__ import annotations

import argparse

from wordreps.common.errors import run_cli
from wordreps.embeddings.extract import (
    add_extraction_args,
    resolve_device,
    run_extraction,
)
from wordreps.embeddings.families import load_backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None,
                        help="s3prl upstream name (wav2vec2_large_960, hubert, wavlm_large, ...), Hugging Face speech "
                             "encoder name or folder (Wav2Vec2, HuBERT, WavLM, Data2VecAudio), or an s3prl checkpoint")
    parser.add_argument("--s3prl_ckpt", default=None,
                        help="converted wav2vec2 checkpoint for s3prl's wav2vec2_custom (or --model X_custom)")
    add_extraction_args(parser, audio=True)
    args = parser.parse_args()
    if not args.model and not args.s3prl_ckpt:
        parser.error("give --model (or --s3prl_ckpt)")
    device = resolve_device(args.device)
    backend = load_backend("speech", args.model or "", device, s3prl_ckpt=args.s3prl_ckpt,
                           family_name="s3prl" if args.s3prl_ckpt else None, precision=args.precision)
    folder = run_extraction(backend, args)
    print(folder)
    return 0


if __name__ == "__main__":
    run_cli(main)
