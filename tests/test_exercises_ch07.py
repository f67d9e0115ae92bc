"""Chapter 7 checkers: right answers pass, typical wrong answers get a specific diagnosis."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch07


def right_bytes(layers, heads, kv_heads, head_dim, size):
    return 2 * layers * kv_heads * head_dim * size


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
    assert ch07.check_bytes_per_token(right_bytes)
    assert ch07.check_bytes_per_token(lambda *a: float(right_bytes(*a)))  # 46080.0 is accepted
    assert ch07.check_keep_positions(right_keep)
    assert ch07.check_keep_positions(lambda *a: torch.tensor(right_keep(*a), dtype=torch.long))
    assert ch07.check_heavy_hitters(right_h2o)
    out = capsys.readouterr().out
    assert out.count("✓ Exercise 7.") == 5


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda L, H, G, D, b: L * G * D * b, "a factor 2"),
        (lambda L, H, G, D, b: 2 * L * H * D * b, "only the key/value heads"),
        (lambda L, H, G, D, b: 2 * G * D * b, "multiply by the number of layers"),
        (lambda L, H, G, D, b: 2 * L * G * D, "bytes per element"),
        (lambda L, H, G, D, b: 16 * L * G * D * b, "bytes, not bits"),
        (lambda L, H, G, D, b: "46080", "return an int"),
        (lambda L, H, G, D, b: 3, r"expected 46080$"),
    ],
)
def test_bytes_per_token_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch07.check_bytes_per_token(fn)


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

    for check in (ch07.check_bytes_per_token, ch07.check_keep_positions, ch07.check_heavy_hitters):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)
