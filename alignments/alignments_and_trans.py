"""Word (or phone) alignments + transcripts -> the alignment JSON that every later stage reads.

    python3 alignments/alignments_and_trans.py --sample_rate 16 --stride 20 --path datasets/alignments
        -> alignments/audio_alignments_20_16.json
    python3 alignments/alignments_and_trans.py --model encodecmae_base --path datasets/alignments
        -> alignments/audio_alignments_13.33_24.json  (24 kHz, hop 320: exactly 75 frames/s)
    python3 alignments/alignments_and_trans.py --frame_rate 75 --sample_rate 24 --path datasets/alignments
    python3 alignments/alignments_and_trans.py --model wav2vec2 --tier phones --path datasets/alignments
        -> alignments/audio_alignments_20_16_phones.json
    python3 alignments/alignments_and_trans.py --model wav2vec2 --path my_mfa_output --audio_root my_corpus
    python3 alignments/alignments_and_trans.py --model wav2vec2 --path lhotse_manifests/ --split dev-clean

Corpus formats (--corpus_format, detected by default: see wordreps/alignments/corpus_formats.py): librispeech
(speaker/chapter folders, trans.txt), mfa (an MFA corpus or output folder, any depth) and lhotse (a CutSet, or
a RecordingSet + SupervisionSet). Without --audio_root, LibriSpeech audio is looked for in
datasets/librispeech-clean-16k (-24k) and then beside the TextGrid folder (<path>/../librispeech-clean-16k).
Markers (silence, noise, unknown words: "", sil, sp, spn, <eps>, <unk>, [...], <...>, {...}, (...)) are
skipped and counted (wordreps/alignments/markers.py). Skipped audio files are listed in <output>.skipped.txt.

The frame geometry is given in exactly one way: --model, --stride (ms) with --sample_rate (kHz),
--frame_rate (Hz) with --sample_rate, or --hop_samples with --sample_rate (see wordreps/alignments/geometry.py for
the receptive-field defaults). The frame rule is in wordreps/alignments/frames.py. The default output name uses the
stride as typed (--stride 13.33 -> "13.33"), or the geometry's hop in ms with at most 2 decimals for
--model/--frame_rate/--hop_samples (20, 13.33, 160, 100). The output is written atomically: an error
leaves no file.
"""
from __future__ import annotations

import argparse
import os
import sys

from wordreps.alignments.corpus import find_audio_root
from wordreps.alignments.corpus_formats import DEFAULT_SPLIT, FORMATS, detect_format, read_corpus
from wordreps.alignments.format import write_alignment
from wordreps.alignments.geometry import default_alignment_file, format_number, resolve_geometry, stride_label
from wordreps.alignments.markers import MarkerRule
from wordreps.alignments.utterances import UnitOptions, unit_noun
from wordreps.common.atomic import check_output_file, write_text_atomic
from wordreps.common.cli import add_common_args, apply_common_args, float_range, int_range
from wordreps.common.errors import UserError, run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    head, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", default="datasets/alignments",
                   help="TextGrid root holding <split>/<speaker>/<chapter>/<utt>.TextGrid, or the split folder "
                        "itself; an MFA corpus/output folder; or lhotse manifests (a file or their folder) "
                        "(default: %(default)s)")
    p.add_argument("--corpus_format", choices=FORMATS, default="auto",
                   help="librispeech | mfa | lhotse; auto detects it and says which (default: auto)")
    p.add_argument("--split", default=None,
                   help=f"LibriSpeech split folder name (default: {DEFAULT_SPLIT}); lhotse: picks the manifests "
                        "whose names hold it")
    p.add_argument("--audio_root", default=None,
                   help="audio root holding <split>/<speaker>/<chapter>/<utt>.flac and the trans.txt files "
                        "(default: datasets/librispeech-clean-16k at 16 kHz, datasets/librispeech-clean-24k at 24 kHz, "
                        "else that folder beside the TextGrid folder); mfa: the corpus folder MFA aligned "
                        "(default: --path itself, audio beside the TextGrids)")
    p.add_argument("--tier", default="words",
                   help="which units: words, phones, or a tier's name (lhotse: the alignment kind); an occurrence "
                        "is (utterance, position) in that tier (default: %(default)s)")
    p.add_argument("--skip_labels", nargs="+", default=[], metavar="LABEL",
                   help="labels to skip besides the default markers (\"\", sil, sp, spn, <eps>, <unk>, bracketed)")
    p.add_argument("--keep_markers", action="store_true",
                   help="keep every non-empty label (only --skip_labels are skipped then)")
    p.add_argument("--lhotse_audio_dir", default=None,
                   help="lhotse: write the audio of supervisions that are not a whole mono file (a span of a "
                        "recording, one channel, another rate) here, loaded with lhotse")
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
                   help="output JSON (default: alignments/audio_alignments_{stride}_{sample_rate}.json, with "
                        "_{tier} before .json for a tier other than words)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first TextGrid whose words differ from its transcript (default: record it)")
    p.add_argument("--allow_past_end", action="store_true",
                   help="clip words ending more than one hop past the audio's end instead of stopping")
    add_common_args(p, torch=False)
    return apply_common_args(p.parse_args(argv))


