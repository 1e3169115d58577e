"""Benchmark of the speech extraction stage on synthetic dev-clean-like audio (random weights, no downloads).

    python3 benchmarks/bench_extract.py --arch wav2vec2-large --hours 5.4 --device cuda
    python3 benchmarks/bench_extract.py --arch tiny --hours 0.05 --device cpu

Builds a randomly initialised Hugging Face Wav2Vec2 model of the chosen architecture (saved and loaded by
path, as a real model would be), writes FLAC files whose lengths follow dev-clean's distribution (a lognormal
with mean 7.2 s, clipped to 1.3-33 s) and an alignment JSON with about 2.7 words a second, then times:

- stage: the whole extraction, FLAC -> .npy on disk (``run_extraction``: prefetch, batches, pooling, writer);
- model: the forward passes alone over the same batches, audio already in memory;
- thesis: the seed's loop: one utterance at a time, fp32, every layer copied to the host, word means in
  numpy, one JSON per utterance.

Speeds are in times real time (audio seconds / wall seconds). Target on one H100 for wav2vec2-large over
5.4 h: stage >= 1500x (model alone 3561x, thesis loop 142x, measured by hand; see ../shared/NOTES.md).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from wordreps.common.cli import float_range, int_range
from wordreps.common.errors import run_cli

SR = 16000
MEAN_S, MIN_S, MAX_S, SIGMA = 7.2, 1.3, 33.0, 0.6
WORDS_PER_S = 2.7


def build_model(arch: str, folder: Path, seed: int) -> Path:
    """Save a random-weight Wav2Vec2 of ``arch`` (+ feature extractor) to ``folder``."""
    import torch
    import transformers as tf

    if arch == "tiny":  # the tests' tiny model: real conv geometry, hidden 32, 2 layers
        from wordreps.embeddings.tiny.speech import build_hf
        return build_hf(folder.parent, folder.name, seed)
    if arch == "wav2vec2-large":  # wav2vec2-large-960h-lv60 style: layer-norm extractor, pre-norm, attention mask
        config = tf.Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                   intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                                   conv_bias=True)
        mask = True
    else:  # wav2vec2-base: group-norm extractor, no attention mask (padding-sensitive)
        config = tf.Wav2Vec2Config()
        mask = False
    torch.manual_seed(seed)
    model = tf.Wav2Vec2Model(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True,
                                return_attention_mask=mask).save_pretrained(folder)
    return folder


def synth_lengths(hours: float, rng: np.random.Generator) -> list[float]:
    """Utterance lengths in seconds (dev-clean-like lognormal) until ``hours`` of audio."""
    mu = math.log(MEAN_S) - SIGMA ** 2 / 2
    out, total = [], 0.0
    while total < hours * 3600:
        d = float(np.clip(rng.lognormal(mu, SIGMA), MIN_S, MAX_S))
        out.append(d)
        total += d
    return out


def write_corpus(folder: Path, lengths: list[float], seed: int) -> Path:
    """FLAC files + alignment JSON (words evenly spread, frames centre-in-word for hop 320 / RF 400)."""
    import soundfile as sf

    from wordreps.alignments.format import write_alignment
    from wordreps.alignments.frames import words_frames
    from wordreps.alignments.geometry import FrameGeometry
    from wordreps.embeddings.base import Utterance, Word

    geometry = FrameGeometry(SR, 320, 400)
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Utterance:
        rng = np.random.default_rng(seed * 100003 + i)
        n = int(lengths[i] * SR)
        t = np.arange(n, dtype=np.float32) / SR
        x = 0.05 * rng.standard_normal(n).astype(np.float32) + 0.1 * np.sin(2 * np.pi * (120 + i % 50) * t)
        path = audio_dir / f"bench-{i:05d}.flac"
        sf.write(path, x, SR, subtype="PCM_16")
        k = max(1, int(round(lengths[i] * WORDS_PER_S)))
        edges = np.linspace(0.02, n / SR - 0.02, k + 1)
        first, last = words_frames(edges[:-1], edges[1:] - 0.005, geometry, n)
        words = [Word(f"w{j}", float(edges[j]), float(edges[j + 1] - 0.005), int(first[j]), int(last[j]))
                 for j in range(k)]
        return Utterance(f"bench-{i:05d}", str(path), "", n, SR, words)

    with ThreadPoolExecutor(8) as pool:
        utts = list(pool.map(one, range(len(lengths))))
    out = folder / "audio_alignments_20_16.json"
    write_alignment(out, geometry, utts)
    return out


def warm_up(backend, alignment, budget: float) -> None:
    """One forward pass of the first (longest) batch, so no mode pays for kernel set-up and allocation."""
    from wordreps.common.audio import load_audio
    from wordreps.embeddings.base import BatchItem
    from wordreps.embeddings.extract import plan_batches

    first = plan_batches(alignment.utterances, backend.cost, budget, padding_sensitive=backend.padding_sensitive)[0]
    backend.embed([BatchItem(u, load_audio(u.audio_path, SR)) for u in first])


def time_model_only(backend, alignment, budget: float) -> float:
    """Forward passes only, over the stage's batches, audio already in memory; returns wall seconds."""
    import torch

    from wordreps.common.audio import load_audio
    from wordreps.embeddings.extract import plan_batches
    from wordreps.embeddings.pooling import autocast_for

    batches = plan_batches(alignment.utterances, backend.cost, budget, padding_sensitive=backend.padding_sensitive)
    audio = {u.utt_id: load_audio(u.audio_path, SR) for u in alignment.utterances}
    dev = backend.device
    wav_batches = [[torch.from_numpy(audio[u.utt_id]).to(dev) for u in b] for b in batches]

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    with torch.inference_mode(), autocast_for(dev):
        backend._hidden(wav_batches[0])  # warm-up
        sync()
        start = time.perf_counter()
        for wavs in wav_batches:
            backend._hidden(wavs)
        sync()
    return time.perf_counter() - start


