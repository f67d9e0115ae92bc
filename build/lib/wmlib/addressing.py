"""Reading, writing and addressing an external memory matrix, as in the Neural Turing Machine
(Graves et al. 2014). Chapter 4 derives every equation; Chapter 9 builds an NTM from these pieces.

The memory is a batch of matrices ``memory`` (B, N, M): N slots (rows) of width M. A *head* looks
at it through a weighting w (B, N) whose entries are non-negative and sum to 1; several heads at
once use (B, H, N). Everything here is batched and differentiable, so a controller network can
learn where to read and write by gradient descent.

Addressing, one head per step (Graves et al. 2014, §3.3):

1. :func:`content_addressing`  w^c = softmax(β · cos(k, M_i))          find slots like the key
2. :func:`interpolate`         w^g = g w^c + (1 - g) w_prev            or stay where we were
3. :func:`shift`               w̃_i = Σ_j w^g_j s((i - j) mod N)        move by a few slots
4. :func:`sharpen`             w_i = w̃_i^γ / Σ_j w̃_j^γ                undo the blur of the shift

:func:`address` chains the four. Then :func:`read` r = Σ_i w_i M_i and :func:`write`
M_t = M_{t-1} ∘ (1 - w eᵀ) + w aᵀ (erase, then add).

Parameters per head (β, g, γ) are accepted as Python numbers, as tensors of shape w.shape[:-1]
(one per batch element and head), or with a trailing 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "cosine_similarity",
    "content_addressing",
    "interpolate",
    "shift",
    "sharpen",
    "address",
    "read",
    "write",
]


# ----------------------------------------------------------------------------------- checks


def _values_checkable() -> bool:
    # Value checks (β >= 0 ...) read tensor data; skip them while torch.compile traces the code.
    return not torch.compiler.is_compiling()


def _tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _memory(memory) -> Tensor:
    memory = _tensor(memory, "memory")
    if memory.dim() != 3:
        raise ValueError(f"memory must have shape (batch B, slots N, width M); got {tuple(memory.shape)}")
    return memory


def _weighting(w, name: str, memory: Tensor | None = None, n: int | None = None) -> Tensor:
    """A weighting: (B, N) for one head or (B, H, N) for H heads."""
    w = _tensor(w, name)
    if w.dim() not in (2, 3):
        raise ValueError(f"{name} must have shape (B, N) or (B, H, N); got {tuple(w.shape)}")
    if memory is not None:
        B, N, _ = memory.shape
        if w.shape[0] != B or w.shape[-1] != N:
            raise ValueError(
                f"{name} of shape {tuple(w.shape)} does not match memory {tuple(memory.shape)}: "
                f"expected (B={B}, N={N}) or (B={B}, H, N={N})"
            )
    elif n is not None and w.shape[-1] != n:
        raise ValueError(f"{name} has {w.shape[-1]} slots (last dim), expected {n}")
    return w


def _per_head(x, name: str, lead: torch.Size, like: Tensor) -> Tensor:
    """β, g or γ as a tensor of shape (*lead, 1) that broadcasts over the slots."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return torch.full((*lead, 1), float(x), dtype=like.dtype, device=like.device)
    x = _tensor(x, name)
    if x.dim() == 0:
        return x.expand(*lead).unsqueeze(-1)
    if tuple(x.shape) == tuple(lead):
        return x.unsqueeze(-1)
    if tuple(x.shape) == (*lead, 1):
        return x
    want = " or ".join(str(s) for s in (tuple(lead), (*lead, 1)))
    raise ValueError(f"{name} must be a number or a tensor of shape {want} (one per head); got {tuple(x.shape)}")


def _check_range(x: Tensor, name: str, low: float | None = None, high: float | None = None, why: str = "") -> None:
    if not _values_checkable():
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if low is not None and (x < low).any():
        raise ValueError(f"{name} must be >= {low}{why}; smallest value is {x.min().item():.4g}")
    if high is not None and (x > high).any():
        raise ValueError(f"{name} must be <= {high}{why}; largest value is {x.max().item():.4g}")


# --------------------------------------------------------------------------------- addressing