def skipped_report_path(output: str) -> str:
    """The list of skipped inputs, beside the JSON: ``x.json`` -> ``x.skipped.txt``."""
    stem = output[:-len(".json")] if output.endswith(".json") else output
    return stem + ".skipped.txt"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    geometry = resolve_geometry(model=args.model, stride_ms=args.stride, frame_rate_hz=args.frame_rate,
                                hop_samples=args.hop_samples, receptive_field_samples=args.receptive_field,
                                sample_rate_khz=args.sample_rate)
    options = UnitOptions(tier=args.tier.strip() or "words",
                          markers=MarkerRule.from_flags(args.keep_markers, args.skip_labels),
                          strict=args.strict, allow_past_end=args.allow_past_end)
    unit = options.unit
    stride = format_number(args.stride) if args.stride is not None else stride_label(geometry)
    output = args.output or default_alignment_file(geometry, unit, stride)
    if args.stride is not None and abs(args.stride * geometry.sample_rate_hz / 1000 - geometry.hop_samples) > 1e-9:
        print(f"note: --stride {stride} ms at {geometry.sample_rate_hz} Hz is "
              f"{args.stride * geometry.sample_rate_hz / 1000:.4f} samples; using a hop of {geometry.hop_samples} "
              f"samples ({geometry.frame_rate_hz:.6g} frames/s)", file=sys.stderr)

    check_output_file(output, "alignment JSON")  # before the corpus is read, which can take minutes
    check_output_file(skipped_report_path(output), "list of skipped inputs")
    fmt = args.corpus_format
    if fmt == "auto":
        fmt, why = detect_format(args.path, args.split)
        print(f"corpus format: {fmt} (detected: {why}; --corpus_format to choose)", file=sys.stderr)
    audio_root = args.audio_root
    if fmt == "librispeech" and audio_root is None:
        audio_root, note = find_audio_root(args.path, args.split or DEFAULT_SPLIT, geometry.sample_rate_hz)
        print(note, file=sys.stderr)
    if args.lhotse_audio_dir is not None and fmt != "lhotse":
        raise UserError(f"--lhotse_audio_dir applies to lhotse manifests only, and {args.path} is read as {fmt}; "
                        "drop it")
    corpus = read_corpus(fmt, args.path, audio_root, args.split, geometry, options,
                         lhotse_audio_dir=args.lhotse_audio_dir, progress=not args.no_progress)
    if not corpus.utterances:
        raise UserError(f"no utterances found under {args.path}; nothing written")
    write_alignment(output, geometry, corpus.utterances, textgrid_root=corpus.textgrid_root,
                    audio_root=corpus.audio_root, transcript_match=corpus.transcript_match, unit=unit,
                    tier=options.tier, corpus_format=corpus.corpus_format, markers=options.markers.describe(),
                    skipped_markers=corpus.skipped_markers.as_dict())

    noun = unit_noun(unit)
    if corpus.mismatches:
        shown = ", ".join(corpus.mismatches[:5]) + (", ..." if len(corpus.mismatches) > 5 else "")
        print(f"note: {len(corpus.mismatches)} utterance(s) whose TextGrid words differ from the transcript "
              f"(recorded as transcript_match=false): {shown}", file=sys.stderr)
    if corpus.clipped_words:
        print(f"note: {corpus.clipped_words} {noun}(s) ending past their audio were clipped (--allow_past_end)",
              file=sys.stderr)
    print(f"note: skipped {corpus.skipped_markers.total()} marker interval(s) in tier {options.tier!r}: "
          f"{corpus.skipped_markers.summary()}", file=sys.stderr)
    report = skipped_report_path(output)
    if corpus.audio_without_textgrid:
        write_text_atomic(report, "".join(f"{x}\n" for x in corpus.audio_without_textgrid))
        shown = ", ".join(corpus.audio_without_textgrid[:5]) + (", ..." if len(corpus.audio_without_textgrid) > 5
                                                               else "")
        print(f"note: {len(corpus.audio_without_textgrid)} {corpus.skipped_what} were skipped, all listed in "
              f"{report}: {shown}", file=sys.stderr)
    elif os.path.exists(report):
        os.remove(report)  # from an earlier run of the same output: it would describe other inputs
    print(f"{len(corpus.utterances)} utterances, {corpus.num_words} {noun}s, {len(corpus.mismatches)} transcript "
          f"mismatches, geometry {geometry.sample_rate_hz} Hz / hop {geometry.hop_samples} / receptive field "
          f"{geometry.receptive_field_samples} -> {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
