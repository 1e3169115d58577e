"""Word alignments + transcripts -> the alignment JSON that every later stage reads.

    python3 alignments/alignments_and_trans.py --sample_rate 16 --stride 20 --path datasets/alignments
        -> alignments/audio_alignments_20_16.json
    python3 alignments/alignments_and_trans.py --model encodecmae_base --path datasets/alignments
        -> alignments/audio_alignments_13.33_24.json  (24 kHz, hop 320: exactly 75 frames/s)
    python3 alignments/alignments_and_trans.py --frame_rate 75 --sample_rate 24 --path datasets/alignments

The frame geometry is given in exactly one way: --model, --stride (ms) with --sample_rate (kHz),
--frame_rate (Hz) with --sample_rate, or --hop_samples with --sample_rate (see wordreps/alignments/geometry.py for
the receptive-field defaults). The frame rule is in wordreps/alignments/frames.py. The default output name uses the
stride as typed (--stride 13.33 -> "13.33"), or the geometry's hop in ms with at most 2 decimals for
--model/--frame_rate/--hop_samples (20, 13.33, 160, 100). The output is written atomically: an error
leaves no file.
"""
from __future__ import annotations

import argparse
import sys

from wordreps.alignments.corpus import align_corpus, default_audio_root
from wordreps.alignments.format import write_alignment
from wordreps.alignments.geometry import (
    format_number,
    resolve_geometry,
    sample_rate_label,
    stride_label,
)
from wordreps.common.cli import float_range, int_range
from wordreps.common.errors import UserError, run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    head, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", default="datasets/alignments",
                   help="TextGrid root holding <split>/<speaker>/<chapter>/<utt>.TextGrid, or the split folder "
                        "itself (default: %(default)s)")
    p.add_argument("--split", default="dev-clean", help="corpus split folder name (default: %(default)s)")
    p.add_argument("--audio_root", default=None,
                   help="audio root holding <split>/<speaker>/<chapter>/<utt>.flac and the trans.txt files "
                        "(default: datasets/librispeech-clean-16k at 16 kHz, datasets/librispeech-clean-24k at 24 kHz)")
    g = p.add_argument_group("frame geometry (exactly one of --model, --stride, --frame_rate, --hop_samples)")
    g.add_argument("--model", default=None,
                   help="a known model: wav2vec2/hubert/wavlm/data2vec families, encodecmae_*, BEATs_*, ast")
    g.add_argument("--stride", type=float_range(0, 10000, lo_open=True), default=None,
                   help="frame hop in ms; needs --sample_rate")
    g.add_argument("--frame_rate", type=float_range(0, 100000, lo_open=True), default=None,
                   help="frames per second (exact, e.g. 75); needs --sample_rate")
    g.add_argument("--hop_samples", type=int_range(1, 10_000_000), default=None,
                   help="frame hop in samples; needs --sample_rate")
    g.add_argument("--receptive_field", type=int_range(1, 10_000_000), default=None,
                   help="samples each frame sees (default: 400 at 16 kHz with a 320 hop, else the hop)")
    g.add_argument("--sample_rate", type=float_range(1, 384), default=None, help="audio sample rate in kHz (16, 24)")
    p.add_argument("--output", default=None,
                   help="output JSON (default: alignments/audio_alignments_{stride}_{sample_rate}.json)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first TextGrid whose words differ from its transcript (default: record it)")
    p.add_argument("--allow_past_end", action="store_true",
                   help="clip words ending more than one hop past the audio's end instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    geometry = resolve_geometry(model=args.model, stride_ms=args.stride, frame_rate_hz=args.frame_rate,
                                hop_samples=args.hop_samples, receptive_field_samples=args.receptive_field,
                                sample_rate_khz=args.sample_rate)
    stride = format_number(args.stride) if args.stride is not None else stride_label(geometry)
    output = args.output or f"alignments/audio_alignments_{stride}_{sample_rate_label(geometry)}.json"
    audio_root = args.audio_root or default_audio_root(geometry.sample_rate_hz)
    if args.stride is not None and abs(args.stride * geometry.sample_rate_hz / 1000 - geometry.hop_samples) > 1e-9:
        print(f"note: --stride {stride} ms at {geometry.sample_rate_hz} Hz is "
              f"{args.stride * geometry.sample_rate_hz / 1000:.4f} samples; using a hop of {geometry.hop_samples} "
              f"samples ({geometry.frame_rate_hz:.6g} frames/s)", file=sys.stderr)

    corpus = align_corpus(args.path, audio_root, args.split, geometry, strict=args.strict,
                          allow_past_end=args.allow_past_end, progress=not args.quiet)
    if not corpus.utterances:
        raise UserError(f"no utterances found under {args.path}; nothing written")
    write_alignment(output, geometry, corpus.utterances, textgrid_root=corpus.textgrid_root,
                    audio_root=corpus.audio_root, transcript_match=corpus.transcript_match)

    if corpus.mismatches:
        shown = ", ".join(corpus.mismatches[:5]) + (", ..." if len(corpus.mismatches) > 5 else "")
        print(f"note: {len(corpus.mismatches)} utterance(s) whose TextGrid words differ from the transcript "
              f"(recorded as transcript_match=false): {shown}", file=sys.stderr)
    if corpus.clipped_words:
        print(f"note: {corpus.clipped_words} word(s) ending past their audio were clipped (--allow_past_end)",
              file=sys.stderr)
    if corpus.audio_without_textgrid:
        shown = ", ".join(corpus.audio_without_textgrid[:5]) + (", ..." if len(corpus.audio_without_textgrid) > 5
                                                               else "")
        print(f"note: {len(corpus.audio_without_textgrid)} audio file(s) without a TextGrid were skipped: {shown}",
              file=sys.stderr)
    print(f"{len(corpus.utterances)} utterances, {corpus.num_words} words, {len(corpus.mismatches)} transcript "
          f"mismatches, geometry {geometry.sample_rate_hz} Hz / hop {geometry.hop_samples} / receptive field "
          f"{geometry.receptive_field_samples} -> {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
