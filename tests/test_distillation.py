"""wmlib.distillation: the documented convention, the T² scaling, and bad inputs."""

import math

import pytest
import torch
import torch.nn.functional as F

from wmlib.distillation import distillation_loss, hard_target_loss, soft_target_loss, soft_targets

G = torch.Generator().manual_seed(0)


def logits(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64) * 3


def manual_kl(s, t, T):
    p_t, p_s = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
    return (p_t * (p_t.log() - p_s.log())).sum(-1).mean()


@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 8.0])
def test_soft_loss_is_T_squared_times_the_mean_kl(T):
    s, t = logits(6, 5), logits(6, 5)
    assert torch.allclose(soft_target_loss(s, t, T), T * T * manual_kl(s, t, T))
    assert soft_target_loss(t, t, T).abs() < 1e-12


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distillation_loss_mixes_hard_and_soft(alpha):
    s, t = logits(8, 4), logits(8, 4)
    y = torch.randint(4, (8,), generator=G)
    T = 3.0
    want = alpha * F.cross_entropy(s, y) + (1 - alpha) * T * T * manual_kl(s, t, T)
    assert torch.allclose(distillation_loss(s, t, y, T=T, alpha=alpha), want)


def test_cross_entropy_to_soft_targets_has_the_same_gradient_as_the_kl():
    s, t, T = logits(5, 6).requires_grad_(), logits(5, 6), 4.0
    (g_kl,) = torch.autograd.grad(soft_target_loss(s, t, T), s)
    ce = -(soft_targets(t, T) * F.log_softmax(s / T, -1)).sum(-1).mean() * T * T
    (g_ce,) = torch.autograd.grad(ce, s)
    assert torch.allclose(g_kl, g_ce)


def test_gradient_is_T_times_difference_of_soft_probabilities():
    s, t, T = logits(5, 6).requires_grad_(), logits(5, 6), 2.5
    (g,) = torch.autograd.grad(soft_target_loss(s, t, T), s)
    want = T * (soft_targets(s, T) - soft_targets(t, T)) / s.shape[0]
    assert torch.allclose(g, want)


def test_T_squared_keeps_the_gradient_scale_and_tends_to_logit_matching():
    C = 10
    s, t = logits(64, C), logits(64, C)
    s, t = s - s.mean(-1, keepdim=True), t - t.mean(-1, keepdim=True)  # zero-mean logits
    norms_kl, norms_scaled = [], []
    for T in (20.0, 40.0, 80.0):
        ss = s.clone().requires_grad_()
        (g,) = torch.autograd.grad(soft_target_loss(ss, t, T) / (T * T), ss)
        norms_kl.append(g.norm().item())
        (g2,) = torch.autograd.grad(soft_target_loss(ss, t, T), ss)
        norms_scaled.append(g2.norm().item())
    slope = math.log(norms_kl[-1] / norms_kl[0]) / math.log(4)
    assert abs(slope + 2) < 0.05, slope  # the un-scaled KL gradient falls like 1/T²
    assert abs(norms_scaled[-1] / norms_scaled[0] - 1) < 0.05  # T² restores a constant scale
    # High-T limit (Hinton et al. 2015): the gradient becomes (z_s - z_t) / (C · batch).
    ss = s.clone().requires_grad_()
    (g,) = torch.autograd.grad(soft_target_loss(ss, t, 1000.0), ss)
    assert torch.allclose(g, (s - t) / (C * s.shape[0]), atol=1e-4)


def test_hard_target_loss_uses_teacher_argmax():
    s, t = logits(7, 3), logits(7, 3)
    assert torch.allclose(hard_target_loss(s, t), F.cross_entropy(s, t.argmax(-1)))


def test_sequence_shaped_logits_and_teacher_is_detached():
    s = logits(2, 5, 4).requires_grad_()
    t = logits(2, 5, 4).requires_grad_()
    y = torch.randint(4, (2, 5), generator=G)
    loss = distillation_loss(s, t, y, T=2.0, alpha=0.5)
    loss.backward()
    assert t.grad is None and s.grad is not None
    flat = distillation_loss(s.detach().reshape(10, 4), t.detach().reshape(10, 4), y.reshape(10), T=2.0, alpha=0.5)
    assert torch.allclose(loss.detach(), flat)


def test_pure_distillation_needs_no_labels():
    s, t = logits(3, 4), logits(3, 4)
    assert torch.allclose(distillation_loss(s, t, None, T=2.0, alpha=0.0), soft_target_loss(s, t, 2.0))


@pytest.mark.parametrize("call, error, match", [
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 5), torch.zeros(3, dtype=torch.long)),
     ValueError, "same shape"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), T=0),
     ValueError, "positive"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), alpha=1.5),
     ValueError, r"\[0, 1\]"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), None, alpha=0.5), ValueError, "alpha=0"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3)), ValueError, "integer class"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor([0, 1, 4])), ValueError, r"\[0, 3\]"),
    (lambda: distillation_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.tensor([0, 1])), ValueError, "one class index"),
    (lambda: distillation_loss(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 4), None, alpha=0),
     ValueError, "floating point"),
    (lambda: soft_target_loss([1.0], torch.zeros(1), 1.0), TypeError, "torch.Tensor"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
