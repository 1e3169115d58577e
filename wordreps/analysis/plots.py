"""Figures for papers: layer-by-layer heatmaps and ASIF's accuracy-versus-k curves, PNG written atomically."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from wordreps.common.atomic import atomic_path

ANNOTATE_MAX_LAYERS = 14   # both sides at most this many layers: every cell's value is written in it
TICK_LABELS_MAX = 30       # more layers than this on a side: tick labels thinned to about this many


def _ticks(layers: list[int]) -> tuple[list[int], list[str]]:
    step = max(1, math.ceil(len(layers) / TICK_LABELS_MAX))
    pos = list(range(0, len(layers), step))
    return pos, [str(layers[p]) for p in pos]


def heatmap(path: Path, values: np.ndarray, layers1: list[int], layers2: list[int], xlabel: str, ylabel: str,
            title: str, value_label: str = "CKA") -> None:
    """Model 1's layers along x, model 2's along y (origin lower left), colour bar from min(0, values) to 1.

    Small grids (both sides <= ANNOTATE_MAX_LAYERS) carry each cell's value (2 decimals) in a colour that
    contrasts with the cell; a NaN cell is left blank. Every layer is labelled up to TICK_LABELS_MAX a side.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    annotate = len(layers1) <= ANNOTATE_MAX_LAYERS and len(layers2) <= ANNOTATE_MAX_LAYERS
    cell = 0.42 if annotate else 0.28
    width = 2.8 + cell * len(layers1)
    height = 2.0 + cell * len(layers2)
    fig, ax = plt.subplots(figsize=(max(4.5, min(width, 14)), max(4.0, min(height, 14))))
    image = ax.imshow(values.T, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=1.0,
                      interpolation="nearest")
    pos, labels = _ticks(layers1)
    ax.set_xticks(pos)
    ax.set_xticklabels(labels, fontsize=7)
    pos, labels = _ticks(layers2)
    ax.set_yticks(pos)
    ax.set_yticklabels(labels, fontsize=7)
    if annotate:
        fontsize = 7 if max(len(layers1), len(layers2)) <= 8 else 6
        for a in range(len(layers1)):
            for b in range(len(layers2)):
                v = values[a, b]
                if not math.isfinite(v):
                    continue
                r, g, bl, _ = image.cmap(image.norm(v))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * bl > 0.5 else "white"
                ax.text(a, b, f"{v:.2f}", ha="center", va="center", fontsize=fontsize, color=colour)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    cbar = fig.colorbar(image, ax=ax)
    cbar.set_label(value_label)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def correspondence_plot(path: Path, lines: dict[str, list[int | None]], layers1: list[int], layers2: list[int],
                        xlabel: str, ylabel: str, title: str) -> None:
    """One line per measure: for each layer of model 1 (x), the best-matching layer of model 2 (y).

    Lines are nudged apart vertically by a small fixed amount each, so that measures that agree stay visible;
    a layer with no value under a measure (all NaN) is a gap in its line.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, min(3.0 + 0.3 * len(layers1), 12)), max(4.0, min(2.5 + 0.2 * len(layers2), 9))))
    markers = "osD^vP*Xh<>"
    nudge = 0.08 if len(lines) > 1 else 0.0
    for k, (label, best) in enumerate(lines.items()):
        offset = (k - (len(lines) - 1) / 2) * nudge
        ys = [np.nan if b is None else b + offset for b in best]
        ax.plot(layers1, ys, marker=markers[k % len(markers)], ms=4, lw=1.2, label=label)
    ax.plot(layers1, np.interp(layers1, [layers1[0], layers1[-1]], [layers2[0], layers2[-1]]) if len(layers1) > 1
            else [layers2[0]], color="grey", ls=":", lw=1, label="proportional depth")
    pos, labels = _ticks(layers1)
    ax.set_xticks([layers1[p] for p in pos])
    ax.set_xticklabels(labels, fontsize=7)
    pos, labels = _ticks(layers2)
    ax.set_yticks([layers2[p] for p in pos])
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(layers2[0] - 0.5, layers2[-1] + 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def plot_sweep(path: Path, rows: list[dict], chance: dict) -> None:
    """Top-1 and top-5 accuracy against k, one line per p, one column per direction; chance dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directions = list(dict.fromkeys(r["direction"] for r in rows))
    ps = sorted({r["p"] for r in rows})
    fig, axes = plt.subplots(2, len(directions), figsize=(5.0 * len(directions), 6.5), squeeze=False, sharex=True)
    for col, direction in enumerate(directions):
        for row, metric in enumerate(("top1", "top5")):
            ax = axes[row][col]
            for p in ps:
                pts = sorted((r["k"], r[metric]) for r in rows if r["direction"] == direction and r["p"] == p)
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=f"p = {p:g}")
            ax.axhline(chance[metric], color="grey", linestyle=":", label="chance")
            ax.set_ylabel(f"{'top-1' if metric == 'top1' else 'top-5'} accuracy")
            ax.set_title(direction.replace("_", " "), fontsize=10)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("k (anchors kept per relative representation)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
