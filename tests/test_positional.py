"""wmlib.positional: the sinusoidal table and RoPE, their defining properties, bad inputs."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wmlib.positional import (apply_rope, interleaved_to_half, rope_cos_sin, rope_frequencies, rotate_half,
                              sinusoidal_encoding)


def test_sinusoidal_matches_the_paper_formula():
    L, d = 50, 16
    pe = sinusoidal_encoding(L, d, dtype=torch.float64)
    assert pe.shape == (L, d)
    for p in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert math.isclose(pe[p, 2 * i].item(), math.sin(angle), abs_tol=1e-12)
            assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-12)


def test_sinusoidal_offset_is_a_linear_map_and_dot_products_depend_on_offset_only():
    pe = sinusoidal_encoding(200, 32, dtype=torch.float64)
    k = 5
    # One fixed matrix maps PE[p] to PE[p + k] for every p: a rotation by k·ω_i of each (sin, cos) pair.
    R = torch.zeros(32, 32, dtype=torch.float64)
    for i, w in enumerate(rope_frequencies(32, dtype=torch.float64).tolist()):
        c, s = math.cos(k * w), math.sin(k * w)
        R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    assert torch.allclose(pe[:-k] @ R, pe[k:], atol=1e-12)
    dots = (pe[:-k] * pe[k:]).sum(-1)
    assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-9)


def test_sinusoidal_dtype_device_and_empty():
    assert sinusoidal_encoding(0, 8).shape == (0, 8)
    assert sinusoidal_encoding(3, 8, dtype=torch.float16).dtype == torch.float16


@pytest.mark.parametrize("kwargs, match", [
    (dict(length=4, d_model=7), "even"),
    (dict(length=-1, d_model=8), "non-negative"),
    (dict(length=4, d_model=0), "positive"),
    (dict(length=4, d_model=8, base=1.0), "base"),
])
def test_sinusoidal_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sinusoidal_encoding(**kwargs)


def test_rope_frequencies_are_the_llama_inv_freq():
    d, base = 64, 100000.0
    want = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    assert torch.allclose(rope_frequencies(d, base), want, rtol=1e-6)


def test_rotate_half():
    x = torch.arange(1.0, 7.0)
    assert torch.equal(rotate_half(x), torch.tensor([-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16).map(lambda h: 2 * h), st.integers(0, 2**31 - 1), st.booleans())
def test_rope_scores_depend_only_on_the_offset(d, seed, interleaved):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, d, generator=g, dtype=torch.float64), torch.randn(1, d, generator=g, dtype=torch.float64)
    positions = torch.arange(40)
    rq = apply_rope(q.expand(40, d), positions, interleaved=interleaved)
    rk = apply_rope(k.expand(40, d), positions, interleaved=interleaved)
    scores = rq @ rk.T  # scores[m, n] = RoPE(q, m) · RoPE(k, n)
    for offset in range(-5, 6):
        diag = torch.diagonal(scores, offset=-offset)  # entries with m - n = offset
        assert torch.allclose(diag, diag[0].expand_as(diag), atol=1e-10)
    # Norms are preserved: rotations.
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1).expand(40), atol=1e-10)


def test_rope_position_zero_is_identity_and_shapes_broadcast():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 8, generator=g)
    out = apply_rope(x)
    assert out.shape == x.shape and torch.allclose(out[..., 0, :], x[..., 0, :])
    # Per-sequence positions (B, 1, L) broadcast over heads; shifting all positions by a constant
    # leaves the scores unchanged.
    pos = torch.arange(5)[None, None, :] + torch.tensor([0, 7])[:, None, None]
    shifted = apply_rope(x, pos)
    s0 = out @ out.transpose(-1, -2)
    s1 = shifted @ shifted.transpose(-1, -2)
    assert torch.allclose(s0, s1, atol=1e-5)


def test_interleaved_is_a_permuted_half_split():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 10, generator=g, dtype=torch.float64)
    perm = torch.cat([torch.arange(0, 10, 2), torch.arange(1, 10, 2)])
    a = apply_rope(x, interleaved=True)
    b = apply_rope(x[..., perm])[..., torch.argsort(perm)]
    assert torch.allclose(a, b)


def test_rope_matches_complex_multiplication():
    """RoFormer's form: pair (x_2i, x_2i+1) as a complex number times e^{i p θ_i}."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, 12, generator=g, dtype=torch.float64)
    z = torch.view_as_complex(x.reshape(7, 6, 2).contiguous())
    angles = torch.arange(7, dtype=torch.float64)[:, None] * rope_frequencies(12, dtype=torch.float64)
    want = torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).reshape(7, 12)
    assert torch.allclose(apply_rope(x, interleaved=True), want, atol=1e-12)


