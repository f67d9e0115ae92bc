"""Checkers for Chapter 3, "The mathematics of attention"."""

from __future__ import annotations

import math

import torch

from ._core import ExerciseFailure, call, expect_float, expect_int, expect_tensor, passed

__all__ = [
    "check_stable_softmax",
    "check_scaled_score_variance",
    "check_sinusoidal",
    "check_rope",
    "check_gqa_param_count",
]


def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-5, equal_nan=False))


# --------------------------------------------------------------------------------- Exercise 3.1


def check_stable_softmax(stable_softmax) -> bool:
    """Exercise 3.1: ``stable_softmax(z, dim=-1, temperature=1.0)``."""
    ex = "Exercise 3.1 (stable softmax)"
    g = torch.Generator().manual_seed(31)

    z = torch.randn(3, 5, generator=g) * 3
    got = expect_tensor(ex, call(ex, stable_softmax, z), shape=(3, 5))
    if not _same(got, torch.softmax(z, -1)):
        if _same(got, torch.softmax(z, 0)):
            raise ExerciseFailure(ex, "the default dim should be the last one (-1)")
        if torch.allclose(got.sum(-1), torch.ones(3), atol=1e-5):
            raise ExerciseFailure(ex, "your rows sum to 1 but differ from softmax(z)",
                                  "exponentiate z (minus the max), then divide by the sum")
        raise ExerciseFailure(ex, "the result differs from softmax(z) on ordinary scores",
                              "e = (z - z.amax(dim, keepdim=True)).exp(); return e / e.sum(dim, keepdim=True)")

    big = torch.tensor([[1000.0, 999.0, 998.0]])
    got = call(ex, stable_softmax, big)
    if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
        raise ExerciseFailure(ex, "scores around 1000 give NaN or inf: exp(1000) overflows float32",
                              "subtract the maximum score before exponentiating; the softmax does not change")
    expect_tensor(ex, got, shape=(1, 3))
    if not _same(got, torch.softmax(big, -1)):
        raise ExerciseFailure(ex, "wrong weights for the scores (1000, 999, 998); expected softmax(2, 1, 0)")

    mixed = torch.tensor([[0.0, 1.0, 2.0], [-2000.0, -2001.0, -2002.0]])
    got = call(ex, stable_softmax, mixed)
    if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
        raise ExerciseFailure(ex, "a row far below the others gives NaN: you subtracted one maximum for the "
                                  "whole tensor", "subtract each row's own maximum: z.amax(dim=dim, keepdim=True)")
    expect_tensor(ex, got, shape=(2, 3))
    if not _same(got, torch.softmax(mixed, -1)):
        raise ExerciseFailure(ex, "wrong weights when rows have very different magnitudes")

    cols = torch.randn(4, 3, generator=g)
    got = expect_tensor(ex, call(ex, stable_softmax, cols, dim=0), shape=(4, 3))
    if not _same(got, torch.softmax(cols, 0)):
        if _same(got, torch.softmax(cols, -1)):
            raise ExerciseFailure(ex, "the `dim` argument is ignored: dim=0 should normalise the columns")
        raise ExerciseFailure(ex, "wrong result with dim=0", "use dim in amax and in sum, with keepdim=True")

    for tau in (2.0, 0.5):
        got = expect_tensor(ex, call(ex, stable_softmax, z, temperature=tau), shape=(3, 5))
        if _same(got, torch.softmax(z / tau, -1)):
            continue
        if _same(got, torch.softmax(z * tau, -1)):
            raise ExerciseFailure(ex, f"with temperature={tau} you multiplied the scores by τ",
                                  "divide the scores by the temperature: softmax(z / τ)")
        if _same(got, torch.softmax(z, -1)):
            raise ExerciseFailure(ex, "the temperature is ignored")
        raise ExerciseFailure(ex, f"wrong result with temperature={tau}; expected softmax(z / {tau})")
    return passed(ex, "exact, overflow-free, per-row maximum, any dim and temperature")


# --------------------------------------------------------------------------------- Exercise 3.2


