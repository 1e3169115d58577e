"""Benchmark: the thesis's pipeline against this toolkit's, side by side, same inputs, one run.

    python3 benchmarks/bench_pipeline.py                       # tiny model, demo corpus x 16, CPU
    python3 benchmarks/bench_pipeline.py --repeat 32 --scaling # + extraction and CKA scaling tables and a plot
    python3 benchmarks/bench_pipeline.py --arch small          # a wider random model (hidden 256, 6 blocks)

Three stages, each run both ways on the same alignment JSON and the same model weights (loaded before the
clock starts, one warm-up forward pass each):

1. extraction, FLAC on disk -> per-utterance files on disk.
   thesis: one utterance at a time, fp32, every layer's frames copied to the host, each word's mean taken
   in numpy, one JSON per utterance written as the thesis did (``{utt: {word: [occurrence][layer][dim]}}``,
   ``json.dump(..., indent=4)``, file ``embeddings_words_<utt>.json``): benchmarks/_thesis.py, the same
   per-utterance work as bench_extract.py's and bench_busy.py's thesis loops (full float32: no TF32 on a GPU).
   toolkit: :func:`wordreps.embeddings.extract.run_extraction` (length-sorted batches, prefetching, pooling
   on the device, background ``.npy`` float16 writer), i.e. ``embeddings/speech_embedding.py``.
2. matrix assembly. thesis: for every layer, read every utterance JSON and write that layer's matrix as a
   JSON list of lists (``layers/embeddings_layer<i>_<model>.json``). toolkit:
   ``embeddings/matrix_embeddings.py --write_words`` then ``--layer all`` (each .npy read once, float32 .npy
   per layer); its time includes writing the keys file.
3. CKA for every layer pair (i, j) of the model with itself, all L x L pairs on both sides. thesis: for each
   pair re-read the two JSON matrices and compute linear CKA in numpy float64, in feature space exactly as the
   thesis's ``utils_embeddings.linear_CKA`` does, then a JSON of values and a heatmap. Also timed: the same
   loop with the Gram-matrix form of Kornblith et al.'s notebook (n x n Gram matrices, feasible here because n
   is a few thousand: 54k rows would need 23 GB per matrix). toolkit: ``experiments/experiment_CKA.py`` (all
   pairs in one pass, float32 products summed in float64, JSON + CSV + heatmap) with ``--model2`` a real copy
   of the matrices folder under another slug (given the same folder twice it would compute only the pairs
   j >= i of the symmetric map).

Like with like: the thesis ran s3prl upstreams on torchaudio-loaded audio; here both sides run the same Hugging
Face model folder on audio read by the toolkit's loader, so the weights and samples are identical. The thesis
skipped layer 0 and its matrices kept only the first occurrence of a word repeated
within an utterance; here the thesis side keeps every layer and picks each occurrence by its index, so both
sides hold the same rows and the numbers can be compared (max |thesis - toolkit| for every pooled value and
every CKA value is reported, with the float16 rounding bound the toolkit's storage allows).

The corpus is the bundled demo (20 utterances, 105 s, alignment made by ``alignments/alignments_and_trans.py
--sample_rate 16 --stride 20``) repeated ``--repeat`` times under new utterance ids (FLACs symlinked). The
model is a random-weight Hugging Face wav2vec2 (layer-norm, "large"-style) built locally: ``tiny`` is
``tools/make_tiny_speech.py``'s tiny-wav2vec2-layer (hidden 32, 2 blocks). ``--scaling`` adds extraction time
and peak memory (VmHWM of a fresh subprocess) at 1x, 4x and 16x the demo corpus, and CKA time against rows
and dimensions (``benchmarks/bench_cka.py``'s :func:`bench_one`, plus the Gram form for contrast).

On a shared machine, time is noisy: each stage runs ``--trials`` times each way, alternating which side goes
first, and the fastest run is kept; every run's time and the 1-minute load average before it are in the JSON,
and the Markdown names the load average at start and end.

Results: ``<out_dir>/bench_pipeline.json`` and ``bench_pipeline.md`` (+ ``bench_scaling.png``), default
``outputs/bench``. Scratch files go to ``<out_dir>/pipeline-work`` and are deleted unless ``--keep``.

GPU (not runnable on a machine without CUDA; ``--device cuda`` there stops with one line). On an H100,
nothing downloaded, random weights, synthetic dev-clean-like audio:

    python3 benchmarks/bench_extract.py --arch wav2vec2-large --hours 5.4 --device cuda
        # stage FLAC -> .npy, model forward alone, thesis loop (add --thesis_limit 300 to shorten it);
        # target: stage >= 1500x real time
    python3 benchmarks/bench_cka.py --rows 54000 --dims 1024:768 --layers1 25 --layers2 13 --device cuda --check
        # CKA for 25 x 13 layer pairs at 54k rows; target < 2 s
    python3 benchmarks/bench_pipeline.py --arch small --repeat 64 --device cuda   # this side-by-side run
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from wordreps.common.atomic import write_json_atomic, write_text_atomic
from wordreps.common.cli import float_range, int_range
from wordreps.common.errors import UserError, run_cli

if str(Path(__file__).resolve().parent) not in sys.path:  # the shared helpers beside this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402
import _thesis  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_AUDIO = REPO / "datasets" / "demo" / "librispeech-clean-16k"
DEMO_TEXTGRIDS = REPO / "datasets" / "demo" / "alignments"
SR = 16000
FP16_HALF_ULP = 2.0 ** -11  # float16 keeps 11 significant bits: round-to-nearest error <= 2^-11 |x|


def _sibling(script: str) -> dict:
    """Another benchmark script's functions (benchmarks/ is a folder of scripts, not a package)."""
    return runpy.run_path(str(Path(__file__).with_name(script)))


