"""Chapter 7 checkers: right answers pass, typical wrong answers get a specific diagnosis."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch07


def right_positions(prompt_len, new_tokens, cached):
    if cached:
        return prompt_len + new_tokens - 1
    return sum(prompt_len + i for i in range(new_tokens))


def right_keep(length, budget, sinks=0):
    if length <= budget:
        return list(range(length))
    return list(range(sinks)) + list(range(length - (budget - sinks), length))


def right_h2o(scores, budget, recent):
    L = scores.shape[0]
    if L <= budget:
        return list(range(L))
    return scores[: L - recent].topk(budget - recent).indices.sort().values.tolist() + list(range(L - recent, L))


def test_right_answers_pass(capsys):
    assert ch07.check_positions_processed(right_positions)
    assert ch07.check_positions_processed(lambda *a: float(right_positions(*a)))  # 14.0 is accepted
    assert ch07.check_positions_processed(lambda *a: torch.tensor(right_positions(*a)))
    assert ch07.check_keep_positions(right_keep)
    assert ch07.check_keep_positions(lambda *a: torch.tensor(right_keep(*a), dtype=torch.long))
    assert ch07.check_heavy_hitters(right_h2o)
    out = capsys.readouterr().out
    assert out.count("✓ Exercise 7.") == 6


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda p, n, c: p + n if c else right_positions(p, n, c), "first new token comes out of the prompt pass"),
        (lambda p, n, c: n - 1 if c else right_positions(p, n, c), "the prefill"),
        (lambda p, n, c: right_positions(p, n, not c), "swapped"),
        (lambda p, n, c: right_positions(p, n, c) if c else sum(p + i for i in range(1, n + 1)),
         "the first new token comes out of the prompt alone"),
        (lambda p, n, c: right_positions(p, n, c) if c else p + right_positions(p, n, c), "separate prefill"),
        (lambda p, n, c: right_positions(p, n, c) if c else n * p, "re-reads the tokens generated before it"),
        (lambda p, n, c: p + n - 1, "re-reads the whole sequence"),
        (lambda p, n, c: str(right_positions(p, n, c)), "should return an int"),
        (lambda p, n, c: right_positions(p, n, c) + 0.5, "should return an int"),
        (lambda p, n, c: True, "returned a bool"),
        (lambda p, n, c: 3, r"= 3, expected 14$"),
    ],
)
def test_positions_processed_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch07.check_positions_processed(fn)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda n, b, s=0: list(range(max(n - b, 0), n)), "forgot the 1 sink"),
        (lambda n, b, s=0: list(range(s)) + list(range(max(n - b + s, 0), n)), "keeps a position twice"),
        (lambda n, b, s=0: right_keep(n, b, s)[::-1], "ascending order"),
        (lambda n, b, s=0: sorted(set(range(n)) - set(right_keep(n, b, s))), "evicted positions"),
        (lambda n, b, s=0: list(range(s)) + list(range(n - b + s - 1, n)) if n > b else list(range(n)),
         "keeps 5 positions; the budget is 4"),
        (lambda n, b, s=0: torch.zeros(2, 2), "1-D integer tensor"),
        (lambda n, b, s=0: 7, "list of positions"),
    ],
)
def test_keep_positions_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch07.check_keep_positions(fn)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda s, b, r: sorted(s.topk(min(b, len(s))).indices.tolist()), "top-6 scores overall"),
        (lambda s, b, r: right_h2o(-s, b, r), "lowest scores"),
        (lambda s, b, r: right_h2o(s, b, r)[::-1], "ascending order"),
        (lambda s, b, r: right_h2o(s, b, r)[:-1], "keeps 5 positions"),
        (lambda s, b, r: s.topk(min(b - r, len(s))).indices.sort().values.tolist() + list(range(len(s) - r, len(s)))
         if len(s) > b else list(range(len(s))), "twice|expected"),
    ],
)
def test_heavy_hitters_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch07.check_heavy_hitters(fn)


def test_stubs_are_not_attempted():
    def stub(*args):
        raise NotImplementedError

    for check in (ch07.check_positions_processed, ch07.check_keep_positions, ch07.check_heavy_hitters):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)
