"""Probes of a language model's working memory (Chapter 14): a small benchmark.

Tasks (``wmlib probe ls``), each deterministic by seed, with answers located by characters:

- needle in a haystack, RULER's four variants (:mod:`~wmlib.probes.needle`): ``niah_single``,
  ``niah_single_natural``, ``niah_multikey``, ``niah_multivalue``, ``niah_multiquery``;
- ``lost_in_the_middle``: key-value retrieval, the answer moved through the context
  (:mod:`~wmlib.probes.lost_in_the_middle`);
- ``vt``: variable tracking (:mod:`~wmlib.probes.variable_tracking`);
- ``cwe``: common-word extraction (:mod:`~wmlib.probes.common_words`);
- ``nback``: n-back streamed one letter per turn, scored with d' (:mod:`~wmlib.probes.n_back`);
- ``digit_span_forward`` and ``digit_span_backward``: digits given one per turn, recalled later
  (:mod:`~wmlib.probes.digit_span`).

:func:`~wmlib.probes.evaluate.evaluate` runs them, with the full KV cache or under eviction
policies (:mod:`~wmlib.probes.memory`), and reports every score with its interval and each
task's effective length::

    from wmlib.probes import ProbeLM, evaluate, get_tasks
    lm = ProbeLM.load("smollm2-135m")
    report = evaluate(lm, get_tasks("needle,vt"), quick=True, policies=["full", "window:256"])
    print(report.table())

:mod:`~wmlib.probes.oracle` holds the oracle and random models that check a task can score 1.0 and
that chance is where it should be.
"""

from __future__ import annotations

from ._core import AnswerScore, ContextTooLong, ProbeLM, roc_auc
from .common_words import CommonWords
from .digit_span import DigitSpan, span_from_curve
from .evaluate import RULER_THRESHOLD, Report, effective_length, estimate, evaluate, run_task
from .lost_in_the_middle import LostInTheMiddle
from .memory import PolicySpec, parse_policy
from .n_back import NBack
from .needle import NEEDLE_TASKS, NeedleTask
from .tasks import Item, Task
from .variable_tracking import VariableTracking

__all__ = [
    "TASKS", "GROUPS", "get_tasks", "ProbeLM", "ContextTooLong", "AnswerScore", "Task", "Item", "NeedleTask",
    "LostInTheMiddle", "VariableTracking", "CommonWords", "NBack", "DigitSpan", "evaluate", "run_task", "Report",
    "estimate", "effective_length", "RULER_THRESHOLD", "PolicySpec", "parse_policy", "span_from_curve",
    "roc_auc",
]

TASKS: dict[str, Task] = {t.name: t for t in [
    *NEEDLE_TASKS, LostInTheMiddle(), VariableTracking(), CommonWords(), NBack(),
    DigitSpan("forward"), DigitSpan("backward"),
]}

GROUPS: dict[str, list[str]] = {
    "needle": [t.name for t in NEEDLE_TASKS],
    "ruler": [t.name for t in NEEDLE_TASKS] + ["vt", "cwe"],
    "digit_span": ["digit_span_forward", "digit_span_backward"],
    "all": list(TASKS),
}


def get_tasks(spec) -> list[Task]:
    """Tasks by name, group name (``needle``, ``ruler``, ``digit_span``, ``all``) or a comma list
    of both, in the order given, without repeats."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Task] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        found = [TASKS[n] for n in GROUPS[name]] if name in GROUPS else [TASKS[name]] if name in TASKS else None
        if found is None:
            raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}; groups: {', '.join(GROUPS)}")
        out += [t for t in found if t not in out]
    if not out:
        raise ValueError("no task named; try --tasks all or wmlib probe ls")
    return out
