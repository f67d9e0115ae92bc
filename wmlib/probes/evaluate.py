"""Run probe tasks on a model and summarise them: intervals, effective lengths, logs, a table.

:func:`evaluate` is what ``wmlib probe run`` calls. It returns a :class:`Report` whose ``results``
is a JSON-able dict laid out after lm-evaluation-harness (``results`` per task with each metric
and its interval, ``configs``, ``versions``, ``config`` of the run, the environment) plus the
per-cell estimates, the effective lengths and, with several KV policies, the memory-systems table;
``samples`` holds one record per item (the per-sample log).

Every rate carries a 95 % interval from :mod:`wmlib.stats`: Wilson for a proportion of items
(exact match, or partial credit when every item is all-or-nothing), a bootstrap over items for
means of partial credit, a bootstrap over blocks for d'.

**Effective length** (RULER, Hsieh et al. 2024): the longest length L such that the task's score
(``partial``, RULER's metric) is above a threshold at L and at every shorter length tested.
RULER's threshold is 85.6 %, the score of Llama-2-7B at 4K tokens on RULER. Two readings are kept:
``by_point`` compares the point estimate with the threshold (RULER's rule), ``by_interval``
asks the whole 95 % interval to lie above it (a length is effective only if the measurement
shows it).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import stats
from ._core import ProbeLM, roc_auc
from .memory import PolicySpec, parse_policy, score_under_policies
from .tasks import Task, item_prompt_ids, render_conversation, score_item

__all__ = ["RULER_THRESHOLD", "Report", "evaluate", "estimate", "document_curve", "effective_length", "run_task"]

RULER_THRESHOLD = 0.856  # Llama-2-7B's RULER average at 4K tokens (Hsieh et al. 2024)
METRICS = ("exact", "partial", "chars")


def estimate(values, groups=None) -> stats.Estimate:
    """A score's mean with its interval: Wilson when every value is 0 or 1, else a bootstrap.
    With ``groups`` (one label per value), the interval counts clusters (:mod:`wmlib.stats`)."""
    values = [float(v) for v in values]
    if all(v in (0.0, 1.0) for v in values):
        return stats.rate([v == 1.0 for v in values], groups=groups)
    return stats.bootstrap_mean(values, groups=groups)


def document_curve(task_result: dict, metric: str = "partial", axis: str = "length") -> dict:
    """A task's curve over ``axis`` from the items a report stores per cell, each interval counted
    by document: the items one haystack document carries (needles at several depths) share its
    text, so they are not independent. Returns {axis value: Estimate}."""
    by: dict = {}
    for c in task_result["cells"]:
        values, docs = by.setdefault(c["cell"][axis], ([], []))
        values.extend(c["items"][metric])
        docs.extend(c["items"]["doc_id"])
    return {value: estimate(values, groups=docs) for value, (values, docs) in sorted(by.items())}


def effective_length(curve: dict, threshold: float = RULER_THRESHOLD) -> dict:
    """The longest length whose score, and every shorter one's, is above ``threshold``.

    ``curve`` maps lengths to :class:`~wmlib.stats.Estimate` s. Returns ``by_point`` (point
    estimates above the threshold, RULER's rule) and ``by_interval`` (whole intervals above it);
    None where even the shortest length fails.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold!r}")
    if not curve:
        raise ValueError("the curve is empty")
    out = {"threshold": threshold, "lengths": sorted(curve)}
    for rule, passes in (("by_point", lambda e: e.value > threshold), ("by_interval", lambda e: e.above(threshold))):
        best = None
        for length in sorted(curve):
            if not passes(curve[length]):
                break
            best = length
        out[rule] = best
    return out


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _summarise_greedy(task: Task, items, metrics: list[dict], threshold: float) -> dict:
    cells: dict = {}
    for it, m in zip(items, metrics):
        cells.setdefault(json.dumps(it.cell, sort_keys=True), (it.cell, [], []))[1].append(m)
        cells[json.dumps(it.cell, sort_keys=True)][2].append(it.doc_id)
    # per cell: the estimates, and each document's scores (doc_id order), for paired comparisons
    by_cell = [{"cell": cell, "n": len(ms), **{k: estimate([m[k] for m in ms]).to_dict() for k in METRICS},
                "items": {"doc_id": ids, **{k: [round(float(m[k]), 4) for m in ms] for k in METRICS}}}
               for cell, ms, ids in cells.values()]
    axis = task.length_axis
    by_length, curve = {}, {}
    if axis:
        for value in sorted({it.cell[axis] for it in items}):
            ms = [m for it, m in zip(items, metrics) if it.cell[axis] == value]
            ests = {k: estimate([m[k] for m in ms]) for k in METRICS}
            curve[value] = ests["partial"]
            by_length[str(value)] = {"n": len(ms), **{k: e.to_dict() for k, e in ests.items()}}
    overall = {k: estimate([m[k] for m in metrics]) for k in METRICS}
    out = {"alias": task.description, "n": len(metrics)}
    for k, e in overall.items():
        out[k] = e.value
        out[f"{k}_ci95"] = [e.low, e.high]
    out["chance"] = task.chance
    out["cells"] = by_cell
    if axis:
        out["by_" + axis] = by_length
        out["effective_" + axis] = effective_length(curve, threshold)
        if task.group == "span":
            from .digit_span import span_from_curve

            out["span"] = span_from_curve(list(curve), [e.value for e in curve.values()])
    return out


