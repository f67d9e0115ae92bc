"""Checkers for Chapter 7, "The KV cache: a language model's working memory"."""

from __future__ import annotations

import operator

import torch

from ._core import ExerciseFailure, call, passed

__all__ = ["check_positions_processed", "check_keep_positions", "check_heavy_hitters"]

def _positions_reference(prompt_len: int, new_tokens: int, cached: bool) -> int:
    if cached:  # prefill over the prompt gives the first token; each later token is a one-position step
        return prompt_len + new_tokens - 1
    # without a cache, the i-th new token (i = 0, 1, ...) re-reads the prompt and the i tokens before it
    return new_tokens * prompt_len + new_tokens * (new_tokens - 1) // 2


def _as_count(ex: str, got, args: str) -> int:
    if isinstance(got, bool):
        raise ExerciseFailure(ex, f"{args} returned a bool ({got}); return an int, the number of positions")
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, float) and got.is_integer():
        return int(got)
    try:
        return operator.index(got)  # int, numpy integers
    except TypeError:
        raise ExerciseFailure(ex, f"{args} should return an int (a number of token positions), "
                                  f"got {type(got).__name__}: {got!r}") from None


def check_positions_processed(positions_processed) -> bool:
    """Exercise 7.1: ``positions_processed(prompt_len, new_tokens, cached)`` -> how many token positions
    go through the model's layers to produce ``new_tokens`` greedy tokens after the prompt."""
    ex = "Exercise 7.1 (counting the work)"
    for p, n in ((10, 5), (10, 1), (128, 8), (1, 3), (1024, 32), (7, 2)):
        got = {}
        for cached in (True, False):
            args = f"positions_processed({p}, {n}, cached={cached})"
            got[cached] = _as_count(ex, call(ex, positions_processed, p, n, cached), args)
        want = {c: _positions_reference(p, n, c) for c in (True, False)}
        if got == want:
            continue
        if want[True] != want[False] and (got[True], got[False]) == (want[False], want[True]):
            raise ExerciseFailure(ex, f"positions_processed({p}, {n}, ...) gives {got[True]} with the cache and "
                                      f"{got[False]} without: cached and uncached are swapped",
                                  "with the cache each step runs one new position; without it, the whole sequence")
        for cached in (True, False):
            if got[cached] == want[cached]:
                continue
            g, w = got[cached], want[cached]
            head = f"positions_processed({p}, {n}, cached={cached}) = {g}, expected {w}"
            if cached:
                hints = {
                    p + n: "off by one: the first new token comes out of the prompt pass (the prefill); "
                           "only the other new_tokens - 1 need a step of their own",
                    n: "the prompt has to go through the model once (the prefill) before any token comes out",
                    n - 1: "the prompt has to go through the model once (the prefill) before any token comes out",
                    p: "every new token after the first needs one step of one position",
                }
            else:
                hints = {
                    n * p + n * (n + 1) // 2: "off by one: the first new token comes out of the prompt alone "
                                              "(prompt_len positions); the last reads prompt_len + new_tokens - 1",
                    p + n * p + n * (n - 1) // 2: "the first new token comes out of the pass over the prompt: "
                                                  "do not count a separate prefill",
                    n * p: "the sequence grows: each pass re-reads the tokens generated before it too",
                    p + n - 1: "without a cache every step re-reads the whole sequence, not one new position",
                }
            raise ExerciseFailure(ex, head, hints.get(g))
    return passed(ex, "prompt_len + new_tokens - 1 with the cache; "
                      "new_tokens × prompt_len + new_tokens(new_tokens - 1)/2 without")


def _keep_reference(length: int, budget: int, sinks: int) -> list[int]:
    if length <= budget:
        return list(range(length))
    return list(range(sinks)) + list(range(length - (budget - sinks), length))


def _as_positions(ex: str, got, what: str) -> list[int]:
    if isinstance(got, torch.Tensor):
        if got.dim() != 1 or got.is_floating_point():
            raise ExerciseFailure(ex, f"{what} should be a 1-D integer tensor or a list of ints, "
                                      f"got a tensor of shape {tuple(got.shape)} and dtype {got.dtype}")
        return [int(x) for x in got.tolist()]
    try:
        out = list(got)
    except TypeError:
        raise ExerciseFailure(ex, f"{what} should be a list of positions, got {type(got).__name__}: {got!r}") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in out):
        raise ExerciseFailure(ex, f"{what} should contain ints, got {out[:5]}...")
    return out