def _script_main(script: str) -> Callable:
    """A stage script's ``main(argv)``, so that the toolkit side is timed exactly as a user runs it."""
    return runpy.run_path(str(REPO / script))["main"]


# ---------------------------------------------------------------------------------------------- inputs

def build_model(arch: str, models_dir: Path, seed: int = 0) -> Path:
    """A random-weight HF wav2vec2 (layer-norm extractor, pre-norm, attention mask) saved under ``models_dir``."""
    from wordreps.embeddings.tiny.speech import build_hf

    if arch == "tiny":
        folder = models_dir / "tiny-wav2vec2-layer"
        if not (folder / "config.json").is_file():
            build_hf(models_dir, "tiny-wav2vec2-layer", seed)
        return folder
    folder = models_dir / "small-wav2vec2-layer"
    if (folder / "config.json").is_file():
        return folder
    import torch
    import transformers as tf

    from wordreps.embeddings.tiny.speech import CONV_KERNEL, CONV_STRIDE

    config = tf.Wav2Vec2Config(hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024,
                               conv_dim=(128,) * 7, conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE, conv_bias=True,
                               feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=32,
                               num_conv_pos_embedding_groups=4, vocab_size=8)
    torch.manual_seed(seed)
    model = tf.Wav2Vec2Model(config)
    with torch.no_grad():  # as tiny_speech: the default init makes every layer nearly constant
        g = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(p.shape[1], 1)) ** 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True,
                                return_attention_mask=True).save_pretrained(folder)
    return folder


