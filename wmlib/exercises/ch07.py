"""Checkers for Chapter 7, "The KV cache: a language model's working memory"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, passed

__all__ = ["check_bytes_per_token", "check_keep_positions", "check_heavy_hitters"]

# (layers, query heads, key/value heads, head_dim, bytes per element): SmolLM2-135M, a Llama-2-7B-like
# model (no GQA), a Llama-3-8B-like model (GQA, 4 query heads per kv head) and a multi-query model.
_CONFIGS = ((30, 9, 3, 64, 4), (32, 32, 32, 128, 2), (32, 32, 8, 128, 2), (24, 16, 1, 64, 2), (30, 9, 3, 64, 2))


def check_bytes_per_token(bytes_per_token) -> bool:
    """Exercise 7.1: ``bytes_per_token(layers, heads, kv_heads, head_dim, bytes_per_element)`` -> int."""
    ex = "Exercise 7.1 (bytes per token)"
    for layers, heads, kv, d, size in _CONFIGS:
        want = 2 * layers * kv * d * size
        got = call(ex, bytes_per_token, layers, heads, kv, d, size)
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            raise ExerciseFailure(ex, f"return an int (bytes), got {type(got).__name__}: {got!r}")
        if got == want:
            continue
        args = f"bytes_per_token({layers}, {heads}, {kv}, {d}, {size})"
        hints = {
            want // 2: "each token stores a key AND a value in every layer: a factor 2",
            2 * layers * heads * d * size: "only the key/value heads are cached; with grouped-query attention "
                                           "several query heads share one kv head",
            layers * heads * d * size: "use kv_heads (not query heads), and count keys and values (factor 2)",
            2 * kv * d * size: "every layer has its own cache: multiply by the number of layers",
            2 * layers * kv * d: "multiply by the bytes per element (4 for float32, 2 for float16)",
            16 * layers * kv * d * size: "bytes, not bits",
        }
        raise ExerciseFailure(ex, f"{args} = {got}, expected {want}", hints.get(got))
    return passed(ex, "2 × layers × kv_heads × head_dim × bytes per element")


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