def test_rope_matches_transformers_llama():
    pytest.importorskip("transformers")
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = LlamaConfig(hidden_size=128, num_attention_heads=4, num_key_value_heads=2, rope_theta=100000.0,
                         max_position_embeddings=2048)
    rotary = LlamaRotaryEmbedding(config)
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 4, 9, 32, generator=g), torch.randn(2, 2, 9, 32, generator=g)
    position_ids = torch.arange(100, 109)[None].expand(2, 9)
    cos, sin = rotary(q, position_ids)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    base = config.rope_parameters["rope_theta"] if hasattr(config, "rope_parameters") else config.rope_theta
    pos = position_ids[:, None, :]
    assert torch.allclose(apply_rope(q, pos, base=base), q_hf, atol=1e-4)
    assert torch.allclose(apply_rope(k, pos, base=base), k_hf, atol=1e-4)


def test_rope_cos_sin_shapes():
    cos, sin = rope_cos_sin(torch.arange(5), 8)
    assert cos.shape == sin.shape == (5, 8)
    assert torch.allclose(cos[:, :4], cos[:, 4:])


@pytest.mark.parametrize("call, error, match", [
    (lambda: apply_rope(torch.randn(4, 7)), ValueError, "even"),
    (lambda: apply_rope(torch.randn(4)), ValueError, r"\(\.\.\., L, d\)"),
    (lambda: apply_rope(torch.ones(4, 8, dtype=torch.long)), ValueError, "floating"),
    (lambda: apply_rope([[1.0, 2.0]]), TypeError, "torch.Tensor"),
    (lambda: apply_rope(torch.randn(4, 8), torch.arange(5)), ValueError, "L = 4"),
    (lambda: apply_rope(torch.randn(4, 8), torch.arange(4.0)), ValueError, "integer"),
    (lambda: apply_rope(torch.randn(2, 3, 4, 8), torch.arange(4).expand(2, 4)), ValueError, r"positions\[:, None\]"),
    (lambda: apply_rope(torch.randn(4, 8), base=-2), ValueError, "base"),
])
def test_rope_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_interleaved_to_half_keeps_the_scores():
    """Meta's Llama (interleaved pairs) and transformers' Llama (half-split pairs, permuted W_Q, W_K)
    compute the same attention scores."""
    g = torch.Generator().manual_seed(4)
    H, d, D, L = 3, 8, 20, 11
    W_q, W_k = (torch.randn(H * d, D, generator=g, dtype=torch.float64) for _ in range(2))
    x = torch.randn(L, D, generator=g, dtype=torch.float64)

    def heads(W):
        return (x @ W.T).view(L, H, d).transpose(0, 1)

    meta = apply_rope(heads(W_q), interleaved=True) @ apply_rope(heads(W_k), interleaved=True).transpose(-1, -2)
    hf = apply_rope(heads(interleaved_to_half(W_q, H))) @ apply_rope(heads(interleaved_to_half(W_k, H))).transpose(-1, -2)
    unpermuted = apply_rope(heads(W_q)) @ apply_rope(heads(W_k)).transpose(-1, -2)
    assert torch.allclose(meta, hf, atol=1e-10)
    assert (meta - unpermuted).abs().max() > 1e-2, "without the permutation the layouts differ"
    # transformers' conversion script, written out
    want = W_q.view(H, d // 2, 2, D).transpose(1, 2).reshape(H * d, D)
    assert torch.equal(interleaved_to_half(W_q, H), want)
    b = torch.arange(H * d, dtype=torch.float64)
    assert interleaved_to_half(b, H)[:d].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


@pytest.mark.parametrize("args, error, match", [
    ((torch.zeros(12, 4), 5), ValueError, "do not split"),
    ((torch.zeros(12, 4), 4), ValueError, "even"),
    ((torch.zeros(2, 12, 4), 2), ValueError, "matrix or a bias"),
    ((torch.zeros(12, 4), 0), ValueError, "positive int"),
    (([1.0, 2.0], 1), TypeError, "torch.Tensor"),
])
def test_interleaved_to_half_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        interleaved_to_half(*args)
