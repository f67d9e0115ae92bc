"""Positional information for attention (Chapter 3): sinusoidal encodings and rotary embeddings.

Attention by itself is blind to order: permute the tokens and the outputs are permuted the same
way. Two classic fixes:

- :func:`sinusoidal_encoding` builds the (L, d) table of Vaswani et al. (2017) that is *added* to
  the token embeddings once, before the first layer.
- :func:`apply_rope` *rotates* queries and keys inside every attention layer (RoPE, Su et al.
  2021), so that the score q_m · k_n depends on the positions only through the offset m - n.

Two layouts of RoPE's pairs are in use: interleaved pairs (x[2i], x[2i+1]) (RoFormer, Meta's
original Llama code) and half-split pairs (x[i], x[i + d/2]) (GPT-NeoX, transformers). A
checkpoint moves from the first to the second by permuting the rows of W_Q and W_K within each
head (:func:`interleaved_to_half`, what transformers' Llama conversion script does); the scores
stay the same.

Shapes: L positions, d features (even), ``...`` any leading batch/head dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sinusoidal_encoding", "rope_frequencies", "rope_cos_sin", "apply_rope", "rotate_half",
           "interleaved_to_half"]


def _check_dim(d: int, what: str) -> None:
    if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
        raise ValueError(f"{what} must be a positive int, got {d!r}")
    if d % 2:
        raise ValueError(f"{what} must be even (features come in sin/cos or rotation pairs), got {d}")


def _check_base(base: float) -> None:
    if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 1):
        raise ValueError(f"base must be a finite number > 1 (10000 in the Transformer paper), got {base!r}")


def sinusoidal_encoding(length: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32,
                        device=None) -> Tensor:
    """The (length, d_model) sinusoidal table: PE[p, 2i] = sin(p ω_i), PE[p, 2i+1] = cos(p ω_i).

    The frequencies ω_i = base^(-2i/d_model), i = 0 .. d_model/2 - 1, run geometrically from 1
    (wavelength 2π) down to 1/base (wavelength 2π·base), so nearby positions differ in the fast
    features and distant ones in the slow features. Sines and cosines are interleaved, as in the
    paper.
    """
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    _check_dim(d_model, "d_model")
    _check_base(base)
    # Compute in float64 and cast at the end: p·ω for p in the thousands loses digits in float32.
    pos = torch.arange(length, dtype=torch.float64, device=device)[:, None]  # (L, 1)
    omega = rope_frequencies(d_model, base, dtype=torch.float64, device=device)  # (d/2,)
    angles = pos * omega  # (L, d/2)
    pe = torch.stack([angles.sin(), angles.cos()], dim=-1).reshape(length, d_model)  # interleave
    return pe.to(dtype)


def rope_frequencies(head_dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float32,
                     device=None) -> Tensor:
    """The head_dim/2 rotation frequencies θ_i = base^(-2i/head_dim) of RoPE (the `inv_freq` of
    transformers' Llama code) and of the sinusoidal table."""
    _check_dim(head_dim, "head_dim")
    _check_base(base)
    i = torch.arange(0, head_dim, 2, dtype=torch.float64, device=device)
    return (base ** (-i / head_dim)).to(dtype)


def _positions(positions, length: int, device) -> Tensor:
    if positions is None:
        return torch.arange(length, device=device)
    if not isinstance(positions, Tensor):
        positions = torch.as_tensor(positions, device=device)
    if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise ValueError(f"positions must be an integer tensor, got dtype {positions.dtype}")
    if positions.dim() == 0 or positions.shape[-1] != length:
        raise ValueError(
            f"positions must have shape (..., L) with L = {length} (the length dimension of x, dim -2); "
            f"got shape {tuple(positions.shape)}"
        )
    return positions.to(device)


def rope_cos_sin(positions: Tensor, head_dim: int, base: float = 10000.0,
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation angles, each of shape (*positions.shape, head_dim), laid out
    in the "half-split" order of :func:`apply_rope` (the angles of the first half repeated)."""
    inv_freq = rope_frequencies(head_dim, base, dtype=torch.float64, device=positions.device)
    angles = positions.to(torch.float64)[..., None] * inv_freq  # (..., L, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., L, d)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) for the two halves of the last dimension: a 90° turn of every pair
    (x[i], x[i + d/2])."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, positions: Tensor | None = None, base: float = 10000.0,
               interleaved: bool = False) -> Tensor:
    """Rotate each pair of features of ``x`` (..., L, d) by the angle p·θ_i of its position p.

    Args:
        x: queries or keys, (..., L, d) with d even, floating point.
        positions: integer positions (L,) or (..., L) broadcastable to x.shape[:-1]
            (for x (B, H, L, d) and per-sequence positions use (B, 1, L)); default 0 .. L-1. With a KV cache, pass the absolute positions of the new tokens.
        base: θ_i = base^(-2i/d); 10000 in RoFormer, ``config.rope_theta`` in Llama-style models.
        interleaved: pair feature 2i with 2i+1 (the RoFormer paper, Meta's original Llama code)
            instead of i with i + d/2 (GPT-NeoX and transformers' ``apply_rotary_pos_emb``). The
            two conventions are the same rotation applied to permuted features: see
            :func:`interleaved_to_half`.

    Returns:
        a tensor like x. Rotations preserve norms, and RoPE(q, m) · RoPE(k, n) depends on m and n
        only through m - n.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., L, d); got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    L, d = x.shape[-2], x.shape[-1]
    _check_dim(d, "the last dimension of x (head_dim)")
    pos = _positions(positions, L, x.device)
    # Angles in float64: positions times frequencies loses precision in float32 for long contexts.
    cos, sin = rope_cos_sin(pos, d, base, dtype=x.dtype)  # (..., L, d)
    try:
        torch.broadcast_shapes(cos.shape, x.shape)
    except RuntimeError:
        raise ValueError(
            f"positions of shape {tuple(pos.shape)} do not broadcast against x of shape {tuple(x.shape)} "
            "(without its last dimension); for x (B, H, L, d) pass positions (L,), or (B, 1, L) as "
            "positions[:, None]"
        ) from None
    if interleaved:
        # Same rotation, pairs (2i, 2i+1): de-interleave, rotate, re-interleave.
        perm = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)]).to(x.device)
        inv = torch.argsort(perm)
        return (x[..., perm] * cos + rotate_half(x[..., perm]) * sin)[..., inv]
    return x * cos + rotate_half(x) * sin


