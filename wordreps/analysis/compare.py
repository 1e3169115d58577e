"""Every layer of one model against every layer of another (or the same) model, under the measures of
``measures.py``, with optional bootstrap confidence intervals and a permutation baseline, written as JSON, CSV
and a heatmap (``plots.py``).

Inputs are the assembled matrices ``<matrices_dir>/<slug>/layer_<i>.npy`` (rows = the keys file's word
occurrences). Both models must have been assembled from the same keys file (same sha256), so that row i is
the same occurrence on both sides.

Resampling (all seeded from ``--seed`` through independent streams, so adding bootstraps does not change
the permutations):
- bootstrap: B resamples of the n rows with replacement, the same rows on both sides. The 95% interval is
  one rule for every metric: point estimate + the 2.5th and 97.5th percentiles of (resampled value - the
  value of the bootstrap world), where the bootstrap world's value is the plug-in CKA of the full sample
  (the empirical distribution's CKA). For linear and RBF CKA the plug-in value is the point estimate itself,
  so this is the plain percentile interval. For debiased CKA it is linear CKA: an unbiased estimator's
  resamples centre on the plug-in value (resampled rows repeat), e.g. [0.034, 0.060] raw for a pair whose
  debiased value is -0.001 and linear value 0.06 at n = 245; re-centred, [-0.018, 0.016].
  Linear CKA is itself biased upwards by about sqrt(p q) / n for unrelated data, and resamples (with fewer
  distinct rows) more so: at small n / large dims its interval can sit above the point estimate; that is
  the estimator's bias showing, which debiased CKA removes.
- permutation baseline: P shuffles of model 2's rows (pairing each occurrence with a random other one);
  the mean and 95th percentile of the P values say what "no correspondence" looks like at this n and dims.
- RBF CKA uses one seeded sample of ``rbf_sample`` rows (an n x n Gram matrix per layer), RSA one of
  ``rsa_sample`` rows (an n x n RDM per layer); their bootstrap and permutations resample that sample.

Warnings an engine raises about the point estimates (:class:`wordreps.analysis.pairs.SampleSizeWarning`: too
few rows for CCA at these dimensions) are printed once each, as one line ``warning: ...`` on stderr; the same
warnings from the resampled calls are not repeated.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from wordreps.analysis import measures
from wordreps.analysis import reliability as R
from wordreps.analysis.plots import heatmap
from wordreps.common.atomic import (
    check_output_dir,
    write_json_atomic,
    write_text_atomic,
)
from wordreps.common.errors import UserError
from wordreps.embeddings.matrices import ModelMatrices, open_model_matrices

CSV_FIELDS = ["model1", "layer1", "model2", "layer2", "metric", "value", "ci_low", "ci_high", "perm_mean", "perm_p95",
              "note"]   # note: why a value is undefined ("value" is then nan)


@dataclass
class PairResult:
    metric: str
    values: np.ndarray
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    perm_mean: np.ndarray | None = None
    perm_p95: np.ndarray | None = None
    rows_used: int = 0


def _seeds(seed: int) -> tuple[np.random.Generator, np.random.Generator, int]:
    bootstrap, permutation, rbf = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(bootstrap), np.random.default_rng(permutation),
            int(rbf.generate_state(1)[0]))


def load_pair(matrices_dir: str | Path, model1: str, layers1: Sequence[int], model2: str,
              layers2: Sequence[int]) -> tuple[ModelMatrices, ModelMatrices, list[np.ndarray], list[np.ndarray]]:
    """Both models' matrices, checked: layers present, same rows and keys, no NaN/Inf rows."""
    m1 = open_model_matrices(matrices_dir, model1)
    m2 = open_model_matrices(matrices_dir, model2)
    m1.check_layers(layers1)
    m2.check_layers(layers2)
    if m1.num_rows != m2.num_rows:
        raise UserError(f"{m1.folder} has {m1.num_rows} rows but {m2.folder} has {m2.num_rows}: they were assembled "
                        "from different keys files; assemble both with the same --words_path")
    if m1.keys_sha256 != m2.keys_sha256:
        raise UserError(f"{m1.folder} and {m2.folder} were assembled from different keys files (sha256 "
                        f"{m1.keys_sha256[:12]} vs {m2.keys_sha256[:12]}); assemble both with the same --words_path")
    mats1 = [m1.load(i) for i in layers1]
    if m1.folder.resolve() == m2.folder.resolve():
        # one model with itself: reuse the layers already loaded (each load scans its file for NaN/Inf rows)
        loaded = dict(zip(layers1, mats1))
        mats2 = [loaded[j] if j in loaded else m2.load(j) for j in layers2]
    else:
        mats2 = [m2.load(j) for j in layers2]
    return m1, m2, mats1, mats2


