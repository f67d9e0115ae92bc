"""Checkers for Chapter 8, "End-to-end memory networks on bAbI"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, expect_int, expect_tensor, passed

__all__ = ["check_position_encoding", "check_memory_hop", "check_param_count"]


def _pe(J, d, one_based=True, sign=-1.0):
    j = torch.arange(1, J + 1, dtype=torch.float32)[:, None] - (0 if one_based else 1)
    k = torch.arange(1, d + 1, dtype=torch.float32)[None, :] - (0 if one_based else 1)
    return (1 - j / J) + sign * (k / d) * (1 - 2 * j / J)


def check_position_encoding(position_encoding) -> bool:
    """Exercise 8.1: ``position_encoding(J, d)`` -> (J, d) tensor of l_kj (row j-1, column k-1)."""
    from ..memn2n import position_encoding as reference

    ex = "Exercise 8.1 (position encoding)"
    for J, d in ((5, 4), (3, 20), (1, 3), (7, 7)):
        got = call(ex, position_encoding, J, d)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (d, J) and J != d:
            raise ExerciseFailure(ex, f"position_encoding({J}, {d}) has shape {tuple(got.shape)}: rows and "
                                  "columns are swapped", "one row per word j, one column per dimension k: (J, d)")
        got = expect_tensor(ex, got, shape=(J, d), name=f"position_encoding({J}, {d})")
        want = reference(J, d)
        if torch.allclose(got.float(), want, atol=1e-5):
            continue
        wrong = {"you counted j and k from 0; the formula counts words j = 1..J and dimensions k = 1..d":
                 _pe(J, d, one_based=False),
                 "the sign of the second term is wrong: l_kj = (1 - j/J) - (k/d)(1 - 2j/J)": _pe(J, d, sign=1.0)}
        for hint, value in wrong.items():
            if torch.allclose(got.float(), value, atol=1e-5):
                raise ExerciseFailure(ex, f"position_encoding({J}, {d}) is not the paper's l_kj", hint)
        if J == d and torch.allclose(got.float(), want.T, atol=1e-5):
            raise ExerciseFailure(ex, "the matrix is transposed: row j-1 should hold word j")
        raise ExerciseFailure(ex, f"position_encoding({J}, {d}) differs from l_kj = (1 - j/J) - (k/d)(1 - 2j/J) "
                              f"by up to {(got.float() - want).abs().max():.3g}")
    return passed(ex, "l_kj = (1 - j/J) - (k/d)(1 - 2j/J), words and dimensions counted from 1")


def check_memory_hop(memory_hop) -> bool:
    """Exercise 8.2: ``memory_hop(u, m, c) -> (p, o)`` for u (B, d), m and c (B, n, d)."""
    ex = "Exercise 8.2 (one memory hop)"
    g = torch.Generator().manual_seed(8)
    B, n, d = 3, 5, 4  # n != d exposes mixed-up axes
    u = torch.randn(B, d, generator=g)
    m, c = torch.randn(B, n, d, generator=g), torch.randn(B, n, d, generator=g)
    result = call(ex, memory_hop, u, m, c)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ExerciseFailure(ex, f"return a pair (p, o); got {type(result).__name__}")
    p, o = result
    scores = (m @ u.unsqueeze(-1)).squeeze(-1)
    want_p = torch.softmax(scores, -1)
    p = expect_tensor(ex, p, shape=(B, n), name="p")
    if torch.allclose(p, scores, atol=1e-5):
        raise ExerciseFailure(ex, "p is the raw scores u·m_i: the softmax is missing",
                              "that is the linear-start model; the hop itself uses p = softmax(u·m_i)")
    if not torch.allclose(p.sum(-1), torch.ones(B), atol=1e-4):
        raise ExerciseFailure(ex, "the attention p of a question does not sum to 1 over its memories",
                              "take the softmax over the memories: dim=-1 of the (B, n) scores")
    if torch.allclose(p, torch.softmax((c @ u.unsqueeze(-1)).squeeze(-1), -1), atol=1e-5):
        raise ExerciseFailure(ex, "p compares u with the output vectors c_i; it should use the input vectors m_i")
    if not torch.allclose(p, want_p, atol=1e-5):
        raise ExerciseFailure(ex, "p differs from softmax(u·m_i)")
    o = expect_tensor(ex, o, shape=(B, d), name="o")
    want_o = (want_p.unsqueeze(-1) * c).sum(1)
    if torch.allclose(o, (want_p.unsqueeze(-1) * m).sum(1), atol=1e-5):
        raise ExerciseFailure(ex, "o averages the input vectors m_i; it should average the output vectors c_i")
    if torch.allclose(o, u + want_o, atol=1e-5):
        raise ExerciseFailure(ex, "you returned u + o, the next state; return o itself")
    if not torch.allclose(o, want_o, atol=1e-5):
        raise ExerciseFailure(ex, "p is right but o is not", "o = sum_i p_i c_i, e.g. (p.unsqueeze(-1) * c).sum(1)")
    return passed(ex, "p = softmax(u·m_i) over the memories, o = Σ p_i c_i")


def check_param_count(memn2n_param_count) -> bool:
    """Exercise 8.3: ``memn2n_param_count(vocab_size, dim, hops, memory_size, temporal)`` with
    adjacent weight tying."""
    from ..memn2n import MemN2N

    ex = "Exercise 8.3 (parameters with adjacent tying)"
    for V, d, K, M, te in ((20, 20, 3, 10, True), (35, 20, 1, 50, True), (40, 50, 2, 50, False), (19, 8, 3, 6, False)):
        want = MemN2N(V, d, K, M, temporal=te).n_parameters()
        got = expect_int(ex, call(ex, memn2n_param_count, V, d, K, M, te))
        if got == want:
            continue
        t = M * d if te else 0
        hints = {K * (V * d + t): "K hops with adjacent tying use K + 1 matrices, not K: A^1 (= B), C^1 = A^2, ..., C^K (= Wᵀ)",
                 (2 * K + 2) * V * d + 2 * K * t: "that is the count without tying; adjacent tying shares C^k = A^(k+1), B = A^1, W = (C^K)ᵀ",
                 2 * K * (V * d + t): "that is the count without tying (A^k and C^k per hop)",
                 (K + 1) * V * d: "you forgot the temporal tables T_A^k, T_C^k (memory_size × d each), tied like A and C",
                 (K + 1) * V * d + 2 * K * t: "the temporal tables are tied like the word matrices: K + 1 of them"}
        raise ExerciseFailure(ex, f"memn2n_param_count({V}, {d}, {K}, {M}, {te}) = {got}, expected {want}",
                              hints.get(got))
    return passed(ex, "(K + 1)·V·d word weights plus (K + 1)·M·d temporal weights")
