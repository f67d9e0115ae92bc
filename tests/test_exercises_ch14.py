"""Chapter 14 checkers accept right answers and name the typical mistakes."""

import math

import pytest

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch14


def test_insert_needle():
    def right(sentences, needle, depth):
        i = min(range(len(sentences) + 1), key=lambda k: abs(k - depth * len(sentences)))
        return sentences[:i] + [needle] + sentences[i:]

    assert ch14.check_insert_needle(right)

    def floor(sentences, needle, depth):
        i = math.floor(depth * len(sentences))
        return sentences[:i] + [needle] + sentences[i:]

    def from_end(sentences, needle, depth):
        i = len(sentences) - round(depth * len(sentences))
        return sentences[:i] + [needle] + sentences[i:]

    def replaces(sentences, needle, depth):
        i = min(round(depth * len(sentences)), len(sentences) - 1) if sentences else 0
        return sentences[:i] + [needle] + sentences[i + 1:]

    def mutates(sentences, needle, depth):
        sentences.insert(round(depth * len(sentences)), needle)
        return sentences

    for wrong, message in ((floor, "rounded down"), (from_end, "from the end"), (replaces, "every haystack"),
                           (mutates, "changed the list")):
        with pytest.raises(ExerciseFailure, match=message):
            ch14.check_insert_needle(wrong)


def test_balanced_accuracy():
    def right(said_yes, is_target):
        hits = [y for y, t in zip(said_yes, is_target) if t]
        rejections = [not y for y, t in zip(said_yes, is_target) if not t]
        return (sum(hits) / len(hits) + sum(rejections) / len(rejections)) / 2

    assert ch14.check_balanced_accuracy(right)

    def plain(said_yes, is_target):
        return sum(y == t for y, t in zip(said_yes, is_target)) / len(said_yes)

    def hit_rate(said_yes, is_target):
        return sum(y and t for y, t in zip(said_yes, is_target)) / sum(is_target)

    with pytest.raises(ExerciseFailure, match="plain accuracy"):
        ch14.check_balanced_accuracy(plain)
    with pytest.raises(ExerciseFailure, match="hit rate alone"):
        ch14.check_balanced_accuracy(hit_rate)
    with pytest.raises(ExerciseFailure, match="return a number"):
        ch14.check_balanced_accuracy(lambda s, t: "half")


def test_span_from_curve():
    from wmlib.probes import span_from_curve

    assert ch14.check_span_from_curve(span_from_curve)

    def last_pass(lengths, accs, threshold=0.5):
        pts = sorted(zip(lengths, accs))
        best = pts[0][0] - 1
        for length, a in pts:
            if a < threshold:
                return best
            best = length
        return best

    def first_fail(lengths, accs, threshold=0.5):
        pts = sorted(zip(lengths, accs))
        return next((length for length, a in pts if a < threshold), pts[-1][0])

    with pytest.raises(ExerciseFailure, match="last length that passed"):
        ch14.check_span_from_curve(last_pass)
    with pytest.raises(ExerciseFailure, match="first failing length"):
        ch14.check_span_from_curve(first_fail)
    with pytest.raises(ExerciseFailure, match="sort"):
        ch14.check_span_from_curve(_no_sort)


def _no_sort(lengths, accs, threshold=0.5):
    prev_len, prev_acc = lengths[0] - 1, 1.0
    for length, acc in zip(lengths, accs):
        if acc < threshold:
            return prev_len + (prev_acc - threshold) / (prev_acc - acc) * (length - prev_len)
        prev_len, prev_acc = length, acc
    return float(lengths[-1])


def test_unattempted_exercise_is_reported_as_such():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete, match="not attempted"):
        ch14.check_span_from_curve(stub)
