"""Figures the book draws more than once: attention heatmaps, grids of them, and an interactive
attention view that works in a static web page."""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["attention_heatmap", "attention_grid", "attention_html"]


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


_WIDGET_JS = r"""
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var data = JSON.parse(document.getElementById("%(id)s-data").textContent);
  var W = data.weights, n = data.tokens.length;
  var sel = {}, current = null;
  function option(select, value, text) {
    var o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o);
  }
  ["a", "b"].forEach(function (k) { sel[k] = root.querySelector("select[data-axis=" + k + "]"); });
  data.a_labels.forEach(function (t, i) { option(sel.a, i, t); });
  if (sel.b) {
    data.b_labels.forEach(function (t, i) { option(sel.b, i, t); });
    option(sel.b, -1, "mean of all");
  }
  var mode = root.querySelector("select[data-axis=mode]");
  var box = root.querySelector(".wm-tokens"), caption = root.querySelector(".wm-caption");
  var spans = data.tokens.map(function (t, i) {
    var s = document.createElement("span");
    s.className = "wm-token"; s.textContent = t; s.tabIndex = 0; s.dataset.i = i;
    box.appendChild(s); box.appendChild(document.createTextNode(" "));
    return s;
  });
  function matrix() {  // the (L, L) weights for the chosen view
    var a = +sel.a.value;
    if (!sel.b) return W[a];
    var b = +sel.b.value;
    if (b >= 0) return W[a][b];
    var heads = W[a], m = [];
    for (var i = 0; i < n; i++) {
      m.push([]);
      for (var j = 0; j < n; j++) {
        var s = 0; for (var h = 0; h < heads.length; h++) s += heads[h][i][j];
        m[i].push(s / heads.length);
      }
    }
    return m;
  }
  function show(i) {
    current = i;
    var m = matrix(), from = mode.value === "from";
    var row = [];
    for (var j = 0; j < n; j++) row.push(from ? m[i][j] : m[j][i]);
    var top = Math.max.apply(null, row.concat([1e-9]));
    spans.forEach(function (s, j) {
      var alpha = row[j] / top;
      s.style.background = "rgba(33, 102, 172, " + alpha.toFixed(3) + ")";
      s.style.color = alpha > 0.55 ? "#fff" : "";
      s.style.outline = j === i ? "2px solid #d6604d" : "";
      s.title = (from ? "weight from the selected token: " : "weight to the selected token: ") + row[j].toFixed(3);
    });
    var order = row.map(function (w, j) { return [w, j]; }).sort(function (x, y) { return y[0] - x[0]; });
    var who = "\u201c" + data.tokens[i] + "\u201d (position " + i + ")";
    var best = order.slice(0, 3).map(function (p) {
      return data.tokens[p[1]] + " (" + p[1] + ") " + p[0].toFixed(2);
    });
    caption.textContent = (from ? who + " attends to: " : "attention received by " + who + " from: ") + best.join(", ");
  }
  spans.forEach(function (s, i) {
    s.addEventListener("mouseenter", function () { show(i); });
    s.addEventListener("focus", function () { show(i); });
    s.addEventListener("click", function () { show(i); });
  });
  [sel.a, sel.b, mode].forEach(function (e) {
    if (e) e.addEventListener("change", function () { if (current !== null) show(current); });
  });
  show(data.initial);
})();
"""

_WIDGET_CSS = """
#%(id)s { font-family: sans-serif; border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 0.8em;
          margin: 0.5em 0; max-width: 100%%; }
#%(id)s .wm-controls { font-size: 0.9em; margin-bottom: 0.5em; }
#%(id)s .wm-controls label { margin-right: 1em; }
#%(id)s .wm-tokens { line-height: 2.1; font-family: monospace; }
#%(id)s .wm-token { padding: 0.15em 0.3em; border-radius: 3px; cursor: pointer; white-space: pre; }
#%(id)s .wm-caption { font-size: 0.85em; margin-top: 0.4em; min-height: 1.3em; }
"""


def attention_html(tokens: Sequence[str], weights, labels: Sequence[str] | None = None,
                   head_labels: Sequence[str] | None = None, title: str | None = None,
                   initial: int | None = None, decimals: int = 3, max_bytes: int = 1_500_000) -> str:
    """A self-contained HTML+JavaScript view of attention weights: hover (or tap, or tab to) a
    token to shade every token by the attention between them, for the view chosen in dropdowns.

    ``weights`` is (layers, heads, L, L), giving a layer and a head dropdown (``labels`` and
    ``head_labels`` name their entries; default "0", "1", ...), or (views, L, L), giving one
    dropdown named by ``labels`` (e.g. "layer 17, head 3"). ``tokens`` has L entries. A third
    dropdown switches between the attention *from* the hovered token and *to* it.

    The weights travel as inline JSON rounded to ``decimals`` digits; no file, network or kernel is
    needed, so the view works offline in a static page. Show it with
    ``IPython.display.HTML(attention_html(...))``.
    """
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, float)
    if w.ndim not in (3, 4) or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"weights must be (layers, heads, L, L) or (views, L, L); got shape {w.shape}")
    L = w.shape[-1]
    tokens = [str(t) for t in tokens]
    if len(tokens) != L:
        raise ValueError(f"{len(tokens)} tokens for weights over {L} positions (shape {w.shape})")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or infinite values")
    a_labels = [str(x) for x in (labels if labels is not None else range(w.shape[0]))]
    b_labels = [str(x) for x in (head_labels if head_labels is not None else range(w.shape[1]))] if w.ndim == 4 else []
    if len(a_labels) != w.shape[0] or (w.ndim == 4 and len(b_labels) != w.shape[1]):
        raise ValueError(f"{len(a_labels)} labels and {len(b_labels)} head labels for weights of shape {w.shape}")
    initial = L - 1 if initial is None else int(initial)
    if not 0 <= initial < L:
        raise ValueError(f"initial={initial} is not a position in 0..{L - 1}")
    payload = {"tokens": tokens, "weights": np.round(w, decimals).tolist(), "a_labels": a_labels,
               "b_labels": b_labels, "initial": initial}
    # "<" is written as \u003c so that no token can close the <script> element that holds the JSON.
    blob = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    if len(blob.encode()) > max_bytes:
        raise ValueError(f"the view would embed {len(blob.encode()) / 1e6:.1f} MB of weights (max_bytes={max_bytes}): "
                         "pass fewer layers/heads or a shorter text, or lower decimals")
    wid = "wmlib-attn-" + hashlib.sha1(blob.encode()).hexdigest()[:10]
    if w.ndim == 4:
        selects = ('<label>layer <select data-axis="a"></select></label>'
                   '<label>head <select data-axis="b"></select></label>')
    else:
        selects = '<label>view <select data-axis="a"></select></label>'
    heading = f"<div><strong>{_escape(title)}</strong></div>" if title else ""
    return (
        f'<div class="wmlib-attention" id="{wid}">{heading}'
        f"<style>{_WIDGET_CSS % {'id': wid}}</style>"
        f'<div class="wm-controls">{selects}<label>show <select data-axis="mode">'
        '<option value="from">attention from the token</option>'
        '<option value="to">attention to the token</option></select></label></div>'
        '<div class="wm-tokens"></div><div class="wm-caption"></div>'
        f'<script type="application/json" id="{wid}-data">{blob}</script>'
        f"<script>{_WIDGET_JS % {'id': wid}}</script></div>"
    )


def _escape(text: str) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