def option_values(options: dict | None = None, **given) -> dict:
    """Every engine option (measures.OPTION_DEFAULTS), overridden by ``options`` and then by ``given``."""
    values = {**measures.OPTION_DEFAULTS, **(options or {}), **given}
    unknown = sorted(set(values) - set(measures.OPTION_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown measure option(s) {unknown}; known: {sorted(measures.OPTION_DEFAULTS)}")
    return values


def compute(mats1: list[np.ndarray], mats2: list[np.ndarray], metrics: Sequence[str], *, symmetric: bool,
            bootstrap: int = 0, permutations: int = 0, seed: int = 0, device="cpu", precision: str = "mixed",
            chunk_rows: int = 16384, progress: bool = False, options: dict | None = None) -> dict[str, PairResult]:
    """Point estimates, bootstrap percentiles and permutation baseline for every layer pair and metric.

    ``options`` holds the measures' engine options (names and defaults: ``measures.OPTION_DEFAULTS``); each
    engine call gets those its group's measures list.
    """
    n = mats1[0].shape[0]
    srcs1 = [(lambda a=a: a) for a in mats1]
    srcs2 = [(lambda a=a: a) for a in mats2]
    boot_rng, perm_rng, sample_seed = _seeds(seed)
    values = option_values(options)  # the one way options come in (RBF's sample and bandwidth among them)
    groups = measures.groups(metrics)
    steps = len(groups) * (1 + bootstrap + permutations) * len(mats1)
    bar = layer_bar(steps, progress)
    tick = (lambda: bar.update(1)) if bar is not None else None
    common = dict(device=device, precision=precision, chunk_rows=chunk_rows, progress=tick)
    results: dict[str, PairResult] = {}
    said: set[str] = set()
    for names in groups:
        spec = measures.measure(names[0])
        engine = spec.engine_function()
        own = {opt: values[opt] for m in names for opt in measures.measure(m).options}
        sample = None if spec.sample_option is None else sample_rows(n, int(values[spec.sample_option]), sample_seed)
        base = np.arange(n) if sample is None else sample
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            point = engine(srcs1, srcs2, names, rows1=sample, rows2=sample, symmetric=symmetric, **common, **own)
        _say_warnings(caught, said)
        boots: dict[str, list[np.ndarray]] = {m: [] for m in names}
        perms: dict[str, list[np.ndarray]] = {m: [] for m in names}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _sample_size_warning())  # said once, for the point estimates
            for _ in range(bootstrap):
                idx = base[boot_rng.integers(0, len(base), len(base))]
                res = engine(srcs1, srcs2, names, rows1=idx, rows2=idx, symmetric=symmetric, **common, **own)
                for m in names:
                    boots[m].append(res[m])
            for _ in range(permutations):
                shuffled = base[perm_rng.permutation(len(base))]
                res = engine(srcs1, srcs2, names, rows1=sample, rows2=shuffled, symmetric=False, **common, **own)
                for m in names:
                    perms[m].append(res[m])
        for m in names:
            r = PairResult(metric=m, values=point[m], rows_used=len(base))
            if bootstrap:
                stack = np.stack(boots[m])
                # re-centre on the point estimate: the bootstrap world's value is the plug-in one (module doc)
                world = measures.measure(m).bootstrap_world
                shift = point[m] - point[world] if world else 0.0
                with _quiet_all_nan():
                    r.ci_low = np.nanpercentile(stack, 2.5, axis=0) + shift
                    r.ci_high = np.nanpercentile(stack, 97.5, axis=0) + shift
            if permutations:
                stack = np.stack(perms[m])
                with _quiet_all_nan():  # an undefined cell is NaN in every resample: said once, in run()
                    r.perm_mean = np.nanmean(stack, axis=0)
                    r.perm_p95 = np.nanpercentile(stack, 95, axis=0)
            results[m] = r
    if bar is not None:
        bar.close()
    return {m: results[m] for m in metrics if m in results}


@contextlib.contextmanager
def _quiet_all_nan() -> Iterator[None]:
    """Without numpy's "All-NaN slice" / "Mean of empty slice" warnings: an undefined cell is NaN in every
    resample, and run() says why once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _sample_size_warning() -> type[Warning]:
    from wordreps.analysis.pairs import (
        SampleSizeWarning,  # imports torch: only once a comparison runs
    )

    return SampleSizeWarning


def _say_warnings(caught: list, said: set[str]) -> None:
    """Each warning an engine raised, once, as one line on stderr (others go back to Python's handling)."""
    kind = _sample_size_warning()
    for w in caught:
        if not issubclass(w.category, kind):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        line = " ".join(str(w.message).split())
        if line not in said:
            said.add(line)
            print(f"warning: {line}", file=sys.stderr, flush=True)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``min(n, size)`` distinct row indices (the rows of an n x n measure)."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def layer_bar(total: int, progress: bool, desc: str = "layers compared"):
    """A progress bar over layers on stderr (None when ``progress`` is off): the comparisons' and the probe's."""
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="layer", disable=None, leave=False, file=sys.stderr)


def _nan_to_none(a: np.ndarray | None):
    if a is None:
        return None
    return [[None if not math.isfinite(float(v)) else float(v) for v in row] for row in np.asarray(a)]


def _fmt(v) -> str:
    if v is None:
        return ""
    v = float(v)
    return "" if not math.isfinite(v) else format(v, ".10g")


def add_layer_pair_args(parser: argparse.ArgumentParser, *, names: Sequence[str], default: Sequence[str]
                        ) -> argparse.ArgumentParser:
    """The flags experiment_CKA.py and experiment_similarity.py share: the two models and their layers, the
    measures (``names``, ``default``), resampling, RBF sampling, device and precision, and ``--matrices_dir``.
    ``run(**layer_pair_kwargs(args))`` takes what they parse."""
    from wordreps.common.cli import float_range, int_range
    from wordreps.common.devices import DEVICE_HELP, device_arg

    parser.add_argument("--model1", required=True, help="first model (name as extracted, or its matrices folder)")
    parser.add_argument("--layer1", required=True, type=int_range(0, None), help="compare layers 0..LAYER1 of model1")
    parser.add_argument("--model2", required=True, help="second model (may equal model1: within-model map)")
    parser.add_argument("--layer2", required=True, type=int_range(0, None), help="compare layers 0..LAYER2 of model2")
    parser.add_argument("--metric", nargs="+", choices=list(names), default=list(default),
                        help="one or more of %(choices)s (default: " + " ".join(default) + ")")
    parser.add_argument("--bootstrap", type=int_range(0, 100000), default=0,
                        help="bootstrap resamples of the rows for a 95%% interval (default: 0, none)")
    parser.add_argument("--permutations", type=int_range(0, 100000), default=0,
                        help="shuffles of model2's rows for a no-correspondence baseline (default: 0, none)")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="seed of every resampling (default: 0)")
    parser.add_argument("--rbf_sample", type=int_range(4, 100000), default=measures.OPTION_DEFAULTS["rbf_sample"],
                        help="rows sampled (seeded) for RBF CKA, which needs n x n Gram matrices (default: %(default)s)")
    parser.add_argument("--rbf_sigma", type=float_range(0, None, lo_open=True),
                        default=measures.OPTION_DEFAULTS["rbf_sigma"],
                        help="RBF bandwidth as a multiple of the median distance (default: %(default)s)")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=measures.PRECISIONS, default="mixed",
                        help="mixed: float32 products summed in float64 over row chunks; float64: all float64 "
                             "(default: %(default)s)")
    parser.add_argument("--chunk_rows", type=int_range(64, 10**7), default=16384,
                        help="rows per float32 product before summing in float64 (default: %(default)s)")
    parser.add_argument("--matrices_dir", default="outputs/matrices", help="default: %(default)s")
    return parser