def time_thesis_loop(backend, alignment, out_dir: Path, limit: int | None) -> tuple[float, float]:
    """The seed's loop; returns (audio seconds covered, wall seconds)."""
    import torch

    from wordreps.common.audio import load_audio

    out_dir.mkdir(parents=True, exist_ok=True)
    utts = alignment.utterances[:limit] if limit else alignment.utterances
    audio_s = 0.0
    model = backend.model
    fe = backend.feature_extractor
    with torch.no_grad():
        for u in utts[:1]:  # warm-up
            model(fe(load_audio(u.audio_path, SR), sampling_rate=SR, return_tensors="pt")["input_values"]
                  .to(backend.device), output_hidden_states=True)
    start = time.perf_counter()
    with torch.no_grad():
        for u in utts:
            x = load_audio(u.audio_path, SR)
            inputs = fe(x, sampling_rate=SR, return_tensors="pt")
            out = model(inputs["input_values"].to(backend.device), output_hidden_states=True)
            layers = [h[0].float().cpu().numpy() for h in out.hidden_states]
            record = {"utt": u.utt_id, "words": []}
            for w in u.words:
                record["words"].append({"word": w.word, "layers": [
                    h[w.first_frame:w.last_frame + 1].mean(axis=0).tolist() for h in layers]})
            with open(out_dir / f"{u.utt_id}.json", "w") as fh:
                json.dump(record, fh)
            audio_s += u.duration_s
    return audio_s, time.perf_counter() - start


def main() -> int:
    from wordreps.embeddings.extract import device_arg

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=("wav2vec2-large", "wav2vec2-base", "tiny"), default="wav2vec2-large")
    p.add_argument("--hours", type=float_range(0.0, 100.0, lo_open=True), default=5.4,
                   help="hours of synthetic audio (default: %(default)s, dev-clean's size)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch_seconds", type=float_range(0.0, 1e6, lo_open=True), default=200.0)
    p.add_argument("--workdir", default="outputs/bench", help="scratch folder (default: %(default)s)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0)
    p.add_argument("--thesis_limit", type=int_range(1, None), default=None,
                   help="run the thesis loop on the first N utterances only (it is slow)")
    p.add_argument("--skip_thesis", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the .npy outputs of the stage run")
    args = p.parse_args()

    import torch

    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.backends.speech import HFSpeechBackend
    from wordreps.embeddings.extract import (
        add_extraction_args,
        resolve_device,
        run_extraction,
    )

    device = resolve_device(args.device)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    lengths = synth_lengths(args.hours, rng)
    t0 = time.perf_counter()
    corpus = work / f"corpus-{args.hours:g}h-seed{args.seed}"
    al_path = corpus / "audio_alignments_20_16.json"
    if not al_path.exists():
        write_corpus(corpus, lengths, args.seed)
    model_dir = work / "models" / ("tiny-wav2vec2-layer" if args.arch == "tiny" else args.arch)
    if not (model_dir / "config.json").exists():
        build_model(args.arch, model_dir, args.seed)
    alignment = load_alignment(al_path)
    total_s = sum(u.duration_s for u in alignment.utterances)
    print(f"corpus: {len(alignment.utterances)} utterances, {total_s / 3600:.2f} h, {alignment.num_words} words "
          f"(prepared in {time.perf_counter() - t0:.1f} s); model {args.arch} on {device}", file=sys.stderr)
    backend = HFSpeechBackend(str(model_dir), device)

    rows = []
    warm_up(backend, alignment, args.batch_seconds)
    # the whole stage, FLAC -> .npy
    out_dir = work / "stage-out"
    shutil.rmtree(out_dir, ignore_errors=True)
    sp = argparse.ArgumentParser()
    add_extraction_args(sp, audio=True)
    stage_args = sp.parse_args(["--path", str(al_path), "--out_dir", str(out_dir), "--batch_seconds",
                                str(args.batch_seconds), "--no_progress"])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run_extraction(backend, stage_args)
    stage_wall = time.perf_counter() - start
    rows.append(("stage: FLAC -> .npy (batched, pooled on device, background I/O)", total_s, stage_wall))
    if not args.keep:
        shutil.rmtree(out_dir, ignore_errors=True)

    model_wall = time_model_only(backend, alignment, args.batch_seconds)
    rows.append(("model forward only (same batches, audio in memory)", total_s, model_wall))

    if not args.skip_thesis:
        thesis_backend = HFSpeechBackend(str(model_dir), device)  # fp32: the thesis loop uses no autocast
        audio_s, wall = time_thesis_loop(thesis_backend, alignment, work / "thesis-out", args.thesis_limit)
        shutil.rmtree(work / "thesis-out", ignore_errors=True)
        rows.append(("thesis loop (one at a time, fp32, all layers to host, JSON)", audio_s, wall))

    width = max(len(r[0]) for r in rows)
    print(f"{'mode'.ljust(width)}  {'audio s':>9}  {'wall s':>8}  {'x real time':>11}")
    for name, audio_s, wall in rows:
        print(f"{name.ljust(width)}  {audio_s:9.1f}  {wall:8.2f}  {audio_s / wall:11.1f}")
    result = {"arch": args.arch, "device": str(device), "utterances": len(alignment.utterances),
              "hours": total_s / 3600, "words": alignment.num_words, "batch_seconds": args.batch_seconds,
              "torch": torch.__version__,
              "rows": [{"mode": n, "audio_s": a, "wall_s": w, "x_real_time": a / w} for n, a, w in rows]}
    (work / f"bench-{args.arch}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
