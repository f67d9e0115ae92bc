"""Tables and figures of a probe run (the ``results`` dict of :class:`~wmlib.probes.Report`).

Every number is printed with its 95 % interval; every figure has error bars (Wilson or bootstrap).
"""

from __future__ import annotations

__all__ = ["format_table", "plot_report", "curve", "memory_table"]


def _ci(d: dict, fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(d['value'])} [{fmt.format(d['low'])}, {fmt.format(d['high'])}]"


def _split(key: str) -> tuple[str, str]:
    task, _, policy = key.partition("@")
    return task, policy or "full"


def curve(results: dict, task: str, policy: str = "full", metric: str = "partial") -> tuple[list, list]:
    """(lengths, estimate dicts) of a task's score against its length axis."""
    r = results["results"][task if policy == "full" else f"{task}@{policy}"]
    table = next((v for k, v in r.items() if k.startswith("by_") and k != "by_n"), None)
    if table is None:
        raise ValueError(f"{task} has no length axis")
    xs = sorted(table, key=float)
    return [int(x) for x in xs], [table[x][metric] for x in xs]


def memory_table(results: dict, rule: str = "by_point") -> str:
    """Effective lengths of each task (rows) under each KV policy (columns)."""
    policies = results["config"]["kv_policies"]
    rows = []
    for key, r in results["results"].items():
        task, policy = _split(key)
        if "effective_length" in r and policy == policies[0]:
            rows.append(task)
    if not rows:
        return ""
    width = max(len(t) for t in rows + ["task"])
    cols = [max(len(p), 6) for p in policies]
    head = f"{'task':<{width}}  " + "  ".join(f"{p:>{w}}" for p, w in zip(policies, cols))
    lines = [f"effective length ({rule.replace('by_', 'by ')}, threshold "
             f"{results['config']['threshold']:.1%} on partial)", head, "-" * len(head)]
    for task in rows:
        cells = []
        for p, w in zip(policies, cols):
            r = results["results"].get(task if p == "full" else f"{task}@{p}")
            e = None if r is None else r["effective_length"]
            value = "n/a" if e is None else ("<" + str(e["lengths"][0]) if e[rule] is None else str(e[rule]))
            cells.append(f"{value:>{w}}")
        lines.append(f"{task:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def format_table(results: dict) -> str:
    """The whole run as plain text: a score table per axis kind, n-back, and the memory table."""
    cfg = results["config"]
    lines = [f"{cfg['model']} | chat template {cfg['chat_template']} | {cfg['dtype']} | {cfg['device']} | "
             f"seed {cfg['seed']} | partial match with 95% CI"]
    groups: dict = {}
    for key, r in results["results"].items():
        axis = next((k for k in r if k.startswith("by_") and k != "by_n"), None)
        if axis:
            groups.setdefault(axis, []).append((key, r))
    for axis, rows in groups.items():
        xs = sorted({x for _, r in rows for x in r[axis]}, key=float)
        name = "effective_" + axis[3:]
        width = max(len(k) for k, _ in rows)
        head = f"{'task':<{width}}  " + "  ".join(f"{axis[3:] + ' ' + x:>16}" for x in xs) + "  effective"
        lines += ["", head, "-" * len(head)]
        for key, r in rows:
            short = {str(c.get(axis[3:])) for c in r.get("skipped_cells", [])}
            cells = [f"{_ci(r[axis][x]['partial']) if x in r[axis] else 'too short' if x in short else '':>16}"
                     for x in xs]
            e = r[name]
            eff = ("<" + str(e["lengths"][0]) if e["by_point"] is None else str(e["by_point"]))
            if "span" in r:
                eff += f" (span {r['span']:.1f})"
            lines.append(f"{key:<{width}}  " + "  ".join(cells) + f"  {eff:>9}")
    for key, r in results["results"].items():
        if "by_n" not in r:
            continue
        lines += ["", f"{key}: {r['alias']}",
                  f"{'n':>3}  {'accuracy':>18}  {'hit rate':>18}  {'false alarms':>18}  {'d-prime (blocks)':>20}"
                  f"  {'AUC of margins':>18}"]
        for n, s in r["by_n"].items():
            lines.append(f"{n:>3}  {_ci(s['accuracy']):>18}  {_ci(s['hit_rate']):>18}  "
                         f"{_ci(s['false_alarm_rate']):>18}  {_ci(s['dprime']):>20}  {_ci(s['auc']):>18}")
    if len(cfg["kv_policies"]) > 1:
        lines += ["", memory_table(results)]
    return "\n".join(lines)


def plot_report(results: dict, path=None):
    """Needle heatmaps (exact match by length and depth), score curves with error bars (one line
    per KV policy), n-back d' and digit-span curves. Saved to ``path`` when given."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    res = results["results"]
    policies = results["config"]["kv_policies"]
    heat = [k for k, r in res.items() if "@" not in k and r.get("cells") and "depth" in r["cells"][0]["cell"]]
    curves = sorted({_split(k)[0] for k, r in res.items() if "by_length" in r})
    spans = [k for k, r in res.items() if "by_digits" in r and "@" not in k]
    nback = [k for k, r in res.items() if "by_n" in r]
    panels = len(heat) + len(curves) + (1 if spans else 0) + len(nback)
    if panels == 0:
        raise ValueError("nothing to plot")
    ncols = min(3, panels)
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    axes = list(axes.flat)
    i = 0
    for key in heat:
        ax = axes[i]
        i += 1
        cells = res[key]["cells"]
        lengths = sorted({c["cell"]["length"] for c in cells})
        depths = sorted({c["cell"]["depth"] for c in cells})
        m = np.full((len(depths), len(lengths)), np.nan)
        text = {}
        for c in cells:
            r, col = depths.index(c["cell"]["depth"]), lengths.index(c["cell"]["length"])
            m[r, col] = c["exact"]["value"]
            text[r, col] = f"{c['exact']['value']:.0%}\n[{c['exact']['low']:.0%},{c['exact']['high']:.0%}]"
        ax.imshow(m, vmin=0, vmax=1, cmap="RdYlBu", aspect="auto")
        for (r, col), t in text.items():
            ax.text(col, r, t, ha="center", va="center", fontsize=6.5,
                    color="white" if abs(m[r, col] - 0.5) > 0.3 else "black")
        ax.set_xticks(range(len(lengths)), labels=lengths)
        ax.set_yticks(range(len(depths)), labels=[f"{d:g}" for d in depths])
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("depth (0 = start)")
        ax.set_title(f"{key}: exact match, 95% CI", fontsize=9)
    for task in curves:
        ax = axes[i]
        i += 1
        for p in policies:
            if (task if p == "full" else f"{task}@{p}") not in res:
                continue
            xs, ests = curve(results, task, p)
            y = np.array([e["value"] for e in ests])
            err = np.array([[e["value"] - e["low"] for e in ests], [e["high"] - e["value"] for e in ests]])
            ax.errorbar(xs, y, yerr=err, marker="o", capsize=3, label=p)
        ax.axhline(results["config"]["threshold"], ls=":", color="grey", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("partial match")
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=7)
    if spans:
        ax = axes[i]
        i += 1
        for key in spans:
            table = res[key]["by_digits"]
            xs = sorted(table, key=int)
            ests = [table[x]["exact"] for x in xs]
            err = np.array([[e["value"] - e["low"] for e in ests], [e["high"] - e["value"] for e in ests]])
            ax.errorbar([int(x) for x in xs], [e["value"] for e in ests], yerr=err, marker="o", capsize=3,
                        label=key.replace("digit_span_", ""))
        ax.axhline(0.5, ls=":", color="grey", lw=1)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("list length (digits)")
        ax.set_ylabel("exact recall")
        ax.set_title("digit span", fontsize=9)
        ax.legend(fontsize=7)
    for key in nback:
        ax = axes[i]
        i += 1
        by_n = res[key]["by_n"]
        ns = sorted(by_n, key=int)
        d = [by_n[n]["dprime"] for n in ns]
        err = np.array([[e["value"] - e["low"] for e in d], [e["high"] - e["value"] for e in d]])
        ax.errorbar([int(n) for n in ns], [e["value"] for e in d], yerr=err, marker="o", capsize=3)
        ax.axhline(0, ls=":", color="grey", lw=1)
        ax.set_xticks([int(n) for n in ns])
        ax.set_xlabel("n (0 = control)")
        ax.set_ylabel("d' (mean over blocks)")
        ax.set_title(f"{key}: sensitivity, 95% CI", fontsize=9)
    for ax in axes[i:]:
        ax.axis("off")
    fig.suptitle(f"{results['config']['model']}: probes (error bars: 95% intervals)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
