"""The copy task of Graves et al. (2014), an LSTM baseline, and a training loop (Chapter 9).

A sequence of random binary vectors is shown to a recurrent model, followed by a delimiter; the
model must then reproduce the whole sequence with no further input. Solving it for any length
needs a memory that can hold the sequence and be read back in order: a fixed-size hidden state
runs out, an addressable memory does not.

Layout of one example of length L and ``bits`` bits per vector (``bits + 1`` input channels):

    time        0 .. L-1        L            L+1 .. 2L
    input       the vectors     delimiter    zeros
    target      (not scored)    (not scored) the vectors again

The last input channel is the delimiter flag. The loss and the bit errors are computed on the
last L steps only (``mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .utils import progress

__all__ = ["CopyTask", "LSTMBaseline", "bit_errors", "count_parameters", "train_copy", "evaluate_copy"]


@dataclass(frozen=True)
class CopyTask:
    """Random copy-task batches: ``bits`` random bits per step, lengths in ``[min_len, max_len]``."""

    bits: int = 8
    min_len: int = 1
    max_len: int = 20

    def __post_init__(self):
        if self.bits < 1:
            raise ValueError(f"bits must be at least 1, got {self.bits}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}")

    @property
    def input_size(self) -> int:
        return self.bits + 1  # the bits and the delimiter flag

    @property
    def output_size(self) -> int:
        return self.bits

    def sample(self, batch_size: int, length: int | None = None, generator: torch.Generator | None = None):
        """Return ``(x, y, mask)`` for one batch whose sequences all have the same length.

        ``x``: (B, 2L+1, bits+1) float inputs; ``y``: (B, 2L+1, bits) float targets (the
        sequence in the last L steps, zeros elsewhere); ``mask``: (2L+1,) bool, True on the
        scored (output) steps. ``length=None`` draws L uniformly from ``[min_len, max_len]``; an
        explicit length may exceed ``max_len`` (that is how generalisation is tested).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if length is None:
            length = int(torch.randint(self.min_len, self.max_len + 1, (1,), generator=generator))
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive int, got {length!r}")
        B, L, n = batch_size, length, self.bits
        seq = torch.randint(0, 2, (B, L, n), generator=generator).float()
        x = torch.zeros(B, 2 * L + 1, n + 1)
        x[:, :L, :n] = seq
        x[:, L, n] = 1.0  # the delimiter: "now write it back"
        y = torch.zeros(B, 2 * L + 1, n)
        y[:, L + 1 :] = seq
        mask = torch.zeros(2 * L + 1, dtype=torch.bool)
        mask[L + 1 :] = True
        return x, y, mask


def bit_errors(logits: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Wrong bits per sequence, (B,): predictions are ``logits > 0`` (probability above 1/2)."""
    if logits.shape != y.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(y.shape)} must have the same shape")
    if mask.dtype != torch.bool or mask.shape != logits.shape[1:2]:
        raise ValueError(f"mask must be a bool tensor of shape ({logits.shape[1]},), got {mask.dtype} {tuple(mask.shape)}")
    wrong = (logits[:, mask] > 0).float() != y[:, mask]
    return wrong.flatten(1).sum(1).float()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LSTMBaseline(nn.Module):
    """An LSTM (``num_layers`` layers of ``hidden_size`` units) with a linear read-out.

    ``forward(x)``: (B, T, input_size) -> logits (B, T, output_size). The baseline of the copy
    task: all it remembers must fit in its hidden and cell states.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 128, num_layers: int = 1):
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.input_size}), got {tuple(x.shape)}")
        h, _ = self.lstm(x)
        return self.out(h)


def train_copy(
    model: nn.Module,
    task: CopyTask,
    steps: int,
    batch_size: int = 16,
    lr: float = 1e-3,
    clip: float = 10.0,
    lr_drop: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    desc: str = "training",
    log_every: int = 50,
) -> dict:
    """Train ``model`` on ``task`` with Adam and gradient-norm clipping.

    Each step draws one batch of a random length in ``[task.min_len, task.max_len]``; the loss is
    the binary cross-entropy on the output steps. ``lr_drop=(threshold, factor)`` multiplies the
    learning rate by ``factor``, once, at the first log point where the fraction of wrong bits
    over the last ``log_every`` steps is below ``threshold``: a large rate finds the solution
    quickly, a small one keeps it stable afterwards.

    Returns ``{"curve": [(step, fraction of bits wrong over the last log_every steps), ...],
    "lr_drop_step": step or None}``.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if lr_drop is not None and not (len(lr_drop) == 2 and 0 < lr_drop[0] <= 1 and 0 < lr_drop[1] <= 1):
        raise ValueError(f"lr_drop must be (threshold in (0, 1], factor in (0, 1]), got {lr_drop!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    curve, window, drop_step = [], [], None
    for step in progress(range(1, steps + 1), desc=desc):
        x, y, mask = task.sample(batch_size, generator=generator)
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits[:, mask], y[:, mask])
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss became {loss.item()} at step {step}: lower lr or clip")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        window.append(bit_errors(logits.detach(), y, mask).mean().item() / (task.bits * int(mask.sum())))
        if step % log_every == 0 or step == steps:
            error = sum(window) / len(window)
            curve.append((step, error))
            window = []
            if lr_drop is not None and drop_step is None and error < lr_drop[0]:
                for group in opt.param_groups:
                    group["lr"] *= lr_drop[1]
                drop_step = step
    return {"curve": curve, "lr_drop_step": drop_step}


@torch.no_grad()
def evaluate_copy(
    model: nn.Module,
    task: CopyTask,
    lengths,
    n: int = 64,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict[int, float]:
    """Mean bit errors per sequence at each length, over ``n`` random sequences per length."""
    model.eval()
    out = {}
    for L in lengths:
        x, y, mask = task.sample(n, length=int(L), generator=generator)
        logits = model(x.to(device)).cpu()
        out[int(L)] = bit_errors(logits, y, mask).mean().item()
    model.train()
    return out