def _summarise_stream(task, blocks, responses, margins) -> dict:
    out = {"alias": task.description, "n": sum(len(b.letters) for b in blocks), "chance": task.chance, "by_n": {}}
    right_all = []
    for n in sorted({b.n for b in blocks}):
        rows = [i for i, b in enumerate(blocks) if b.n == n]
        hit = fa = miss = cr = 0
        block_d, block_auc, right = [], [], []
        for i in rows:
            b = blocks[i]
            said = [r == "m" for r in responses[i]]
            h = sum(s and t for s, t in zip(said, b.targets))
            f = sum(s and not t for s, t in zip(said, b.targets))
            ms = sum((not s) and t for s, t in zip(said, b.targets))
            c = sum((not s) and (not t) for s, t in zip(said, b.targets))
            hit, fa, miss, cr = hit + h, fa + f, miss + ms, cr + c
            block_d.append(stats.dprime(h, ms, f, c))
            block_auc.append(roc_auc(margins[i], b.targets))
            right += [s == t for s, t in zip(said, b.targets)]
        right_all += right
        d = stats.bootstrap_mean(block_d)
        out["by_n"][str(n)] = {
            "blocks": len(rows), "trials": len(right),
            "accuracy": stats.rate(right).to_dict(),
            "hit_rate": stats.wilson(hit, hit + miss).to_dict(),
            "false_alarm_rate": stats.wilson(fa, fa + cr).to_dict(),
            "dprime": d.to_dict(),
            "dprime_pooled": stats.dprime(hit, miss, fa, cr),
            # threshold-free: how often a target's margin log p(m) - log p(-) beats a non-target's
            "auc": stats.bootstrap_mean(block_auc).to_dict(),
        }
    acc = stats.rate(right_all)
    out["exact"], out["exact_ci95"] = acc.value, [acc.low, acc.high]
    return out


@dataclass
class TaskRun:
    """What one task produced under each policy: ``summary[policy]`` and the per-item log."""

    task: Task
    settings: dict
    summary: dict
    samples: list
    example: dict
    seconds: float