def base_alignment(work: Path, audio_root: Path, textgrids: Path) -> Path:
    """The demo corpus's alignment JSON, made by the real alignment script (cached in ``work``)."""
    out = work / "base_alignments_20_16.json"
    if not out.is_file():
        cmd = [sys.executable, str(REPO / "alignments" / "alignments_and_trans.py"), "--sample_rate", "16",
               "--stride", "20", "--path", str(textgrids), "--audio_root", str(audio_root), "--output", str(out),
               "--quiet"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"alignments/alignments_and_trans.py failed on {textgrids}: "
                            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return out


def repeat_corpus(base: Path, repeat: int, folder: Path) -> Path:
    """``repeat`` copies of ``base``'s utterances under ids ``<id>-x<k>``, FLACs symlinked; returns the JSON."""
    from wordreps.alignments.format import load_alignment, write_alignment
    from wordreps.embeddings.base import Utterance

    al = load_alignment(base)
    out = folder / "audio_alignments_20_16.json"
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    utts = []
    for k in range(repeat):
        for u in al.utterances:
            new_id = f"{u.utt_id}-x{k:03d}"
            link = audio_dir / f"{new_id}.flac"
            if not link.exists():
                os.symlink(os.path.abspath(u.audio_path), link)
            utts.append(Utterance(new_id, str(link), u.transcript, u.num_samples, u.sample_rate_hz, list(u.words)))
    write_alignment(out, al.geometry, utts, textgrid_root=al.textgrid_root, audio_root=str(audio_dir))
    return out


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- thesis side

def occurrence_keys(words: list[str]) -> list[tuple[str, int]]:
    """(word, k): position p holds the k-th occurrence of its word in the utterance (the thesis's JSON lists
    every occurrence of a word under that word)."""
    seen: dict[str, int] = {}
    out = []
    for w in words:
        out.append((w, seen.get(w, 0)))
        seen[w] = seen.get(w, 0) + 1
    return out


class ThesisExtractor:
    """The thesis's extraction loop (one utterance at a time, fp32, host copies, numpy means, JSON per file):
    the per-utterance work is benchmarks/_thesis.py's, shared with the other benchmarks' thesis loops."""

    def __init__(self, model_dir: Path, device):
        import transformers as tf

        self.device = device
        self.fe = tf.AutoFeatureExtractor.from_pretrained(model_dir)
        self.model = tf.AutoModel.from_pretrained(model_dir).to(device).eval()

    def _forward(self, path: str) -> Callable[[], object]:
        from wordreps.common.audio import load_audio

        inputs = self.fe(load_audio(path, SR), sampling_rate=SR, return_tensors="pt")
        return lambda: self.model(inputs["input_values"].to(self.device), output_hidden_states=True).hidden_states

    def hidden(self, path: str) -> list[np.ndarray]:
        return _thesis.forward_to_host(self._forward(path))  # every layer to the host

    def run(self, utterances, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        for u in utterances:
            _thesis.utterance(self._forward(u.audio_path), u.utt_id, [w.word for w in u.words],
                              _thesis.frame_spans(u), out_dir)


def thesis_words_file(rows: list[tuple[str, int, str]], path: Path) -> None:
    """The thesis's words_in_order file: {"<utt>.json": [keys in order]}; a key is [word, position] (the thesis
    kept the word alone, so a repeated word's later occurrences were lost)."""
    by_utt: dict[str, list] = {}
    for utt, pos, word in rows:
        by_utt.setdefault(f"{utt}.json", []).append([word, pos])
    with open(path, "w") as fh:
        json.dump(by_utt, fh)


def thesis_matrices(json_dir: Path, words_path: Path, layers: list[int], model: str, out_dir: Path,
                    words_of: dict[str, list[str]]) -> None:
    """For every layer: read every utterance JSON, append the keyed vectors, dump the matrix as JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(words_path) as fh:
        words = json.load(fh)
    files = sorted(os.listdir(json_dir))
    for layer in layers:
        vectors = []
        for filename in files:
            identifier = filename.split("_")[-1]
            with open(json_dir / filename) as fh:
                data = json.load(fh)
            audio = os.path.splitext(identifier)[0]
            occ = occurrence_keys(words_of[audio])
            for word, pos in words[identifier]:
                w, k = occ[pos]
                vectors.append(data[audio][w][k][layer])
        with open(out_dir / f"embeddings_layer{layer}_{model}.json", "w") as fh:
            json.dump(vectors, fh)


def linear_cka_feature(X: np.ndarray, Y: np.ndarray) -> float:
    """The thesis's ``utils_embeddings.linear_CKA`` (feature space, float64).

    Kept apart from :func:`wordreps.analysis.cka.linear_cka` (the same formula) on purpose: this is the thesis's
    own code path, timed as the thesis ran it (no zero-denominator guard, its own centring and norms).
    """
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    hsic = np.linalg.norm(Xc.T @ Yc, "fro") ** 2
    return float(hsic / (np.linalg.norm(Xc.T @ Xc, "fro") * np.linalg.norm(Yc.T @ Yc, "fro")))


def linear_cka_gram(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al.'s notebook: gram_linear, center_gram, cka (n x n Gram matrices, float64)."""
    def center(gram: np.ndarray) -> np.ndarray:
        gram = gram.copy()
        means = np.mean(gram, 0, dtype=np.float64)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
        return gram

    gx, gy = center(X @ X.T), center(Y @ Y.T)
    return float(gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def thesis_cka(layer_dir: Path, model: str, layers: list[int], out_dir: Path,
               cka: Callable[[np.ndarray, np.ndarray], float], tag: str) -> np.ndarray:
    """Every pair (i, j), re-reading both JSON matrices each time; JSON of values + heatmap, as the thesis did."""
    values = np.zeros((len(layers), len(layers)))
    for a, i in enumerate(layers):
        with open(layer_dir / f"embeddings_layer{i}_{model}.json") as fh:
            X = np.array(json.load(fh))
        for b, j in enumerate(layers):
            with open(layer_dir / f"embeddings_layer{j}_{model}.json") as fh:
                Y = np.array(json.load(fh))
            values[a, b] = cka(X, Y)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"cka_{tag}_{model}_{model}.json", "w") as fh:
        json.dump(values.tolist(), fh)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(8, 6))
    plt.imshow(values, cmap="viridis", origin="lower")
    plt.colorbar(label="CKA (Linear)")
    plt.xlabel(f"Layer {model}")
    plt.ylabel(f"Layer {model}")
    plt.savefig(out_dir / f"cka_{tag}_{model}_{model}.png", bbox_inches="tight")
    plt.close()
    return values


# ---------------------------------------------------------------------------------------------- toolkit side

def extraction_args(alignment: Path, out_dir: Path, batch_seconds: float) -> argparse.Namespace:
    """The flags embeddings/speech_embedding.py would parse."""
    from wordreps.embeddings.extract import add_extraction_args

    parser = argparse.ArgumentParser()
    add_extraction_args(parser, audio=True)
    return parser.parse_args(["--path", str(alignment), "--out_dir", str(out_dir), "--batch_seconds",
                              str(batch_seconds), "--no_progress"])


# ---------------------------------------------------------------------------------------------- comparison

def compare(thesis: np.ndarray, toolkit: np.ndarray) -> dict:
    """max |thesis - toolkit| and whether every value is within float16 rounding (+ fp32 noise) of the thesis's."""
    t = np.asarray(thesis, dtype=np.float64)
    k = np.asarray(toolkit, dtype=np.float64)
    diff = np.abs(t - k)
    scale = float(np.max(np.abs(t))) if t.size else 0.0
    bound = FP16_HALF_ULP * np.abs(t) + 1e-5 * max(scale, 1.0)
    return {"max_abs_diff": float(diff.max()) if diff.size else 0.0, "max_abs_value": scale,
            "within_fp16": bool(np.all(diff <= bound)), "values": int(t.size)}


# ---------------------------------------------------------------------------------------------- the run

def run_side_by_side(args, device, model_dir: Path, work: Path) -> dict:
    bench_extract = _sibling("bench_extract.py")
    time_model_only, warm_up = bench_extract["time_model_only"], bench_extract["warm_up"]
    experiment_cka_main = _script_main("experiments/experiment_CKA.py")
    matrix_embeddings_main = _script_main("embeddings/matrix_embeddings.py")

    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.extract import run_extraction
    from wordreps.embeddings.families import load_backend
    from wordreps.embeddings.matrices import build_keys, load_keys
    from wordreps.embeddings.store import EmbeddingSet, slug_for

    base = base_alignment(work, Path(args.audio_root), Path(args.textgrids))
    corpus = work / f"corpus-x{args.repeat}"
    al_path = repeat_corpus(base, args.repeat, corpus)
    alignment = load_alignment(al_path)
    utts = alignment.utterances
    audio_s = sum(u.duration_s for u in utts)
    num_words = alignment.num_words
    slug = slug_for(str(model_dir))

    # imports both sides use, done before any clock starts so neither pays them
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import wordreps.analysis.cka  # noqa: F401

    # float32 like the thesis loop, so the two sides' numbers can be compared value by value
    backend = load_backend("speech", str(model_dir), device, precision="float32")
    thesis = ThesisExtractor(model_dir, device)
    num_layers, dim = backend.num_layers, backend.dim
    layers = list(range(num_layers))
    log(f"corpus: {len(utts)} utterances ({args.repeat} x demo), {audio_s:.1f} s of audio, {num_words} words; "
        f"model {slug} ({num_layers} layers x {dim}) on {device}")

    # ---- 1. extraction
    warm_up(backend, alignment, args.batch_seconds)
    thesis.hidden(utts[0].audio_path)
    t_json = work / "thesis" / slug
    k_emb = work / "toolkit" / "embeddings"
    emb_dir = k_emb / slug
    shutil.rmtree(work / "thesis", ignore_errors=True)
    shutil.rmtree(work / "toolkit", ignore_errors=True)
    trials: dict[str, list[float]] = {}
    loads: dict[str, list[float]] = {}

    def race(stage: str, sides: dict[str, tuple[Callable[[], object], Callable[[], None]]]) -> dict[str, object]:
        """Run each side ``--trials`` times (output removed before each run), alternating which goes first so
        that load from other processes hits both alike; keeps every time, the last result of each side."""
        results: dict[str, object] = {}
        names = list(sides)
        for t in range(args.trials):
            for name in (names if t % 2 == 0 else names[::-1]):
                fn, reset = sides[name]
                reset()
                loads.setdefault(stage, []).append(os.getloadavg()[0])
                with contextlib.redirect_stdout(sys.stderr):  # the stage scripts' "wrote ..." lines
                    seconds, _cpu, results[name] = _bench.timed(fn, device)
                trials.setdefault(f"{name}_{stage}", []).append(seconds)
                log(f"{stage}, {name}: {seconds:.2f} s")
        return results

    race("extract", {
        "thesis": (lambda: thesis.run(utts, t_json), lambda: shutil.rmtree(t_json, ignore_errors=True)),
        "toolkit": (lambda: run_extraction(backend, extraction_args(al_path, k_emb, args.batch_seconds)),
                    lambda: shutil.rmtree(k_emb, ignore_errors=True)),
    })
    model_only_s = min(time_model_only(backend, alignment, args.batch_seconds) for _ in range(args.trials))

    # ---- 2. matrices (the thesis's words file is made from the same keys, untimed: the thesis made it by hand)
    keys = work / "toolkit" / "words_in_order.json"
    k_mats = work / "toolkit" / "matrices"
    rows, _summary = build_keys(k_emb, [slug], progress=False)
    t_words = work / "thesis" / "words_in_order.json"
    thesis_words_file(rows, t_words)
    words_of = {u.utt_id: [w.word for w in u.words] for u in utts}
    t_layers = work / "thesis" / "layers"

    def toolkit_matrices() -> None:
        matrix_embeddings_main(["--models", slug, "--write_words", str(keys), "--embeddings_dir", str(k_emb),
                                "--no_progress"])
        matrix_embeddings_main(["--layer", "all", "--model", slug, "--words_path", str(keys), "--embeddings_dir",
                                str(k_emb), "--out_dir", str(k_mats), "--no_progress"])

    def reset_toolkit_matrices() -> None:
        shutil.rmtree(k_mats, ignore_errors=True)
        keys.unlink(missing_ok=True)

    race("matrices", {
        "thesis": (lambda: thesis_matrices(t_json, t_words, layers, slug, t_layers, words_of),
                   lambda: shutil.rmtree(t_layers, ignore_errors=True)),
        "toolkit": (toolkit_matrices, reset_toolkit_matrices),
    })
    if load_keys(keys).rows != rows:
        raise RuntimeError("the toolkit's keys file differs from the rows the thesis side was given")

    # ---- 3. CKA, the model with itself, every layer pair (all L x L on both sides: given one folder twice,
    # experiment_CKA.py would compute only the pairs j >= i, the map being symmetric, so the toolkit reads a
    # real copy of the matrices under another slug; a symlink would resolve to the same folder)
    slug2 = f"{slug}-copy"
    shutil.rmtree(k_mats / slug2, ignore_errors=True)
    shutil.copytree(k_mats / slug, k_mats / slug2)
    k_cka = work / "toolkit" / "cka"
    t_cka = work / "thesis" / "cka"
    cka_argv = ["--model1", slug, "--layer1", str(num_layers - 1), "--model2", slug2, "--layer2",
                str(num_layers - 1), "--matrices_dir", str(k_mats), "--out_dir", str(k_cka), "--device", device.type,
                "--no_progress"]
    if args.threads:  # the script sizes torch's threads itself (apply_common_args): pass --threads on
        cka_argv += ["--num_threads", str(args.threads)]
    sides = {
        "thesis": (lambda: thesis_cka(t_layers, slug, layers, t_cka, linear_cka_feature, "feature"), lambda: None),
        "toolkit": (lambda: experiment_cka_main(cka_argv), lambda: shutil.rmtree(k_cka, ignore_errors=True)),
    }
    if len(rows) <= args.gram_max_rows:
        sides["thesis_gram"] = (lambda: thesis_cka(t_layers, slug, layers, t_cka, linear_cka_gram, "gram"),
                                lambda: None)
    cka_out = race("cka", sides)
    thesis_values = cka_out["thesis"]
    gram_values = cka_out.get("thesis_gram")
    best = {k: min(v) for k, v in trials.items()}

    # ---- agreement
    emb = EmbeddingSet.open(emb_dir)
    probe = [rows[i] for i in sorted({0, len(rows) // 3, len(rows) // 2, (2 * len(rows)) // 3, len(rows) - 1})]
    t_vec, k_vec = [], []
    for utt, pos, _word in probe:
        with open(t_json / f"embeddings_words_{utt}.json") as fh:
            data = json.load(fh)[utt]
        w, k = occurrence_keys(words_of[utt])[pos]
        t_vec.append(np.array(data[w][k]))
        k_vec.append(emb.load(utt)[:, pos, :].astype(np.float32))
    pooled = compare(np.stack(t_vec), np.stack(k_vec))
    mat_cmp = []
    for i in layers:
        with open(t_layers / f"embeddings_layer{i}_{slug}.json") as fh:
            tm = np.array(json.load(fh))
        mat_cmp.append(compare(tm, np.load(k_mats / slug / f"layer_{i}.npy")))
    matrices_cmp = {"max_abs_diff": max(c["max_abs_diff"] for c in mat_cmp),
                    "max_abs_value": max(c["max_abs_value"] for c in mat_cmp),
                    "within_fp16": all(c["within_fp16"] for c in mat_cmp), "values": sum(c["values"] for c in mat_cmp)}
    with open(k_cka / f"{slug}__vs__{slug2}" / "linear.json") as fh:
        toolkit_values = np.array(json.load(fh)["values"], dtype=float)
    cka_cmp = {"max_abs_diff_feature": float(np.max(np.abs(thesis_values - toolkit_values))),
               "max_abs_diff_gram": (float(np.max(np.abs(gram_values - toolkit_values)))
                                     if gram_values is not None else None),
               "tolerance": args.cka_tol}
    cka_cmp["agree"] = bool(cka_cmp["max_abs_diff_feature"] <= args.cka_tol and
                            (gram_values is None or cka_cmp["max_abs_diff_gram"] <= args.cka_tol))

    sizes = {
        "thesis_per_utterance": tree_bytes(t_json), "toolkit_per_utterance": tree_bytes(emb_dir),
        "thesis_matrices": tree_bytes(t_layers), "toolkit_matrices": tree_bytes(k_mats / slug),
        "thesis_keys": tree_bytes(t_words), "toolkit_keys": tree_bytes(keys),
    }
    return {
        "corpus": {"utterances": len(utts), "repeat": args.repeat, "audio_s": audio_s, "words": num_words,
                   "rows": len(rows), "alignment": str(al_path)},
        "model": {"name": slug, "arch": args.arch, "layers": num_layers, "dim": dim},
        "seconds": {"thesis_extract": best["thesis_extract"], "toolkit_extract": best["toolkit_extract"],
                    "toolkit_model_only": model_only_s,
                    "thesis_matrices": best["thesis_matrices"], "toolkit_matrices": best["toolkit_matrices"],
                    "thesis_cka_feature": best["thesis_cka"], "thesis_cka_gram": best.get("thesis_gram_cka"),
                    "toolkit_cka": best["toolkit_cka"]},
        "trials": {"count": args.trials, "seconds": trials, "loadavg_1min": loads},
        "bytes": sizes,
        "agreement": {"pooled": {**pooled, "probes": [[u, p] for u, p, _ in probe]}, "matrices": matrices_cmp,
                      "cka": cka_cmp},
        "cka_pairs": num_layers * num_layers,
        "batch_seconds": args.batch_seconds,
        "cka_values_toolkit": toolkit_values.tolist(),
    }


# ---------------------------------------------------------------------------------------------- scaling

def peak_rss_kib() -> int:
    """Peak resident memory of this process in KiB: /proc's VmHWM, which starts afresh at exec (Linux keeps
    ``ru_maxrss`` across fork + exec, so a child started by a big parent would report the parent's peak)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def child_extract(spec: str) -> int:
    """Run in a subprocess: time the toolkit's extraction of one corpus and report peak RSS."""
    warm_up = _sibling("bench_extract.py")["warm_up"]

    from wordreps.alignments.format import load_alignment
    from wordreps.common.devices import resolve_device
    from wordreps.embeddings.extract import run_extraction
    from wordreps.embeddings.families import load_backend

    cfg = json.loads(spec)
    if cfg.get("threads"):
        import torch
        torch.set_num_threads(int(cfg["threads"]))
    device = resolve_device(cfg["device"])
    backend = load_backend("speech", cfg["model"], device, precision="float32")
    alignment = load_alignment(cfg["alignment"])
    before = peak_rss_kib()  # Python, torch and the model
    warm_up(backend, alignment, cfg["batch_seconds"])
    alignment_path, out = Path(cfg["alignment"]), Path(cfg["out_dir"])
    seconds = _bench.timed(lambda: run_extraction(backend, extraction_args(alignment_path, out, cfg["batch_seconds"])),
                           device).wall
    after = peak_rss_kib()
    print(json.dumps({"seconds": seconds, "rss_before_kib": before, "rss_peak_kib": after,
                      "audio_s": sum(u.duration_s for u in alignment.utterances),
                      "utterances": len(alignment.utterances), "words": alignment.num_words}))
    return 0


def scaling_extraction(args, model_dir: Path, work: Path, factors: list[int]) -> list[dict]:
    """Toolkit extraction of 1x, 4x, 16x ... the base corpus, each in a fresh process; the trials go round the
    sizes (not one size's trials in a row) so that a burst of load from elsewhere does not hit one size only."""
    base = base_alignment(work, Path(args.audio_root), Path(args.textgrids))
    specs = {}
    for f in factors:
        corpus = work / f"scaling-x{f}"
        al = repeat_corpus(base, f, corpus)
        specs[f] = (corpus / "embeddings", json.dumps({
            "model": str(model_dir), "alignment": str(al), "out_dir": str(corpus / "embeddings"),
            "device": args.device, "batch_seconds": args.batch_seconds, "threads": args.threads}))
    runs: dict[int, list[dict]] = {f: [] for f in factors}
    disk: dict[int, int] = {}
    for _ in range(args.trials):
        for f in factors:
            emb, spec = specs[f]
            shutil.rmtree(emb, ignore_errors=True)
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child_extract", spec],
                                  cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"scaling run x{f} failed: {proc.stderr.strip().splitlines()[-1:]}")
            runs[f].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            disk[f] = tree_bytes(emb)
            shutil.rmtree(emb, ignore_errors=True)
            log(f"scaling x{f}: {runs[f][-1]['seconds']:.2f} s, peak RSS {runs[f][-1]['rss_peak_kib'] / 1024:.0f} MiB")
    out = []
    for f in factors:
        r = dict(min(runs[f], key=lambda x: x["seconds"]))
        r.update(factor=f, rss_peak_kib=max(x["rss_peak_kib"] for x in runs[f]),
                 trial_seconds=[x["seconds"] for x in runs[f]], x_real_time=r["audio_s"] / r["seconds"],
                 disk_bytes=disk[f])
        out.append(r)
    return out


def gram_pair_seconds(n: int, d1: int, d2: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d1))
    Y = rng.standard_normal((n, d2))
    start = time.perf_counter()
    linear_cka_gram(X, Y)
    return time.perf_counter() - start


def scaling_cka(args, device) -> list[dict]:
    """bench_cka's all-pairs timing over rows (first dims) and dims (middle rows); trials go round the grid."""
    bench_one = _sibling("bench_cka.py")["bench_one"]

    d_fixed = args.cka_dims[0]
    n_fixed = args.cka_rows[len(args.cka_rows) // 2]
    grid = [(n, d_fixed) for n in args.cka_rows] + [(n_fixed, d) for d in args.cka_dims[1:]]
    runs: dict[int, list[dict]] = {k: [] for k in range(len(grid))}
    grams: dict[int, list[float]] = {k: [] for k in range(len(grid))}
    for _ in range(args.trials):
        for k, (n, (d1, d2)) in enumerate(grid):
            r = bench_one(n, d1, d2, args.cka_layers[0], args.cka_layers[1], device, "mixed", 16384, False, args.seed)
            runs[k].append(r)
            if n <= args.gram_max_rows:
                grams[k].append(gram_pair_seconds(n, d1, d2, args.seed))
            log(f"scaling CKA n={n} dims {d1}:{d2}: {r['seconds']:.2f} s for {r['pairs']} pairs")
    out = []
    for k in range(len(grid)):
        r = dict(min(runs[k], key=lambda x: x["seconds"]))
        r["trial_seconds"] = [x["seconds"] for x in runs[k]]
        r["gram_pair_s"] = min(grams[k]) if grams[k] else None
        out.append(r)
    return out


def scaling_plot(path: Path, extraction: list[dict], cka: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wordreps.common.atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    f = [r["factor"] for r in extraction]
    ax.plot(f, [r["seconds"] for r in extraction], "o-", label="wall s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(f)
    ax.set_xticklabels([f"{x}x" for x in f])
    ax.set_xlabel("corpus size (x demo, 105 s)")
    ax.set_ylabel("extraction seconds")
    ax2 = ax.twinx()
    ax2.plot(f, [r["rss_peak_kib"] / 1024 for r in extraction], "s--", color="tab:red", label="peak RSS MiB")
    ax2.set_ylabel("peak RSS (MiB)", color="tab:red")
    ax2.set_ylim(bottom=0)
    ax.set_title("toolkit extraction")
    ax = axes[1]
    dims = sorted({(r["d1"], r["d2"]) for r in cka})
    for d in dims:
        pts = sorted((r["rows"], r["seconds"]) for r in cka if (r["d1"], r["d2"]) == d)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"dims {d[0]}:{d[1]}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows (word occurrences)")
    ax.set_ylabel(f"seconds for {cka[0]['pairs']} layer pairs")
    ax.set_title("toolkit CKA (linear + debiased)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- report

def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def markdown(res: dict) -> str:
    s, b, c = res["seconds"], res["bytes"], res["corpus"]
    env = res["environment"]
    ag = res["agreement"]

    def ratio(a, k):
        return f"{a / k:.1f}x" if a and k else "-"

    lines = [
        f"Side by side on {env['device_name']} ({env['torch_threads']} torch threads, load average "
        f"{env['loadavg_start'][0]:.2f} at start, {env['loadavg_end'][0]:.2f} at end): model "
        f"{res['model']['name']} ({res['model']['layers']} layers x {res['model']['dim']}, random weights), demo "
        f"corpus x {c['repeat']} = {c['utterances']} utterances, {c['audio_s']:.0f} s of audio, {c['words']} words "
        f"({c['rows']} matrix rows). Each stage ran {res['trials']['count']} time(s) each way, alternating which "
        "went first; the fastest is shown.",
        "",
        "| stage | thesis approach | toolkit | speed-up | thesis on disk | toolkit on disk | smaller by |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| extraction, FLAC -> per-utterance files | {s['thesis_extract']:.2f} s "
        f"({c['audio_s'] / s['thesis_extract']:.0f}x real time) | {s['toolkit_extract']:.2f} s "
        f"({c['audio_s'] / s['toolkit_extract']:.0f}x real time) | {ratio(s['thesis_extract'], s['toolkit_extract'])} "
        f"| {human_bytes(b['thesis_per_utterance'])} (JSON) | {human_bytes(b['toolkit_per_utterance'])} (.npy fp16) "
        f"| {ratio(b['thesis_per_utterance'], b['toolkit_per_utterance'])} |",
        f"| matrix assembly, all {res['model']['layers']} layers | {s['thesis_matrices']:.2f} s | "
        f"{s['toolkit_matrices']:.2f} s | {ratio(s['thesis_matrices'], s['toolkit_matrices'])} | "
        f"{human_bytes(b['thesis_matrices'])} (JSON) | {human_bytes(b['toolkit_matrices'])} (.npy fp32) | "
        f"{ratio(b['thesis_matrices'], b['toolkit_matrices'])} |",
        f"| CKA, all {res['cka_pairs']} layer pairs each way | {s['thesis_cka_feature']:.2f} s (numpy float64) | "
        f"{s['toolkit_cka']:.2f} s (float32 products, float64 sums) | "
        f"{ratio(s['thesis_cka_feature'], s['toolkit_cka'])} | | | |",
    ]
    if s.get("thesis_cka_gram") is not None:
        lines.append(f"| CKA, thesis loop with n x n Gram matrices | {s['thesis_cka_gram']:.2f} s (numpy float64) | "
                     f"{s['toolkit_cka']:.2f} s | {ratio(s['thesis_cka_gram'], s['toolkit_cka'])} | | | |")
    total_t = s["thesis_extract"] + s["thesis_matrices"] + s["thesis_cka_feature"]
    total_k = s["toolkit_extract"] + s["toolkit_matrices"] + s["toolkit_cka"]
    lines += [
        f"| all three | {total_t:.2f} s | {total_k:.2f} s | {ratio(total_t, total_k)} | | | |",
        "",
        f"Toolkit model forward alone (same batches, audio in memory): {s['toolkit_model_only']:.2f} s "
        f"({c['audio_s'] / s['toolkit_model_only']:.0f}x real time). Toolkit matrix time includes writing the keys "
        "file; thesis CKA is the thesis's feature-space formula, re-reading both JSON matrices for every pair. "
        "Both CKA sides compute every (i, j) layer pair (the toolkit compares the matrices with a copy of "
        "themselves, so it does not stop at the pairs j >= i of a symmetric map).",
        "",
        "Agreement (thesis fp32 JSON vs toolkit):",
        "",
        "| compared | values | max abs difference | largest value | within float16 rounding |",
        "|---|---:|---:|---:|---|",
        f"| pooled vectors of {len(ag['pooled']['probes'])} words, all layers | {ag['pooled']['values']} | "
        f"{ag['pooled']['max_abs_diff']:.2e} | {ag['pooled']['max_abs_value']:.3g} | "
        f"{'yes' if ag['pooled']['within_fp16'] else 'NO'} |",
        f"| every matrix value | {ag['matrices']['values']} | {ag['matrices']['max_abs_diff']:.2e} | "
        f"{ag['matrices']['max_abs_value']:.3g} | {'yes' if ag['matrices']['within_fp16'] else 'NO'} |",
        f"| CKA values (feature form) | {res['cka_pairs']} | {ag['cka']['max_abs_diff_feature']:.2e} | 1 | "
        f"{'yes' if ag['cka']['max_abs_diff_feature'] <= ag['cka']['tolerance'] else 'NO'} "
        f"(tolerance {ag['cka']['tolerance']:g}) |",
    ]
    if ag["cka"]["max_abs_diff_gram"] is not None:
        lines.append(f"| CKA values (Gram form) | {res['cka_pairs']} | {ag['cka']['max_abs_diff_gram']:.2e} | 1 | "
                     f"{'yes' if ag['cka']['max_abs_diff_gram'] <= ag['cka']['tolerance'] else 'NO'} |")
    if res.get("scaling"):
        sc = res["scaling"]
        lines += ["", f"Scaling, toolkit extraction (--batch_seconds {res['batch_seconds']:g}; a fresh process per "
                  "size, fastest of the trials; peak RSS = VmHWM of that process, 'model loaded' = Python + torch + "
                  "model before the first batch):", "",
                  "| corpus | utterances | audio | words | seconds | x real time | peak RSS | RSS, model loaded | "
                  ".npy on disk |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sc["extraction"]:
            lines.append(f"| {r['factor']}x demo | {r['utterances']} | {r['audio_s']:.0f} s | {r['words']} | "
                         f"{r['seconds']:.2f} | {r['x_real_time']:.0f} | {r['rss_peak_kib'] / 1024:.0f} MiB | "
                         f"{r['rss_before_kib'] / 1024:.0f} MiB | {human_bytes(r['disk_bytes'])} |")
        first = sc["cka"][0]
        lines += ["", f"Scaling, toolkit CKA ({first['pairs']} layer pairs, linear + debiased, random data; the "
                  "last column is one pair in the thesis loop's Gram form, float64):", "",
                  "| rows | dims | seconds | pairs/s | GFLOP/s | Gram form, s per pair |",
                  "|---:|---|---:|---:|---:|---:|"]
        for r in sc["cka"]:
            g = f"{r['gram_pair_s']:.2f}" if r.get("gram_pair_s") is not None else "-"
            lines.append(f"| {r['rows']} | {r['d1']}:{r['d2']} | {r['seconds']:.2f} | {r['pairs_per_s']:.1f} | "
                         f"{r['gflops']:.1f} | {g} |")
    return "\n".join(lines) + "\n"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    _dims = _sibling("bench_cka.py")["_dims"]  # the D1:D2 argparse type, shared with bench_cka.py

    from wordreps.common.devices import device_arg

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int_range(1, 10000), default=16,
                   help="copies of the demo corpus (105 s each) to time on (default: %(default)s)")
    p.add_argument("--arch", choices=("tiny", "small"), default="tiny",
                   help="tiny: hidden 32, 2 blocks (tests' model); small: hidden 256, 6 blocks (default: tiny)")
    p.add_argument("--model", default=None, help="a Hugging Face speech encoder folder instead of --arch")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    p.add_argument("--trials", type=int_range(1, 100), default=2,
                   help="runs of each stage each way (and of each scaling point), alternating which goes first; "
                        "the fastest is reported (default: %(default)s)")
    p.add_argument("--threads", type=int_range(1, 1024), default=None,
                   help="torch CPU threads for both sides, the toolkit's CKA script included (default: torch's "
                        "choice, one per core); numpy's BLAS threads (the thesis side's CKA in numpy) are not limited by "
                        "it: set OMP_NUM_THREADS before the run for those")
    p.add_argument("--batch_seconds", type=float_range(0.0, 1e6, lo_open=True), default=200.0,
                   help="toolkit batch budget in seconds of audio (default: %(default)s)")
    p.add_argument("--out_dir", default="outputs/bench", help="results folder (default: %(default)s)")
    p.add_argument("--audio_root", default=str(DEMO_AUDIO), help="corpus audio root (default: the demo corpus)")
    p.add_argument("--textgrids", default=str(DEMO_TEXTGRIDS), help="TextGrid root (default: the demo's)")
    p.add_argument("--scaling", action="store_true", help="also time extraction at 1x/4x/16x and CKA vs rows/dims")
    p.add_argument("--scaling_factors", nargs="+", type=int_range(1, 10000), default=[1, 4, 16])
    p.add_argument("--cka_rows", nargs="+", type=int_range(4, 10**7), default=[2000, 4000, 8000],
                   help="rows for the CKA scaling table (default: %(default)s)")
    p.add_argument("--cka_dims", nargs="+", type=_dims, default=[(256, 192), (128, 96), (512, 384)],
                   help="D1:D2; the first is used for the rows sweep, the rest at the middle row count")
    p.add_argument("--cka_layers", nargs=2, type=int_range(1, 1000), default=[25, 13], metavar=("L1", "L2"))
    p.add_argument("--gram_max_rows", type=int_range(4, 10**6), default=8000,
                   help="largest n for which the n x n Gram form is timed (default: %(default)s)")
    p.add_argument("--cka_tol", type=float_range(0.0, 1.0), default=1e-3,
                   help="max |thesis - toolkit| CKA difference counted as agreement (default: %(default)s)")
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0)
    p.add_argument("--keep", action="store_true", help="keep the scratch folder <out_dir>/pipeline-work")
    p.add_argument("--_child_extract", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args._child_extract:
        return child_extract(args._child_extract)
    import torch

    from wordreps.common.devices import resolve_device

    try:
        device = resolve_device(args.device)
    except UserError as err:  # resolve_device's own reason (no GPU, an index past the visible ones, ...)
        raise UserError(f"{err}; or run the GPU commands in benchmarks/bench_pipeline.py's docstring on a GPU "
                        "machine") from None
    for path, what in ((args.audio_root, "--audio_root"), (args.textgrids, "--textgrids")):
        if not Path(path).is_dir():
            raise UserError(f"{what} {path} is not a folder; pass the corpus root (default: the bundled demo)")
    out_dir = Path(args.out_dir)
    work = out_dir / "pipeline-work"
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model_dir = Path(args.model)
        if not (model_dir / "config.json").is_file():
            raise UserError(f"--model {args.model} is not a Hugging Face model folder (no config.json)")
        args.arch = "custom"
    else:
        model_dir = build_model(args.arch, out_dir / "models", args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    started = time.perf_counter()
    res = run_side_by_side(args, device, model_dir, work)
    res["environment"] = {
        "device": str(device), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "loadavg_start": list(load_start),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"CPU ({os.cpu_count()} cores)",
    }
    if args.scaling:
        res["scaling"] = {"extraction": scaling_extraction(args, model_dir, work, args.scaling_factors),
                          "cka": scaling_cka(args, device)}
    res["environment"]["loadavg_end"] = list(os.getloadavg())
    res["environment"]["total_wall_s"] = time.perf_counter() - started
    write_json_atomic(out_dir / "bench_pipeline.json", res)
    md = markdown(res)
    write_text_atomic(out_dir / "bench_pipeline.md", md)
    if args.scaling:
        scaling_plot(out_dir / "bench_scaling.png", res["scaling"]["extraction"], res["scaling"]["cka"])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(md, end="")
    ag = res["agreement"]
    ok = ag["pooled"]["within_fp16"] and ag["matrices"]["within_fp16"] and ag["cka"]["agree"]
    print(f"agreement: {'thesis and toolkit agree' if ok else 'DISAGREE'}; wrote {out_dir / 'bench_pipeline.md'}, "
          f"{out_dir / 'bench_pipeline.json'} (total {res['environment']['total_wall_s']:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    run_cli(main)
