"""Chapter 14 checkers accept right answers and name the typical mistakes."""

import re

import pytest
from scipy.stats import norm

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch14
from wmlib.probes import Item, Task
from wmlib.probes.tasks import fit_to_length, join_parts, last_user
from wmlib.stats import wilson


class Passkey(Task):
    name = "passkey"
    description = "a 5-digit pass key in repeated filler"
    axes = ("length", "depth")
    QUICK = dict(lengths=[256, 512], depths=[0.0, 0.5, 1.0], limit=2)
    FULL = QUICK

    def make_item(self, lm, rng, cell, settings):
        key = str(rng.randrange(10_000, 100_000))

        def build(k):
            filler = ["The sea is calm and the road is long."] * k
            filler.insert(round(cell["depth"] * k), f"The pass key is {key}. Remember it.")
            return "A pass key is hidden in the text below.\n" + " ".join(filler) + "\nWhat is the pass key?"

        _, user = fit_to_length(lm.count_tokens, build, cell["length"], "passkey")
        answer, parts = join_parts([key])
        return Item(self.name, 0, dict(cell), [{"role": "user", "content": user}], "The pass key is", answer, parts)

    def solve(self, messages):
        key = re.search(r"The pass key is (\d+)\. Remember it\.", last_user(messages)).group(1)
        return "The pass key is" + join_parts([key])[0]


def test_task():
    assert ch14.check_task(Passkey)

    class WithFullStop(Passkey):
        def make_item(self, lm, rng, cell, settings):
            it = super().make_item(lm, rng, cell, settings)
            it.parts = [(1, len(it.answer))]
            return it

    class Twice(Passkey):
        def make_item(self, lm, rng, cell, settings):
            it = super().make_item(lm, rng, cell, settings)
            key = it.part_texts[0]
            it.messages = [{"role": "user", "content": it.user.replace("below.", f"below ({key}).")}]
            return it

    class Remembers(Passkey):
        def make_item(self, lm, rng, cell, settings):
            it = super().make_item(lm, rng, cell, settings)
            self.last = it.prefix + it.answer
            return it

        def solve(self, messages):
            return self.last

    class Unseeded(Passkey):
        def make_item(self, lm, rng, cell, settings):
            import random

            return super().make_item(lm, random.Random(), cell, settings)

    for wrong, message in ((WithFullStop, "one part, the key's digits"), (Twice, "appears 2 times"),
                           (Remembers, "does not give the prefix"), (Unseeded, "same seed")):
        with pytest.raises(ExerciseFailure, match=message):
            ch14.check_task(wrong)
    with pytest.raises(ExerciseFailure, match="subclass"):
        ch14.check_task(dict)


def _counts(said, targets):
    h = sum(y and t for y, t in zip(said, targets))
    m = sum((not y) and t for y, t in zip(said, targets))
    f = sum(y and not t for y, t in zip(said, targets))
    c = sum((not y) and (not t) for y, t in zip(said, targets))
    return h, m, f, c


def test_dprime():
    def right(said, targets):
        h, m, f, c = _counts(said, targets)
        return norm.ppf((h + 0.5) / (h + m + 1)) - norm.ppf((f + 0.5) / (f + c + 1))

    assert ch14.check_dprime(right)

    def uncorrected(said, targets):
        h, m, f, c = _counts(said, targets)
        return norm.ppf(h / (h + m)) - norm.ppf(f / (f + c))

    def swapped(said, targets):
        return -right(said, targets)

    def difference(said, targets):
        h, m, f, c = _counts(said, targets)
        return h / (h + m) - f / (f + c)

    for wrong, message in ((uncorrected, "correction"), (swapped, "negative"), (difference, "z-scores")):
        with pytest.raises(ExerciseFailure, match=message):
            ch14.check_dprime(wrong)


def test_effective_length():
    def right(counts, threshold):
        best = None
        for length in sorted(counts):
            if not wilson(*counts[length]).above(threshold):
                break
            best = length
        return best

    assert ch14.check_effective_length(right)

    def no_stop(counts, threshold):
        passing = [L for L in counts if wilson(*counts[L]).above(threshold)]
        return max(passing) if passing else None

    def by_point(counts, threshold):
        best = None
        for length in sorted(counts):
            if counts[length][0] / counts[length][1] <= threshold:
                break
            best = length
        return best

    def zero(counts, threshold):
        return right(counts, threshold) or 0

    for wrong, message in ((no_stop, "longest passing"), (by_point, "point estimate"), (zero, "None")):
        with pytest.raises(ExerciseFailure, match=message):
            ch14.check_effective_length(wrong)


def test_unattempted_exercise_is_reported_as_such():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete, match="not attempted"):
        ch14.check_dprime(stub)
