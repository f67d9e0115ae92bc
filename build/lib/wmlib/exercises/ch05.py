"""Checkers for Chapter 5, "Self-attention and the Transformer from scratch"."""

from __future__ import annotations

import math

import torch

from ._core import ExerciseFailure, call, expect_int, expect_tensor, passed

__all__ = ["check_attention", "check_causal_mask", "check_mha_param_count", "check_attention_matrix_bytes"]


def _reference(q, k, v, scale):
    w = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1)
    return w @ v, w


def check_attention(attention) -> bool:
    """Exercise 5.1: ``attention(q, k, v) -> (output, weights)`` without a mask."""
    ex = "Exercise 5.1 (attention)"
    g = torch.Generator().manual_seed(5)
    B, H, Lq, Lk, d_k, d_v = 2, 3, 4, 6, 16, 5  # Lq != Lk and d_k != d_v expose mixed-up axes
    q, k = torch.randn(B, H, Lq, d_k, generator=g) * 2, torch.randn(B, H, Lk, d_k, generator=g) * 2
    v = torch.randn(B, H, Lk, d_v, generator=g)
    result = call(ex, attention, q, k, v)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise ExerciseFailure(ex, f"return a pair (output, weights); got {type(result).__name__}")
    out, w = result
    want_out, want_w = _reference(q, k, v, 1 / math.sqrt(d_k))
    expect_tensor(ex, w, name="weights")
    if tuple(w.shape) == (B, H, Lk, Lq):
        raise ExerciseFailure(ex, f"weights have shape {tuple(w.shape)}: queries and keys are swapped",
                              "scores are q @ k.transpose(-2, -1): one row per query, one column per key")
    expect_tensor(ex, w, shape=(B, H, Lq, Lk), name="weights")
    if not torch.allclose(w.sum(-1), torch.ones(B, H, Lq), atol=1e-4):
        if torch.allclose(w.sum(-2), torch.ones(B, H, Lk), atol=1e-4):
            raise ExerciseFailure(ex, "the columns of the weights sum to 1, not the rows",
                                  "take the softmax over the keys: dim=-1")
        raise ExerciseFailure(ex, "the rows of the weights do not sum to 1", "apply a softmax over the last dim")
    for scale, mistake in ((1.0, "you forgot to divide the scores by √d_k"),
                           (1 / d_k, "you divided the scores by d_k instead of √d_k")):
        if torch.allclose(w, _reference(q, k, v, scale)[1], atol=1e-5):
            raise ExerciseFailure(ex, mistake, "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])")
    if not torch.allclose(w, want_w, atol=1e-5):
        raise ExerciseFailure(ex, "the weights differ from softmax(q kᵀ / √d_k)")
    expect_tensor(ex, out, shape=(B, H, Lq, d_v), name="output")
    if not torch.allclose(out, want_out, atol=1e-5):
        raise ExerciseFailure(ex, "the weights are right but the output is not", "output = weights @ v")
    return passed(ex, "weights and output match softmax(q kᵀ / √d_k) v")


def check_causal_mask(causal_mask) -> bool:
    """Exercise 5.2: ``causal_mask(n)`` -> (n, n) bool tensor, True where query i may see key j."""
    ex = "Exercise 5.2 (causal mask)"
    for n in (4, 7, 1):  # n = 4 first: for n = 1 several mistakes look alike
        m = call(ex, causal_mask, n)
        expect_tensor(ex, m, shape=(n, n), name=f"causal_mask({n})")
        if m.dtype != torch.bool:
            raise ExerciseFailure(ex, f"the mask has dtype {m.dtype}; return a bool tensor (True = may attend)",
                                  "an additive mask of 0 and -inf is another convention; here use .bool() "
                                  "or torch.ones(n, n, dtype=torch.bool).tril()")
        want = torch.ones(n, n, dtype=torch.bool).tril()
        if torch.equal(m, want):
            continue
        if torch.equal(m, want.T):
            raise ExerciseFailure(ex, "the mask is transposed: query i must see keys j <= i (the lower triangle)")
        if torch.equal(m, ~want):
            raise ExerciseFailure(ex, "True and False are swapped: here True means 'may attend'")
        if torch.equal(m, want & ~torch.eye(n, dtype=torch.bool)):
            raise ExerciseFailure(ex, "the diagonal is False: a token may attend to itself", "use tril(), not tril(-1)")
        raise ExerciseFailure(ex, f"causal_mask({n}) is not the lower-triangular mask")
    return passed(ex, "lower-triangular boolean mask, diagonal included")


def check_mha_param_count(mha_param_count) -> bool:
    """Exercise 5.3: ``mha_param_count(d_model, num_heads)`` -> parameters of MultiHeadAttention."""
    from ..attention import MultiHeadAttention

    ex = "Exercise 5.3 (parameter count)"
    for d, h in ((64, 4), (64, 8), (96, 3), (512, 8)):
        want = sum(p.numel() for p in MultiHeadAttention(d, h).parameters())
        got = expect_int(ex, call(ex, mha_param_count, d, h))
        if got == want:
            continue
        hints = {4 * d * d: "you forgot the four bias vectors (d_model each)",
                 h * (4 * d * d + 4 * d): "the count does not depend on the number of heads: heads split d_model",
                 3 * d * d + 3 * d: "you forgot the output projection W_O",
                 4 * d * d + d: "each of the four projections has its own bias"}
        raise ExerciseFailure(ex, f"mha_param_count({d}, {h}) = {got}, expected {want}", hints.get(got))
    return passed(ex, "4·d² weights + 4·d biases, independent of the number of heads")


def check_attention_matrix_bytes(attention_matrix_bytes) -> bool:
    """Exercise 5.4: bytes of the (B, H, L, L) attention weights, ``attention_matrix_bytes(B, H, L, dtype)``."""
    from ..attention import scaled_dot_product_attention

    ex = "Exercise 5.4 (memory of the attention matrix)"
    for B, H, L, dtype in ((1, 1, 8, torch.float32), (2, 4, 16, torch.float32), (3, 2, 10, torch.float16)):
        x = torch.zeros(B, H, L, 8, dtype=dtype)
        want = scaled_dot_product_attention(x, x, x)[1].nbytes
        got = call(ex, attention_matrix_bytes, B, H, L, dtype)
        if got == want:
            continue
        size = torch.empty((), dtype=dtype).element_size()
        hints = {B * H * L * size: "the matrix has L x L entries per head, not L",
                 B * L * L * size: "each head has its own L x L matrix",
                 B * H * L * L: "multiply by the bytes per element (torch.empty((), dtype=dtype).element_size())",
                 B * H * L * L * 4: "the bytes per element depend on the dtype"}
        raise ExerciseFailure(ex, f"attention_matrix_bytes({B}, {H}, {L}, {dtype}) = {got!r}, measured {want}",
                              hints.get(got))
    return passed(ex, "B·H·L² elements times the element size: quadratic in the length")
