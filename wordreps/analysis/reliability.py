"""Degenerate inputs of a comparison, said rather than left blank: constant layers and very few rows.

- A layer whose rows are all equal (all zero, or a model that ignores its input) has no variance: every CKA
  with it is 0/0, undefined, and so is every other measure of the table (correlations, CCA, RSA). Its cells are marked undefined (JSON ``undefined``, CSV ``note``, a hatched
  heatmap cell) and a warning names the model and the layer.
- With few rows (a single utterance gives about 20 word occurrences) every figure is noise-dominated: linear
  CKA of unrelated layers is biased upwards by about sqrt(p q) / n (see compare.py's module doc), bootstrap
  resamples hold few distinct rows, and ASIF holds out a handful of queries. Below :data:`MIN_RELIABLE_ROWS` a warning gives the count.

Warnings go to stderr as ``warning: ...`` lines (before the comparison runs) and into the results' JSON.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from wordreps.analysis.measures import measure

MIN_RELIABLE_ROWS = 100


def is_constant(matrix: np.ndarray, chunk_rows: int = 8192) -> bool:
    """True when every row of ``matrix`` equals the first (exactly); reads a memory map chunk by chunk and stops
    at the first chunk with a different row."""
    if matrix.shape[0] == 0:
        return True
    first = np.asarray(matrix[0])
    for start in range(0, matrix.shape[0], chunk_rows):
        if not (np.asarray(matrix[start:start + chunk_rows]) == first).all():
            return False
    return True


def constant_layers(mats: Sequence[np.ndarray], layers: Sequence[int]) -> list[int]:
    """The layer numbers (from ``layers``) whose matrices have all rows equal."""
    return [layer for layer, mat in zip(layers, mats) if is_constant(mat)]


def constant_layer_warning(model: str, layer: int, num_rows: int, what: str = "every similarity") -> str:
    return (f"{model} layer {layer}: all {num_rows} rows are equal (no variance), so {what} with it is undefined; "
            "its cells are marked undefined (JSON 'undefined', CSV 'note', hatched in the heatmap)")


def few_rows_warning(num_rows: int, what: str) -> str | None:
    """A warning for fewer than :data:`MIN_RELIABLE_ROWS` rows, or None."""
    if num_rows >= MIN_RELIABLE_ROWS:
        return None
    return (f"only {num_rows} rows (shared occurrences): {what} on so few rows are unreliable (noise and the "
            f"estimators' small-sample bias dominate below {MIN_RELIABLE_ROWS}); use more utterances")


def say(warnings: Sequence[str]) -> None:
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr, flush=True)


def undefined_cells(values: np.ndarray, layers1: Sequence[int], layers2: Sequence[int], const1: Sequence[int],
                    const2: Sequence[int], model1: str, model2: str, metric: str, num_rows: int
                    ) -> dict[tuple[int, int], str]:
    """(index1, index2) -> why that cell is undefined: a constant layer on either side, else a value the
    estimator could not give (the measure table's ``undefined_when``: e.g. the debiased estimate of a layer's
    similarity with itself not positive at this n).
    Cells with a constant layer are set to NaN in ``values`` (in place), whatever rounding left there."""
    out: dict[tuple[int, int], str] = {}
    for a, i in enumerate(layers1):
        for b, j in enumerate(layers2):
            if i in const1 or j in const2:
                which = f"{model1} layer {i}" if i in const1 else f"{model2} layer {j}"
                out[a, b] = f"{which} has all rows equal"
                values[a, b] = np.nan
            elif not np.isfinite(values[a, b]):
                out[a, b] = f"{metric} has no value here at n = {num_rows}: {measure(metric).undefined_when}"
    return out