def layer_pair_kwargs(args: argparse.Namespace) -> dict:
    """``run``'s arguments from the flags of :func:`add_layer_pair_args` (and ``--out_dir``, ``--no_progress``)."""
    return dict(model1=args.model1, layer1=args.layer1, model2=args.model2, layer2=args.layer2,
                matrices_dir=args.matrices_dir, out_dir=args.out_dir, metrics=args.metric, bootstrap=args.bootstrap,
                permutations=args.permutations, seed=args.seed, rbf_sample=args.rbf_sample, rbf_sigma=args.rbf_sigma,
                device=args.device, precision=args.precision, chunk_rows=args.chunk_rows,
                progress=not args.no_progress)


def run(model1: str, layer1: int, model2: str, layer2: int, *, matrices_dir: str | Path = "outputs/matrices",
        out_dir: str | Path = "outputs/results/cka", metrics: Sequence[str] = ("linear",), bootstrap: int = 0,
        permutations: int = 0, seed: int = 0, rbf_sample: int = 5000, rbf_sigma: float = 0.8,
        device: str = "auto", precision: str = "mixed", chunk_rows: int = 16384, progress: bool = True,
        options: dict | None = None, correspondence: bool = False) -> dict[str, dict[str, Path]]:
    """The thesis comparison: layers 0..layer1 of model1 against 0..layer2 of model2; returns the files written.

    ``options``: the measures' engine options (``measures.OPTION_DEFAULTS``); each measure's own are recorded
    in its JSON's settings. ``correspondence``: also write ``correspondence.{png,csv}`` (for each layer of
    model 1, the best-matching layer of model 2 under every measure whose JSON is in the folder).
    """
    metrics = list(dict.fromkeys(metrics))
    layers1 = list(range(layer1 + 1))
    layers2 = list(range(layer2 + 1))
    m1, m2, mats1, mats2 = load_pair(matrices_dir, model1, layers1, model2, layers2)
    if m1.num_rows < 4:
        raise UserError(f"{m1.folder} has {m1.num_rows} rows; comparing layers needs at least 4 word occurrences "
                        "(write the keys from more utterances)")
    from wordreps.common.devices import resolve_device

    torch_device = resolve_device(device)
    folder = check_output_dir(Path(out_dir) / f"{m1.slug}__vs__{m2.slug}", "results folder")  # before computing
    symmetric = m1.folder.resolve() == m2.folder.resolve() and layers1 == layers2
    # degenerate inputs are said before the work, and marked in every output (reliability.py)
    const1 = R.constant_layers(mats1, layers1)
    const2 = const1 if symmetric else R.constant_layers(mats2, layers2)
    warned = [R.few_rows_warning(m1.num_rows, "layer similarities, bootstrap intervals and permutation baselines")]
    warned += [R.constant_layer_warning(m1.slug, i, m1.num_rows) for i in const1]
    warned += [] if symmetric else [R.constant_layer_warning(m2.slug, j, m2.num_rows) for j in const2]
    warned = [w for w in warned if w]
    R.say(warned)
    values = option_values(options, rbf_sample=rbf_sample, rbf_sigma=rbf_sigma)
    results = compute(mats1, mats2, metrics, symmetric=symmetric, bootstrap=bootstrap, permutations=permutations,
                      seed=seed, device=torch_device, precision=precision, chunk_rows=chunk_rows,
                      progress=progress, options=values)
    settings = {"seed": seed, "bootstrap": bootstrap, "permutations": permutations, "rbf_sample": rbf_sample,
                "rbf_sigma": rbf_sigma, "precision": precision, "device": str(torch_device),
                "ci": "percentile bootstrap over rows, 2.5-97.5" if bootstrap else None,
                "baseline": "model 2 rows permuted; mean and 95th percentile" if permutations else None}
    written: dict[str, dict[str, Path]] = {}
    for metric, res in results.items():
        spec = measures.measure(metric)
        # a measure's own options beside the thesis's fields (CKA's files keep exactly theirs)
        own = {opt: values[opt] for opt in spec.options if not opt.startswith("rbf_")}
        if spec.sample_option and not spec.sample_option.startswith("rbf_"):
            own[spec.sample_option] = res.rows_used
        undefined = R.undefined_cells(res.values, layers1, layers2, const1, const2, m1.slug, m2.slug, metric,
                                      m1.num_rows)
        for arr in (res.ci_low, res.ci_high, res.perm_mean, res.perm_p95):
            for a, b in undefined:
                if arr is not None:
                    arr[a, b] = np.nan
        written[metric] = write_outputs(folder, metric, res, m1, m2, layers1, layers2, {**settings, **own},
                                        undefined=undefined, warning_lines=warned)
    if correspondence:
        written["correspondence"] = write_correspondence(folder, like=metrics[0])
    return written


