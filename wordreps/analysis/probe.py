"""Linear probes: is a per-occurrence label (by default, which word it is) linearly decodable from a layer?

For each layer of one model's assembled matrices (``layer_<i>.npy``, rows = the keys file's occurrences), a
multinomial logistic regression (softmax regression) predicts the label of each occurrence:

- **task**: word identity among the K most frequent words of the keys file (default K = 500; other rows are
  left out), or any per-occurrence label from a file (:func:`read_label_file`), again its K most frequent
  labels;
- **split**: seeded, by group, so that no group has rows on both sides: groups are utterances (default) or
  speakers (the first field of a LibriSpeech id speaker-chapter-utterance); a fraction of the groups
  (default 0.2, rounded up) goes to the test side (the rule of scikit-learn's GroupShuffleSplit);
- **classifier**: features standardised with the training rows' mean and standard deviation, then
  softmax regression minimising mean cross-entropy + (l2 / 2) ||W||_F^2 (intercepts not penalised), the
  objective of scikit-learn's LogisticRegression with C = 1 / (n_train l2), fitted full batch with L-BFGS in
  torch (float32, strong Wolfe line search; GPU when present): 65 s against scikit-learn's 89 s for one layer
  of 10,000 rows x 1024 dims x 500 classes on the 2-core CPU (docs/measures.md); ``implementation="sklearn"``
  fits the same objective with scikit-learn;
- **scores** on the test rows: accuracy and macro-F1 (the mean F1 over the classes present among the test
  rows, as sklearn.metrics.f1_score(labels=those classes, average="macro")); test rows of a class never seen
  in training count as errors. Baselines: the majority class of the training rows (its test accuracy and
  macro-F1) and chance, 1 / number of classes.

References: Alain & Bengio (2017), "Understanding intermediate layers using linear classifier probes"
(ICLR workshop); Belinkov (2022), "Probing Classifiers: Promises, Shortcomings, and Advances", Computational
Linguistics 48(1) (probes need baselines and held-out groups to mean anything).
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from wordreps.common.atomic import check_output_dir, write_json_atomic, write_text_atomic
from wordreps.common.errors import UserError
from wordreps.embeddings.matrices import Keys, ModelMatrices, load_keys

SPLIT_BY = ("utterance", "speaker")
TOP_K = 500
TEST_FRACTION = 0.2
L2 = 1e-3
MAX_ITER = 100
CSV_FIELDS = ["model", "layer", "task", "accuracy", "macro_f1", "train_accuracy", "majority_accuracy",
              "majority_macro_f1", "chance_accuracy", "num_classes", "train_rows", "test_rows", "iterations"]


# ---------------------------------------------------------------------------------------------- tasks

@dataclass
class ProbeTask:
    """Which rows of the matrices are probed and their labels: ``labels[k]`` is the class of matrix row ``rows[k]``."""
    name: str
    rows: np.ndarray            # indices into the keys/matrix rows, ascending
    labels: np.ndarray          # int64 class index per selected row
    classes: list[str]          # class index -> label text, most frequent first
    description: dict = field(default_factory=dict)


def _most_frequent(values: Sequence[str], top_k: int) -> list[str]:
    """The ``top_k`` most frequent values, most frequent first; ties broken alphabetically (deterministic)."""
    counts = Counter(values)
    return sorted(counts, key=lambda v: (-counts[v], v))[:top_k]


def _task(name: str, row_labels: list[str | None], top_k: int, description: dict) -> ProbeTask:
    present = [v for v in row_labels if v is not None]
    classes = _most_frequent(present, top_k)
    index = {c: k for k, c in enumerate(classes)}
    rows = np.array([i for i, v in enumerate(row_labels) if v in index], dtype=np.int64)
    labels = np.array([index[row_labels[i]] for i in rows], dtype=np.int64)
    if len(classes) < 2:
        raise UserError(f"the {name} task has {len(classes)} class(es) among {len(present)} labelled rows; a probe "
                        "needs at least 2 (check the labels file, or a larger corpus)")
    return ProbeTask(name=name, rows=rows, labels=labels, classes=classes,
                     description={**description, "top_k": top_k, "num_classes": len(classes),
                                  "rows": int(rows.size), "labelled_rows": len(present)})


def word_identity_task(keys: Keys, top_k: int = TOP_K) -> ProbeTask:
    """Word identity among the ``top_k`` most frequent words of the keys file (rows of other words left out)."""
    return _task(f"words-top{top_k}", list(keys.words), top_k, {"kind": "word identity"})


def read_label_file(path: str | Path, keys: Keys) -> tuple[list[str | None], dict]:
    """Per-row labels from a TSV file ``utterance_id <TAB> position <TAB> label`` (position as in the keys file).

    Blank lines and lines starting with ``#`` are skipped. Keys rows without a line stay unlabelled (left
    out); a line naming an occurrence that is not in the keys is counted and ignored; a malformed line or an
    occurrence given twice is a UserError naming its line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"labels file {path} does not exist; give a TSV file: utterance id, position, label") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"labels file {path} cannot be read as UTF-8 text ({err}); give a TSV file: utterance id, "
                        "position, label") from err
    where = {(utt, pos): i for i, (utt, pos, _) in enumerate(keys.rows)}
    labels: list[str | None] = [None] * len(keys.rows)
    seen: dict[tuple[str, int], int] = {}
    unknown = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 3 or not parts[1].strip().isdigit() or not parts[2].strip():
            raise UserError(f"labels file {path}, line {lineno}: {line[:60]!r} is not 'utterance id<TAB>position"
                            "<TAB>label' (position a whole number, as in the keys file); fix that line")
        key = (parts[0].strip(), int(parts[1]))
        if key in seen:
            raise UserError(f"labels file {path}, line {lineno}: occurrence {key} is labelled again (first on line "
                            f"{seen[key]}); give each occurrence one label")
        seen[key] = lineno
        if key not in where:
            unknown += 1
            continue
        labels[where[key]] = parts[2].strip()
    if not any(v is not None for v in labels):
        raise UserError(f"labels file {path} labels none of the {len(keys.rows)} occurrences of keys file {keys.path}; "
                        "its utterance ids and positions must match the keys file's rows")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return labels, {"labels_path": str(path), "labels_sha256": digest, "lines_not_in_keys": unknown}


