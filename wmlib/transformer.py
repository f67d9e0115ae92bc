"""Transformer blocks and a small decoder-only GPT, built on :mod:`wmlib.attention` (Chapter 5).

The GPT is GPT-2's design (learned positions, LayerNorm, a GELU MLP). Four switches in
:class:`GPTConfig` turn the same code into a Llama-style model, so that real pretrained weights
(SmolLM2) load into it: ``norm="rmsnorm"``, ``mlp="swiglu"``, ``positions="rope"`` and
``num_kv_heads`` (grouped-query attention); :meth:`GPT.from_hf` does it.

Shapes: B batch, L length, D d_model, V vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention, _check_dropout, _check_positive_int

__all__ = ["FeedForward", "SwiGLU", "RMSNorm", "EncoderBlock", "DecoderBlock", "GPTConfig", "GPT",
           "next_token_probs"]


class FeedForward(nn.Module):
    """Position-wise MLP: Linear(D, d_ff) -> activation -> dropout -> Linear(d_ff, D)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu", bias: bool = True):
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_positive_int("d_ff", d_ff)
        _check_dropout(dropout)
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff, bias=bias), nn.Linear(d_ff, d_model, bias=bias)
        self.act, self.dropout = acts[activation](), nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.act(self.linear1(x))))


class SwiGLU(nn.Module):
    """The gated MLP of Llama (Shazeer, 2020): down(silu(gate(x)) * up(x)). The gate decides, per
    hidden unit, how much of ``up(x)`` passes."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, bias: bool = False):
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_positive_int("d_ff", d_ff)
        _check_dropout(dropout)
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.dropout(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class RMSNorm(nn.Module):
    """x / rms(x) * weight (Zhang & Sennrich, 2019): LayerNorm without centring and without a bias."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        _check_positive_int("d_model", d_model)
        _check_eps(eps)
        self.weight, self.eps = nn.Parameter(torch.ones(d_model)), eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _check_eps(eps) -> None:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 < eps < 1:
        raise ValueError(f"norm_eps must be a small positive number (1e-5 in GPT-2), got {eps!r}")


def _norm(kind: str, d_model: int, eps: float) -> nn.Module:
    _check_eps(eps)
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps=eps)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")


