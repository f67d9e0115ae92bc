"""wmlib.attention: equality with PyTorch, masks, and clear errors on bad input."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from wmlib.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention


@st.composite
def attention_inputs(draw):
    B, H = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    Lq, Lk = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    d_k, d_v = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Lq, d_k, generator=g) * draw(st.sampled_from([0.1, 1.0, 3.0]))
    k = torch.randn(B, H, Lk, d_k, generator=g)
    v = torch.randn(B, H, Lk, d_v, generator=g)
    lengths = torch.randint(1, Lk + 1, (B,), generator=g)
    return q, k, v, lengths


@settings(max_examples=300, deadline=None)
@given(attention_inputs())
def test_equals_torch_sdpa_without_mask(inputs):
    q, k, v, _ = inputs
    ours, w = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5)


@settings(max_examples=300, deadline=None)
@given(attention_inputs())
def test_equals_torch_sdpa_with_padding(inputs):
    q, k, v, lengths = inputs
    pad = (torch.arange(k.shape[-2]) < lengths[:, None])[:, None, None, :]
    ours, w = scaled_dot_product_attention(q, k, v, mask=pad)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=pad), atol=1e-5)
    assert torch.all(w.masked_select(~pad.expand_as(w)) == 0)


@settings(max_examples=300, deadline=None)
@given(attention_inputs())
def test_equals_torch_sdpa_causal(inputs):
    q, _, _, _ = inputs
    k, v = torch.randn_like(q), torch.randn_like(q)
    ours, w = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5)
    assert torch.all(w.triu(1) == 0)


def test_causal_and_padding_together():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g) for _ in range(3))
    pad = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]).bool()[:, None, None, :]
    both = pad & causal_mask(6)
    ours, _ = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=both), atol=1e-6)


def test_causal_mask_with_cache_offset():
    m = causal_mask(2, 5)  # the last 2 of 5 positions
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    with pytest.raises(ValueError, match="n_queries <= n_keys"):
        causal_mask(5, 2)


def test_fully_masked_query_gives_zeros_not_nan():
    q = torch.randn(1, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
    out, w = scaled_dot_product_attention(q, q, q, mask=mask)
    assert torch.all(w[0, 1] == 0) and torch.all(out[0, 1] == 0)
    assert torch.allclose(w[0, 0].sum(), torch.tensor(1.0))
    out.sum().backward()
    assert torch.isfinite(q.grad).all(), "gradients must stay finite through a fully masked row"


def test_padding_mask_from_tokenizer_mask():
    m = padding_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert m.shape == (2, 1, 1, 3) and m.dtype == torch.bool
    with pytest.raises(ValueError, match=r"\(batch, keys\)"):
        padding_mask(torch.ones(2, 3, 4))


def test_float64_and_scale():
    q, k, v = (torch.randn(2, 5, 7, dtype=torch.float64) for _ in range(3))
    ours, _ = scaled_dot_product_attention(q, k, v, scale=0.3)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_dropout_only_in_training_and_valid_range():
    q = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, q, q, dropout_p=1.0)


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((4, 8), (4, 8), (4,)), "v must have shape"),
        (((2, 4, 8), (2, 5, 7), (2, 5, 7)), "same last dimension d_k"),
        (((2, 4, 8), (2, 5, 8), (2, 6, 3)), "same number of keys"),
        (((2, 3, 4, 8), (3, 3, 5, 8), (3, 3, 5, 8)), "do not broadcast"),
    ],
)
def test_shape_errors_name_the_shapes(shapes, match):
    q, k, v = (torch.randn(*s) for s in shapes)
    with pytest.raises(ValueError, match=match) as err:
        scaled_dot_product_attention(q, k, v)
    assert any(str(tuple(s)) in str(err.value) for s in shapes), "the message names the offending shape"


def test_dtype_errors():
    q = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="share a dtype.*float64"):
        scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(ValueError, match="floating-point"):
        scaled_dot_product_attention(q.long(), q.long(), q.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        scaled_dot_product_attention(q.numpy(), q, q)


def test_mask_errors():
    q = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match="boolean.*True = may attend"):
        scaled_dot_product_attention(q, q, q, mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"does not broadcast.*\(2, 4, 4\)"):
        scaled_dot_product_attention(q, q, q, mask=torch.ones(3, 4, dtype=torch.bool))


def test_multihead_equals_torch_with_copied_weights():
    torch.manual_seed(0)
    D, H = 24, 3
    theirs = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H).copy_from_torch(theirs).eval()
    x, ctx = torch.randn(2, 5, D), torch.randn(2, 7, D)
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    with torch.no_grad():
        t_out, t_w = theirs(x, ctx, ctx, key_padding_mask=pad, average_attn_weights=False)
        o_out, o_w = ours(x, context=ctx, mask=~pad[:, None, None, :])
        assert torch.allclose(o_out, t_out, atol=1e-5) and torch.allclose(o_w, t_w, atol=1e-6)
        causal = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.bool)
        t_out, _ = theirs(x, x, x, attn_mask=causal, need_weights=False)
        o_out, _ = ours(x, is_causal=True)
        assert torch.allclose(o_out, t_out, atol=1e-5)
        o_out3, _ = ours(x, mask=causal_mask(5).expand(2, 5, 5))  # a (B, Lq, Lk) mask
        assert torch.allclose(o_out3, t_out, atol=1e-5)


def test_multihead_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"\(batch, length, d_model=8\); got \(2, 3, 6\)"):
        mha(torch.randn(2, 3, 6))
    with pytest.raises(ValueError, match="different batch sizes"):
        mha(torch.randn(2, 3, 8), context=torch.randn(3, 3, 8))
    with pytest.raises(ValueError, match="shapes differ"):
        mha.copy_from_torch(nn.MultiheadAttention(8, 4))


@pytest.mark.parametrize("kwargs, name", [
    ({"d_model": 8, "num_heads": 0}, "num_heads"),
    ({"d_model": 8, "num_heads": -2}, "num_heads"),
    ({"d_model": 8, "num_heads": 2.0}, "num_heads"),
    ({"d_model": 0, "num_heads": 1}, "d_model"),
    ({"d_model": -8, "num_heads": 2}, "d_model"),
    ({"d_model": 8, "num_heads": 2, "num_kv_heads": 0}, "num_kv_heads"),
    ({"d_model": 8, "num_heads": 2, "num_kv_heads": -1}, "num_kv_heads"),
    ({"d_model": 8, "num_heads": 2, "dropout": 1.0}, "dropout"),
    ({"d_model": 8, "num_heads": 2, "dropout": -0.1}, "dropout"),
    ({"d_model": 8, "num_heads": 2, "rope_base": 0.0}, "rope_base"),
    ({"d_model": 6, "num_heads": 2, "rope_base": 10000.0}, "must be even"),
])
def test_multihead_rejects_impossible_configurations(kwargs, name):
    """0 or negative heads (or widths, ...) are a ValueError that names the argument, not a
    ZeroDivisionError or a torch traceback from deep inside nn.Linear."""
    with pytest.raises(ValueError, match=name):
        MultiHeadAttention(**kwargs)


def test_scale_matches_formula():
    q = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    k = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    _, w = scaled_dot_product_attention(q, k, k)
    expected = torch.softmax(torch.tensor([1.0, 2.0]) / math.sqrt(4), 0)
    assert torch.allclose(w[0, 0], expected)


def test_grouped_query_attention_shares_each_kv_head_with_a_group():
    torch.manual_seed(0)
    D, H, H_kv, L = 24, 6, 2, 5
    mha = MultiHeadAttention(D, H, num_kv_heads=H_kv).eval()
    assert mha.k_proj.out_features == H_kv * D // H
    x = torch.randn(2, L, D)
    with torch.no_grad():
        out, w = mha(x, is_causal=True)
        q = mha.split_heads(mha.q_proj(x))
        k, v = mha.split_heads(mha.k_proj(x)), mha.split_heads(mha.v_proj(x))
        # query head h uses key/value head h // (H / H_kv): heads 0-2 share kv head 0, heads 3-5 kv head 1
        want = F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), is_causal=True)
        want = mha.out_proj(want.transpose(1, 2).reshape(2, L, D))
    assert w.shape == (2, H, L, L) and torch.allclose(out, want, atol=1e-6)
    with pytest.raises(ValueError, match="must divide num_heads"):
        MultiHeadAttention(24, 6, num_kv_heads=4)
    with pytest.raises(ValueError, match="neither grouped-query"):
        mha.copy_from_torch(nn.MultiheadAttention(D, H))


def test_rotary_attention_depends_on_offsets_only():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, rope_base=10000.0).eval()
    x = torch.randn(1, 6, 16)
    with torch.no_grad():
        out0, w0 = mha(x, is_causal=True)
        out7, w7 = mha(x, is_causal=True, positions=torch.arange(7, 13))  # the same tokens, shifted
        plain = MultiHeadAttention(16, 2).eval()
        plain.load_state_dict(mha.state_dict())
        _, w_plain = plain(x, is_causal=True)
    assert torch.allclose(w0, w7, atol=1e-5) and torch.allclose(out0, out7, atol=1e-5)
    assert not torch.allclose(w0, w_plain, atol=1e-3)  # the rotation changes the scores
    with pytest.raises(ValueError, match="for self-attention"):
        mha(x, context=x)
