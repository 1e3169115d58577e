"""Benchmark of the extraction stage on synthetic dev-clean-like data (random weights, no downloads): speech and
text models at every compute precision, side by side with the thesis's one-at-a-time loop.

    python3 benchmarks/bench_extract.py --arch wav2vec2-base bert-base --hours 0.1 --device cpu
    python3 benchmarks/bench_extract.py --arch wav2vec2-large --hours 5.4 --device cuda --thesis_limit 300
    python3 benchmarks/bench_extract.py --arch tiny tiny-bert --hours 0.02 --device cpu      # smoke test

Architectures, built with random weights and saved and loaded by path exactly as a real model folder:

- ``wav2vec2-large``: Hugging Face Wav2Vec2, layer-norm extractor, pre-norm blocks, attention mask
  (wav2vec2-large-960h-lv60 style, 24 blocks x 1024); ``wav2vec2-base``: the library's default config
  (group-norm extractor, no attention mask, 12 x 768), padding-sensitive, so the stage batches only
  utterances of equal length (here: one at a time); ``tiny``: the tests' tiny wav2vec2.
- ``bert-base``: ``BertConfig``'s defaults (12 blocks x 768, MLP 3072, 512 positions) with a WordPiece
  vocabulary over the corpus words; ``tiny-bert``: the tests' tiny BERT.

Corpus: FLAC files whose lengths follow dev-clean's distribution (lognormal, mean 7.2 s, clipped to 1.3-33 s)
and an alignment JSON with 2.7 words a second of running English text. Text models read the same alignment's
words, so their "x real time" is the audio the words cover per second of work, as for speech.

Rows, each as wall seconds, CPU seconds (all threads of this process: steadier than wall time on a shared
machine), times real time (audio seconds / wall seconds) and the ratio to the thesis loop:

- thesis: the seed's loop, one utterance at a time, float32, every layer copied to the host, word means in
  numpy, one JSON per utterance written as the thesis did (``{utt: {word: ...}}``, ``indent=4``; the
  per-utterance work is benchmarks/_thesis.py's, shared with bench_pipeline.py and bench_busy.py) (speech:
  feature extractor + model on the waveform; text: the transcript tokenised as one string, sub-tokens mapped to
  words by ``word_ids``).
- stage: the whole extraction (``run_extraction``: prefetch, batches, pooling on the device, background
  ``.npy`` writer), FLAC -> .npy float16 on disk, at each ``--precision``. ``cold``: every FLAC was evicted
  from the page cache just before (``posix_fadvise(DONTNEED)``: best effort and no root needed; a file that
  another process holds mapped may stay cached). ``warm``: run again at once into a fresh folder, FLACs cached.
  Text models read no audio, so they have one stage row per precision.
- model alone: the forward passes over the stage's own batches, inputs already in memory, no pooling, no
  files: the ceiling for the stage at that precision.
- read: decoding every FLAC on the stage's 4 loader threads, cold and warm.
- write: the stage's writer alone (float16 conversion and check, ``.npy``, fsync, done records) on its 4
  threads, for arrays of the stage's shapes.

Warm-ups (kernel selection, allocations, cuBLAS handles): each precision's backend runs its first (longest)
batch once through the stage's embedding code when it is loaded, before any mode is timed; the model-alone
rows also run their first batch, and the thesis loop its first utterance, untimed before each of their trials.
The stage rows rely on the backend's warm-up; the read and write rows have none.
``--trials N`` runs every mode N times, in alternating order, and reports the fastest run.
On a GPU every time is taken after ``torch.cuda.synchronize``. The 1-minute load average is printed with
every row: on a shared machine compare runs made at similar loads.

Results: a table per architecture on stdout and ``<workdir>/bench-extract.json``. Target on one H100 for
wav2vec2-large over 5.4 h: stage >= 1500x real time (model alone 3561x, thesis loop 142x, measured by hand;
see ../shared/NOTES.md). Target on a CPU with native bfloat16 at wav2vec2-base size: stage >= 2.5x the thesis
loop (docs/precision-and-devices.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from wordreps.common.cli import float_range, int_range
from wordreps.common.errors import run_cli

if str(Path(__file__).resolve().parent) not in sys.path:  # the shared helpers beside this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402
import _thesis  # noqa: E402

SR = 16000
MEAN_S, MIN_S, MAX_S, SIGMA = 7.2, 1.3, 33.0, 0.6
WORDS_PER_S = 2.7
SPEECH_ARCHS = ("wav2vec2-large", "wav2vec2-base", "tiny")
TEXT_ARCHS = ("bert-base", "tiny-bert")
LOADER_THREADS = 4  # as extract._prefetch


# ---------------------------------------------------------------------------------------------- inputs

def corpus_words() -> list[str]:
    """Running English text (the demo sentences, apostrophes dropped), cycled through by the corpus."""
    from wordreps.embeddings.tiny.text import DEMO_SENTENCES

    return " ".join(DEMO_SENTENCES).replace("'", "").split()


def build_model(arch: str, folder: Path, seed: int) -> Path:
    """Save a random-weight model of ``arch`` (+ feature extractor or tokenizer) to ``folder``."""
    import torch
    import transformers as tf

    if arch == "tiny":  # the tests' tiny model: real conv geometry, hidden 32, 2 layers
        from wordreps.embeddings.tiny.speech import build_hf
        return build_hf(folder.parent, folder.name, seed)
    if arch == "tiny-bert":
        from wordreps.embeddings.tiny.text import build_tiny_bert
        return build_tiny_bert(folder, corpus_words(), seed=seed)
    if arch == "bert-base":
        from wordreps.common.atomic import write_text_atomic
        from wordreps.embeddings.tiny.text import wordpiece_vocab

        folder.mkdir(parents=True, exist_ok=True)
        vocab = wordpiece_vocab(corpus_words(), keep_every=2)  # half the words whole, the rest in pieces
        write_text_atomic(folder / "vocab.txt", "\n".join(vocab) + "\n")
        tokenizer = tf.BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True,
                                         model_max_length=512)
        torch.manual_seed(seed)
        tf.BertModel(tf.BertConfig(vocab_size=len(vocab), pad_token_id=0)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return folder
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
    """FLAC files + alignment JSON (words of running text evenly spread, frames centre-in-word for hop 320 / RF 400)."""
    import soundfile as sf

    from wordreps.alignments.format import write_alignment
    from wordreps.alignments.frames import words_frames
    from wordreps.alignments.geometry import FrameGeometry
    from wordreps.embeddings.base import Utterance, Word

    geometry = FrameGeometry(SR, 320, 400)
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    text = corpus_words()
    counts = [max(1, int(round(d * WORDS_PER_S))) for d in lengths]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)

    def one(i: int) -> Utterance:
        rng = np.random.default_rng(seed * 100003 + i)
        n = int(lengths[i] * SR)
        t = np.arange(n, dtype=np.float32) / SR
        x = 0.05 * rng.standard_normal(n).astype(np.float32) + 0.1 * np.sin(2 * np.pi * (120 + i % 50) * t)
        path = audio_dir / f"bench-{i:05d}.flac"
        sf.write(path, x, SR, subtype="PCM_16")
        k = counts[i]
        edges = np.linspace(0.02, n / SR - 0.02, k + 1)
        first, last = words_frames(edges[:-1], edges[1:] - 0.005, geometry, n)
        names = [text[(starts[i] + j) % len(text)] for j in range(k)]
        words = [Word(names[j], float(edges[j]), float(edges[j + 1] - 0.005), int(first[j]), int(last[j]))
                 for j in range(k)]
        return Utterance(f"bench-{i:05d}", str(path), " ".join(names).upper(), n, SR, words)

    with ThreadPoolExecutor(8) as pool:
        utts = list(pool.map(one, range(len(lengths))))
    out = folder / "audio_alignments_20_16.json"
    write_alignment(out, geometry, utts)
    return out


def evict_from_page_cache(paths) -> None:
    """Ask the kernel to drop these files' cached pages (``POSIX_FADV_DONTNEED``; no root needed, best effort)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------- timing helpers

Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process, all its threads)


