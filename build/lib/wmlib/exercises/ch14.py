"""Checkers for Chapter 14, "Measuring a model's working memory"."""

from __future__ import annotations

import math

from ._core import ExerciseFailure, call, expect_close, expect_float, passed

__all__ = ["check_insert_needle", "check_balanced_accuracy", "check_span_from_curve"]


def _reference_insert(sentences, needle, depth):
    i = min(range(len(sentences) + 1), key=lambda k: abs(k - depth * len(sentences)))
    return sentences[:i] + [needle] + sentences[i:]


def check_insert_needle(insert_needle) -> bool:
    """Exercise 14.1: ``insert_needle(sentences, needle, depth)`` -> a new list with the needle at
    the sentence boundary closest to ``depth * len(sentences)``."""
    ex = "Exercise 14.1 (insert a needle)"
    hay = [f"Sentence {i}." for i in range(10)]
    needle = "The secret code is 12345."
    for depth, want_index in ((0.0, 0), (1.0, 10), (0.5, 5), (0.66, 7), (0.33, 3), (0.27, 3)):
        original = list(hay)
        got = call(ex, insert_needle, hay, needle, depth)
        if hay != original:
            raise ExerciseFailure(ex, "your function changed the list it was given",
                                  "build a new list, e.g. sentences[:i] + [needle] + sentences[i:]")
        if not isinstance(got, list):
            raise ExerciseFailure(ex, f"return a list of sentences, got {type(got).__name__}")
        if got.count(needle) != 1:
            raise ExerciseFailure(ex, f"the result holds the needle {got.count(needle)} times, expected once")
        if len(got) != len(hay) + 1:
            raise ExerciseFailure(ex, f"the result has {len(got)} sentences, expected {len(hay) + 1}: "
                                      "every haystack sentence must stay", "insert the needle, do not replace")
        if [s for s in got if s != needle] != hay:
            raise ExerciseFailure(ex, "the haystack sentences are not all there in their original order")
        at = got.index(needle)
        if at == want_index:
            continue
        if at == len(hay) - want_index:
            raise ExerciseFailure(ex, f"depth {depth} put the needle at index {at}: you counted from the end",
                                  "depth 0 is the start of the document, depth 1 the end")
        if at == math.floor(depth * len(hay)):
            raise ExerciseFailure(ex, f"depth {depth} put the needle at index {at}, expected {want_index}: "
                                      "you rounded down", "use the boundary closest to depth * len(sentences)")
        raise ExerciseFailure(ex, f"depth {depth} with {len(hay)} sentences put the needle at index {at}, "
                                  f"expected {want_index}")
    if call(ex, insert_needle, [], needle, 0.5) != [needle]:
        raise ExerciseFailure(ex, "an empty haystack should give [needle]")
    return passed(ex, "the needle lands at the right boundary and the haystack is intact")


def _balanced(said_yes, is_target):
    pos = [y for y, t in zip(said_yes, is_target) if t]
    neg = [y for y, t in zip(said_yes, is_target) if not t]
    return (sum(pos) / len(pos) + (1 - sum(neg) / len(neg))) / 2


def check_balanced_accuracy(balanced_accuracy) -> bool:
    """Exercise 14.2: ``balanced_accuracy(said_yes, is_target)`` -> mean of hit rate and
    correct-rejection rate."""
    ex = "Exercise 14.2 (balanced accuracy)"
    cases = [
        ([False] * 8, [True] * 2 + [False] * 6),  # always "no", few targets: accuracy 0.75, balanced 0.5
        ([True] * 8, [True] * 2 + [False] * 6),  # always "yes"
        ([True, False, True, False, False, True, False, False], [True, True, False, False, False, True, False, False]),
        ([True, True, False, False], [True, True, False, False]),
    ]
    for said_yes, is_target in cases:
        got = call(ex, balanced_accuracy, list(said_yes), list(is_target))
        want = _balanced(said_yes, is_target)
        accuracy = sum(y == t for y, t in zip(said_yes, is_target)) / len(said_yes)
        hits = sum(y and t for y, t in zip(said_yes, is_target)) / sum(is_target)
        g = expect_float(ex, got)
        if math.isclose(g, want, abs_tol=1e-9):
            continue
        if math.isclose(g, accuracy, abs_tol=1e-9):
            raise ExerciseFailure(ex, f"for {said_yes} vs {is_target} you returned the plain accuracy {g:.3f}; "
                                      f"balanced accuracy is {want:.3f}",
                                  "average the hit rate (over targets) and the correct-rejection rate (over "
                                  "non-targets), so that a model that always says the same thing scores 0.5")
        if math.isclose(g, hits, abs_tol=1e-9):
            raise ExerciseFailure(ex, "you returned the hit rate alone", "average it with 1 - false-alarm rate")
        expect_close(ex, g, want, f"balanced_accuracy({said_yes}, {is_target})")
    return passed(ex, "always-yes and always-no both score 0.5, as chance should")


def _reference_span(lengths, accuracies, threshold=0.5):
    from ..probes import span_from_curve

    return span_from_curve(lengths, accuracies, threshold)


def check_span_from_curve(span_from_curve) -> bool:
    """Exercise 14.3: ``span_from_curve(lengths, accuracies, threshold=0.5)`` -> the interpolated
    length at which accuracy first falls below the threshold."""
    ex = "Exercise 14.3 (span from a span curve)"
    cases = [
        ([3, 4, 5, 6], [1.0, 1.0, 0.0, 0.0], "a step from 1 to 0"),
        ([3, 5, 7, 9], [1.0, 0.75, 0.25, 0.0], "a gentle slope"),
        ([3, 5, 7, 9], [1.0, 0.75, 0.25, 0.75], "a curve that recovers after failing"),
        ([2, 4, 6], [1.0, 1.0, 0.5], "a curve that ends exactly at the threshold"),
        ([7, 3, 5], [0.0, 1.0, 1.0], "unsorted lengths"),
    ]
    for lengths, accs, what in cases:
        got = call(ex, span_from_curve, list(lengths), list(accs))
        want = _reference_span(lengths, accs)
        g = expect_float(ex, got)
        if math.isclose(g, want, abs_tol=1e-6):
            continue
        pts = sorted(zip(lengths, accs))
        passing = [L for L, a in pts if a >= 0.5]
        failing = [L for L, a in pts if a < 0.5]
        if failing and passing and g == max(L for L in passing if L < failing[0]):
            raise ExerciseFailure(ex, f"for {what} you returned {g:g}, the last length that passed; expected "
                                      f"{want:g}", "interpolate linearly between the last pass and the first fail")
        if failing and g == failing[0]:
            raise ExerciseFailure(ex, f"for {what} you returned the first failing length {g:g}; expected {want:g}",
                                  "interpolate between it and the length before it")
        if what == "unsorted lengths":
            raise ExerciseFailure(ex, f"for unsorted lengths you returned {g:g}, expected {want:g}",
                                  "sort the (length, accuracy) pairs by length first")
        raise ExerciseFailure(ex, f"for {what} ({lengths}, {accs}) you returned {g:g}, expected {want:g}")
    got = call(ex, span_from_curve, [3, 5, 7], [1.0, 1.0, 0.9])
    if not math.isclose(float(got), 7.0):
        raise ExerciseFailure(ex, f"a curve that never falls below the threshold should give the longest "
                                  f"length tested (7), got {got!r}")
    return passed(ex, "interpolated spans match on steps, slopes, recoveries and unsorted curves")