def cosine_similarity(memory: Tensor, key: Tensor, eps: float = 1e-8) -> Tensor:
    """K[k, M_i] = k · M_i / (‖k‖ ‖M_i‖) for every slot i.

    memory (B, N, M), key (B, M) or (B, H, M) -> similarities (B, N) or (B, H, N), in [-1, 1].
    A zero key or slot has similarity 0 (norms are clamped at ``eps``), not NaN.
    """
    memory = _memory(memory)
    key = _tensor(key, "key")
    B, N, M = memory.shape
    if key.dim() not in (2, 3) or key.shape[0] != B or key.shape[-1] != M:
        raise ValueError(
            f"key must have shape (B={B}, M={M}) or (B={B}, H, M={M}) to match memory {tuple(memory.shape)}; "
            f"got {tuple(key.shape)}"
        )
    if key.dtype != memory.dtype:
        raise ValueError(f"key ({key.dtype}) and memory ({memory.dtype}) must share a dtype")
    k = key / key.norm(dim=-1, keepdim=True).clamp_min(eps)
    m = memory / memory.norm(dim=-1, keepdim=True).clamp_min(eps)
    if key.dim() == 2:
        return torch.einsum("bm,bnm->bn", k, m)
    return torch.einsum("bhm,bnm->bhn", k, m)


def content_addressing(memory: Tensor, key: Tensor, beta, eps: float = 1e-8) -> Tensor:
    """w^c_i = softmax_i(β · cos(key, M_i)): a weighting over the slots that resemble ``key``.

    memory (B, N, M), key (B, M) or (B, H, M), beta >= 0 (the key strength: 0 gives a uniform
    weighting, large β a near one-hot one) -> (B, N) or (B, H, N).
    """
    sim = cosine_similarity(memory, key, eps)
    beta = _per_head(beta, "beta", sim.shape[:-1], sim)
    _check_range(beta, "beta (key strength)", low=0.0, why=" (NTMs use softplus to keep it positive)")
    return torch.softmax(beta * sim, dim=-1)


def interpolate(w_content: Tensor, w_prev: Tensor, g) -> Tensor:
    """w^g = g · w^c + (1 - g) · w_prev: the gate g in [0, 1] chooses between the content
    weighting (g = 1) and last step's weighting (g = 0). Shapes (B, N) or (B, H, N)."""
    w_content = _weighting(w_content, "w_content")
    w_prev = _weighting(w_prev, "w_prev")
    if w_prev.shape != w_content.shape:
        raise ValueError(f"w_prev {tuple(w_prev.shape)} and w_content {tuple(w_content.shape)} must have the same shape")
    g = _per_head(g, "g (interpolation gate)", w_content.shape[:-1], w_content)
    _check_range(g, "g (interpolation gate)", 0.0, 1.0, " (NTMs use a sigmoid)")
    return g * w_content + (1 - g) * w_prev


def shift(w: Tensor, s: Tensor) -> Tensor:
    """Circular convolution w̃_i = Σ_j w_j s((i - j) mod N) of a weighting with a shift distribution.

    w (B, N) or (B, H, N); s (..., S) with the same leading shape and S odd, its entries the
    probabilities of moving by -(S//2) .. +(S//2) slots (S = 3: left, stay, right). A one-hot
    s on +1 moves all weight one slot forward, wrapping round the end of the memory.
    """
    w = _weighting(w, "w")
    s = _tensor(s, "s (shift weighting)")
    if s.shape[:-1] != w.shape[:-1]:
        raise ValueError(
            f"s must have shape {(*w.shape[:-1], 'S')} (one shift distribution per head); got {tuple(s.shape)}"
        )
    S, N = s.shape[-1], w.shape[-1]
    if S % 2 == 0:
        raise ValueError(f"s must have an odd number of shifts, centred on 0 (e.g. 3 for -1, 0, +1); got {S}")
    if S > N:
        raise ValueError(f"{S} shifts do not fit a memory of {N} slots (circular shifts would overlap)")
    _check_range(s, "s (shift weighting)", low=0.0, why=" (NTMs use a softmax)")
    half = S // 2
    # roll(w, o)[i] = w[i - o]: the weighting moved forward by o slots. Weight them by s(o).
    moved = torch.stack([torch.roll(w, o, dims=-1) for o in range(-half, half + 1)], dim=-1)  # (..., N, S)
    return (moved * s.unsqueeze(-2)).sum(-1)