def check_scaled_score_variance(scaled_score_variance) -> bool:
    """Exercise 3.2: ``scaled_score_variance(d_k, sigma_q, sigma_k)`` = Var(q·k/√d_k)."""
    ex = "Exercise 3.2 (variance of a scaled score)"
    for d_k, sq, sk in ((64, 1.0, 1.0), (16, 2.0, 0.5), (256, 3.0, 1.0), (4, 0.5, 0.25)):
        got = call(ex, scaled_score_variance, d_k, sq, sk)
        got = expect_float(ex, got)
        want = sq**2 * sk**2
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        hints = {
            d_k * want: "that is the variance of the raw dot product q·k; the scaled score divides it by d_k",
            math.sqrt(d_k) * want: "dividing a variable by √d_k divides its variance by d_k, not by √d_k",
            want / d_k: "you divided by d_k twice: Var(q·k) = d_k σ_q² σ_k², and the scale removes one d_k",
            sq * sk: "σ_q σ_k is a standard deviation; the variance of a product of independent zero-mean "
                     "variables is σ_q² σ_k²",
            sq**2 + sk**2: "variances of a *product* multiply: Var(q_i k_i) = E[q_i²] E[k_i²]",
        }
        hint = next((h for v, h in hints.items() if math.isclose(got, v, rel_tol=1e-6)), None)
        raise ExerciseFailure(ex, f"scaled_score_variance({d_k}, {sq}, {sk}) = {got:g}, expected {want:g}", hint)
    # A Monte Carlo estimate, to see the formula hold.
    g = torch.Generator().manual_seed(32)
    d_k, sq, sk = 64, 2.0, 0.5
    q = torch.randn(20000, d_k, generator=g, dtype=torch.float64) * sq
    k = torch.randn(20000, d_k, generator=g, dtype=torch.float64) * sk
    mc = ((q * k).sum(-1) / math.sqrt(d_k)).var().item()
    return passed(ex, f"σ_q² σ_k², independent of d_k (Monte Carlo for d_k=64, σ=2, 0.5: {mc:.3f}, formula 1)")


# --------------------------------------------------------------------------------- Exercise 3.3


