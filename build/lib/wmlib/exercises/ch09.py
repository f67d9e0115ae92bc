"""Checkers for Chapter 9, "Neural Turing Machines and differentiable memory"."""

from __future__ import annotations

import torch

from ._core import ExerciseFailure, call, expect_float, expect_tensor, passed

__all__ = ["check_shift_weighting", "check_erase_add_write", "check_sharpen", "check_peak_after_shifts"]


def _shift_reference(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    # w~(i) = sum_j w(j) s(i - j), offsets i - j in {-1, 0, +1}; torch.roll(w, 1)[i] = w[i - 1]
    return s[..., 0:1] * torch.roll(w, -1, -1) + s[..., 1:2] * w + s[..., 2:3] * torch.roll(w, 1, -1)


def check_shift_weighting(shift_weighting) -> bool:
    """Exercise 9.1: ``shift_weighting(w, s)``: w (B, N), s (B, 3) over shifts (−1, 0, +1)."""
    ex = "Exercise 9.1 (circular shift)"
    # A one-hot weighting shifted by +1 with certainty shows the direction plainly.
    w = torch.zeros(1, 6)
    w[0, 2] = 1.0
    got = call(ex, shift_weighting, w, torch.tensor([[0.0, 0.0, 1.0]]))
    expect_tensor(ex, got, shape=(1, 6), name="shift_weighting(w, s)")
    if got[0].argmax() == 1 and torch.isclose(got[0, 1], torch.tensor(1.0)):
        raise ExerciseFailure(ex, "a shift of +1 moved the weight from row 2 to row 1: the direction is reversed",
                              "s[:, 2] is the probability of moving every weight one row *forward*, "
                              "w~(i) = w(i - 1): that is torch.roll(w, 1, dims=-1)")
    if got[0].argmax() != 3 or not torch.isclose(got[0, 3], torch.tensor(1.0), atol=1e-5):
        raise ExerciseFailure(ex, f"shifting row 2 by +1 should give a one-hot on row 3, got {got[0].tolist()}")
    # At the edge: a circular shift wraps around, a zero-padded convolution loses the weight.
    w = torch.zeros(1, 6)
    w[0, 5] = 1.0
    got = call(ex, shift_weighting, w, torch.tensor([[0.0, 0.0, 1.0]]))
    expect_tensor(ex, got, shape=(1, 6), name="shift_weighting(w, s)")
    if got.sum() < 0.5:
        raise ExerciseFailure(ex, "the weight on the last row disappeared instead of wrapping around to row 0",
                              "the shift is circular (modulo N): use torch.roll, not a zero-padded convolution")
    if not torch.isclose(got[0, 0], torch.tensor(1.0), atol=1e-5):
        raise ExerciseFailure(ex, f"shifting row 5 of 6 by +1 should wrap to row 0, got {got[0].tolist()}")
    g = torch.Generator().manual_seed(9)
    w = torch.softmax(torch.randn(4, 7, generator=g) * 2, -1)
    s = torch.softmax(torch.randn(4, 3, generator=g), -1)
    got = call(ex, shift_weighting, w, s)
    expect_tensor(ex, got, shape=(4, 7), name="shift_weighting(w, s)")
    if torch.allclose(got, _shift_reference(w, s.flip(-1)), atol=1e-5):
        raise ExerciseFailure(ex, "s is read backwards: s[:, 0] is the shift by −1 and s[:, 2] the shift by +1")
    if not torch.allclose(got, _shift_reference(w, s), atol=1e-5):
        raise ExerciseFailure(ex, "one-hot cases pass, but a blend of shifts of a spread-out weighting is wrong",
                              "mix the three shifted copies with their own batch row of s: s[:, k:k+1]")
    return passed(ex, "circular convolution with shifts −1, 0, +1, batched")


def _write_reference(memory, w, e, a):
    return memory * (1 - torch.outer(w, e)) + torch.outer(w, a)


def check_erase_add_write(erase_add_write) -> bool:
    """Exercise 9.2: ``erase_add_write(memory, w, e, a)``: memory (N, M), w (N,), e (M,), a (M,)."""
    ex = "Exercise 9.2 (erase then add)"
    g = torch.Generator().manual_seed(92)
    N, M = 5, 3  # N != M exposes transposed outer products
    memory = torch.randn(N, M, generator=g)
    w = torch.softmax(torch.randn(N, generator=g) * 2, -1)
    e = torch.rand(M, generator=g)
    a = torch.randn(M, generator=g)
    got = call(ex, erase_add_write, memory.clone(), w, e, a)
    expect_tensor(ex, got, shape=(N, M), name="the new memory")
    want = _write_reference(memory, w, e, a)
    if torch.allclose(got, want, atol=1e-5):
        return passed(ex, "M ∘ (1 − w eᵀ) + w aᵀ")
    mistakes = {
        "you added before erasing: the erase then removes part of what was just written":
            (memory + torch.outer(w, a)) * (1 - torch.outer(w, e)),
        "the erase ignores the weighting: every row is erased by e, not only the rows the head points at":
            memory * (1 - e) + torch.outer(w, a),
        "there is no erase: the old content is kept under the new one": memory + torch.outer(w, a),
        "the add ignores the weighting: every row receives a in full": memory * (1 - torch.outer(w, e)) + a,
        "you replaced the memory instead of updating it: the old content is gone": torch.outer(w, a),
        "you erased with e instead of (1 − w eᵀ): the erase gate multiplies the memory where it should remove it":
            memory * torch.outer(w, e) + torch.outer(w, a),
    }
    for message, wrong in mistakes.items():
        if torch.allclose(got, wrong, atol=1e-5):
            raise ExerciseFailure(ex, message, "M_t = M_{t-1} * (1 - torch.outer(w, e)) + torch.outer(w, a)")
    raise ExerciseFailure(ex, f"the new memory is off by up to {(got - want).abs().max().item():.3g}",
                          "erase first, M * (1 - w eᵀ), then add w aᵀ")


def check_sharpen(sharpen) -> bool:
    """Exercise 9.3a: ``sharpen(w, gamma)``: w (B, N), gamma (B, 1) -> w^γ / Σ w^γ."""
    ex = "Exercise 9.3 (sharpening)"
    g = torch.Generator().manual_seed(93)
    w = torch.softmax(torch.randn(3, 8, generator=g), -1)
    gamma = torch.tensor([[1.0], [2.0], [5.0]])
    got = call(ex, sharpen, w, gamma)
    expect_tensor(ex, got, shape=(3, 8), name="sharpen(w, gamma)")
    want = w**gamma / (w**gamma).sum(-1, keepdim=True)
    if torch.allclose(got, want, atol=1e-5):
        return passed(ex, "w^γ / Σ w^γ: rows sum to 1, γ = 1 changes nothing")
    if torch.allclose(got, w**gamma, atol=1e-5):
        raise ExerciseFailure(ex, "the rows no longer sum to 1", "divide w**gamma by its sum over the last dim")
    if torch.allclose(got, torch.softmax(gamma * w, -1), atol=1e-5):
        raise ExerciseFailure(ex, "softmax(γ w) is not sharpening: it flattens a weighting whose entries are "
                              "all below 1", "raise each weight to the power γ, then renormalise")
    if torch.allclose(got.sum(-1), torch.ones(3), atol=1e-4) and torch.allclose(got[0], w[0], atol=1e-5):
        raise ExerciseFailure(ex, "γ = 1 is right but larger γ are not", "use w ** gamma (gamma has shape (B, 1))")
    raise ExerciseFailure(ex, f"sharpen is off by up to {(got - want).abs().max().item():.3g}",
                          "w ** gamma / (w ** gamma).sum(-1, keepdim=True)")


def check_peak_after_shifts(peak_after_shifts) -> bool:
    """Exercise 9.3b: ``peak_after_shifts(s, steps, gamma)`` -> the largest weight after ``steps``
    rounds of (shift by s, sharpen by γ) starting from a one-hot on row 0 of 32 rows."""
    ex = "Exercise 9.3 (the peak after repeated shifts)"
    s = torch.tensor([0.05, 0.1, 0.85])
    for steps, gamma in ((1, 1.0), (10, 1.0), (10, 3.0), (0, 1.0)):
        w = torch.zeros(1, 32)
        w[0, 0] = 1.0
        for _ in range(steps):
            w = _shift_reference(w, s[None])
            w = w**gamma / (w**gamma).sum(-1, keepdim=True)
        want = w.max().item()
        got = call(ex, peak_after_shifts, s, steps, gamma)
        got = expect_float(ex, got)
        if abs(got - want) > 1e-4:
            hint = None
            if steps == 0:
                hint = "zero steps leave the one-hot weighting unchanged: its peak is 1"
            elif gamma == 1.0 and abs(got - s.max().item() ** steps) < 1e-4:
                hint = "the peak is not s_max ** steps: the weight that moved by other shifts piles up again"
            raise ExerciseFailure(ex, f"peak_after_shifts(s, {steps}, {gamma}) = {got:.4f}, expected {want:.4f}", hint)
    return passed(ex, "without sharpening the peak decays with every shift; with γ > 1 it stays high")
