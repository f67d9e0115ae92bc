"""Chapter 3's checkers pass right answers and name the typical mistakes."""

import math

import pytest
import torch

from wmlib.exercises import ExerciseFailure, ExerciseIncomplete, ch03
from wmlib.positional import apply_rope, sinusoidal_encoding

# ------------------------------------------------------------------------------ 3.1 softmax


def right_softmax(z, dim=-1, temperature=1.0):
    z = z / temperature
    e = (z - z.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def naive(z, dim=-1, temperature=1.0):
    e = (z / temperature).exp()
    return e / e.sum(dim=dim, keepdim=True)


def global_max(z, dim=-1, temperature=1.0):
    z = z / temperature
    e = (z - z.max()).exp()
    return e / e.sum(dim=dim, keepdim=True)


@pytest.mark.parametrize("fn, message", [
    (naive, "overflows"),
    (global_max, "one maximum for the whole tensor"),
    (lambda z, dim=-1, temperature=1.0: right_softmax(z, -1, temperature), "dim"),
    (lambda z, dim=-1, temperature=1.0: right_softmax(z, dim, 1 / temperature), "multiplied the scores by τ"),
    (lambda z, dim=-1, temperature=1.0: right_softmax(z, dim), "temperature is ignored"),
    (lambda z, dim=-1, temperature=1.0: right_softmax(z, 0, temperature), "default dim"),
    (lambda z, dim=-1, temperature=1.0: torch.exp(z), "differs from softmax"),
])
def test_softmax_checker_diagnoses(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch03.check_stable_softmax(fn)


def test_softmax_checker_passes(capsys):
    assert ch03.check_stable_softmax(right_softmax)
    assert capsys.readouterr().out.startswith("✓ Exercise 3.1")


def test_unattempted_is_friendly():
    def stub(*args, **kwargs):
        raise NotImplementedError

    for check in (ch03.check_stable_softmax, ch03.check_scaled_score_variance, ch03.check_sinusoidal,
                  ch03.check_rope, ch03.check_gqa_param_count):
        with pytest.raises(ExerciseIncomplete, match="not attempted"):
            check(stub)


# ----------------------------------------------------------------------------- 3.2 variance


@pytest.mark.parametrize("fn, message", [
    (lambda d, sq, sk: d * sq**2 * sk**2, "raw dot product"),
    (lambda d, sq, sk: math.sqrt(d) * sq**2 * sk**2, "not by √d_k"),
    (lambda d, sq, sk: sq**2 * sk**2 / d, "divided by d_k twice"),
    (lambda d, sq, sk: sq * sk, "standard deviation"),
    (lambda d, sq, sk: sq**2 + sk**2, "multiply"),
    (lambda d, sq, sk: "one", "return a number"),
])
def test_variance_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch03.check_scaled_score_variance(fn)
    assert ch03.check_scaled_score_variance(lambda d, sq, sk: sq**2 * sk**2)


# --------------------------------------------------------------------------- 3.3 sinusoidal


def table(L, d, exponent=2.0, cos_first=False, concat=False):
    pos = torch.arange(L, dtype=torch.float64)[:, None]
    idx = torch.arange(0, d, 2, dtype=torch.float64) if exponent == 2.0 else torch.arange(d // 2, dtype=torch.float64)
    a = pos * 10000.0 ** (-idx / d)
    first, second = (a.cos(), a.sin()) if cos_first else (a.sin(), a.cos())
    return torch.cat([first, second], -1) if concat else torch.stack([first, second], -1).reshape(L, d)


@pytest.mark.parametrize("fn, message", [
    (lambda L, d: table(L, d, cos_first=True), "swapped"),
    (lambda L, d: table(L, d, concat=True), "interleaves"),
    (lambda L, d: table(L, d, exponent=1.0), "i/d"),
    (lambda L, d: table(L, d).T, "transposed"),
    (lambda L, d: table(L, d) + 1, "differs from the paper"),
])
def test_sinusoidal_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch03.check_sinusoidal(fn)
    assert ch03.check_sinusoidal(lambda L, d: sinusoidal_encoding(L, d))
    assert ch03.check_sinusoidal(lambda L, d: table(L, d))  # float64 is accepted too


# --------------------------------------------------------------------------------- 3.4 RoPE


def rope_with(exponent=2.0, sign=1.0, ignore_base=False):
    def rope(x, positions, base=10000.0):
        b = 10000.0 if ignore_base else base
        d = x.shape[-1]
        idx = torch.arange(0, d, 2, dtype=torch.float64) if exponent == 2.0 else torch.arange(d // 2, dtype=torch.float64)
        ang = sign * positions.double()[:, None] * b ** (-idx / d)
        ang = torch.cat([ang, ang], -1)
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()
    return rope


@pytest.mark.parametrize("fn, message", [
    (lambda x, positions, base=10000.0: apply_rope(x, positions, base, interleaved=True), "RoFormer layout"),
    (rope_with(sign=-1.0), "wrong direction"),
    (rope_with(exponent=1.0), "i/d"),
    (rope_with(ignore_base=True), "base"),
    (lambda x, positions, base=10000.0: x, "nothing was rotated"),
    (lambda x, positions, base=10000.0: 2 * apply_rope(x, positions, base), "length"),
    (lambda x, positions, base=10000.0: x[..., :4], "shape"),
])
def test_rope_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch03.check_rope(fn)


def test_rope_checker_passes():
    assert ch03.check_rope(rope_with())
    assert ch03.check_rope(lambda x, positions, base=10000.0: apply_rope(x, positions, base))


# ---------------------------------------------------------------------- 3.5 GQA parameters


def gqa(D, H, Hkv, dh, bias=False):
    q, kv = H * dh, Hkv * dh
    return D * q + 2 * D * kv + q * D + ((q + 2 * kv + D) if bias else 0)


@pytest.mark.parametrize("fn, message", [
    (lambda D, H, Hkv, dh, bias=False: gqa(D, H, H, dh, bias), "ordinary multi-head"),
    (lambda D, H, Hkv, dh, bias=False: gqa(D, H, Hkv, dh, bias) - H * dh * D - (D if bias else 0), "output projection"),
    (lambda D, H, Hkv, dh, bias=False: gqa(D, H, Hkv, dh, not bias), "biases"),
    (lambda D, H, Hkv, dh, bias=False: 4 * D * D + (4 * D if bias else 0), "ordinary multi-head|narrower"),
    (lambda D, H, Hkv, dh, bias=False: "many", "return an int"),
])
def test_gqa_checker(fn, message):
    with pytest.raises(ExerciseFailure, match=message):
        ch03.check_gqa_param_count(fn)
    assert ch03.check_gqa_param_count(gqa)
    assert ch03.check_gqa_param_count(lambda *a, **k: float(gqa(*a, **k)))  # 884736.0 is fine too
