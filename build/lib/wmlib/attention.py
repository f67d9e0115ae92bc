"""Attention, written out step by step (Chapter 5).

Shapes use these letters: B batch, H heads, Lq queries, Lk keys, d_k query/key width, d_v value
width, D model width. Masks are boolean with **True = may attend**, the convention of
:func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "causal_mask",
    "padding_mask",
]


def causal_mask(n_queries: int, n_keys: int | None = None, device=None) -> Tensor:
    """Boolean (Lq, Lk) mask, True on and below the diagonal: query i may attend to keys j <= i.

    With more keys than queries (decoding with a cache) the queries are the *last* Lq positions,
    so the diagonal is shifted to the right by Lk - Lq.
    """
    n_keys = n_queries if n_keys is None else n_keys
    if n_queries < 0 or n_keys < n_queries:
        raise ValueError(f"causal_mask needs 0 <= n_queries <= n_keys, got {n_queries} and {n_keys}")
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(diagonal=n_keys - n_queries)


def padding_mask(attention_mask: Tensor) -> Tensor:
    """Turn a tokenizer's (B, Lk) attention mask (1 = real token, 0 = padding) into a (B, 1, 1, Lk)
    boolean mask that broadcasts over heads and queries."""
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be (batch, keys), got shape {tuple(attention_mask.shape)}")
    return attention_mask.bool()[:, None, None, :]


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., length, features); got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k; got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys (dim -2); got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch, head) dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
            f"v {tuple(v.shape)} do not broadcast"
        ) from None
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"mask must be a boolean tensor with True = may attend; got {got}. "
                "(For a 0/1 tokenizer mask use padding_mask(attention_mask).)"
            )
        target = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2])
        try:
            if torch.broadcast_shapes(mask.shape, target) != target:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape {target} "
                "(..., queries, keys)"
            ) from None
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ / √d_k) v, one step at a time.

    Args:
        q: (..., Lq, d_k) queries.  k: (..., Lk, d_k) keys.  v: (..., Lk, d_v) values.
        mask: optional boolean tensor broadcastable to (..., Lq, Lk); True = may attend.
        dropout_p: dropout on the attention weights (use 0 at evaluation time).
        is_causal: also forbid query i from attending to keys after it (see :func:`causal_mask`).
        scale: multiplier of the scores; default 1/√d_k.

    Returns:
        (output (..., Lq, d_v), weights (..., Lq, Lk)). Each row of ``weights`` sums to 1, except
        for a query that may attend to nothing (its whole mask row is False): its weights and its
        output are all zeros, not NaN.
    """
    _check_qkv(q, k, v, mask, dropout_p)
    d_k = q.shape[-1]
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale

    # 1. Similarity of every query with every key.  2. Scale so the scores' variance stays ~1.
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., Lq, Lk)

    # 3. Mask: where a query may not look, the score becomes the most negative finite number, so
    #    that its softmax weight underflows to exactly 0 (a finite value keeps gradients NaN-free).
    allowed = mask
    if is_causal:
        causal = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        allowed = causal if allowed is None else allowed & causal
    if allowed is not None:
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)

    # 4. Softmax over the keys turns scores into weights that sum to 1 in each row.
    weights = torch.softmax(scores, dim=-1)
    if allowed is not None:
        # A row with no allowed key would be uniform over forbidden keys: make it all zeros.
        weights = weights * allowed.any(dim=-1, keepdim=True)

    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)

    # 5. Each output is the weighted average of the values.
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """H attention heads in parallel, each on a d_model/H slice, then an output projection.

    ``forward(x, context=None, mask=None, is_causal=False)`` takes x: (B, Lq, D) and optional
    context: (B, Lk, D) (self-attention when omitted) and returns (out (B, Lq, D),
    weights (B, H, Lq, Lk)). ``mask`` is boolean, True = may attend, of shape (Lq, Lk),
    (B, Lq, Lk) or (B, H or 1, Lq, Lk).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads}) so each head gets "
                f"an equal slice; try num_heads in {[h for h in range(1, d_model + 1) if d_model % h == 0][:8]}"
            )
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor) -> Tensor:  # (B, L, D) -> (B, H, L, d_head)
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.d_head).transpose(1, 2)

    def forward(
        self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None, is_causal: bool = False
    ) -> tuple[Tensor, Tensor]:
        context = x if context is None else context
        for name, t in (("x", x), ("context", context)):
            if t.dim() != 3 or t.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must have shape (batch, length, d_model={self.d_model}); got {tuple(t.shape)}"
                )
        if x.shape[0] != context.shape[0]:
            raise ValueError(f"x and context have different batch sizes: {x.shape[0]} vs {context.shape[0]}")
        if mask is not None and isinstance(mask, Tensor) and mask.dim() == 3:
            mask = mask[:, None]  # (B, Lq, Lk) -> (B, 1, Lq, Lk): the same mask for every head
        q = self._split_heads(self.q_proj(x))
        k = self._split_heads(self.k_proj(context))
        v = self._split_heads(self.v_proj(context))
        out, weights = scaled_dot_product_attention(
            q, k, v, mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )
        B, _, Lq, _ = out.shape
        out = out.transpose(1, 2).reshape(B, Lq, self.d_model)  # concatenate the heads
        return self.out_proj(out), weights

    @torch.no_grad()
    def copy_from_torch(self, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (same width, heads and bias)."""
        if mha.embed_dim != self.d_model or mha.num_heads != self.num_heads:
            raise ValueError(
                f"shapes differ: torch module has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; "
                f"this one d_model={self.d_model}, num_heads={self.num_heads}"
            )
        if not mha._qkv_same_embed_dim:
            raise ValueError("only nn.MultiheadAttention with kdim == vdim == embed_dim is supported")
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
        for lin, w in ((self.q_proj, w_q), (self.k_proj, w_k), (self.v_proj, w_v)):
            lin.weight.copy_(w)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.in_proj_bias is not None:
            if self.q_proj.bias is None:
                raise ValueError("the torch module has biases and this one has none (bias=False)")
            b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
            for lin, b in ((self.q_proj, b_q), (self.k_proj, b_k), (self.v_proj, b_v)):
                lin.bias.copy_(b)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self
