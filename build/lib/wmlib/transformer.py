"""Transformer blocks and a small decoder-only GPT, built on :mod:`wmlib.attention` (Chapter 5).

Shapes: B batch, L length, D d_model, V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import MultiHeadAttention

__all__ = ["FeedForward", "EncoderBlock", "DecoderBlock", "GPTConfig", "GPT"]


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D, d_ff) -> activation -> dropout -> Linear(d_ff, D)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu"):
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.act, self.dropout = acts[activation](), nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.act(self.linear1(x))))


class EncoderBlock(nn.Module):
    """Self-attention and a feed-forward layer, each wrapped in a residual connection and LayerNorm.

    ``norm_first=False`` is the original post-norm block (Vaswani et al.; the default of
    ``nn.TransformerEncoderLayer``); ``norm_first=True`` is the pre-norm block that GPT-2 and most
    later models use because it trains more stably. With ``causal=True`` the same block is the
    layer of a decoder-only language model: masked self-attention and no cross-attention.

    forward(x (B, L, D), mask=None) -> (B, L, D); the last attention weights (B, H, L, L) are kept
    in ``self.attn_weights`` for plotting.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True, causal: bool = False, activation: str = "gelu"):
        super().__init__()
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first, self.causal = norm_first, causal
        self.attn_weights: Tensor | None = None

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        out, self.attn_weights = self.attn(x, mask=mask, is_causal=self.causal)
        return self.drop1(out)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask)
            return x + self.drop2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._attend(x, mask))
        return self.norm2(x + self.drop2(self.ff(x)))

    @torch.no_grad()
    def copy_from_torch(self, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """Copy the weights of a ``torch.nn.TransformerEncoderLayer`` with ``batch_first=True``."""
        if layer.norm_first != self.norm_first:
            raise ValueError(f"norm_first differs: torch layer {layer.norm_first}, this block {self.norm_first}")
        self.attn.copy_from_torch(layer.self_attn)
        for mine, theirs in ((self.ff.linear1, layer.linear1), (self.ff.linear2, layer.linear2),
                             (self.norm1, layer.norm1), (self.norm2, layer.norm2)):
            mine.load_state_dict(theirs.state_dict())
        return self


class DecoderBlock(nn.Module):
    """The decoder block of the original encoder-decoder Transformer (pre-norm): masked
    self-attention, cross-attention to the encoder's output (``memory``), then a feed-forward layer.

    forward(x (B, L, D), memory (B, S, D), memory_mask=None) -> (B, L, D). A decoder-only model
    such as GPT has no ``memory`` and uses :class:`EncoderBlock` with ``causal=True`` instead.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        if memory is None:
            raise ValueError("DecoderBlock needs the encoder output `memory`; for a decoder-only model "
                             "use EncoderBlock(..., causal=True)")
        h = self.norms[0](x)
        x = x + self.drop(self.self_attn(h, is_causal=True)[0])
        x = x + self.drop(self.cross_attn(self.norms[1](x), context=memory, mask=memory_mask)[0])
        return x + self.drop(self.ff(self.norms[2](x)))


@dataclass
class GPTConfig:
    vocab_size: int
    max_len: int = 64
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.0
    tie_weights: bool = False  # share the token embedding with the output layer (GPT-2 does)


class GPT(nn.Module):
    """A decoder-only language model: token + learned position embeddings, ``num_layers`` causal
    pre-norm blocks, a final LayerNorm and an output layer (optionally tied to the token embedding).

    forward(idx (B, L) int64) -> logits (B, L, V); logits[:, t] predicts token t + 1 from tokens
    0..t only (the causal mask guarantees it).
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=True, causal=True)
            for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init)
        if c.tie_weights:  # weight tying (Press & Wolf, 2017): saves V*D parameters
            self.head.weight = self.tok_emb.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor) -> Tensor:
        if idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"idx must be (batch, length) integer token ids; got {tuple(idx.shape)} {idx.dtype}")
        B, L = idx.shape
        if L > self.config.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.config.max_len} of this GPT")
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.config.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}); got "
                             f"min {int(idx.min())}, max {int(idx.max())}")
        pos = torch.arange(L, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def num_parameters(self) -> int:
        """Number of parameters, each counted once (a tied output layer shares the embedding's)."""
        return sum(p.numel() for p in self.parameters())