def _timed(fn, device=None) -> Timing:
    t = _bench.timed(fn, device)
    return t.wall, t.cpu


def _batches(backend, alignment, budget: float | None):
    from wordreps.embeddings.extract import DEFAULT_BATCH_TOKENS, _default_batch_seconds, plan_batches

    if budget is None:
        budget = _default_batch_seconds(backend) if backend.needs_audio else DEFAULT_BATCH_TOKENS
    equal_key = (lambda u: u.num_samples) if backend.needs_audio else backend.cost
    return plan_batches(alignment.utterances, backend.cost, budget, padding_sensitive=backend.padding_sensitive,
                        equal_key=equal_key)


def warm_up(backend, alignment, budget: float | None) -> None:
    """One pass of the first (longest) batch through ``backend.embed``, so no mode pays for kernel set-up and
    allocation."""
    from wordreps.common.audio import load_audio
    from wordreps.common.precision import exact_float32
    from wordreps.embeddings.base import BatchItem

    first = _batches(backend, alignment, budget)[0]
    with exact_float32(deterministic=True):
        backend.embed([BatchItem(u, load_audio(u.audio_path, SR) if backend.needs_audio else None) for u in first])
    _bench.sync(backend.device)


def time_model_only(backend, alignment, budget: float | None) -> float:
    """Forward passes only, over the stage's batches at the backend's precision, inputs already in memory;
    returns wall seconds (after one untimed warm-up batch)."""
    return _time_model(backend, alignment, budget)[0]