def best_matches(values: list[list[float | None]]) -> list[int | None]:
    """For each row (a layer of model 1), the column (layer of model 2) of the highest value; None if all are NaN."""
    out: list[int | None] = []
    for row in values:
        finite = [(v, j) for j, v in enumerate(row) if v is not None and math.isfinite(v)]
        out.append(max(finite)[1] if finite else None)
    return out


def write_correspondence(folder: Path, like: str | None = None) -> dict[str, Path]:
    """``correspondence.{csv,png}`` from the measures' JSONs in ``folder`` (the layer-correspondence figure):
    those made on the same layers and keys as ``like``'s JSON (a measure just computed; default: the first
    found), so that results an earlier run left there for other layers or keys do not displace this run's."""
    import json

    from wordreps.analysis.plots import correspondence_plot

    found = []
    for spec in measures.MEASURES:
        path = folder / f"{spec.name}.json"
        if path.is_file():
            found.append((spec, json.loads(path.read_text())))
    if not found:
        raise UserError(f"no measure's results in {folder}; run experiments/experiment_similarity.py first")
    first = next((r for s, r in found if s.name == like), found[0][1])
    found = [(s, r) for s, r in found if r["model1"]["layers"] == first["model1"]["layers"]
             and r["model2"]["layers"] == first["model2"]["layers"] and r["keys_sha256"] == first["keys_sha256"]]
    layers1, layers2 = first["model1"]["layers"], first["model2"]["layers"]
    best = {s.name: best_matches(r["values"]) for s, r in found}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model1", "layer1", "model2", "measure", "best_layer2", "value"])
    for spec, res in found:
        for a, b in enumerate(best[spec.name]):
            value = None if b is None else res["values"][a][b]
            writer.writerow([first["model1"]["name"], layers1[a], first["model2"]["name"], spec.name,
                             "" if b is None else layers2[b], _fmt(value)])
    paths = {"csv": folder / "correspondence.csv", "png": folder / "correspondence.png"}
    write_text_atomic(paths["csv"], buf.getvalue())
    lines = {spec.title: [None if b is None else layers2[b] for b in best[spec.name]] for spec, _ in found}
    correspondence_plot(paths["png"], lines, layers1, layers2, f"{first['model1']['name']} layer",
                        f"best-matching {first['model2']['name']} layer",
                        f"{first['model1']['name']} vs {first['model2']['name']}: layer correspondence, "
                        f"n = {first['num_rows']}")
    return paths