def label_file_task(path: str | Path, keys: Keys, top_k: int = TOP_K) -> ProbeTask:
    labels, info = read_label_file(path, keys)
    return _task(Path(path).stem, labels, top_k, {"kind": "labels", **info})


# ---------------------------------------------------------------------------------------------- split

def group_of(utt_id: str, by: str) -> str:
    """The group of an utterance: itself, or its speaker (LibriSpeech ids are speaker-chapter-utterance)."""
    if by == "utterance":
        return utt_id
    if by == "speaker":
        parts = utt_id.split("-")
        if len(parts) != 3 or not all(parts):
            raise UserError(f"--split_by speaker needs LibriSpeech utterance ids speaker-chapter-utterance, but "
                            f"{utt_id!r} is not one; use --split_by utterance")
        return parts[0]
    raise ValueError(f"split_by must be one of {SPLIT_BY}, got {by!r}")


def split_by_group(groups: Sequence[str], test_fraction: float = TEST_FRACTION, seed: int = 0) -> np.ndarray:
    """Boolean test mask: a seeded ceil(test_fraction x #groups) of the groups are test, the rest train."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise UserError(f"the probed rows come from {len(names)} group(s); a split with no group on both sides needs "
                        "at least 2 (use --split_by utterance, or more data)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(len(names) - 1, max(1, math.ceil(test_fraction * len(names))))
    order = np.random.default_rng(seed).permutation(len(names))
    test_groups = {names[k] for k in order[:n_test]}
    return np.array([g in test_groups for g in groups], dtype=bool)


# ---------------------------------------------------------------------------------------------- scores

def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of F1 = 2 TP / (2 TP + FP + FN)."""
    classes = np.unique(y_true)
    if classes.size == 0:
        return float("nan")
    size = int(max(y_true.max(), y_pred.max())) + 1
    tp = np.bincount(y_true[y_true == y_pred], minlength=size).astype(np.float64)
    pred_count = np.bincount(y_pred, minlength=size).astype(np.float64)
    true_count = np.bincount(y_true, minlength=size).astype(np.float64)
    f1 = 2 * tp[classes] / (pred_count[classes] + true_count[classes])
    return float(f1.mean())


# ---------------------------------------------------------------------------------------------- classifier

@dataclass
class Fit:
    weight: np.ndarray          # d x C, for standardised features
    bias: np.ndarray            # C
    mean: np.ndarray            # d, training mean
    scale: np.ndarray           # d, training standard deviation (1 where constant)
    iterations: int
    seconds: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float32) - self.mean) / self.scale
        return np.argmax(Z @ self.weight + self.bias, axis=1)


def standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column (float64 sums), the deviation 1 where a column is constant."""
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def fit_softmax_torch(X: np.ndarray, y: np.ndarray, num_classes: int, *, l2: float = L2, max_iter: int = MAX_ITER,
                      device="cpu", tol: float = 1e-6) -> Fit:
    """Multinomial logistic regression, mean cross-entropy + (l2 / 2) ||W||^2, full-batch L-BFGS in torch."""
    import torch
    import torch.nn.functional as F

    from wordreps.common.precision import exact_float32

    start = time.perf_counter()
    mean, scale = standardiser(X)
    Z = torch.from_numpy((np.asarray(X, dtype=np.float32) - mean) / scale).to(device)
    target = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    W = torch.zeros((Z.shape[1], num_classes), dtype=torch.float32, device=device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float32, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, max_eval=max_iter * 5 // 4 + 1, history_size=20,
                            tolerance_grad=tol, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Z @ W + b, target) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    with exact_float32():   # full float32 products on a GPU too (no TF32), as the measures' engines
        opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    return Fit(weight=W.detach().cpu().numpy(), bias=b.detach().cpu().numpy(), mean=mean, scale=scale,
               iterations=iterations, seconds=time.perf_counter() - start)


def fit_softmax_sklearn(X: np.ndarray, y: np.ndarray, num_classes: int, *, l2: float = L2,
                        max_iter: int = MAX_ITER, device="cpu", tol: float = 1e-6) -> Fit:
    """The same objective with scikit-learn's LogisticRegression (lbfgs, float64): C = 1 / (n l2), and
    C = 2 / (n l2) for two classes: sklearn's binary form fits one vector w = W_1 - W_0 penalised by ||w||^2 / 2,
    while at the softmax optimum W_1 = -W_0 = w / 2, so (l2 / 2) ||W||_F^2 = (l2 / 4) ||w||^2."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    mean, scale = standardiser(X)
    Z = (np.asarray(X, dtype=np.float32) - mean) / scale
    binary = len(np.unique(y)) == 2
    model = LogisticRegression(C=(2.0 if binary else 1.0) / (len(y) * l2), max_iter=max_iter, tol=tol).fit(Z, y)
    weight = np.zeros((Z.shape[1], num_classes), dtype=np.float32)
    bias = np.full(num_classes, -np.inf, dtype=np.float32)   # classes absent from training are never predicted
    if len(model.classes_) == 2:   # sklearn's binary form: one weight vector for class 1 against class 0
        coef = np.r_[-model.coef_ / 2, model.coef_ / 2]
        intercept = np.r_[-model.intercept_ / 2, model.intercept_ / 2]
    else:
        coef, intercept = model.coef_, model.intercept_
    weight[:, model.classes_] = coef.T
    bias[model.classes_] = intercept
    return Fit(weight=weight, bias=bias, mean=mean, scale=scale, iterations=int(np.max(model.n_iter_)),
               seconds=time.perf_counter() - start)


IMPLEMENTATIONS: dict[str, Callable[..., Fit]] = {"torch": fit_softmax_torch, "sklearn": fit_softmax_sklearn}


# ---------------------------------------------------------------------------------------------- probing

@dataclass
class LayerScore:
    layer: int
    accuracy: float
    macro_f1: float
    train_accuracy: float
    iterations: int
    seconds: float


@dataclass
class ProbeResult:
    task: ProbeTask
    split_by: str
    test_fraction: float
    seed: int
    test_mask: np.ndarray
    layers: list[LayerScore]
    baselines: dict
    classifier: dict


def baselines(y_train: np.ndarray, y_test: np.ndarray, num_classes: int) -> dict:
    """Majority class of the training rows scored on the test rows, and chance (1 / number of classes)."""
    majority = int(np.bincount(y_train, minlength=num_classes).argmax())
    constant = np.full_like(y_test, majority)
    return {"majority_class": majority, "majority_accuracy": accuracy(y_test, constant),
            "majority_macro_f1": macro_f1(y_test, constant), "chance_accuracy": 1.0 / num_classes}


def probe_layers(matrices: ModelMatrices, keys: Keys, task: ProbeTask, layers: Sequence[int], *,
                 split_by: str = "utterance", test_fraction: float = TEST_FRACTION, seed: int = 0, l2: float = L2,
                 max_iter: int = MAX_ITER, implementation: str = "torch", device="cpu",
                 progress: Callable[[], None] | None = None) -> ProbeResult:
    """Fit and score one probe per layer on one seeded group split (the same split for every layer)."""
    if matrices.keys_sha256 != keys.sha256:
        raise UserError(f"{matrices.folder} was assembled from another keys file than {keys.path} (sha256 "
                        f"{matrices.keys_sha256[:12]} vs {keys.sha256[:12]}); pass the keys file it was made from")
    groups = [group_of(keys.rows[int(r)][0], split_by) for r in task.rows]
    test = split_by_group(groups, test_fraction, seed)
    y_train, y_test = task.labels[~test], task.labels[test]
    num_classes = len(task.classes)
    fit = IMPLEMENTATIONS[implementation]
    scores: list[LayerScore] = []
    for layer in layers:
        X = np.asarray(matrices.load(layer)[task.rows], dtype=np.float32)
        model = fit(X[~test], y_train, num_classes, l2=l2, max_iter=max_iter, device=device)
        predicted = model.predict(X[test])
        scores.append(LayerScore(layer=int(layer), accuracy=accuracy(y_test, predicted),
                                 macro_f1=macro_f1(y_test, predicted),
                                 train_accuracy=accuracy(y_train, model.predict(X[~test])),
                                 iterations=model.iterations, seconds=model.seconds))
        del X
        if progress is not None:
            progress()
    classifier = {"kind": "multinomial logistic regression on standardised features", "implementation": implementation,
                  "l2": l2, "max_iter": max_iter, "objective": "mean cross-entropy + l2/2 ||W||^2"}
    return ProbeResult(task=task, split_by=split_by, test_fraction=test_fraction, seed=seed, test_mask=test,
                       layers=scores, baselines=baselines(y_train, y_test, num_classes), classifier=classifier)