def _time_model(backend, alignment, budget: float | None) -> Timing:
    import torch

    from wordreps.common.audio import load_audio
    from wordreps.common.precision import autocast, exact_float32

    batches = _batches(backend, alignment, budget)
    dev = backend.device
    if backend.needs_audio:
        audio = {u.utt_id: load_audio(u.audio_path, SR) for u in alignment.utterances}
        inputs = [[torch.from_numpy(audio[u.utt_id]).to(dev) for u in b] for b in batches]

        def forward(wavs):
            backend._hidden(wavs)
    else:
        inputs = [_token_batch(backend, b) for b in batches]

        def forward(batch):
            ids, mask = batch
            backend.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, return_dict=True)

    with torch.inference_mode(), exact_float32(deterministic=True), autocast(dev, backend.precision):
        forward(inputs[0])  # warm-up
        return _timed(lambda: [forward(x) for x in inputs], dev)


def _token_batch(backend, batch):
    """(input_ids, attention_mask) on the device for a text batch, padded as the text backend pads it."""
    import torch

    seqs = [ids for u in batch for ids, _ in backend.windows_for(u)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, :len(s)] = 1
    return ids.to(backend.device), mask.to(backend.device)


def time_reads(alignment, cold: bool) -> Timing:
    """Decode every FLAC on the stage's loader threads; ``cold``: evicted from the page cache first."""
    from wordreps.common.audio import load_audio

    paths = [u.audio_path for u in alignment.utterances]
    if cold:
        evict_from_page_cache(paths)
    with ThreadPoolExecutor(LOADER_THREADS) as pool:
        return _timed(lambda: list(pool.map(lambda p: load_audio(p, SR), paths)))


def time_writes(backend, alignment, folder: Path, dtype: str = "float16") -> Timing:
    """The stage's writer alone (4 threads: float16 conversion and check, .npy, fsync, done records)."""
    from wordreps.embeddings import store
    from wordreps.embeddings.extract import _Writer, finalize_array

    shutil.rmtree(folder, ignore_errors=True)
    (folder / store.UTTS).mkdir(parents=True)
    max_words = max(len(u.words) for u in alignment.utterances)
    rng = np.random.default_rng(0)
    block = rng.standard_normal((backend.num_layers, max_words, backend.dim), dtype=np.float32)

    def finalize(utt, array):
        return finalize_array(utt, array, num_layers=backend.num_layers, dim=backend.dim, dtype=dtype,
                              words_can_be_missing=False, model_name=backend.model_name)

    log = store.DoneLog(folder, 0, 1)
    writer = _Writer(folder, log, finalize)

    def write_all() -> None:
        for u in alignment.utterances:
            writer.put(u, np.ascontiguousarray(block[:, :len(u.words)]))
        writer.close()

    try:
        timing = _timed(write_all)
    finally:
        log.close()
    shutil.rmtree(folder, ignore_errors=True)
    return timing


