"""Checkers for Chapter 4, "The mathematics of external memory"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, expect_tensor, passed

__all__ = ["check_softmax_jacobian", "check_ntm_write", "check_circular_shift", "check_kd_gradient"]


def _same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-8) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-6))


def _first_match(got, variants: dict, atol: float = 1e-8):
    return next((message for message, value in variants.items() if _same(got, value, atol)), None)


# --------------------------------------------------------------------------------- Exercise 4.1


def check_softmax_jacobian(softmax_jacobian) -> bool:
    """Exercise 4.1: ``softmax_jacobian(z, T=1.0)`` -> (C, C) matrix ∂ softmax(z/T)_i / ∂ z_j."""
    ex = "Exercise 4.1 (Jacobian of the softmax)"
    g = torch.Generator().manual_seed(41)
    for T in (1.0, 0.5, 3.0):
        z = torch.randn(5, generator=g, dtype=torch.float64) * 2
        got = call(ex, softmax_jacobian, z.clone(), T=T)
        got = expect_tensor(ex, got, shape=(5, 5), name=f"softmax_jacobian(z, T={T})")
        want = torch.autograd.functional.jacobian(lambda v: torch.softmax(v / T, -1), z)
        if _same(got, want):
            continue
        p = torch.softmax(z / T, -1)
        outer = torch.outer(p, p)
        variants = {
            "you returned diag(p) only: the denominator also depends on every z_j, which adds -p_i p_j":
                torch.diag(p) / T,
            "you returned -p pᵀ only: the diagonal also gets +p_i from differentiating the numerator":
                -outer / T,
            "the sign is flipped: J = (diag(p) - p pᵀ) / T": (outer - torch.diag(p)) / T,
            "you used the scores z instead of the probabilities p = softmax(z / T)":
                (torch.diag(z) - torch.outer(z, z)) / T,
            "the temperature's chain-rule factor is missing: differentiating z / T gives an extra 1/T":
                torch.diag(p) - outer,
            "you multiplied by T; the chain rule through z / T divides by T": (torch.diag(p) - outer) * T,
        }
        message = _first_match(got, variants)
        raise ExerciseFailure(ex, message or f"your Jacobian differs from autograd's (T = {T}) by up to "
                                             f"{(got.double() - want).abs().max().item():.3g}",
                              None if message else "J = (diag(p) - p pᵀ) / T with p = softmax(z / T)")
    return passed(ex, "J = (diag(p) - p pᵀ) / T, equal to torch.autograd.functional.jacobian")


# --------------------------------------------------------------------------------- Exercise 4.2


def check_ntm_write(ntm_write) -> bool:
    """Exercise 4.2: ``ntm_write(memory, w, erase, add)`` with memory (B, N, M), w (B, N), e and a (B, M)."""
    from ..addressing import write

    ex = "Exercise 4.2 (NTM write)"
    g = torch.Generator().manual_seed(42)
    B, N, M = 2, 5, 3
    memory = torch.randn(B, N, M, generator=g, dtype=torch.float64)
    w = torch.softmax(torch.randn(B, N, generator=g, dtype=torch.float64) * 2, -1)
    e = torch.sigmoid(torch.randn(B, M, generator=g, dtype=torch.float64))
    a = torch.randn(B, M, generator=g, dtype=torch.float64)
    before = memory.clone()
    got = call(ex, ntm_write, memory, w, e, a)
    if not torch.equal(memory, before):
        raise ExerciseFailure(ex, "your function changed the memory passed in (an in-place update)",
                              "return a new tensor, e.g. memory * (1 - ...) + ...; avoid *= and +=")
    if isinstance(got, torch.Tensor) and tuple(got.shape) != (B, N, M):
        raise ExerciseFailure(ex, f"the new memory has shape {tuple(got.shape)}, expected {(B, N, M)}",
                              "w eᵀ for a batch is w[:, :, None] * e[:, None, :], shape (B, N, M)")
    got = expect_tensor(ex, got, shape=(B, N, M), name="the new memory")
    want = write(memory, w, e, a)
    if _same(got, want):
        return passed(ex, "M ∘ (1 - w eᵀ) + w aᵀ: erase, then add")
    we, wa = w[:, :, None] * e[:, None, :], w[:, :, None] * a[:, None, :]
    variants = {
        "you added before erasing: the erase then removes part of what was just written":
            (memory + wa) * (1 - we),
        "there is no erase: M + w aᵀ only ever adds, so the memory grows without bound": memory + wa,
        "the erase ignores the weighting: every slot loses the fraction e, not w_i e": memory * (1 - e[:, None, :]) + wa,
        "you multiplied by w eᵀ instead of (1 - w eᵀ): that keeps exactly the part that should be erased":
            memory * we + wa,
        "the added vector is not weighted by w: slot i gains w_i a, not a": memory * (1 - we) + a[:, None, :],
    }
    message = _first_match(got, variants)
    raise ExerciseFailure(ex, message or "the new memory differs from M ∘ (1 - w eᵀ) + w aᵀ",
                          None if message else "erase: memory * (1 - w[:, :, None] * e[:, None, :]); "
                                               "add: + w[:, :, None] * a[:, None, :]")


# --------------------------------------------------------------------------------- Exercise 4.3


def check_circular_shift(circular_shift) -> bool:
    """Exercise 4.3: ``circular_shift(w, s)`` with w (B, N) and s (B, S), S odd."""
    from ..addressing import shift

    ex = "Exercise 4.3 (circular shift)"
    g = torch.Generator().manual_seed(43)
    w0 = torch.zeros(1, 6, dtype=torch.float64)
    w0[0, 5] = 1.0
    plus_one = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    got = expect_tensor(ex, call(ex, circular_shift, w0, plus_one), shape=(1, 6))
    if not _same(got, shift(w0, plus_one)):
        if _same(got, torch.zeros_like(w0)):
            raise ExerciseFailure(ex, "a shift of +1 from the last slot lost the weight: the shift must wrap "
                                      "around (circular), slot N-1 moves to slot 0")
        if _same(got, torch.roll(w0, -1, -1)):
            raise ExerciseFailure(ex, "your shift goes the wrong way: s = (0, 0, 1) puts all mass on +1, which "
                                      "moves weight from slot j to slot j + 1")
        raise ExerciseFailure(ex, "with w one-hot on the last slot and s one-hot on +1, the weight should move "
                                  "to slot 0")
    for S in (3, 5):
        w = torch.softmax(torch.randn(3, 7, generator=g, dtype=torch.float64), -1)
        s = torch.softmax(torch.randn(3, S, generator=g, dtype=torch.float64), -1)
        got = expect_tensor(ex, call(ex, circular_shift, w, s), shape=(3, 7))
        want = shift(w, s)
        if _same(got, want):
            continue
        if _same(got, shift(w, s.flip(-1))):
            raise ExerciseFailure(ex, f"with {S} shifts the directions are reversed: s[0] is the shift by "
                                      f"-{S // 2}, s[-1] by +{S // 2}")
        raise ExerciseFailure(ex, f"wrong result for a {S}-way shift distribution",
                              "w̃_i = Σ_o s[o + S//2] · w[(i - o) mod N] for o = -S//2 .. S//2; torch.roll helps")
    return passed(ex, "circular convolution w̃_i = Σ_j w_j s(i - j), wrapping around the memory")


# --------------------------------------------------------------------------------- Exercise 4.4


def check_kd_gradient(kd_soft_gradient) -> bool:
    """Exercise 4.4: ``kd_soft_gradient(student_logits, teacher_logits, T)`` = ∂/∂z_s of
    T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) averaged over the batch."""
    from ..distillation import soft_target_loss

    ex = "Exercise 4.4 (gradient of the distillation loss)"
    g = torch.Generator().manual_seed(44)
    for T in (1.0, 4.0, 0.5):
        zs = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
        zt = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
        got = call(ex, kd_soft_gradient, zs.clone(), zt.clone(), T)
        got = expect_tensor(ex, got, shape=(6, 5), name="the gradient")
        leaf = zs.clone().requires_grad_()
        (want,) = torch.autograd.grad(soft_target_loss(leaf, zt, T), leaf)
        if _same(got, want):
            continue
        Bn = zs.shape[0]
        diff = torch.softmax(zs / T, -1) - torch.softmax(zt / T, -1)
        variants = {
            "the sign is flipped: the loss decreases when p_s moves towards p_t, so the gradient is +(p_s - p_t)":
                -T * diff / Bn,
            "that is the gradient of the KL alone, (p_s - p_t) / (T·B): multiply by the T² of the loss":
                diff / (T * Bn),
            "a factor T is missing: T² times the chain rule's 1/T leaves T (p_s - p_t) / B": diff / Bn,
            "you forgot the chain rule through z_s / T, which divides by T: T² · (1/T) = T": T * T * diff / Bn,
            "the loss is averaged over the batch ('batchmean'): divide by the number of examples": T * diff,
        }
        message = _first_match(got, variants)
        raise ExerciseFailure(ex, message or f"your gradient differs from autograd's at T = {T}",
                              None if message else "∂L/∂z_s = T · (softmax(z_s/T) - softmax(z_t/T)) / batch")
    return passed(ex, "∂/∂z_s [T² KL] = T (p_s - p_t) / B: about (z_s - z_t) / (C·B) for large T, "
                       "where the KL alone would fall like 1/T²")