# ---------------------------------------------------------------------------------------------- outputs

def _num(v: float):
    return None if not math.isfinite(v) else float(v)


def output_folder(out_dir: str | Path, matrices: ModelMatrices) -> Path:
    """``<out_dir>/<slug>``, checked as a place to write (call it before the fits: they take minutes)."""
    return check_output_dir(Path(out_dir) / matrices.slug, "results folder")


def write_outputs(out_dir: str | Path, matrices: ModelMatrices, keys: Keys, res: ProbeResult,
                  device: str) -> dict[str, Path]:
    """``<out_dir>/<slug>/probe_<task>.{json,csv,png}``; returns the paths."""
    import numpy
    import torch

    folder = output_folder(out_dir, matrices)
    stem = f"probe_{res.task.name}"
    paths = {"json": folder / f"{stem}.json", "csv": folder / f"{stem}.csv", "png": folder / f"{stem}.png"}
    def groups(rows: np.ndarray) -> list[str]:
        return sorted({group_of(keys.rows[int(r)][0], res.split_by) for r in rows})

    test_groups = groups(res.task.rows[res.test_mask])
    info = {
        "format": "wordreps.probe", "version": 1,
        "model": {"name": matrices.slug, "slug": matrices.slug, "model": matrices.name,
                  "matrices": str(matrices.folder), "dim": matrices.dim},
        "task": {"name": res.task.name, **res.task.description, "classes": res.task.classes},
        "num_rows": matrices.num_rows, "keys_sha256": keys.sha256, "keys_path": str(keys.path),
        "split": {"by": res.split_by, "test_fraction": res.test_fraction, "seed": res.seed,
                  "train_rows": int((~res.test_mask).sum()), "test_rows": int(res.test_mask.sum()),
                  "train_groups": len(groups(res.task.rows[~res.test_mask])), "test_groups": len(test_groups),
                  "test_group_ids": test_groups},
        "classifier": {**res.classifier, "device": device},
        "baselines": {k: (_num(v) if isinstance(v, float) else v) for k, v in res.baselines.items()},
        "layers": [{"layer": s.layer, "accuracy": _num(s.accuracy), "macro_f1": _num(s.macro_f1),
                    "train_accuracy": _num(s.train_accuracy), "iterations": s.iterations,
                    "seconds": round(s.seconds, 3)} for s in res.layers],
        "versions": {"numpy": numpy.__version__, "torch": torch.__version__},
    }
    write_json_atomic(paths["json"], info)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    b = res.baselines
    for s in res.layers:
        writer.writerow([matrices.slug, s.layer, res.task.name, f"{s.accuracy:.6g}", f"{s.macro_f1:.6g}",
                         f"{s.train_accuracy:.6g}", f"{b['majority_accuracy']:.6g}", f"{b['majority_macro_f1']:.6g}",
                         f"{b['chance_accuracy']:.6g}", len(res.task.classes), info["split"]["train_rows"],
                         info["split"]["test_rows"], s.iterations])
    write_text_atomic(paths["csv"], buf.getvalue())
    line_plot(paths["png"], res, f"{matrices.slug}: linear probe, {res.task.name}\n"
                                 f"{len(res.task.classes)} classes, split by {res.split_by}, "
                                 f"{info['split']['test_rows']} test rows")
    return paths


def line_plot(path: Path, res: ProbeResult, title: str) -> None:
    """Accuracy and macro-F1 across layers, with the majority-class and chance baselines (``plots.probe_plot``)."""
    from wordreps.analysis.plots import probe_plot

    probe_plot(path, [s.layer for s in res.layers], [s.accuracy for s in res.layers],
               [s.macro_f1 for s in res.layers], res.baselines["majority_accuracy"], res.baselines["chance_accuracy"],
               title)


def open_keys_for(matrices: ModelMatrices, words_path: str | Path | None) -> Keys:
    """The keys file the matrices were assembled from (matrices.json's keys_path unless ``words_path``)."""
    path = words_path or matrices.info.get("keys_path")
    if not path:
        raise UserError(f"{matrices.folder}/matrices.json names no keys file; pass --words_path")
    return load_keys(path)
