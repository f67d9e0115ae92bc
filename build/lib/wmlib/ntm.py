"""A Neural Turing Machine (Graves et al., 2014), batched, in PyTorch (Chapter 9).

An LSTM controller reads the input and the previous read vectors, and at each step emits, for
every head, the parameters of an *addressing* pipeline over an external memory of N rows of
width M:

1. content:   w_c = softmax(β · cos(k, M_i))                          (find rows that look like k)
2. interpolate: w_g = g · w_c + (1 − g) · w_{t−1}                    (or keep the last position)
3. shift:     w̃(i) = Σ_j w_g(j) s(i − j)   (circular convolution)    (move by −1, 0 or +1 rows)
4. sharpen:   w(i) = w̃(i)^γ / Σ_j w̃(j)^γ                           (undo the blur of the shift)

The write head erases then adds, M_t = M_{t−1} ∘ (1 − w eᵀ) + w aᵀ, and each read head returns
r_t = Σ_i w_t(i) M_t(i). The output is a linear function of the controller state and the reads.

Implementation choices follow Collier & Beel (2018), "Implementing Neural Turing Machines": the
memory starts as a small constant (1e-6), the initial read vectors are learned, controller
outputs are clipped to [−20, 20], and training uses Adam with gradient clipping (see
:func:`wmlib.copy_task.train_copy`). The initial weightings are fixed one-hot vectors on row 0:
with a constant memory every row looks the same, so a uniform start could never break the
symmetry between rows.

Shapes: B batch, T time, N memory rows, M row width, R read heads, H = R + 1 heads in all
(the reads first, then the write head).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .addressing import address, read, write

__all__ = ["NTMConfig", "NTM"]


@dataclass(frozen=True)
class NTMConfig:
    """Sizes of an NTM. ``shift_range`` R allows shifts of −R..R rows (Graves et al. use 1)."""

    input_size: int
    output_size: int
    controller_size: int = 100
    memory_rows: int = 128
    memory_width: int = 20
    read_heads: int = 1
    shift_range: int = 1
    memory_init: float = 1e-6
    clip_controller: float = 20.0

    def __post_init__(self):
        for name in ("input_size", "output_size", "controller_size", "memory_rows", "memory_width", "read_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"NTMConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.shift_range, int) or self.shift_range < 0:
            raise ValueError(f"NTMConfig.shift_range must be a non-negative int, got {self.shift_range!r}")
        if 2 * self.shift_range + 1 > self.memory_rows:
            raise ValueError(f"shift_range={self.shift_range} needs at least {2 * self.shift_range + 1} memory rows, "
                             f"got memory_rows={self.memory_rows}")


@dataclass
class NTMState:
    """Everything the NTM carries from one step to the next."""

    h: Tensor  # (B, controller_size) controller hidden state
    c: Tensor  # (B, controller_size) controller cell state
    reads: Tensor  # (B, R, M) the last read vectors
    weights: Tensor  # (B, H, N) the last weighting of every head (reads first, write last)
    memory: Tensor  # (B, N, M)


class NTM(nn.Module):
    """A Neural Turing Machine with ``read_heads`` read heads and one write head.

    ``forward(x)``: (B, T, input_size) -> logits (B, T, output_size). With ``return_trace=True``
    also returns a dict of per-step tensors: ``read_weights`` (B, T, R, N), ``write_weights``
    (B, T, N), ``erase`` and ``add`` (B, T, M); every head's addressing parameters ``beta``,
    ``gate``, ``gamma`` (B, T, H) and ``shift`` (B, T, H, 2·shift_range+1), the read heads first
    and the write head last; and the final ``memory`` (B, N, M).
    """

    def __init__(self, config: NTMConfig):
        super().__init__()
        self.config = c = config
        R, M, S = c.read_heads, c.memory_width, 2 * c.shift_range + 1
        self.heads_total = R + 1
        self.controller = nn.LSTMCell(c.input_size + R * M, c.controller_size)
        # Per head: key (M), strength β (1), gate g (1), shift logits (S), sharpening γ (1);
        # the write head also emits an erase (M) and an add vector (M).
        self.head_params = M + 3 + S
        self.heads = nn.Linear(c.controller_size, self.heads_total * self.head_params + 2 * M)
        self.out = nn.Linear(c.controller_size + R * M, c.output_size)
        self.initial_reads = nn.Parameter(torch.zeros(R, M))  # learned (Collier & Beel 2018)

    # -- state ----------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device=None) -> NTMState:
        c = self.config
        device = device or self.out.weight.device
        zeros = torch.zeros(batch_size, c.controller_size, device=device)
        weights = torch.zeros(batch_size, self.heads_total, c.memory_rows, device=device)
        weights[..., 0] = 1.0  # every head starts on row 0
        memory = torch.full((batch_size, c.memory_rows, c.memory_width), c.memory_init, device=device)
        reads = torch.tanh(self.initial_reads).unsqueeze(0).expand(batch_size, -1, -1)
        return NTMState(zeros, zeros, reads, weights, memory)

    # -- one step ---------------------------------------------------------------------------------
    def _split(self, p: Tensor):
        """Controller output (B, heads*P + 2M) -> the addressing and write parameters."""
        c, H, M = self.config, self.heads_total, self.config.memory_width
        S = 2 * c.shift_range + 1
        head, e, a = p[:, : H * self.head_params], p[:, -2 * M : -M], p[:, -M:]
        head = head.view(-1, H, self.head_params)
        key = torch.tanh(head[..., :M])  # (B, H, M)
        beta = F.softplus(head[..., M : M + 1])  # (B, H, 1), β >= 0
        gate = torch.sigmoid(head[..., M + 1 : M + 2])  # (B, H, 1), g in [0, 1]
        shifts = torch.softmax(head[..., M + 2 : M + 2 + S], dim=-1)  # (B, H, S), sums to 1
        gamma = 1.0 + F.softplus(head[..., M + 2 + S :])  # (B, H, 1), γ >= 1
        return key, beta, gate, shifts, gamma, torch.sigmoid(e), torch.tanh(a)

    def step(self, x: Tensor, state: NTMState, may_write: Tensor | None = None) -> tuple[Tensor, NTMState, dict]:
        """One time step: x (B, input_size) -> logits (B, output_size), the new state, and a dict
        of the step's weightings, erase/add vectors and addressing parameters (for plots).

        ``may_write`` (B,) bool, optional: where False the write leaves the memory unchanged (an
        ablation, to measure what the writes of a given step contribute)."""
        c, R = self.config, self.config.read_heads
        h, cell = self.controller(torch.cat([x, state.reads.flatten(1)], dim=-1), (state.h, state.c))
        p = self.heads(h).clamp(-c.clip_controller, c.clip_controller)
        key, beta, gate, shifts, gamma, erase, add = self._split(p)
        # Write first (addressed on M_{t-1}), then read the new memory M_t.
        sl = slice(R, R + 1)
        w_write = address(state.memory, key[:, sl], beta[:, sl], gate[:, sl], shifts[:, sl], gamma[:, sl],
                          state.weights[:, sl])  # (B, 1, N)
        memory = write(state.memory, w_write[:, 0], erase, add)
        if may_write is not None:
            memory = torch.where(may_write[:, None, None], memory, state.memory)
        sl = slice(0, R)
        w_read = address(memory, key[:, sl], beta[:, sl], gate[:, sl], shifts[:, sl], gamma[:, sl], state.weights[:, sl])  # (B, R, N)
        reads = read(memory, w_read)  # (B, R, M)
        logits = self.out(torch.cat([h, reads.flatten(1)], dim=-1))
        new = NTMState(h, cell, reads, torch.cat([w_read, w_write], dim=1), memory)
        info = {"read_weights": w_read, "write_weights": w_write[:, 0], "erase": erase, "add": add,
                "beta": beta[..., 0], "gate": gate[..., 0], "shift": shifts, "gamma": gamma[..., 0]}
        return logits, new, info

    # -- a whole sequence -------------------------------------------------------------------------
    def forward(self, x: Tensor, return_trace: bool = False, write_mask: Tensor | None = None):
        """Run the NTM over ``x`` (B, T, input_size); see the class docstring for what it returns.

        ``write_mask``: optional bool tensor (T,) or (B, T); where False, that step's write is
        skipped (the memory is left unchanged). For ablations only: training uses every write.
        """
        c = self.config
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != c.input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"NTM input must have shape (batch, time, {c.input_size}), got {got}")
        if not x.is_floating_point():
            raise TypeError(f"NTM input must be a float tensor, got {x.dtype}; use x.float()")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"NTM input has an empty batch or time axis: {tuple(x.shape)}")
        B, T = x.shape[:2]
        if write_mask is not None:
            if not isinstance(write_mask, Tensor) or write_mask.dtype != torch.bool:
                raise TypeError(f"write_mask must be a bool tensor of shape ({T},) or ({B}, {T})")
            if write_mask.shape not in ((T,), (B, T)):
                raise ValueError(f"write_mask must have shape ({T},) or ({B}, {T}), got {tuple(write_mask.shape)}")
            write_mask = write_mask.to(x.device).expand(B, T)
        state = self.initial_state(B, x.device)
        keys = ("read_weights", "write_weights", "erase", "add", "beta", "gate", "shift", "gamma")
        outputs, trace = [], {key: [] for key in keys}
        for t in range(x.shape[1]):
            y, state, info = self.step(x[:, t], state, None if write_mask is None else write_mask[:, t])
            outputs.append(y)
            if return_trace:
                for key in trace:
                    trace[key].append(info[key].detach())
        logits = torch.stack(outputs, dim=1)
        if not return_trace:
            return logits
        trace = {key: torch.stack(v, dim=1) for key, v in trace.items()}
        trace["memory"] = state.memory.detach()
        return logits, trace
