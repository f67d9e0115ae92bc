"""The checkers say what is wrong, and pass right answers."""

import math

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch05


def right_attention(q, k, v):
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v, w


@pytest.mark.parametrize(
    "attention, message",
    [
        (lambda q, k, v: (torch.softmax(q @ k.transpose(-2, -1), -1) @ v, torch.softmax(q @ k.transpose(-2, -1), -1)),
         "forgot to divide"),
        (lambda q, k, v: (None, torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], -1)), "instead of √d_k"),
        (lambda q, k, v: (None, torch.softmax(q @ k.transpose(-2, -1) / 4, dim=-2)), "columns"),
        (lambda q, k, v: (None, torch.softmax(k @ q.transpose(-2, -1) / 4, dim=-1)), "swapped"),
        (lambda q, k, v: right_attention(q, k, v)[1], "return a pair"),
        (lambda q, k, v: (right_attention(q, k, v)[1], right_attention(q, k, v)[1]), "output"),
    ],
)
def test_attention_checker_diagnoses(attention, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_attention(attention)


def test_checker_passes_and_prints(capsys):
    assert ch05.check_attention(right_attention)
    assert capsys.readouterr().out.startswith("✓ Exercise 5.1")


def test_unattempted_exercise_is_friendly():
    def stub(q, k, v):
        raise NotImplementedError

    with pytest.raises(ExerciseIncomplete) as err:
        ch05.check_attention(stub)
    lines = err.value._render_traceback_()
    assert lines[0].startswith("✗ Exercise 5.1") and "not attempted" in lines[0]
    assert not any("Traceback" in line for line in lines)
    assert isinstance(err.value, AssertionError), "nbgrader counts AssertionError as a failed test"


def test_student_exceptions_become_messages():
    with pytest.raises(ExerciseFailure, match="raised ZeroDivisionError"):
        ch05.check_attention(lambda q, k, v: 1 / 0)


@pytest.mark.parametrize(
    "mask, message",
    [
        (lambda n: torch.ones(n, n).tril(), "dtype"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).triu(), "transposed"),
        (lambda n: torch.ones(n, n, dtype=torch.bool).tril(-1), "diagonal"),
        (lambda n: ~torch.ones(n, n, dtype=torch.bool).tril(), "swapped"),
        (lambda n: torch.ones(n, n + 1, dtype=torch.bool), "shape"),
    ],
)
def test_causal_mask_checker(mask, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_causal_mask(mask)


@pytest.mark.parametrize(
    "count, message",
    [
        (lambda d, h: 4 * d * d, "bias"),
        (lambda d, h: h * (4 * d * d + 4 * d), "does not depend on the number of heads"),
        (lambda d, h: 3 * d * d + 3 * d, "output projection"),
        (lambda d, h: "many", "return an int"),
    ],
)
def test_param_count_checker(count, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch05.check_mha_param_count(count)
    assert ch05.check_mha_param_count(lambda d, h: 4 * d * d + 4 * d)


def test_matrix_bytes_checker():
    with pytest.raises(ExerciseFailure, match="L x L"):
        ch05.check_attention_matrix_bytes(lambda b, h, n, dt: b * h * n * 4)
    with pytest.raises(ExerciseFailure, match="dtype"):
        ch05.check_attention_matrix_bytes(lambda b, h, n, dt: b * h * n * n * 4)
    assert ch05.check_attention_matrix_bytes(
        lambda b, h, n, dt: b * h * n * n * torch.empty((), dtype=dt).element_size())
