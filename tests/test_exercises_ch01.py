"""The Chapter 1 checkers accept right answers and name the typical mistakes."""

import math

import pytest

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch01


def kv_right(layers, heads, kv_heads, head_dim, nbytes):
    return 2 * layers * kv_heads * head_dim * nbytes


def test_kv_bytes_accepts_the_formula():
    assert ch01.check_kv_bytes_per_token(kv_right)


@pytest.mark.parametrize("wrong, message", [
    (lambda L, H, K, d, b: L * K * d * b, "factor 2"),
    (lambda L, H, K, d, b: 2 * L * H * d * b, "query heads"),
    (lambda L, H, K, d, b: 16 * L * K * d * b, "bits"),
    (lambda L, H, K, d, b: 2 * K * d * b, "every layer"),
    (lambda L, H, K, d, b: 2 * L * K * d, "elements, not bytes"),
    (lambda L, H, K, d, b: 3 * L * K * d * b, "expected"),
])
def test_kv_bytes_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch01.check_kv_bytes_per_token(wrong)


def test_not_attempted_is_not_a_crash():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete, match="not attempted"):
        ch01.check_kv_bytes_per_token(stub)


def fits_right(memory, weights, per_token, batch=1):
    return max(0, (memory - weights) // (per_token * batch))


def test_max_context_accepts_the_right_answer():
    assert ch01.check_max_context_tokens(fits_right)


@pytest.mark.parametrize("wrong, message", [
    (lambda m, w, p, b=1: max(0, m // (p * b)), "weights need memory"),
    (lambda m, w, p, b=1: max(0, (m - w) // p), "own cache"),
    (lambda m, w, p, b=1: max(0, math.ceil((m - w) / (p * b))), "rounded up"),
    (lambda m, w, p, b=1: (m - w) / (p * b), "fraction of a token"),
    (lambda m, w, p, b=1: (m - w) // (p * b), "expected 0"),
    (lambda m, w, p, b=1: "many", "number"),
])
def test_max_context_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch01.check_max_context_tokens(wrong)


def longest_right(lengths, accuracies, threshold=0.5):
    return max((n for n, a in zip(lengths, accuracies) if a >= threshold), default=0)


def test_longest_passing_accepts_the_right_answer():
    assert ch01.check_longest_passing_length(longest_right)


def span_first_failure(lengths, accuracies, threshold=0.5):
    span = 0
    for n, a in sorted(zip(lengths, accuracies)):
        if a < threshold:
            break
        span = n
    return span


@pytest.mark.parametrize("wrong, message", [
    (lambda ls, accs, t=0.5: max((n for n, a in zip(ls, accs) if a > t), default=0), ">="),
    (span_first_failure, "not monotone"),
    (lambda ls, accs, t=0.5: max((n for n, a in zip(ls, accs) if a >= 0.5), default=0), "threshold argument"),
    (lambda ls, accs, t=0.5: max(n for n, a in zip(ls, accs) if a >= t), "raised"),
])
def test_longest_passing_names_the_mistake(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch01.check_longest_passing_length(wrong)
