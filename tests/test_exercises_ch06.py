"""Chapter 6 checkers: right answers pass, typical mistakes get specific messages."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch06
from wmlib.induction import induction_scores


def right_induction(w, T, start):
    i = torch.arange(start + T, start + 2 * T)
    return w[i, i - T + 1].mean().item()


def test_induction_score_passes(capsys):
    assert ch06.check_induction_score(right_induction)
    assert ch06.check_induction_score(lambda w, T, s: induction_scores(w, T, s))  # a 0-d tensor is fine
    assert "✓ Exercise 6.1" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (lambda w, T, s: w[torch.arange(s + T, s + 2 * T), torch.arange(s, s + T)].mean(), "duplicate-token"),
    (lambda w, T, s: w[torch.arange(s + T, s + 2 * T), torch.arange(s + 2, s + T + 2)].mean(), "two after"),
    (lambda w, T, s: w[torch.arange(T - 1, s + 2 * T), torch.arange(0, s + T + 1)].mean(), "first copy"),
    (lambda w, T, s: w[torch.arange(s + T + 1, s + 2 * T), torch.arange(s + 2, s + T + 1)].mean(), "left out"),
    (lambda w, T, s: w[torch.arange(s + T, s + 2 * T), torch.arange(s + 1, s + T + 1)].sum(), "summed"),
    (lambda w, T, s: w[torch.arange(s + T, s + 2 * T), torch.arange(s + 1, s + T + 1)], "one number"),
    (lambda w, T, s: "high", "should be a number"),
])
def test_induction_score_diagnoses(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch06.check_induction_score(wrong)


def right_sink(w, is_sink):
    return w[..., is_sink].sum(-1).mean()


def test_sink_fraction_passes():
    assert ch06.check_sink_fraction(right_sink)


@pytest.mark.parametrize("wrong, message", [
    (lambda w, s: w[:, s, :].sum(-2).mean(), "columns"),
    (lambda w, s: w[..., s].mean(-1).mean(), "instead of adding"),
    (lambda w, s: w[..., ~s].sum(-1).mean(), "non-sink"),
    (lambda w, s: w[..., s].sum(-1).mean((-1,)), "average over the heads"),
    (lambda w, s: w[..., s].sum(-1).mean() / w.shape[-1], "divided"),
])
def test_sink_fraction_diagnoses(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch06.check_sink_fraction(wrong)


def right_target(tokens, i):
    for j in range(i - 1, -1, -1):
        if tokens[j] == tokens[i]:
            return j + 1
    return None


def test_induction_target_passes():
    assert ch06.check_induction_target(right_target)


def first_occurrence(tokens, i):
    for j in range(i):
        if tokens[j] == tokens[i]:
            return j + 1
    return None


def occurrence_itself(tokens, i):
    t = right_target(tokens, i)
    return None if t is None else t - 1


@pytest.mark.parametrize("wrong, message", [
    (first_occurrence, "most recent"),
    (occurrence_itself, "earlier occurrence itself"),
    (lambda tokens, i: right_target(tokens, i) or -1, "expected None"),
    (lambda tokens, i: None if right_target(tokens, i) is None else right_target(tokens, i) + 1, "too far"),
])
def test_induction_target_diagnoses(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch06.check_induction_target(wrong)


def test_unattempted_is_friendly():
    def stub(*args):
        raise NotImplementedError

    for check in (ch06.check_induction_score, ch06.check_sink_fraction, ch06.check_induction_target):
        with pytest.raises(ExerciseIncomplete):
            check(stub)
