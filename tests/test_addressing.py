"""wmlib.addressing: each NTM equation against a slow reference, gradients, and clear errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from wmlib.addressing import (
    address,
    content_addressing,
    cosine_similarity,
    interpolate,
    read,
    sharpen,
    shift,
    write,
)

G = torch.Generator().manual_seed(0)


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, generator=G, dtype=dtype)


def simplex(*shape, dtype=torch.float64):
    return torch.softmax(rand(*shape, dtype=dtype), dim=-1)


# ------------------------------------------------------------------------------- reference loops


def test_cosine_similarity_matches_torch():
    M, k = rand(3, 5, 4), rand(3, 4)
    want = F.cosine_similarity(M, k[:, None, :], dim=-1)
    assert torch.allclose(cosine_similarity(M, k), want)
    kh = rand(3, 2, 4)  # two heads
    got = cosine_similarity(M, kh)
    assert got.shape == (3, 2, 5)
    assert torch.allclose(got[:, 1], F.cosine_similarity(M, kh[:, 1, None, :], dim=-1))


def test_zero_key_gives_zero_similarity_not_nan():
    M = rand(1, 4, 3)
    sim = cosine_similarity(M, torch.zeros(1, 3, dtype=torch.float64))
    assert torch.equal(sim, torch.zeros(1, 4, dtype=torch.float64))
    w = content_addressing(M, torch.zeros(1, 3, dtype=torch.float64), 5.0)
    assert torch.allclose(w, torch.full((1, 4), 0.25, dtype=torch.float64))


def test_content_addressing_beta_limits_and_scale_invariance():
    M, k = rand(2, 6, 5), rand(2, 5)
    assert torch.allclose(content_addressing(M, k, 0.0), torch.full((2, 6), 1 / 6, dtype=torch.float64))
    sharp = content_addressing(M, k, 1e4)
    assert torch.equal(sharp.argmax(-1), cosine_similarity(M, k).argmax(-1))
    assert (sharp.max(-1).values > 0.999).all()
    # Cosine similarity ignores the key's length; β alone sets the sharpness.
    assert torch.allclose(content_addressing(M, 10 * k, 3.0), content_addressing(M, k, 3.0))
    # β as a tensor, per batch element, with or without a trailing 1.
    beta = torch.tensor([1.0, 4.0], dtype=torch.float64)
    a, b = content_addressing(M, k, beta), content_addressing(M, k, beta[:, None])
    assert torch.allclose(a, b) and torch.allclose(a[1], content_addressing(M[1:], k[1:], 4.0)[0])


def test_interpolate_endpoints():
    wc, wp = simplex(2, 5), simplex(2, 5)
    assert torch.allclose(interpolate(wc, wp, 1.0), wc)
    assert torch.allclose(interpolate(wc, wp, 0.0), wp)
    assert torch.allclose(interpolate(wc, wp, 0.25), 0.25 * wc + 0.75 * wp)


def slow_shift(w, s):
    N, S = w.shape[-1], s.shape[-1]
    out = torch.zeros_like(w)
    for i in range(N):
        for j in range(N):
            for idx in range(S):
                offset = idx - S // 2
                if (i - j) % N == offset % N:
                    out[..., i] += w[..., j] * s[..., idx]
    return out


@pytest.mark.parametrize("S", [1, 3, 5])
def test_shift_matches_the_convolution_sum(S):
    w, s = simplex(3, 7), simplex(3, S)
    got = shift(w, s)
    assert torch.allclose(got, slow_shift(w, s))
    assert torch.allclose(got.sum(-1), torch.ones(3, dtype=torch.float64))


def test_shift_moves_forward_and_wraps():
    w = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    right = torch.tensor([[0.0, 0.0, 1.0]])  # all mass on +1
    assert torch.equal(shift(w, right), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    left = torch.tensor([[1.0, 0.0, 0.0]])
    assert torch.equal(shift(w, left), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))
    stay = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.equal(shift(w, stay), w)


def test_sharpen_limits():
    w = simplex(2, 6)
    assert torch.allclose(sharpen(w, 1.0), w)
    hard = sharpen(w, 200.0)
    assert torch.equal(hard.argmax(-1), w.argmax(-1)) and (hard.max(-1).values > 0.999).all()
    # Zeros stay zero and produce no NaN, in values or in gradients with respect to γ.
    w0 = torch.tensor([[0.0, 0.5, 0.5]], dtype=torch.float64)
    gamma = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    out = sharpen(w0, gamma)
    out[0, 1].backward()
    assert out[0, 0] == 0 and torch.isfinite(gamma.grad).all()


def test_address_pipeline_and_stages():
    B, N, M = 2, 8, 5
    memory, key, w_prev = rand(B, N, M), rand(B, M), simplex(B, N)
    s = simplex(B, 3)
    stages = address(memory, key, 2.0, 0.7, s, 1.5, w_prev, return_stages=True)
    assert list(stages) == ["content", "gated", "shifted", "sharpened"]
    want = sharpen(shift(interpolate(content_addressing(memory, key, 2.0), w_prev, 0.7), s), 1.5)
    assert torch.allclose(stages["sharpened"], want)
    assert torch.allclose(address(memory, key, 2.0, 0.7, s, 1.5, w_prev), want)
    for w in stages.values():
        assert torch.allclose(w.sum(-1), torch.ones(B, dtype=torch.float64))


def test_read_is_the_weighted_sum_of_rows():
    memory, w = rand(3, 6, 4), simplex(3, 6)
    want = torch.stack([sum(w[b, i] * memory[b, i] for i in range(6)) for b in range(3)])
    assert torch.allclose(read(memory, w), want)
    wh = simplex(3, 2, 6)
    assert read(memory, wh).shape == (3, 2, 4)
    assert torch.allclose(read(memory, wh)[:, 1], read(memory, wh[:, 1]))
    one_hot = F.one_hot(torch.tensor([2, 0, 5]), 6).double()
    assert torch.equal(read(memory, one_hot), memory[torch.arange(3), torch.tensor([2, 0, 5])])


def test_write_matches_the_elementwise_equation():
    B, N, M = 2, 5, 3
    memory, w = rand(B, N, M), simplex(B, N)
    e, a = torch.sigmoid(rand(B, M)), rand(B, M)
    got = write(memory, w, e, a)
    want = memory.clone()
    for b in range(B):
        for i in range(N):
            for j in range(M):
                want[b, i, j] = memory[b, i, j] * (1 - w[b, i] * e[b, j]) + w[b, i] * a[b, j]
    assert torch.allclose(got, want)
    assert not torch.equal(got, memory)  # and the input was not modified in place


def test_write_one_hot_full_erase_replaces_the_slot():
    memory = rand(1, 4, 3)
    w = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    a = torch.tensor([[7.0, 8.0, 9.0]], dtype=torch.float64)
    new = write(memory, w, torch.ones(1, 3, dtype=torch.float64), a)
    assert torch.equal(new[0, 2], a[0])
    assert torch.equal(new[0, [0, 1, 3]], memory[0, [0, 1, 3]])
    # Erase only component 0: the other components of the slot keep their values plus a.
    new = write(memory, w, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), a)
    assert torch.allclose(new[0, 2], torch.stack([a[0, 0], memory[0, 2, 1] + 8, memory[0, 2, 2] + 9]))


def test_two_write_heads_commute_and_equal_sequential_erases():
    B, N, M = 2, 5, 3
    memory, w = rand(B, N, M), simplex(B, 2, N)
    e, a = torch.sigmoid(rand(B, 2, M)), rand(B, 2, M)
    both = write(memory, w, e, a)
    swapped = write(memory, w.flip(1), e.flip(1), a.flip(1))
    assert torch.allclose(both, swapped)
    erased = memory * (1 - w[:, 0, :, None] * e[:, 0, None, :]) * (1 - w[:, 1, :, None] * e[:, 1, None, :])
    assert torch.allclose(both, erased + w[:, 0, :, None] * a[:, 0, None, :] + w[:, 1, :, None] * a[:, 1, None, :])


# ------------------------------------------------------------------------------------- gradients


def test_gradcheck_every_function_float64():
    B, N, M = 2, 6, 4
    memory = rand(B, N, M).requires_grad_()
    key = rand(B, M).requires_grad_()
    beta = torch.tensor([1.5, 3.0], dtype=torch.float64, requires_grad=True)
    w_prev = simplex(B, N).requires_grad_()
    g = torch.tensor([0.3, 0.8], dtype=torch.float64, requires_grad=True)
    s = simplex(B, 3).requires_grad_()
    gamma = torch.tensor([1.2, 2.5], dtype=torch.float64, requires_grad=True)
    e = torch.sigmoid(rand(B, M)).detach().requires_grad_()
    a = rand(B, M).requires_grad_()
    w = simplex(B, N).requires_grad_()

    assert gradcheck(lambda m, k: cosine_similarity(m, k), (memory, key))
    assert gradcheck(lambda m, k, b: content_addressing(m, k, b), (memory, key, beta))
    assert gradcheck(lambda x, y, gg: interpolate(x, y, gg), (w, w_prev, g))
    assert gradcheck(lambda x, ss: shift(x, ss), (w, s))
    assert gradcheck(lambda x, gm: sharpen(x, gm), (w, gamma))
    assert gradcheck(lambda m, k, b, gg, ss, gm, wp: address(m, k, b, gg, ss, gm, wp),
                     (memory, key, beta, g, s, gamma, w_prev))
    assert gradcheck(lambda m, x: read(m, x), (memory, w))
    assert gradcheck(lambda m, x, ee, aa: write(m, x, ee, aa), (memory, w, e, a))
    wh = simplex(B, 2, N).requires_grad_()
    eh, ah = torch.sigmoid(rand(B, 2, M)).detach().requires_grad_(), rand(B, 2, M).requires_grad_()
    assert gradcheck(lambda m, x, ee, aa: write(m, x, ee, aa), (memory, wh, eh, ah))


def test_float32_and_no_nan_gradients_with_zero_memory():
    memory = torch.zeros(1, 4, 3, requires_grad=True)  # NTMs often start from a blank memory
    key = torch.randn(1, 3, generator=G, requires_grad=True)
    w = content_addressing(memory, key, 2.0)
    r = read(memory, w)
    (r.sum() + w[0, 0]).backward()
    assert torch.isfinite(memory.grad).all() and torch.isfinite(key.grad).all()


# ------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("call, error, match", [
    (lambda: read(torch.zeros(4, 3), torch.ones(1, 4)), ValueError, r"memory must have shape \(batch B, slots N, width M\)"),
    (lambda: read(torch.zeros(2, 4, 3), torch.ones(2, 5) / 5), ValueError, "does not match memory"),
    (lambda: read(torch.zeros(2, 4, 3), torch.ones(2, 4, dtype=torch.float64)), ValueError, "share a dtype"),
    (lambda: read(torch.zeros(2, 4, 3, dtype=torch.long), torch.ones(2, 4)), ValueError, "floating-point"),
    (lambda: read(torch.zeros(2, 4, 3).tolist(), torch.ones(2, 4)), TypeError, "torch.Tensor"),
    (lambda: cosine_similarity(torch.zeros(2, 4, 3), torch.ones(2, 5)), ValueError, r"key must have shape \(B=2, M=3\)"),
    (lambda: content_addressing(torch.randn(2, 4, 3), torch.randn(2, 3), -1.0), ValueError, "beta .* >= 0"),
    (lambda: content_addressing(torch.randn(2, 4, 3), torch.randn(2, 3), torch.ones(3)), ValueError, "one per head"),
    (lambda: interpolate(torch.ones(2, 4) / 4, torch.ones(2, 4) / 4, 1.5), ValueError, "<= 1.0"),
    (lambda: interpolate(torch.ones(2, 4) / 4, torch.ones(2, 5) / 5, 0.5), ValueError, "same shape"),
    (lambda: shift(torch.ones(2, 4) / 4, torch.ones(2, 2) / 2), ValueError, "odd"),
    (lambda: shift(torch.ones(2, 4) / 4, torch.ones(2, 5) / 5), ValueError, "do not fit"),
    (lambda: shift(torch.ones(2, 4) / 4, torch.ones(3, 3) / 3), ValueError, "one shift distribution per head"),
    (lambda: shift(torch.ones(2, 4) / 4, -torch.ones(2, 3)), ValueError, ">= 0"),
    (lambda: sharpen(torch.ones(2, 4) / 4, 0.5), ValueError, ">= 1"),
    (lambda: sharpen(torch.ones(2, 4) / 4, float("nan")), ValueError, "NaN"),
    (lambda: write(torch.zeros(2, 4, 3), torch.ones(2, 4) / 4, torch.full((2, 3), 2.0), torch.ones(2, 3)),
     ValueError, "erase must be <= 1.0"),
    (lambda: write(torch.zeros(2, 4, 3), torch.ones(2, 4) / 4, torch.ones(2, 4), torch.ones(2, 3)),
     ValueError, r"erase must have shape \(2, 3\)"),
    (lambda: write(torch.zeros(2, 4, 3), torch.ones(2, 2, 4) / 4, torch.ones(2, 3), torch.ones(2, 3)),
     ValueError, r"\(2, 2, 3\)"),
])
def test_bad_inputs_get_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_uniform_weighting_reads_the_mean():
    memory = rand(1, 5, 3)
    assert torch.allclose(read(memory, torch.full((1, 5), 0.2, dtype=torch.float64)), memory.mean(1))
    assert math.isclose(content_addressing(memory, rand(1, 3), 0.0).sum().item(), 1.0)
