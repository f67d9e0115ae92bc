"""Checkers for Chapter 6, "Inside a pretrained model's attention"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, expect_close, passed

__all__ = ["check_induction_score", "check_sink_fraction", "check_induction_target"]


def _random_causal(L: int, g: torch.Generator) -> torch.Tensor:
    scores = torch.randn(L, L, generator=g) * 2
    scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, -1)


def _score(w: torch.Tensor, T: int, start: int, shift: int = 1, first: int | None = None, last: int | None = None):
    """Mean of w[i, i - T + shift] over queries i in [first, last)."""
    first = start + T if first is None else first
    last = start + 2 * T if last is None else last
    i = torch.arange(first, last)
    return w[i, i - T + shift].mean().item()


def check_induction_score(induction_score) -> bool:
    """Exercise 6.1: ``induction_score(weights, T, start)`` for one head's (L, L) weights on
    ``start`` prefix tokens followed by T random tokens repeated twice."""
    ex = "Exercise 6.1 (induction score)"
    g = torch.Generator().manual_seed(6)
    for T, start in ((7, 1), (5, 3), (9, 0)):
        L = start + 2 * T
        w = _random_causal(L, g)
        want = _score(w, T, start)
        got = call(ex, induction_score, w.clone(), T, start)
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise ExerciseFailure(ex, f"return one number for one head, got a tensor of shape {tuple(got.shape)}",
                                      "average the selected weights with .mean()")
            got = got.item()
        mistakes = {
            "you read the weight on the earlier occurrence of the same token (offset T), not on the token "
            "after it (offset T - 1): that is a 'duplicate-token' head": _score(w, T, start, shift=0),
            "you read the weight on the token two after the earlier occurrence (offset T - 2)": _score(w, T, start, 2),
            "you also averaged over queries in the first copy, where there is nothing to copy yet":
                _score(w, T, start, first=T - 1),
            "you left out a query of the second copy: it has T queries, positions start+T .. start+2T-1":
                _score(w, T, start, first=start + T + 1),
            "you summed the weights instead of averaging them over the T queries": _score(w, T, start) * T,
        }
        try:
            expect_close(ex, got, want, f"induction_score(weights, T={T}, start={start})", rtol=1e-4, atol=1e-6)
        except ExerciseFailure:
            for message, value in mistakes.items():
                try:
                    if abs(float(got) - value) < 1e-6:
                        raise ExerciseFailure(ex, message) from None
                except (TypeError, ValueError):
                    break
            raise
    # a perfect induction head must score exactly 1
    T, start = 6, 1
    L = start + 2 * T
    w = torch.zeros(L, L)
    w[torch.arange(L), 0] = 1.0
    i = torch.arange(start + T, L)
    w[i] = 0
    w[i, i - T + 1] = 1.0
    expect_close(ex, call(ex, induction_score, w, T, start), 1.0, "the score of a perfect induction head",
                 hint="query i should be compared with key i - T + 1")
    return passed(ex, "mean over the second copy of weights[i, i - T + 1]")


def check_sink_fraction(sink_fraction) -> bool:
    """Exercise 6.2: ``sink_fraction(weights, is_sink)`` for one layer: weights (H, L, L), is_sink (L,)
    bool; returns the fraction of attention on the sink keys averaged over heads and queries."""
    ex = "Exercise 6.2 (sink fraction)"
    g = torch.Generator().manual_seed(62)
    H, L = 4, 7
    w = torch.softmax(torch.randn(H, L, L, generator=g) * 2, -1)
    is_sink = torch.zeros(L, dtype=torch.bool)
    is_sink[[0, L - 1]] = True
    got = call(ex, sink_fraction, w.clone(), is_sink.clone())
    if isinstance(got, torch.Tensor) and got.numel() != 1:
        hint = ("average over the heads as well" if tuple(got.shape) == (H,) else
                "average over the queries as well" if got.numel() in (L, H * L) else None)
        raise ExerciseFailure(ex, f"return one number, got a tensor of shape {tuple(got.shape)}", hint)
    want = w[..., is_sink].sum(-1).mean().item()
    mistakes = {
        "you summed the weights over queries (columns) instead of keys: use weights[..., is_sink], the key axis":
            w[:, is_sink, :].sum(-2).mean().item(),
        "you averaged the weights on the sink keys instead of adding them: with two sinks, the share of "
        "attention on sinks is the sum over both":
            w[..., is_sink].mean(-1).mean().item(),
        "you divided by the number of sinks or keys: the answer is a share of each query's total of 1":
            w[..., is_sink].sum(-1).mean().item() / L,
        "you returned the attention on the non-sink keys": w[..., ~is_sink].sum(-1).mean().item(),
    }
    try:
        expect_close(ex, got, want, "sink_fraction", rtol=1e-4, atol=1e-6)
    except ExerciseFailure:
        for message, value in mistakes.items():
            if abs(float(got) - value) < 1e-6:
                raise ExerciseFailure(ex, message) from None
        raise
    # all attention on the sinks gives 1, none gives 0
    focused = torch.zeros(H, L, L)
    focused[..., 0] = 1.0
    expect_close(ex, call(ex, sink_fraction, focused, is_sink.clone()), 1.0,
                 "sink_fraction when every query puts all its weight on [CLS]")
    expect_close(ex, call(ex, sink_fraction, focused, ~is_sink), 0.0,
                 "sink_fraction when no weight falls on the sinks")
    return passed(ex, "weights on sink keys summed per query, then averaged over queries and heads")


def _reference_target(tokens, i):
    for j in range(i - 1, -1, -1):
        if tokens[j] == tokens[i]:
            return j + 1
    return None


def check_induction_target(induction_target) -> bool:
    """Exercise 6.3: ``induction_target(tokens, i)``: the position an ideal induction head at
    position ``i`` attends to (right after the most recent earlier occurrence of ``tokens[i]``),
    or None if ``tokens[i]`` has not occurred before."""
    ex = "Exercise 6.3 (where does an induction head look?)"
    cases = [
        ("the cat sat on the mat".split(), 4, 1),
        ("A B C D A B C D".split(), 5, 2),
        ("A B C D A B C D".split(), 3, None),
        ("x y x z x".split(), 4, 3),  # two earlier occurrences: the most recent one wins
        ("x x".split(), 1, 1),  # the token after the earlier x is this very x
        ("Mr Dursley said Mr".split(), 0, None),
    ]
    for tokens, i, want in cases:
        got = call(ex, induction_target, list(tokens), i)
        if got == want and type(got) is type(want):
            continue
        shown = " ".join(f"{t}[{k}]" for k, t in enumerate(tokens))
        if want is None:
            raise ExerciseFailure(ex, f"for position {i} of {shown} you returned {got!r}; expected None: "
                                      f"'{tokens[i]}' has not occurred before",
                                  "return None when there is nothing to copy")
        hint = None
        if got == want - 1:
            hint = "you returned the earlier occurrence itself; the induction head attends to the token after it"
        elif isinstance(got, int) and got < want and tokens[got - 1] == tokens[i]:
            hint = "you used the first earlier occurrence; use the most recent one"
        elif got == want + 1:
            hint = "you are one position too far to the right"
        raise ExerciseFailure(ex, f"for position {i} of {shown} you returned {got!r}; expected {want}", hint)
    return passed(ex, "the token after the most recent earlier occurrence")
