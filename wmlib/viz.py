"""Figures the book draws more than once: attention heatmaps and grids of them."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["attention_heatmap", "attention_grid"]


def _as_2d(weights) -> np.ndarray:
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, float)
    if w.ndim != 2:
        raise ValueError(f"weights must be a 2-D (queries, keys) matrix; got shape {w.shape}. "
                         "Select one batch element and head first, e.g. weights[0, head].")
    return w


def attention_heatmap(weights, keys: Sequence[str] | None = None, queries: Sequence[str] | None = None,
                      ax=None, title: str | None = None, annotate: bool | None = None, cmap: str = "Blues",
                      vmax: float | None = None):
    """Draw one (queries, keys) attention matrix with token labels; returns the matplotlib Axes.

    Rows are queries (who is looking), columns keys (what is looked at). ``annotate`` writes the
    weights in the cells (default: when the matrix is at most 12 x 12). ``queries`` defaults to
    ``keys`` (self-attention).
    """
    w = _as_2d(weights)
    queries = keys if queries is None else queries
    for name, labels, n in (("keys", keys, w.shape[1]), ("queries", queries, w.shape[0])):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{len(labels)} {name} labels for a matrix with {n} {name} (shape {w.shape})")
    if ax is None:
        size = min(0.45 * max(w.shape) + 2, 10)
        _, ax = plt.subplots(figsize=(size, size * w.shape[0] / max(w.shape[1], 1) + 0.3))
    im = ax.imshow(w, cmap=cmap, vmin=0, vmax=vmax if vmax is not None else max(float(w.max()), 1e-9),
                   aspect="auto")
    if keys is not None:
        ax.set_xticks(range(w.shape[1]), labels=list(keys), rotation=90)
    if queries is not None:
        ax.set_yticks(range(w.shape[0]), labels=list(queries))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if annotate is None:
        annotate = max(w.shape) <= 12
    if annotate:
        top = w.max() if w.size else 1
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if w[i, j] > 0.6 * top else "black")
    if title:
        ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def attention_grid(weights, tokens: Sequence[str] | None = None, row_label: str = "layer",
                   col_label: str = "head", cell_size: float = 1.8, cmap: str = "Blues"):
    """Small multiples of a (rows, cols, L, L) stack of attention maps (e.g. layers x heads).

    Returns the matplotlib Figure. Token labels are drawn on the first column and last row only.
    """
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, float)
    if w.ndim != 4:
        raise ValueError(f"weights must be (rows, cols, queries, keys); got shape {w.shape}")
    rows, cols = w.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cell_size * cols, cell_size * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(w[r, c], cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{col_label} {c}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{row_label} {r}", fontsize=9)
            if tokens is not None and r == rows - 1:
                ax.set_xticks(range(len(tokens)), labels=list(tokens), rotation=90, fontsize=6)
            if tokens is not None and c == 0:
                ax.set_yticks(range(len(tokens)), labels=list(tokens), fontsize=6)
    fig.tight_layout()
    return fig