def time_stage(backend, alignment_path: Path, out_dir: Path, budget: float | None, *, cold: bool) -> Timing:
    """``run_extraction`` FLAC -> .npy into a fresh folder; ``cold``: FLACs evicted from the page cache first."""
    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.extract import add_extraction_args, run_extraction

    shutil.rmtree(out_dir, ignore_errors=True)
    flags = ["--path", str(alignment_path), "--out_dir", str(out_dir), "--no_progress"]
    if budget is not None:
        flags += ["--batch_seconds" if backend.needs_audio else "--batch_tokens", f"{budget:g}"]
    args = add_extraction_args(argparse.ArgumentParser(), audio=backend.needs_audio).parse_args(flags)
    if cold:
        evict_from_page_cache([u.audio_path for u in load_alignment(alignment_path).utterances])
    timing = _timed(lambda: run_extraction(backend, args), backend.device)
    shutil.rmtree(out_dir, ignore_errors=True)
    return timing


# ---------------------------------------------------------------------------------------------- the thesis loops

def time_thesis_speech(model_dir: Path, device, alignment, out_dir: Path,
                       limit: int | None) -> tuple[float, Timing]:
    """The seed's speech loop; returns (audio seconds covered, (wall, CPU) seconds)."""
    import transformers as tf

    from wordreps.common.audio import load_audio

    fe = tf.AutoFeatureExtractor.from_pretrained(model_dir)
    model = tf.AutoModel.from_pretrained(model_dir).to(device).eval()
    utts = alignment.utterances[:limit] if limit else alignment.utterances

    def forward(u):
        inputs = fe(load_audio(u.audio_path, SR), sampling_rate=SR, return_tensors="pt")
        return lambda: model(inputs["input_values"].to(device), output_hidden_states=True).hidden_states

    def loop():
        for u in utts:
            _thesis.utterance(forward(u), u.utt_id, [w.word for w in u.words], _thesis.frame_spans(u), out_dir)

    return _thesis_run(utts, out_dir, lambda: _thesis.forward_to_host(forward(utts[0])), loop, device)


def time_thesis_text(model_dir: Path, device, alignment, out_dir: Path, limit: int | None) -> tuple[float, Timing]:
    """The seed's text loop: the transcript as one string, one utterance at a time; (audio seconds, timing)."""
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(model_dir)
    model = tf.AutoModel.from_pretrained(model_dir).to(device).eval()
    utts = alignment.utterances[:limit] if limit else alignment.utterances

    def tokens(u):
        enc = tokenizer(" ".join(w.word for w in u.words), return_tensors="pt")
        return enc, lambda: model(**enc.to(device), output_hidden_states=True).hidden_states

    def loop():
        for u in utts:
            enc, forward = tokens(u)
            word_ids = enc.word_ids(0)
            positions = [[t for t, k in enumerate(word_ids) if k == j] for j in range(len(u.words))]
            _thesis.utterance(forward, u.utt_id, [w.word for w in u.words], positions, out_dir)

    return _thesis_run(utts, out_dir, lambda: _thesis.forward_to_host(tokens(utts[0])[1]), loop, device)


def _thesis_run(utts, out_dir: Path, warm, loop, device) -> tuple[float, Timing]:
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    warm()  # one untimed utterance (forwards run without gradients, in exact float32: benchmarks/_thesis.py)
    timing = _timed(loop, device)
    shutil.rmtree(out_dir, ignore_errors=True)
    return sum(u.duration_s for u in utts), timing


# ---------------------------------------------------------------------------------------------- the run