def interleaved_to_half(weight: Tensor, num_heads: int) -> Tensor:
    """Permute the output rows of a query or key projection, head by head, from the interleaved
    RoPE layout to the half-split one: within each head, row 2i moves to i and row 2i+1 to i + d/2.

    ``weight``: ``(num_heads * head_dim, in_features)`` (an ``nn.Linear`` weight) or its bias
    ``(num_heads * head_dim,)``. With ``W' = interleaved_to_half(W, H)``, half-split RoPE of
    ``x W'^T`` gives the same scores as interleaved RoPE of ``x W^T`` (the features of every query
    and key are permuted alike, and a dot product does not see a common permutation). This is the
    ``permute`` of transformers' ``convert_llama_weights_to_hf.py``.
    """
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    if weight.dim() not in (1, 2):
        raise ValueError(f"weight must be a (out_features, in_features) matrix or a bias vector, "
                         f"got shape {tuple(weight.shape)}")
    out = weight.shape[0]
    if out % num_heads:
        raise ValueError(f"{out} output rows do not split into {num_heads} heads")
    _check_dim(out // num_heads, "head_dim (output rows / num_heads)")
    rest = weight.shape[1:]
    return weight.reshape(num_heads, out // num_heads // 2, 2, *rest).transpose(1, 2).reshape(out, *rest)