def check_keep_positions(keep_positions) -> bool:
    """Exercise 7.2: ``keep_positions(length, budget, sinks=0)`` -> the positions a sliding window
    (with ``sinks`` attention sinks) keeps, ascending."""
    ex = "Exercise 7.2 (sliding window with sinks)"
    cases = [(10, 4, 0), (10, 4, 1), (100, 16, 4), (5, 8, 2), (8, 8, 4), (9, 8, 4), (3, 3, 0), (50, 10, 9)]
    for length, budget, sinks in cases:
        got = _as_positions(ex, call(ex, keep_positions, length, budget, sinks),
                            f"keep_positions({length}, {budget}, {sinks})")
        want = _keep_reference(length, budget, sinks)
        if got == want:
            continue
        args = f"keep_positions({length}, {budget}, {sinks}) = {got if len(got) < 20 else str(got[:20])[:-1] + ', ...]'}"
        if len(set(got)) != len(got):
            raise ExerciseFailure(ex, f"{args} keeps a position twice",
                                  "when length <= budget nothing is evicted: return range(length)")
        if got == sorted(set(range(length)) - set(want)):
            raise ExerciseFailure(ex, f"{args} lists the evicted positions; return the kept ones")
        if sorted(got) == want:
            raise ExerciseFailure(ex, f"{args} is not in ascending order", "keep the cache in reading order")
        if length > budget and len(got) != budget:
            raise ExerciseFailure(ex, f"{args} keeps {len(got)} positions; the budget is {budget}",
                                  "sinks count towards the budget: the window holds budget - sinks tokens")
        if sinks and got == list(range(length - budget, length)):
            raise ExerciseFailure(ex, f"{args} forgot the {sinks} sink(s) at the start", "keep range(sinks) too")
        raise ExerciseFailure(ex, f"{args}, expected {want}")
    return passed(ex, "the first `sinks` positions and the most recent `budget - sinks`, in order")


def _h2o_reference(scores: torch.Tensor, budget: int, recent: int) -> list[int]:
    L = scores.shape[0]
    if L <= budget:
        return list(range(L))
    heavy = scores[: L - recent].topk(budget - recent).indices.sort().values.tolist()
    return heavy + list(range(L - recent, L))


def check_heavy_hitters(heavy_hitters) -> bool:
    """Exercise 7.3: ``heavy_hitters(scores, budget, recent)`` -> the positions H2O keeps, ascending.

    ``scores`` (L,) is the attention each cached token has accumulated so far."""
    ex = "Exercise 7.3 (heavy hitters)"
    g = torch.Generator().manual_seed(7)
    cases = []
    for L, budget, recent in ((12, 6, 3), (20, 8, 2), (30, 10, 10), (16, 5, 0), (6, 8, 4)):
        # As in a real cache, the most recent tokens have had little time to accumulate attention:
        # forgetting the recent window then changes the answer.
        s = torch.rand(L, generator=g)
        if recent:
            s[L - recent:] *= 0.01
        cases.append((s, budget, recent))
    # and one where a recent token already has the largest score: it must not be counted twice
    s = torch.rand(14, generator=g)
    s[-1] = 5.0
    cases.append((s, 6, 2))
    for scores, budget, recent in cases:
        L = scores.shape[0]
        got = _as_positions(ex, call(ex, heavy_hitters, scores.clone(), budget, recent),
                            f"heavy_hitters(scores of {L} tokens, budget={budget}, recent={recent})")
        want = _h2o_reference(scores, budget, recent)
        if got == want:
            continue
        args = f"heavy_hitters(scores of {L} tokens, budget={budget}, recent={recent}) = {got}"
        if sorted(got) == want:
            raise ExerciseFailure(ex, f"{args} is not in ascending order", "sort the kept positions")
        if len(set(got)) != len(got):
            raise ExerciseFailure(ex, f"{args} keeps a position twice",
                                  "choose the heavy hitters among the tokens *outside* the recent window")
        if L > budget and len(got) != budget:
            raise ExerciseFailure(ex, f"{args} keeps {len(got)} positions, the budget is {budget}")
        if L > budget and got == sorted(scores.topk(budget).indices.tolist()):
            raise ExerciseFailure(ex, f"{args} keeps the top-{budget} scores overall, expected {want}",
                                  f"always keep the {recent} most recent tokens, then the highest scores among the rest")
        lowest = sorted(scores[: L - recent].topk(budget - recent, largest=False).indices.tolist()) if L > budget else None
        if lowest is not None and got[: budget - recent] == lowest:
            raise ExerciseFailure(ex, f"{args} keeps the lowest scores", "heavy hitters have the LARGEST accumulated attention")
        raise ExerciseFailure(ex, f"{args}, expected {want}")
    return passed(ex, "the recent window plus the largest accumulated scores among older tokens")
