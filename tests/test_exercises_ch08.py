"""Chapter 8 checkers pass right answers and name the typical mistakes."""

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch08


def pe(J, d, start=1, sign=-1.0):
    j = torch.arange(start, J + start, dtype=torch.float32)[:, None]
    k = torch.arange(start, d + start, dtype=torch.float32)[None, :]
    return (1 - j / J) + sign * (k / d) * (1 - 2 * j / J)


def test_position_encoding_checker():
    assert ch08.check_position_encoding(pe)


@pytest.mark.parametrize("answer, message", [
    (lambda J, d: pe(J, d).T, "swapped"),
    (lambda J, d: pe(J, d, start=0), "from 0"),
    (lambda J, d: pe(J, d, sign=1.0), "sign"),
    (lambda J, d: torch.ones(J, d), "differs"),
    (lambda J, d: pe(J, d).tolist(), "torch.Tensor"),
])
def test_position_encoding_mistakes(answer, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch08.check_position_encoding(answer)


def right_hop(u, m, c):
    p = torch.softmax((m @ u.unsqueeze(-1)).squeeze(-1), -1)
    return p, (p.unsqueeze(-1) * c).sum(1)


def test_memory_hop_checker(capsys):
    assert ch08.check_memory_hop(right_hop)
    assert capsys.readouterr().out.startswith("✓ Exercise 8.2")


@pytest.mark.parametrize("answer, message", [
    (lambda u, m, c: ((m @ u.unsqueeze(-1)).squeeze(-1), None), "softmax is missing"),
    (lambda u, m, c: (torch.softmax((m @ u.unsqueeze(-1)).squeeze(-1), 0), None), "sum to 1"),
    (lambda u, m, c: right_hop(u, c, c), "output vectors c_i; it should use the input"),
    (lambda u, m, c: (right_hop(u, m, c)[0], right_hop(u, m, m)[1]), "averages the input vectors"),
    (lambda u, m, c: (right_hop(u, m, c)[0], u + right_hop(u, m, c)[1]), "u \\+ o"),
    (lambda u, m, c: right_hop(u, m, c)[0], "pair"),
])
def test_memory_hop_mistakes(answer, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch08.check_memory_hop(answer)


def right_count(V, d, K, M, temporal):
    return (K + 1) * V * d + ((K + 1) * M * d if temporal else 0)


def test_param_count_checker():
    assert ch08.check_param_count(right_count)


@pytest.mark.parametrize("answer, message", [
    (lambda V, d, K, M, t: K * (V * d + (M * d if t else 0)), "K \\+ 1 matrices"),
    (lambda V, d, K, M, t: (K + 1) * V * d, "temporal"),
    (lambda V, d, K, M, t: (2 * K + 2) * V * d + (2 * K * M * d if t else 0), "without tying"),
    (lambda V, d, K, M, t: "many", "return an int"),
])
def test_param_count_mistakes(answer, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch08.check_param_count(answer)


def test_unattempted():
    def stub(*args):
        raise NotImplementedError

    for check in (ch08.check_position_encoding, ch08.check_memory_hop, ch08.check_param_count):
        with pytest.raises(ExerciseIncomplete):
            check(stub)
