"""Chapter 9's checkers pass right answers and name the typical mistakes."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch09


def right_shift(w, s):
    return s[:, 0:1] * torch.roll(w, -1, -1) + s[:, 1:2] * w + s[:, 2:3] * torch.roll(w, 1, -1)


def zero_padded_shift(w, s):
    pad = torch.nn.functional.pad(w, (1, 1))
    return s[:, 0:1] * pad[:, 2:] + s[:, 1:2] * w + s[:, 2:3] * pad[:, :-2]


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda w, s: right_shift(w, s.flip(-1)), "direction is reversed"),
        (zero_padded_shift, "wrapping around"),
        (lambda w, s: w, "one-hot on row 3"),
        (lambda w, s: right_shift(w, s)[:, :-1], "shape"),
    ],
)
def test_shift_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch09.check_shift_weighting(fn)


def test_shift_checker_catches_reversed_s_on_blends():
    # right on one-hot +1 shifts, wrong on blends: uses s[:, 0] for +1 only when s is not one-hot
    def sneaky(w, s):
        if torch.equal(s, torch.tensor([[0.0, 0.0, 1.0]])):
            return right_shift(w, s)
        return right_shift(w, s.flip(-1))

    with pytest.raises(ExerciseFailure, match="backwards"):
        ch09.check_shift_weighting(sneaky)


def right_write(m, w, e, a):
    return m * (1 - torch.outer(w, e)) + torch.outer(w, a)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda m, w, e, a: (m + torch.outer(w, a)) * (1 - torch.outer(w, e)), "added before erasing"),
        (lambda m, w, e, a: m * (1 - e) + torch.outer(w, a), "ignores the weighting"),
        (lambda m, w, e, a: m + torch.outer(w, a), "no erase"),
        (lambda m, w, e, a: torch.outer(w, a), "replaced the memory"),
        (lambda m, w, e, a: m * (1 - torch.outer(w, e)) + a, "add ignores"),
        (lambda m, w, e, a: m * (1 - torch.outer(e, w)).T + torch.outer(w, a) * 1.1, "off by"),
        (lambda m, w, e, a: torch.outer(a, w), "shape"),
    ],
)
def test_write_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch09.check_erase_add_write(fn)


def right_sharpen(w, gamma):
    p = w**gamma
    return p / p.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda w, gamma: w**gamma, "sum to 1"),
        (lambda w, gamma: torch.softmax(gamma * w, -1), "softmax"),
        (lambda w, gamma: w, "γ = 1 is right"),
        (lambda w, gamma: right_sharpen(w, gamma)[:, :4], "shape"),
    ],
)
def test_sharpen_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch09.check_sharpen(fn)


def right_peak(s, steps, gamma):
    w = torch.zeros(1, 32)
    w[0, 0] = 1
    for _ in range(steps):
        w = right_sharpen(right_shift(w, s[None]), gamma)
    return w.max().item()


def test_peak_checker_diagnoses():
    with pytest.raises(ExerciseFailure, match="not s_max"):
        ch09.check_peak_after_shifts(lambda s, steps, gamma: s.max().item() ** steps if steps else 1.0)
    with pytest.raises(ExerciseFailure, match="return a number"):
        ch09.check_peak_after_shifts(lambda s, steps, gamma: "high")
    with pytest.raises(ExerciseFailure, match="zero steps"):
        ch09.check_peak_after_shifts(lambda s, steps, gamma: right_peak(s, steps, gamma) if steps else 0.5)


def test_right_answers_pass(capsys):
    assert ch09.check_shift_weighting(right_shift)
    assert ch09.check_erase_add_write(right_write)
    assert ch09.check_sharpen(right_sharpen)
    assert ch09.check_peak_after_shifts(right_peak)
    out = capsys.readouterr().out
    assert out.count("✓ Exercise 9.") == 4


def test_unattempted_is_friendly():
    def stub(*args):
        raise NotImplementedError

    for check in (ch09.check_shift_weighting, ch09.check_erase_add_write, ch09.check_sharpen,
                  ch09.check_peak_after_shifts):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)