def _sin_table(L, d, exponent=2.0, cos_first=False, concat=False, base=10000.0):
    pos = torch.arange(L, dtype=torch.float64)[:, None]
    idx = torch.arange(0, d, 2, dtype=torch.float64) if exponent == 2.0 else torch.arange(d // 2, dtype=torch.float64)
    omega = base ** (-idx / d)
    a = pos * omega
    first, second = (a.cos(), a.sin()) if cos_first else (a.sin(), a.cos())
    if concat:
        return torch.cat([first, second], -1)
    return torch.stack([first, second], -1).reshape(L, d)


def check_sinusoidal(sinusoidal) -> bool:
    """Exercise 3.3: ``sinusoidal(length, d)`` -> (length, d) table."""
    from ..positional import sinusoidal_encoding

    ex = "Exercise 3.3 (sinusoidal table)"
    for L, d in ((50, 16), (7, 4), (300, 64)):
        got = call(ex, sinusoidal, L, d)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (d, L) and L != d:
            raise ExerciseFailure(ex, f"shape {tuple(got.shape)}: the table is transposed; rows are positions")
        got = expect_tensor(ex, got, shape=(L, d), name=f"sinusoidal({L}, {d})")
        want = sinusoidal_encoding(L, d, dtype=torch.float64)
        if _same(got, want, atol=1e-5):
            continue
        variants = {
            "sines and cosines are swapped: even features are sin(p ω_i), odd ones cos(p ω_i)":
                _sin_table(L, d, cos_first=True),
            "you put all sines first and all cosines after; the paper interleaves them (sin, cos, sin, cos, ...)":
                _sin_table(L, d, concat=True),
            "the frequencies use i/d; they are ω_i = 10000^(-2i/d), with 2i the index of the even feature":
                _sin_table(L, d, exponent=1.0),
        }
        for message, table in variants.items():
            if _same(got, table, atol=1e-5):
                raise ExerciseFailure(ex, message)
        if _same(got[0], want[0]) and not _same(got[1:], want[1:], atol=1e-5):
            raise ExerciseFailure(ex, "position 0 is right but later positions are not: check the frequencies")
        raise ExerciseFailure(ex, f"sinusoidal({L}, {d}) differs from the paper's table",
                              "PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))")
    return passed(ex, "the interleaved sin/cos table of Vaswani et al.")


# --------------------------------------------------------------------------------- Exercise 3.4


def check_rope(rope) -> bool:
    """Exercise 3.4: ``rope(x, positions, base=10000.0)``, Llama (rotate-half) layout."""
    from ..positional import apply_rope

    ex = "Exercise 3.4 (RoPE)"
    g = torch.Generator().manual_seed(34)
    x = torch.randn(2, 3, 12, 8, generator=g, dtype=torch.float64)
    for positions, base in ((torch.arange(12), 10000.0), (torch.arange(100, 112), 10000.0), (torch.arange(12), 500.0)):
        got = call(ex, rope, x.clone(), positions, base=base)
        got = expect_tensor(ex, got, shape=tuple(x.shape))
        want = apply_rope(x, positions, base=base)
        if _same(got, want, atol=1e-6):
            continue
        if _same(got, x):
            raise ExerciseFailure(ex, "the output equals the input: nothing was rotated")
        if _same(got, apply_rope(x, positions, base=base, interleaved=True), atol=1e-6):
            raise ExerciseFailure(ex, "you paired features (2i, 2i+1), the RoFormer layout; this exercise uses the "
                                      "Llama layout that pairs feature i with i + d/2",
                                  "split x into halves x1, x2 and use rotate_half(x) = cat(-x2, x1)")
        if _same(got, apply_rope(x, -positions, base=base), atol=1e-6):
            raise ExerciseFailure(ex, "you rotate in the wrong direction (angle -pθ)",
                                  "x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x2, x1)")
        if base != 10000.0 and _same(got, apply_rope(x, positions, base=10000.0), atol=1e-6):
            raise ExerciseFailure(ex, "the `base` argument is ignored")
        wrong_freq = _rope_variant(x, positions, base, exponent=1.0)
        if _same(got, wrong_freq, atol=1e-6):
            raise ExerciseFailure(ex, "the frequencies use i/d; they are θ_i = base^(-2i/d) for i = 0 .. d/2 - 1")
        norms_ok = torch.allclose(got.norm(dim=-1), x.norm(dim=-1), atol=1e-6)
        raise ExerciseFailure(ex, f"the rotated vectors differ from RoPE (positions {positions[0].item()}.., base {base:g})",
                              None if norms_ok else "a rotation preserves the length of every vector; yours does not")
    return passed(ex, "Llama-layout rotary embedding, any positions and base")


def _rope_variant(x, positions, base, exponent):
    d = x.shape[-1]
    idx = torch.arange(0, d, 2, dtype=torch.float64) if exponent == 2.0 else torch.arange(d // 2, dtype=torch.float64)
    theta = base ** (-idx / d)
    ang = positions.double()[:, None] * theta
    ang = torch.cat([ang, ang], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()


# --------------------------------------------------------------------------------- Exercise 3.5


def _count_gqa(d_model, n_heads, n_kv_heads, head_dim, bias):
    from torch import nn

    q_out, kv_out = n_heads * head_dim, n_kv_heads * head_dim
    with torch.device("meta"):  # shapes only: no memory, no time
        layers = [nn.Linear(d_model, q_out, bias=bias), nn.Linear(d_model, kv_out, bias=bias),
                  nn.Linear(d_model, kv_out, bias=bias), nn.Linear(q_out, d_model, bias=bias)]
    return sum(p.numel() for layer in layers for p in layer.parameters())


def check_gqa_param_count(gqa_param_count) -> bool:
    """Exercise 3.5: ``gqa_param_count(d_model, n_heads, n_kv_heads, head_dim, bias=False)``."""
    ex = "Exercise 3.5 (grouped-query attention parameters)"
    cases = [(576, 9, 3, 64, False), (64, 8, 2, 8, True), (64, 8, 8, 8, True), (128, 4, 1, 32, False),
             (100, 4, 2, 16, True)]
    for D, H, Hkv, dh, bias in cases:
        got = expect_int(ex, call(ex, gqa_param_count, D, H, Hkv, dh, bias=bias))
        want = _count_gqa(D, H, Hkv, dh, bias)
        if got == want:
            continue
        # Later entries win when two mistakes give the same number (e.g. 4·D² is also MHA when H·d_head = D).
        hints = {
            4 * D * D + (4 * D if bias else 0): "that is 4·D² (+ 4·D): K and V are narrower than D in grouped-query "
                                                "attention, and H·head_dim need not equal D",
            _count_gqa(D, H, Hkv, dh, not bias): "biases: count one per output of each projection only when bias=True",
            _count_gqa(D, H, Hkv, dh, bias) - (D * H * dh + (D if bias else 0)): "you forgot the output projection W_O",
            _count_gqa(D, H, H, dh, bias): "K and V have n_kv_heads heads, not n_heads: that would be ordinary "
                                           "multi-head attention",
        }
        raise ExerciseFailure(ex, f"gqa_param_count({D}, {H}, {Hkv}, {dh}, bias={bias}) = {got}, expected {want}",
                              hints.get(got))
    return passed(ex, "2·D·H·d_head + 2·D·H_kv·d_head weights, plus biases when present")
