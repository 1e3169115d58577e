"""Word embeddings from general-audio models: easyaudio (EnCodecMAE, BEATs) and the Audio Spectrogram Transformer.

    python3 embeddings/audio_embeddings.py --model encodecmae_base --path alignments/audio_alignments_13.33_24.json --device cuda
    python3 embeddings/audio_embeddings.py --model BEATs_iter3 --path alignments/audio_alignments_160_16.json --device cuda
    python3 embeddings/audio_embeddings.py --model MIT/ast-finetuned-audioset-10-10-0.4593 --path alignments/audio_alignments_100_16.json

easyaudio models need easyaudio installed (README: Installing easyaudio). How each model's outputs are mapped
to time steps (BEATs' 8 frequency patches per 160 ms step, AST's patch grid and chunks) is in
``wordreps/embeddings/backends/``.
"""
from __future__ import annotations

import argparse

from wordreps.common.cli import int_range
from wordreps.common.cli import apply_common_args
from wordreps.common.errors import run_cli
from wordreps.embeddings.extract import (
    add_extraction_args,
    check_extraction_args,
    resolve_device,
    run_extraction,
)
from wordreps.embeddings.families import family, load_backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help=f"easyaudio model ({family('easyaudio').geometry_names}), or a Hugging Face Audio "
                             "Spectrogram Transformer name or local folder")
    parser.add_argument("--max_chunks_per_forward", type=int_range(1, 4096), default=64,
                        help="AST only: most 10.24 s chunks in one forward pass (default: %(default)s)")
    parser.add_argument("--beats_checkpoint", default=None, metavar="FILE",
                        help="easyaudio BEATs only: a local BEATs_*.pt checkpoint, for machines without network "
                             "(easyaudio otherwise asks the Hugging Face hub first, even when it is cached)")
    parser.add_argument("--torch_compile", action="store_true",
                        help="easyaudio EnCodecMAE only: keep encodecmae's torch.compile on (off by default: about "
                             "30 s of compiling on a quiet CPU, minutes on a busy one, then about 7%% faster per "
                             "utterance; see docs/real-parts.md)")
    add_extraction_args(parser, audio=True)
    args = check_extraction_args(apply_common_args(parser.parse_args()))
    device = resolve_device(args.device)
    backend = load_backend("audio", args.model, device, max_chunks_per_forward=args.max_chunks_per_forward,
                           beats_checkpoint=args.beats_checkpoint, torch_compile=args.torch_compile,
                           precision=args.precision)
    folder = run_extraction(backend, args)
    print(folder)
    return 0


if __name__ == "__main__":
    run_cli(main)