def run_task(lm: ProbeLM, task: Task, settings: dict, seed: int = 0, policies=("full",),
             threshold: float = RULER_THRESHOLD) -> TaskRun:
    """Generate a task's items, score them under each policy, summarise with intervals."""
    specs = [p if isinstance(p, PolicySpec) else parse_policy(p) for p in policies]
    start = time.perf_counter()
    samples, summary = [], {}
    if task.kind == "stream":
        from .n_back import _turns, render_turns, run_blocks

        blocks = task.blocks(settings, seed)
        responses, margins = run_blocks(lm, blocks)
        summary["full"] = _summarise_stream(task, blocks, responses, margins)
        for b, r, m in zip(blocks, responses, margins):
            samples.append({"task": task.name, "kv_policy": "full", "doc_id": b.doc_id, "cell": {"n": b.n},
                            "doc": {"letters": "".join(b.letters), "cue": b.cue},
                            "target": "".join("m" if t else "-" for t in b.targets), "resps": "".join(r),
                            "margins": [round(x, 4) for x in m],
                            "exact": sum((x == "m") == t for x, t in zip(r, b.targets)) / len(r)})
        first = blocks[0]
        example = {"prompt": render_turns(lm, _turns(first, ["-"] * 2)), "responses": "m or -"}
        return TaskRun(task, settings, summary, samples, example, time.perf_counter() - start)

    skipped: list = []
    items = task.items(lm, settings, seed, skipped)
    prompts = [item_prompt_ids(lm, it) for it in items]
    answers = [lm.encode(it.answer) for it in items]
    for it, p, a in zip(items, prompts, answers):
        lm.check_fits(len(p) + len(a), f"{task.name} ({', '.join(f'{k}={v}' for k, v in it.cell.items())})")
    scored = score_under_policies(lm, prompts, answers, specs, desc=task.name)
    for spec in specs:
        metrics = [score_item(lm, it, a, pred, lp) for it, a, (pred, lp) in zip(items, answers, scored[spec.label])]
        summary[spec.label] = _summarise_greedy(task, items, metrics, threshold)
        if skipped:
            summary[spec.label]["skipped_cells"] = skipped  # too short for the instructions
        for it, p, m in zip(items, prompts, metrics):
            text = render_conversation(lm, it.messages, it.prefix) if len(it.messages) == 1 else None
            samples.append({"task": task.name, "kv_policy": spec.label, "doc_id": it.doc_id, "cell": it.cell,
                            "doc": it.meta, "prompt_tokens": len(p),
                            "prompt": text if text is not None else lm.tokenizer.decode(p),
                            "prompt_hash": _hash(lm.tokenizer.decode(p)),
                            "target": it.answer, "target_parts": it.part_texts, "resps": m["greedy"],
                            **{k: m[k] for k in ("exact", "partial", "chars", "logprob")}})
    it = items[0]
    user = it.messages[-1]["content"]
    example = {"prompt": user if len(user) < 600 else user[:300] + " [...] " + user[-300:], "prefix": it.prefix,
               "answer": it.answer, "turns": len(it.messages)}
    return TaskRun(task, settings, summary, samples, example, time.perf_counter() - start)


# --------------------------------------------------------------------------------------- the report
@dataclass
class Report:
    """The outcome of :func:`evaluate`: ``results`` (JSON-able, lm-eval layout) and ``samples``."""

    results: dict
    samples: list = field(default_factory=list)

    def task(self, name: str, policy: str = "full") -> dict:
        key = name if policy == "full" else f"{name}@{policy}"
        if key not in self.results["results"]:
            raise KeyError(f"no results for {key!r}; have {sorted(self.results['results'])}")
        return self.results["results"][key]

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.results, indent=indent)

    def write(self, output_path, log_samples: bool = False) -> list[Path]:
        """``results_<date>.json`` (and ``samples_<task>_<date>.jsonl``) in ``output_path``/<model>;
        a path ending in ``.json`` is the results file itself (samples beside it)."""
        out = Path(output_path)
        stamp = self.results["date"].replace(":", "-")
        model = self.results["config"]["model"].strip("/").replace("/", "__")
        if out.suffix == ".json":
            folder, results_file = out.parent, out
        else:
            folder = out / model
            results_file = folder / f"results_{stamp}.json"
        folder.mkdir(parents=True, exist_ok=True)
        results_file.write_text(self.to_json() + "\n")
        written = [results_file]
        if log_samples:
            by_task: dict = {}
            for s in self.samples:
                by_task.setdefault(s["task"], []).append(s)
            for name, rows in by_task.items():
                path = folder / f"samples_{name}_{stamp}.jsonl"
                with open(path, "w") as f:
                    for row in rows:
                        f.write(json.dumps(row) + "\n")
                written.append(path)
        return written

    def table(self) -> str:
        from .report import format_table

        return format_table(self.results)

    def plot(self, path=None):
        from .report import plot_report

        return plot_report(self.results, path)


