"""Chapter 4's checkers pass right answers and name the typical mistakes."""

import pytest
import torch

from wmlib.addressing import shift, write
from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch04

# ------------------------------------------------------------------------- 4.1 the Jacobian


def jac(z, T=1.0):
    p = torch.softmax(z / T, -1)
    return (torch.diag(p) - torch.outer(p, p)) / T


@pytest.mark.parametrize("fn, message", [
    (lambda z, T=1.0: torch.diag(torch.softmax(z / T, -1)) / T, "diag\\(p\\) only"),
    (lambda z, T=1.0: -torch.outer(torch.softmax(z / T, -1), torch.softmax(z / T, -1)) / T, "-p pᵀ only"),
    (lambda z, T=1.0: -jac(z, T), "sign is flipped"),
    (lambda z, T=1.0: (torch.diag(z) - torch.outer(z, z)) / T, "scores z instead"),
    (lambda z, T=1.0: jac(z, T) * T, "chain-rule factor is missing"),
    (lambda z, T=1.0: jac(z, T) * T * T, "multiplied by T"),
    (lambda z, T=1.0: jac(z, T)[:3], "shape"),
    (lambda z, T=1.0: jac(z, T) + 0.1, "differs from autograd"),
])
def test_jacobian_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch04.check_softmax_jacobian(fn)


def test_jacobian_checker_passes(capsys):
    assert ch04.check_softmax_jacobian(jac)
    assert capsys.readouterr().out.startswith("✓ Exercise 4.1")


def test_unattempted_is_friendly():
    def stub(*args, **kwargs):
        raise NotImplementedError

    for check in (ch04.check_softmax_jacobian, ch04.check_ntm_write, ch04.check_circular_shift,
                  ch04.check_kd_gradient):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)


# ---------------------------------------------------------------------------- 4.2 the write


def outer(w, v):
    return w[:, :, None] * v[:, None, :]


def in_place(m, w, e, a):
    m *= 1 - outer(w, e)
    m += outer(w, a)
    return m


@pytest.mark.parametrize("fn, message", [
    (lambda m, w, e, a: (m + outer(w, a)) * (1 - outer(w, e)), "added before erasing"),
    (lambda m, w, e, a: m + outer(w, a), "no erase"),
    (lambda m, w, e, a: m * (1 - e[:, None, :]) + outer(w, a), "ignores the weighting"),
    (lambda m, w, e, a: m * outer(w, e) + outer(w, a), "instead of \\(1 - w eᵀ\\)"),
    (lambda m, w, e, a: m * (1 - outer(w, e)) + a[:, None, :], "not weighted by w"),
    (in_place, "in-place"),
    (lambda m, w, e, a: (m * (1 - outer(w, e)) + outer(w, a)).transpose(1, 2), "shape"),
])
def test_write_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch04.check_ntm_write(fn)
    assert ch04.check_ntm_write(write)


# ---------------------------------------------------------------------------- 4.3 the shift


def zero_padded(w, s):
    half = s.shape[-1] // 2
    out = torch.zeros_like(w)
    for k in range(s.shape[-1]):
        o = k - half
        moved = torch.zeros_like(w)
        if o >= 0:
            moved[:, o:] = w[:, : w.shape[1] - o]
        else:
            moved[:, :o] = w[:, -o:]
        out = out + s[:, k : k + 1] * moved
    return out


@pytest.mark.parametrize("fn, message", [
    (lambda w, s: shift(w, s.flip(-1)), "wrong way"),
    (zero_padded, "wrap around"),
    (lambda w, s: w, "weight should move to slot 0"),
])
def test_shift_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch04.check_circular_shift(fn)
    assert ch04.check_circular_shift(shift)


def test_shift_checker_reversed_for_wider_kernels():
    # Right for S = 3 one-hot +1, but reversed when S = 5 (indexes s from the wrong end).
    def half_right(w, s):
        return shift(w, s) if s.shape[-1] == 3 else shift(w, s.flip(-1))

    with pytest.raises(ExerciseFailure, match="directions are reversed"):
        ch04.check_circular_shift(half_right)


# ------------------------------------------------------------------------- 4.4 KD gradient


def diff(zs, zt, T):
    return torch.softmax(zs / T, -1) - torch.softmax(zt / T, -1)


@pytest.mark.parametrize("fn, message", [
    (lambda zs, zt, T: -T * diff(zs, zt, T) / zs.shape[0], "sign is flipped"),
    (lambda zs, zt, T: diff(zs, zt, T) / (T * zs.shape[0]), "KL alone"),
    (lambda zs, zt, T: diff(zs, zt, T) / zs.shape[0], "factor T is missing"),
    (lambda zs, zt, T: T * T * diff(zs, zt, T) / zs.shape[0], "chain rule"),
    (lambda zs, zt, T: T * diff(zs, zt, T), "batchmean"),
    (lambda zs, zt, T: T * diff(zs, zt, T)[:, :3], "shape"),
])
def test_kd_gradient_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch04.check_kd_gradient(fn)
    assert ch04.check_kd_gradient(lambda zs, zt, T: T * diff(zs, zt, T) / zs.shape[0])