def sharpen(w: Tensor, gamma) -> Tensor:
    """w_i = w_i^γ / Σ_j w_j^γ with γ >= 1: counteracts the blurring of :func:`shift`.
    γ = 1 leaves w unchanged; γ -> ∞ tends to a one-hot weighting on the largest entry."""
    w = _weighting(w, "w")
    gamma = _per_head(gamma, "gamma (sharpening exponent)", w.shape[:-1], w)
    _check_range(gamma, "gamma (sharpening exponent)", low=1.0, why=" (NTMs use 1 + softplus)")
    _check_range(w, "w", low=0.0, why=" (a weighting is non-negative)")
    # Clamp at the smallest normal number: 0^γ would make d/dγ = 0 · log 0 = NaN.
    tiny = torch.finfo(w.dtype).tiny
    powered = w.clamp_min(tiny) ** gamma
    return powered / powered.sum(-1, keepdim=True).clamp_min(tiny)


def address(memory: Tensor, key: Tensor, beta, g, s: Tensor, gamma, w_prev: Tensor,
            return_stages: bool = False):
    """The full NTM addressing pipeline: content -> interpolate -> shift -> sharpen.

    memory (B, N, M); key (B, M) or (B, H, M); beta, g, gamma per head; s (B, [H,] S);
    w_prev (B, [H,] N). Returns the weighting (B, [H,] N), or with ``return_stages`` a dict of
    the four intermediate weightings ("content", "gated", "shifted", "sharpened").
    """
    w_c = content_addressing(memory, key, beta)
    w_prev = _weighting(w_prev, "w_prev", memory)
    w_g = interpolate(w_c, w_prev, g)
    w_s = shift(w_g, s)
    w = sharpen(w_s, gamma)
    if return_stages:
        return {"content": w_c, "gated": w_g, "shifted": w_s, "sharpened": w}
    return w


# ----------------------------------------------------------------------------- read and write


def read(memory: Tensor, w: Tensor) -> Tensor:
    """r = Σ_i w_i M_i, the weighted average of the slots (a *soft* read).

    memory (B, N, M), w (B, N) -> (B, M); or w (B, H, N) -> (B, H, M), one read vector per head.
    """
    memory = _memory(memory)
    w = _weighting(w, "w", memory)
    if w.dtype != memory.dtype:
        raise ValueError(f"w ({w.dtype}) and memory ({memory.dtype}) must share a dtype")
    return w @ memory if w.dim() == 3 else (w.unsqueeze(1) @ memory).squeeze(1)


def write(memory: Tensor, w: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """NTM write: erase, then add. M_t = M_{t-1} ∘ (1 - w eᵀ) + w aᵀ.

    memory (B, N, M); w (B, N); erase e (B, M) with entries in [0, 1]; add a (B, M). Slot i loses
    the fraction w_i e_j of its component j, then gains w_i a_j. With H heads, w (B, H, N) and
    e, a (B, H, M): all erasures are applied (their order does not matter, the factors multiply)
    before all additions. Returns the new memory; the input is not modified.
    """
    memory = _memory(memory)
    w = _weighting(w, "w", memory)
    B, N, M = memory.shape
    want = (*w.shape[:-1], M)
    for name, t in (("erase", erase), ("add", add)):
        _tensor(t, name)
        if t.dtype != memory.dtype:
            raise ValueError(f"{name} ({t.dtype}) and memory ({memory.dtype}) must share a dtype")
        if tuple(t.shape) != want:
            raise ValueError(f"{name} must have shape {want} (one width-{M} vector per head); got {tuple(t.shape)}")
    _check_range(erase, "erase", 0.0, 1.0, " (NTMs use a sigmoid)")
    if w.dim() == 2:
        w, erase, add = w.unsqueeze(1), erase.unsqueeze(1), add.unsqueeze(1)
    # (B, H, N, 1) * (B, H, 1, M): each head's outer products w eᵀ and w aᵀ.
    keep = (1 - w.unsqueeze(-1) * erase.unsqueeze(-2)).prod(dim=1)  # (B, N, M)
    added = (w.unsqueeze(-1) * add.unsqueeze(-2)).sum(dim=1)  # (B, N, M)
    return memory * keep + added