def _environment(lm: ProbeLM) -> dict:
    import torch
    import transformers

    from .. import __version__

    env = {"wmlib": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "platform": platform.platform(), "device": str(lm.device)}
    if lm.device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(lm.device)
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def evaluate(lm: ProbeLM, tasks, quick: bool = False, lengths=None, limit: int | None = None, seed: int = 0,
             policies=("full",), threshold: float = RULER_THRESHOLD, model_args: dict | None = None,
             overrides: dict | None = None) -> Report:
    """Run ``tasks`` (Task objects) on ``lm``; ``lengths`` and ``limit`` override every task's
    lengths and documents per cell; ``policies`` are KV policies (``"full"``, ``"window:256"``, ...);
    ``overrides`` maps a task name to settings (``{"vt": {"hops": 2}}``)."""
    if not tasks:
        raise ValueError("no tasks to run")
    specs = [p if isinstance(p, PolicySpec) else parse_policy(p) for p in policies]
    if not specs:
        raise ValueError("no KV policy given (use 'full' for the model as it is)")
    if len({s.label for s in specs}) != len(specs):
        raise ValueError(f"a KV policy is listed twice: {[s.label for s in specs]}")
    overrides = overrides or {}
    for task in tasks:
        task.prepare()  # a missing data set stops the run here, before any scoring
    start, cpu = time.perf_counter(), time.process_time()
    runs = []
    for task in tasks:
        extra = {}
        if lengths is not None and task.length_axis == "length":
            extra["lengths"] = list(lengths)
        if limit is not None:
            extra["limit"] = limit
        extra.update(overrides.get(task.name, {}))
        settings = task.settings(quick, **extra)
        task_specs = specs if task.kind == "greedy" else [s for s in specs if s.kind == "full"] or []
        if not task_specs:
            continue  # a streamed task has no teacher-forced path under eviction
        runs.append(run_task(lm, task, settings, seed, task_specs, threshold))
    results: dict = {}
    for r in runs:
        for label, summary in r.summary.items():
            results[r.task.name if label == "full" else f"{r.task.name}@{label}"] = summary
    memory = {}
    if len(specs) > 1:
        for r in runs:
            if r.task.length_axis != "length":
                continue
            memory[r.task.name] = {label: s["effective_length"]["by_point"] for label, s in r.summary.items()}
    wall = time.perf_counter() - start
    out = {
        "results": results,
        "memory_systems": memory,
        "configs": {r.task.name: {**r.settings, "axes": list(r.task.axes), "group": r.task.group} for r in runs},
        "versions": {r.task.name: r.task.version for r in runs},
        "n-samples": {r.task.name: {"effective": len([s for s in r.samples if s["kv_policy"] == r.samples[0]["kv_policy"]])}
                      for r in runs},
        "prompts": {r.task.name: r.example for r in runs},
        "config": {
            "model": lm.name, "model_args": model_args or {}, "dtype": str(next(lm.model.parameters()).dtype),
            "device": str(lm.device), "chat_template": "on" if lm.use_chat_template else "off",
            "context_limit": lm.context_limit, "batch_tokens": lm.batch_tokens, "seed": seed, "quick": quick,
            "limit": limit, "lengths": list(lengths) if lengths is not None else None,
            "kv_policies": [s.label for s in specs], "threshold": threshold,
            "scoring": "greedy match under teacher forcing (what greedy decoding writes), on character spans",
        },
        "environment": _environment(lm),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "total_evaluation_time_seconds": wall,
        "cpu_seconds": time.process_time() - cpu,
        "task_seconds": {r.task.name: r.seconds for r in runs},
    }
    return Report(out, [s for r in runs for s in r.samples])
