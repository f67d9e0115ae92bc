"""Probes of a language model's working memory (Chapter 14), one module per probe.

- :mod:`~wmlib.probes.needle`              needle in a haystack: accuracy over context length x depth
- :mod:`~wmlib.probes.lost_in_the_middle`  key-value retrieval: accuracy vs position of the answer
- :mod:`~wmlib.probes.n_back`              n-back on letters: chance-aware yes/no scores for n = 1..3
- :mod:`~wmlib.probes.digit_span`          repeat random digit lists: the span curve and the span

Every probe is deterministic given its seed, scores prompts in left-padded batches
(:class:`ProbeLM`), respects the model's context limit (raising :class:`ContextTooLong`), and
returns a :class:`ProbeResult` whose ``scores`` lie in [0, 1]::

    from wmlib.probes import run_probe
    result = run_probe("needle", model="smollm2-135m", quick=True)
    result.scores   # {"128": {"0": 1.0, "0.5": ...}, ...}
"""

from __future__ import annotations

from . import digit_span, lost_in_the_middle, n_back, needle
from ._core import (
    AnswerScore, ContextTooLong, ProbeLM, ProbeResult, binary_scores, check_scores_in_unit_interval, format_scores,
    roc_auc,
)
from .digit_span import run_digit_span, span_from_curve
from .lost_in_the_middle import run_lost_in_the_middle
from .n_back import run_n_back
from .needle import run_needle

__all__ = [
    "PROBES", "run_probe", "settings_for", "ProbeLM", "ProbeResult", "AnswerScore", "ContextTooLong",
    "binary_scores", "roc_auc", "check_scores_in_unit_interval", "format_scores", "span_from_curve",
    "run_needle", "run_lost_in_the_middle", "run_n_back", "run_digit_span",
]

# probe name -> (run function, its module with the QUICK and FULL settings)
PROBES = {
    "needle": (run_needle, needle),
    "lost-in-the-middle": (run_lost_in_the_middle, lost_in_the_middle),
    "n-back": (run_n_back, n_back),
    "digit-span": (run_digit_span, digit_span),
}


def settings_for(probe: str, quick: bool = False) -> dict:
    """The QUICK or FULL settings of a probe (a copy to modify)."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; choose from {', '.join(PROBES)}")
    module = PROBES[probe][1]
    return {k: (list(v) if isinstance(v, (list, tuple)) else v)
            for k, v in (module.QUICK if quick else module.FULL).items()}


def run_probe(probe: str, model="smollm2-135m", quick: bool = False, seed: int = 0, device=None,
              max_context: int | None = None, **overrides) -> ProbeResult:
    """Run one probe by name on ``model`` (a name, a hub id, or a :class:`ProbeLM`).

    ``quick`` picks the small settings; ``overrides`` replace single settings, e.g.
    ``run_probe("needle", context_lengths=[4096])``.
    """
    run, _ = PROBES.get(probe, (None, None))
    if run is None:
        raise ValueError(f"unknown probe {probe!r}; choose from {', '.join(PROBES)}")
    settings = settings_for(probe, quick)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"{probe} has no setting(s) {sorted(unknown)}; its settings are {sorted(settings)}")
    settings.update(overrides)
    lm = model if isinstance(model, ProbeLM) else ProbeLM.load(model, device=device, max_context=max_context)
    result = run(lm, seed=seed, **settings)
    check_scores_in_unit_interval(result.scores, f"{probe} scores")
    return result
