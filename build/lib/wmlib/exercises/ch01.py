"""Checkers for Chapter 1, "What is working memory?"."""

from __future__ import annotations

import math

from ._core import ExerciseFailure, call, passed

__all__ = ["check_kv_bytes_per_token", "check_max_context_tokens", "check_longest_passing_length"]


def _number(ex: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ExerciseFailure(ex, f"{what} should be a number, got {type(value).__name__}: {value!r}")
    return float(value)


def check_kv_bytes_per_token(kv_bytes_per_token) -> bool:
    """Exercise 1.1: ``kv_bytes_per_token(num_layers, num_heads, num_kv_heads, head_dim, bytes_per_element)``."""
    ex = "Exercise 1.1 (KV bytes per token)"
    # Distinct primes-ish sizes so that each typical mistake gives a distinct wrong number.
    cases = [(30, 9, 3, 64, 4), (32, 32, 8, 128, 2), (2, 8, 8, 16, 4), (5, 6, 1, 7, 1)]
    for layers, heads, kv_heads, head_dim, nbytes in cases:
        args = (layers, heads, kv_heads, head_dim, nbytes)
        got = _number(ex, call(ex, kv_bytes_per_token, *args), f"kv_bytes_per_token{args}")
        want = 2 * layers * kv_heads * head_dim * nbytes
        if got == want:
            continue
        mistakes = {
            want / 2: "you forgot the factor 2: every token stores a key AND a value",
            want * heads / kv_heads: "you used the number of query heads; the cache stores one K and one V per "
                                     "*key-value* head (grouped-query attention shares them)",
            want * 8: "that is bits, not bytes (you multiplied by 8)",
            want / layers: "you forgot that every layer keeps its own keys and values",
            want / nbytes: "you counted elements, not bytes: multiply by bytes_per_element",
        }
        for wrong, message in mistakes.items():
            if wrong != want and math.isclose(got, wrong):
                raise ExerciseFailure(ex, f"for {args} you return {got:g}, expected {want}: {message}")
        raise ExerciseFailure(ex, f"kv_bytes_per_token{args} returned {got:g}, expected {want}",
                              "2 x num_layers x num_kv_heads x head_dim x bytes_per_element")
    return passed(ex, "2 x layers x KV heads x head_dim x bytes per element")


def check_max_context_tokens(max_context_tokens) -> bool:
    """Exercise 1.2: ``max_context_tokens(memory_bytes, weights_bytes, bytes_per_token, batch=1)``."""
    ex = "Exercise 1.2 (context that fits in memory)"
    cases = [  # (memory, weights, bytes per token, batch)
        (8 * 2**30, 538_060_032, 46_080, 1),
        (1_000_000, 100_000, 1_000, 3),
        (1_000_999, 0, 1_000, 1),
        (80 * 2**30, 16 * 2**30, 131_072, 8),
    ]
    for memory, weights, per_token, batch in cases:
        args = (memory, weights, per_token, batch)
        got = call(ex, max_context_tokens, memory, weights, per_token, batch)
        want = (memory - weights) // (per_token * batch)
        if isinstance(got, float) and not got.is_integer():
            raise ExerciseFailure(ex, f"for {args} you return {got}, a fraction of a token",
                                  "a cache holds whole tokens: round down with //")
        got = _number(ex, got, f"max_context_tokens{args}")
        if got == want:
            continue
        if got == memory // (per_token * batch):
            raise ExerciseFailure(ex, f"for {args} you return {got:g}, expected {want}: the weights need memory too",
                                  "subtract weights_bytes before dividing")
        if got == (memory - weights) // per_token:
            raise ExerciseFailure(ex, f"for {args} you return {got:g}, expected {want}: each of the `batch` "
                                  "sequences has its own cache", "divide by bytes_per_token * batch")
        if got == math.ceil((memory - weights) / (per_token * batch)):
            raise ExerciseFailure(ex, f"for {args} you return {got:g}, expected {want}: you rounded up, "
                                  "so the last token would not fit", "use floor division //")
        raise ExerciseFailure(ex, f"max_context_tokens{args} returned {got:g}, expected {want}")
    got = call(ex, max_context_tokens, 100, 200, 10, 1)
    if got != 0:
        raise ExerciseFailure(ex, f"when the weights alone exceed the memory you return {got!r}, expected 0",
                              "no token fits: return max(0, ...)")
    return passed(ex, "(memory - weights) // (bytes per token x batch), and 0 when nothing fits")


def check_longest_passing_length(longest_passing_length) -> bool:
    """Exercise 1.3: ``longest_passing_length(lengths, accuracies, threshold=0.5)`` -> the span, read as the
    longest length that passes (Chapter 14's ``span_from_curve`` interpolates the first crossing instead)."""
    ex = "Exercise 1.3 (longest passing length)"
    cases = [
        # (lengths, accuracies, threshold, want, what a wrong answer usually means)
        ([3, 4, 5, 6, 7], [1.0, 0.9, 0.6, 0.3, 0.0], 0.5, 5, None),
        ([3, 4, 5, 6], [1.0, 0.9, 0.5, 0.2], 0.5, 5, "accuracy equal to the threshold counts (>=)"),
        ([3, 4, 5, 6, 7, 8], [1.0, 0.4, 0.7, 0.2, 0.55, 0.0], 0.5, 7,
         "the curve is not monotone: take the LONGEST length that passes, not the last before the first failure"),
        ([7, 3, 5, 4, 6], [0.0, 1.0, 0.6, 0.9, 0.3], 0.5, 5,
         "the lengths are not sorted: do not rely on their order"),
        ([2, 3, 4], [0.3, 0.2, 0.1], 0.5, 0, "when no length passes, the span is 0"),
        ([2, 3, 4, 5], [1.0, 0.8, 0.7, 0.4], 0.75, 3, "use the threshold argument"),
    ]
    for lengths, accs, threshold, want, why in cases:
        got = call(ex, longest_passing_length, list(lengths), list(accs), threshold)
        got = _number(ex, got, "the span")
        if got != want:
            raise ExerciseFailure(ex, f"longest_passing_length({lengths}, {accs}, threshold={threshold}) returned "
                                  f"{got:g}, expected {want}", why)
    return passed(ex, "the longest length recalled exactly in at least `threshold` of the trials")