@dataclass
class Row:
    arch: str
    mode: str
    audio_s: float
    wall_s: float        # the fastest of the trials
    cpu_s: float         # CPU seconds of that trial (all threads of this process)
    load_1min: float     # 1-minute load average just before that trial
    trial_wall_s: list

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.wall_s


def bench_arch(arch: str, args, device, work: Path, alignment_path: Path) -> list[Row]:
    """Every mode of one architecture, ``args.trials`` times in alternating order; the fastest trial is kept."""
    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.families import load_backend

    speech = arch in SPEECH_ARCHS
    alignment = load_alignment(alignment_path)
    total_s = sum(u.duration_s for u in alignment.utterances)
    model_dir = work / "models" / ("tiny-wav2vec2-layer" if arch == "tiny" else arch)
    if not (model_dir / "config.json").exists():
        build_model(arch, model_dir, args.seed)
    budget = args.batch_seconds if speech else args.batch_tokens
    stage_out = work / "stage-out"
    modes: list[tuple[str, Callable[[], tuple[float, Timing]]]] = []  # (name, () -> (audio s, timing))
    if not args.skip_thesis:
        thesis = time_thesis_speech if speech else time_thesis_text
        modes.append(("thesis loop (one at a time, float32, all layers to host, JSON)",
                      lambda: thesis(model_dir, device, alignment, work / "thesis-out", args.thesis_limit)))
    backends = []
    for precision in args.precision:
        backend = load_backend("speech" if speech else "text", str(model_dir), device, precision=precision)
        warm_up(backend, alignment, budget)
        backends.append(backend)
        name = backend.precision
        if speech:
            modes.append((f"stage {name}, cold (FLAC -> .npy float16)",
                          lambda b=backend: (total_s, time_stage(b, alignment_path, stage_out, budget, cold=True))))
            modes.append((f"stage {name}, warm",
                          lambda b=backend: (total_s, time_stage(b, alignment_path, stage_out, budget, cold=False))))
        else:
            modes.append((f"stage {name} (words -> .npy float16)",
                          lambda b=backend: (total_s, time_stage(b, alignment_path, stage_out, budget, cold=False))))
        modes.append((f"model alone {name} (same batches, inputs in memory)",
                      lambda b=backend: (total_s, _time_model(b, alignment, budget))))
    if speech:
        modes.append(("read FLAC, cold (4 threads)", lambda: (total_s, time_reads(alignment, cold=True))))
        modes.append(("read FLAC, warm (4 threads)", lambda: (total_s, time_reads(alignment, cold=False))))
    modes.append(("write .npy float16 alone (4 threads, fsync)",
                  lambda: (total_s, time_writes(backends[-1], alignment, work / "write-out"))))

    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name, _ in modes}
    for trial in range(args.trials):
        # alternate the order, so that a burst of load from elsewhere does not always hit the same modes
        for name, run in (modes if trial % 2 == 0 else modes[::-1]):
            load = os.getloadavg()[0]
            audio_s, (wall, cpu) = run()
            runs[name].append((wall, cpu, load, audio_s))
            print(f"  {arch} trial {trial + 1}: {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                  f"{audio_s / wall:.1f}x real time (load {load:.2f})", file=sys.stderr, flush=True)
    rows = []
    for name, _ in modes:
        wall, cpu, load, audio_s = min(runs[name])
        rows.append(Row(arch, name, audio_s, wall, cpu, load, [r[0] for r in runs[name]]))
    return rows


def print_table(rows: list[Row], describe: dict[str, str]) -> None:
    width = max(len(r.mode) for r in rows)
    for arch in dict.fromkeys(r.arch for r in rows):
        mine = [r for r in rows if r.arch == arch]
        thesis = next((r for r in mine if r.mode.startswith("thesis")), None)
        print(f"\n{arch}: {describe[arch]}")
        print(f"{'mode'.ljust(width)}  {'wall s':>8}  {'CPU s':>8}  {'x real time':>11}  {'vs thesis':>9}  {'load':>5}")
        for r in mine:
            ratio = f"{r.x_real_time / thesis.x_real_time:9.2f}" if thesis else f"{'-':>9}"
            print(f"{r.mode.ljust(width)}  {r.wall_s:8.2f}  {r.cpu_s:8.2f}  {r.x_real_time:11.1f}  {ratio}  "
                  f"{r.load_1min:5.2f}")


def build_parser() -> argparse.ArgumentParser:
    from wordreps.common.devices import DEVICE_HELP, device_arg
    from wordreps.common.precision import precision_arg

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", choices=SPEECH_ARCHS + TEXT_ARCHS, default=["wav2vec2-large"],
                   help="one or more architectures, each benchmarked in turn (default: wav2vec2-large)")
    p.add_argument("--hours", type=float_range(0.0, 100.0, lo_open=True), default=5.4,
                   help="hours of synthetic audio (default: %(default)s, dev-clean's size)")
    p.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    p.add_argument("--precision", type=precision_arg, nargs="+", default=["float32", "auto"],
                   help="compute precisions of the stage and model rows (default: float32 auto; auto is bfloat16 on "
                        "a GPU of compute capability >= 8.0 or a CPU with native bfloat16)")
    p.add_argument("--batch_seconds", type=float_range(0.0, 1e6, lo_open=True), default=None,
                   help="speech batch budget (default: the stage's own, 200 on a GPU and 20 on a CPU)")
    p.add_argument("--batch_tokens", type=int_range(1, 10**8), default=None,
                   help="text batch budget (default: the stage's own, 8192)")
    p.add_argument("--workdir", default="outputs/bench", help="scratch folder (default: %(default)s)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0)
    p.add_argument("--thesis_limit", type=int_range(1, None), default=None,
                   help="run the thesis loop on the first N utterances only (it is slow on a GPU-size corpus)")
    p.add_argument("--skip_thesis", action="store_true")
    p.add_argument("--trials", type=int_range(1, 100), default=1,
                   help="runs of every mode, in alternating order; the fastest is reported (default: %(default)s; "
                        "use 3 or more on a shared machine)")
    return p


def main() -> int:
    args = build_parser().parse_args()

    import torch

    from wordreps.alignments.format import load_alignment
    from wordreps.common.devices import describe_device, resolve_device
    from wordreps.common.precision import resolve_precision

    device = resolve_device(args.device)
    # resolve "auto" now (one row per distinct precision) and refuse an impossible one before any work
    args.precision = list(dict.fromkeys(resolve_precision(p, device) for p in args.precision))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    lengths = synth_lengths(args.hours, np.random.default_rng(args.seed))
    t0 = time.perf_counter()
    corpus = work / f"corpus-{args.hours:g}h-seed{args.seed}-v2"
    al_path = corpus / "audio_alignments_20_16.json"
    if not al_path.exists():
        write_corpus(corpus, lengths, args.seed)
    alignment = load_alignment(al_path)
    total_s = sum(u.duration_s for u in alignment.utterances)
    info = describe_device(device)
    where = (f"{info['gpu_name']} (compute capability {info['compute_capability']})" if device.type == "cuda"
             else f"cpu, {torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"corpus: {len(alignment.utterances)} utterances, {total_s / 3600:.2f} h, {alignment.num_words} words "
          f"(prepared in {time.perf_counter() - t0:.1f} s); device {where}; precisions {', '.join(args.precision)}; "
          f"load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    rows: list[Row] = []
    for arch in args.arch:
        rows += bench_arch(arch, args, device, work, al_path)
    describe = {arch: f"{len(alignment.utterances)} utterances, {total_s:.0f} s of audio, {alignment.num_words} words, "
                      f"{where}" for arch in args.arch}
    print_table(rows, describe)
    result = {"device": str(device), "device_info": info, "utterances": len(alignment.utterances),
              "hours": total_s / 3600, "words": alignment.num_words, "precisions": args.precision,
              "batch_seconds": args.batch_seconds, "batch_tokens": args.batch_tokens, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "trials": args.trials,
              "rows": [{**asdict(r), "x_real_time": r.x_real_time} for r in rows]}
    (work / "bench-extract.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