def write_outputs(folder: Path, metric: str, res: PairResult, m1: ModelMatrices, m2: ModelMatrices,
                  layers1: list[int], layers2: list[int], settings: dict,
                  undefined: dict[tuple[int, int], str] | None = None, warning_lines: Sequence[str] = ()
                  ) -> dict[str, Path]:
    """``<metric>.json``, ``.csv`` and ``.png``. ``undefined``: (index1, index2) -> why that cell has no value
    (JSON ``undefined`` as [layer1, layer2, reason], CSV ``value`` nan with the reason in ``note``, a hatched
    heatmap cell); ``warning_lines``: what was said on stderr, kept in the JSON."""
    import numpy
    import torch

    undefined = undefined or {}

    info = {
        "format": "wordreps.cka", "version": 1, "metric": metric, "metric_name": measures.measure(metric).title,
        # "name" is the matrices folder's slug (what plots, CSV and summaries show); "model" is the model's full
        # name from matrices.json (a hub name, or for a local model its filesystem path)
        "model1": {"name": m1.slug, "slug": m1.slug, "model": m1.name, "matrices": str(m1.folder),
                   "layers": layers1, "dim": m1.dim},
        "model2": {"name": m2.slug, "slug": m2.slug, "model": m2.name, "matrices": str(m2.folder),
                   "layers": layers2, "dim": m2.dim},
        "num_rows": m1.num_rows, "rows_used": res.rows_used, "keys_sha256": m1.keys_sha256,
        "keys_path": m1.info.get("keys_path"), "settings": {**settings, "rbf_sample": res.rows_used
                                                            if metric == "rbf" else None,
                                                            "rbf_sigma": settings["rbf_sigma"] if metric == "rbf" else None},
        "values": _nan_to_none(res.values), "ci_low": _nan_to_none(res.ci_low), "ci_high": _nan_to_none(res.ci_high),
        "perm_mean": _nan_to_none(res.perm_mean), "perm_p95": _nan_to_none(res.perm_p95),
        "undefined": [[layers1[a], layers2[b], why] for (a, b), why in sorted(undefined.items())],
        "warnings": list(warning_lines),
        "versions": {"numpy": numpy.__version__, "torch": torch.__version__},
    }
    paths = {"json": folder / f"{metric}.json", "csv": folder / f"{metric}.csv", "png": folder / f"{metric}.png"}
    write_json_atomic(paths["json"], info)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for a, i in enumerate(layers1):
        for b, j in enumerate(layers2):
            extra = [None if arr is None else arr[a, b] for arr in (res.ci_low, res.ci_high, res.perm_mean, res.perm_p95)]
            note = undefined.get((a, b), "")
            value = "nan" if note else _fmt(res.values[a, b])
            writer.writerow([m1.slug, i, m2.slug, j, metric, value, *map(_fmt, extra), note])
    write_text_atomic(paths["csv"], buf.getvalue())
    title = f"{m1.slug} vs {m2.slug}\n{measures.measure(metric).title}, n = {res.rows_used}"
    heatmap(paths["png"], res.values, layers1, layers2, f"{m1.slug} layer", f"{m2.slug} layer", title,
            measures.measure(metric).title)
    return paths