class EncoderBlock(nn.Module):
    """Self-attention and a feed-forward layer, each wrapped in a residual connection and a norm.

    ``norm_first=False`` is the original post-norm block (Vaswani et al.; the default of
    ``nn.TransformerEncoderLayer``); ``norm_first=True`` is the pre-norm block that GPT-2 and most
    later models use because it trains more stably. With ``causal=True`` the same block is the
    layer of a decoder-only language model: masked self-attention and no cross-attention.

    ``activation`` is "relu", "gelu" or "swiglu" (the gated MLP of Llama); ``norm`` is
    "layernorm" or "rmsnorm"; ``num_kv_heads`` and ``rope_base`` go to :class:`MultiHeadAttention`.

    forward(x (B, L, D), mask=None, positions=None) -> (B, L, D); the last attention weights
    (B, H, L, L) are kept in ``self.attn_weights`` for plotting.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = True, causal: bool = False, activation: str = "gelu",
                 norm: str = "layernorm", norm_eps: float = 1e-5, bias: bool = True,
                 num_kv_heads: int | None = None, rope_base: float | None = None):
        super().__init__()
        if activation not in ("relu", "gelu", "swiglu"):
            raise ValueError(f"activation must be 'relu', 'gelu' or 'swiglu', got {activation!r}")
        self.attn = MultiHeadAttention(d_model, num_heads, dropout=dropout, bias=bias,
                                       num_kv_heads=num_kv_heads, rope_base=rope_base)
        self.ff = (SwiGLU(d_model, d_ff, dropout, bias) if activation == "swiglu"
                   else FeedForward(d_model, d_ff, dropout, activation, bias))
        self.norm1, self.norm2 = _norm(norm, d_model, norm_eps), _norm(norm, d_model, norm_eps)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm_first, self.causal = norm_first, causal
        self.attn_weights: Tensor | None = None

    def _attend(self, x: Tensor, mask: Tensor | None, positions: Tensor | None) -> Tensor:
        out, self.attn_weights = self.attn(x, mask=mask, is_causal=self.causal, positions=positions)
        return self.drop1(out)

    def forward(self, x: Tensor, mask: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask, positions)
            return x + self.drop2(self.ff(self.norm2(x)))
        x = self.norm1(x + self._attend(x, mask, positions))
        return self.norm2(x + self.drop2(self.ff(x)))

    @torch.no_grad()
    def copy_from_torch(self, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """Copy the weights of a ``torch.nn.TransformerEncoderLayer`` with ``batch_first=True``."""
        if layer.norm_first != self.norm_first:
            raise ValueError(f"norm_first differs: torch layer {layer.norm_first}, this block {self.norm_first}")
        if not isinstance(self.ff, FeedForward) or not isinstance(self.norm1, nn.LayerNorm):
            raise ValueError("nn.TransformerEncoderLayer has a LayerNorm and a two-layer MLP: build this block "
                             "with norm='layernorm' and activation 'relu' or 'gelu'")
        self.attn.copy_from_torch(layer.self_attn)
        for mine, theirs in ((self.ff.linear1, layer.linear1), (self.ff.linear2, layer.linear2),
                             (self.norm1, layer.norm1), (self.norm2, layer.norm2)):
            mine.load_state_dict(theirs.state_dict())
        return self


class DecoderBlock(nn.Module):
    """The decoder block of the original encoder-decoder Transformer (pre-norm): masked
    self-attention, cross-attention to the encoder's output (``memory``), then a feed-forward layer.

    forward(x (B, L, D), memory (B, S, D), memory_mask=None) -> (B, L, D), where ``memory_mask``
    is boolean, True = may attend, e.g. (B, 1, 1, S) for padded memory. A decoder-only model such
    as GPT has no ``memory`` and uses :class:`EncoderBlock` with ``causal=True`` instead.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu"):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.ff = FeedForward(d_model, d_ff, dropout, activation)
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

    @torch.no_grad()
    def copy_from_torch(self, layer: nn.TransformerDecoderLayer) -> "DecoderBlock":
        """Copy the weights of a ``torch.nn.TransformerDecoderLayer(..., batch_first=True, norm_first=True)``."""
        if not layer.norm_first:
            raise ValueError("this DecoderBlock is pre-norm: build the torch layer with norm_first=True")
        self.self_attn.copy_from_torch(layer.self_attn)
        self.cross_attn.copy_from_torch(layer.multihead_attn)
        for mine, theirs in ((self.ff.linear1, layer.linear1), (self.ff.linear2, layer.linear2),
                             (self.norms[0], layer.norm1), (self.norms[1], layer.norm2), (self.norms[2], layer.norm3)):
            mine.load_state_dict(theirs.state_dict())
        return self


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
    # The switches that make a Llama-style model (defaults: GPT-2's choices).
    norm: str = "layernorm"  # or "rmsnorm"
    mlp: str = "gelu"  # or "swiglu" (gated MLP)
    positions: str = "learned"  # learned position embeddings, or "rope" (rotary, in every attention layer)
    num_kv_heads: int | None = None  # fewer key/value heads than query heads: grouped-query attention
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    bias: bool = True  # biases in the attention projections and the MLP (Llama has none)

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "d_model", "num_heads", "d_ff"):
            _check_positive_int(name, getattr(self, name))
        if not isinstance(self.num_layers, int) or isinstance(self.num_layers, bool) or self.num_layers < 0:
            raise ValueError(f"num_layers must be a non-negative int, got {self.num_layers!r}")
        if self.num_kv_heads is not None:
            _check_positive_int("num_kv_heads", self.num_kv_heads)
            if self.num_heads % self.num_kv_heads:
                raise ValueError(f"num_kv_heads ({self.num_kv_heads}) must divide num_heads ({self.num_heads})")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        _check_dropout(self.dropout)
        _check_eps(self.norm_eps)
        if not (isinstance(self.rope_base, (int, float)) and math.isfinite(self.rope_base) and self.rope_base > 1):
            raise ValueError(f"rope_base must be a finite number > 1 (10000 in RoFormer), got {self.rope_base!r}")
        if self.positions == "rope" and (self.d_model // self.num_heads) % 2:
            raise ValueError(f"positions='rope' rotates pairs of features: d_model / num_heads = "
                             f"{self.d_model // self.num_heads} must be even")
        if self.norm not in ("layernorm", "rmsnorm"):
            raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {self.norm!r}")
        if self.mlp not in ("gelu", "swiglu"):
            raise ValueError(f"mlp must be 'gelu' or 'swiglu', got {self.mlp!r}")
        if self.positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', got {self.positions!r}")


class GPT(nn.Module):
    """A decoder-only language model: token embeddings (+ learned position embeddings),
    ``num_layers`` causal pre-norm blocks, a final norm and an output layer (optionally tied to the
    token embedding).

    forward(idx (B, L) int64) -> logits (B, L, V); logits[:, t] predicts token t + 1 from tokens
    0..t only (the causal mask guarantees it).

    ``GPT(config)`` or ``GPT(vocab_size=..., d_model=..., ...)`` with the fields of
    :class:`GPTConfig`; an impossible value (a vocabulary of 0 tokens, 0 heads, ...) raises a
    ValueError that names it.
    """

    def __init__(self, config: GPTConfig | None = None, **fields):
        super().__init__()
        if config is None:  # GPT(vocab_size=50, d_model=32, ...) builds the GPTConfig itself
            config = GPTConfig(**fields)
        elif fields:
            raise ValueError(f"pass either a GPTConfig or its fields, not both (got {sorted(fields)} too)")
        if not isinstance(config, GPTConfig):
            raise ValueError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = c = config
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_emb = nn.Embedding(c.max_len, c.d_model) if c.positions == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout, norm_first=True, causal=True,
                         activation=c.mlp, norm=c.norm, norm_eps=c.norm_eps, bias=c.bias, num_kv_heads=c.num_kv_heads,
                         rope_base=c.rope_base if c.positions == "rope" else None)
            for _ in range(c.num_layers)
        )
        self.norm = _norm(c.norm, c.d_model, c.norm_eps)
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
        x = self.tok_emb(idx)
        if self.pos_emb is not None:  # with RoPE, positions enter inside attention instead
            x = x + self.pos_emb(torch.arange(L, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 greedy: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Append ``max_new_tokens`` tokens to ``idx`` (B, L), one at a time, and return (B, L + new).

        ``greedy=True`` takes the most likely token; otherwise a token is drawn from
        :func:`next_token_probs` (``temperature``, ``top_k``) with ``generator``. Each step runs the
        whole context again (the last ``max_len`` tokens): simple, and quadratic in the length;
        a KV cache (Exercise 5.1, Chapter 7) avoids the recomputation.
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise ValueError(f"idx must be (batch, length >= 1) token ids to continue; got shape {tuple(idx.shape)}")
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.max_len:])[:, -1]  # (B, V): the prediction after the last token
            if greedy:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                nxt = torch.multinomial(next_token_probs(logits, temperature, top_k), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx

    def num_parameters(self) -> int:
        """Number of parameters, each counted once (a tied output layer shares the embedding's)."""
        return sum(p.numel() for p in self.parameters())

    @classmethod
    @torch.no_grad()
    def from_hf(cls, hf_model: nn.Module) -> "GPT":
        """A GPT with the weights of a Hugging Face Llama-architecture model (e.g. SmolLM2): RMSNorm,
        rotary embeddings, grouped-query attention, a SwiGLU MLP, no biases.

        The parameters are copied tensor by tensor; nothing is converted (Hugging Face's Llama
        weights already use the half-split RoPE pairing of :func:`wmlib.positional.apply_rope`).
        """
        hc = hf_model.config
        if getattr(hc, "model_type", None) != "llama":
            raise ValueError(f"from_hf reads Llama-architecture models; got model_type={getattr(hc, 'model_type', None)!r}")
        # transformers >= 5 keeps RoPE's settings in rope_parameters, older versions in rope_theta/rope_scaling
        rope = getattr(hc, "rope_parameters", None) or {"rope_theta": hc.rope_theta, **(hc.rope_scaling or {})}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"only plain RoPE is implemented; this model scales it: {rope}")
        if hc.hidden_act != "silu" or getattr(hc, "attention_bias", False) or getattr(hc, "mlp_bias", False):
            raise ValueError("expected a SiLU-gated MLP and no biases (hidden_act='silu', attention_bias=False, "
                             f"mlp_bias=False); got {hc.hidden_act!r}, {hc.attention_bias}, {hc.mlp_bias}")
        head_dim = getattr(hc, "head_dim", None) or hc.hidden_size // hc.num_attention_heads
        if head_dim * hc.num_attention_heads != hc.hidden_size:
            raise ValueError(f"head_dim * num_heads = {head_dim} * {hc.num_attention_heads} != hidden_size "
                             f"{hc.hidden_size}: this GPT splits d_model evenly among the heads")
        config = GPTConfig(
            vocab_size=hc.vocab_size, max_len=hc.max_position_embeddings, d_model=hc.hidden_size,
            num_heads=hc.num_attention_heads, num_layers=hc.num_hidden_layers, d_ff=hc.intermediate_size,
            tie_weights=hc.tie_word_embeddings, norm="rmsnorm", mlp="swiglu", positions="rope",
            num_kv_heads=hc.num_key_value_heads, rope_base=float(rope["rope_theta"]), norm_eps=hc.rms_norm_eps,
            bias=False,
        )
        model = cls(config)
        src = hf_model.model
        model.tok_emb.weight.copy_(src.embed_tokens.weight)
        for mine, theirs in zip(model.blocks, src.layers, strict=True):
            mine.norm1.weight.copy_(theirs.input_layernorm.weight)
            for name in ("q_proj", "k_proj", "v_proj"):
                getattr(mine.attn, name).weight.copy_(getattr(theirs.self_attn, name).weight)
            mine.attn.out_proj.weight.copy_(theirs.self_attn.o_proj.weight)
            mine.norm2.weight.copy_(theirs.post_attention_layernorm.weight)
            for name in ("gate_proj", "up_proj", "down_proj"):
                getattr(mine.ff, name).weight.copy_(getattr(theirs.mlp, name).weight)
        model.norm.weight.copy_(src.norm.weight)
        if not config.tie_weights:
            model.head.weight.copy_(hf_model.lm_head.weight)
        return model.to(src.embed_tokens.weight.dtype).eval()


def next_token_probs(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """The distribution a sampler draws the next token from: softmax(logits / temperature) over
    the ``top_k`` most likely tokens (all of them if None), zero elsewhere. logits (..., V) -> (..., V).

    A temperature below 1 sharpens the distribution towards the greedy choice; above 1 flattens it.
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be a positive number (use greedy decoding for 'temperature 0'), "
                         f"got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k):
        raise ValueError(f"top_k must be None or a positive int, got {top_k!r}")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)
