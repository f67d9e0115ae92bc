"""Knowledge-distillation losses (Hinton et al. 2015): derived in Chapter 4, used in Chapter 11.

The convention of this book::

    distillation_loss = α · CE(labels, softmax(z_s))                          hard labels
                      + (1 - α) · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))  soft targets

- z_s, z_t: student and teacher logits (..., C); labels: class indices (...).
- KL(p_t ‖ p_s) = Σ_c p_t,c (log p_t,c - log p_s,c), averaged over the examples (not over the
  classes: PyTorch's ``reduction="batchmean"``). It differs from the cross-entropy between the soft
  targets and the student only by the teacher's entropy, a constant, so both give the same gradient.
- The factor T²: the gradient of the KL term with respect to z_s is (p_s - p_t) / T, which for
  large T shrinks like 1/T². Multiplying by T² keeps the soft term's gradients on the same scale
  as the hard term's whatever the temperature, so α keeps its meaning when T changes.
- α = 1 is plain supervised training; α = 0 is pure distillation (no labels needed).

*Hard-target* distillation replaces the labels by the teacher's own predictions, argmax z_t
(:func:`hard_target_loss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["soft_targets", "soft_target_loss", "hard_target_loss", "distillation_loss"]


def _check_logits(student_logits, teacher_logits) -> tuple[Tensor, Tensor]:
    for name, t in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point (raw scores before the softmax), got {t.dtype}")
        if t.dim() < 1:
            raise ValueError(f"{name} must have shape (..., num_classes); got a scalar")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must have the same shape (..., num_classes); got student "
            f"{tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}"
        )
    return student_logits.reshape(-1, student_logits.shape[-1]), teacher_logits.reshape(-1, teacher_logits.shape[-1])


def _check_temperature(T) -> float:
    if isinstance(T, Tensor):
        T = T.item()
    if not isinstance(T, (int, float)) or isinstance(T, bool) or not math.isfinite(T) or T <= 0:
        raise ValueError(f"the temperature T must be a positive number, got {T!r}")
    return float(T)


def soft_targets(logits: Tensor, T: float) -> Tensor:
    """softmax(logits / T) over the last dimension: T > 1 spreads the probability mass and shows
    the teacher's 'dark knowledge' about which wrong classes are almost right."""
    T = _check_temperature(T)
    return torch.softmax(logits / T, dim=-1)


def soft_target_loss(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)), averaged over examples. Shapes (..., C)."""
    T = _check_temperature(T)
    s, t = _check_logits(student_logits, teacher_logits)
    log_p_s = F.log_softmax(s / T, dim=-1)
    log_p_t = F.log_softmax(t / T, dim=-1)
    # log_target=True uses the teacher's log-probabilities directly: no log(0) for tiny p_t.
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * T * T


def _check_labels(labels, n: int, num_classes: int, what: str) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(
            f"{what} must be integer class indices (dtype long), got {labels.dtype}; for probabilities "
            "use soft_target_loss"
        )
    if labels.numel() != n:
        raise ValueError(f"{what} must have one class index per example ({n}); got shape {tuple(labels.shape)}")
    labels = labels.reshape(-1).long()
    if ((labels < 0) | (labels >= num_classes)).any():
        raise ValueError(f"{what} must lie in [0, {num_classes - 1}]; got values {labels.min().item()} .. {labels.max().item()}")
    return labels


def hard_target_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy of the student against the teacher's predicted classes, argmax z_t."""
    s, t = _check_logits(student_logits, teacher_logits)
    return F.cross_entropy(s, t.argmax(dim=-1))


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor | None,
                      T: float = 2.0, alpha: float = 0.5) -> Tensor:
    """α · CE(labels, z_s) + (1 - α) · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)).

    Args:
        student_logits, teacher_logits: (..., C) raw scores; the teacher's are treated as
            constants (detached), as a trained teacher is not updated.
        labels: (...) integer class indices, or None when ``alpha == 0`` (pure distillation).
        T: temperature > 0 of the soft targets (1 to 20 are typical; 2 to 4 common).
        alpha: weight in [0, 1] of the hard-label term.

    Returns:
        a scalar, averaged over the examples.
    """
    T = _check_temperature(T)
    if isinstance(alpha, Tensor):
        alpha = alpha.item()
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha (the weight of the hard-label loss) must be in [0, 1], got {alpha!r}")
    s, t = _check_logits(student_logits, teacher_logits)
    soft = soft_target_loss(s, t.detach(), T)
    if labels is None:
        if alpha != 0:
            raise ValueError(f"labels=None needs alpha=0 (pure distillation); got alpha={alpha}")
        return soft
    labels = _check_labels(labels, s.shape[0], s.shape[-1], "labels")
    hard = F.cross_entropy(s, labels)
    return alpha * hard + (1 - alpha) * soft
