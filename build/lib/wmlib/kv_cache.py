"""The KV cache: a language model's working memory (Chapter 7).

A decoder-only model predicts token t+1 from the keys and values of tokens 0..t. Those keys and
values do not change when a new token arrives (the mask is causal), so a model that generates one
token at a time can keep them and compute only the new token's row: that store is the **KV cache**.

This module runs a Hugging Face Llama-family model (SmolLM2 is one) layer by layer, with the
attention written out, so that the cache is an object we can read, measure and prune:

- :class:`KVCache`: per layer, keys and values of shape (B, kv_heads, L, head_dim), with
  ``append``, ``length``, ``nbytes`` and ``keep`` (eviction);
- :class:`CachedDecoder`: ``prefill`` the prompt once, then ``step`` one token at a time; and
  :func:`greedy_decode`, which must give the same tokens as ``model.generate(do_sample=False)``;
- eviction policies for decoding under a cache budget: :class:`SlidingWindow`,
  :class:`AttentionSinks` (StreamingLLM, Xiao et al. 2024) and :class:`HeavyHitters`
  (H2O, Zhang et al. 2023), and :func:`stream_under_budget`, which scores a text token by token
  while the cache never holds more than the budget.

Shapes use these letters: B batch, T new tokens, L tokens in the cache, H query heads, G key/value
heads (grouped-query attention: each group of H/G query heads shares one key/value head), D
head_dim, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "KVCache",
    "CachedDecoder",
    "greedy_decode",
    "uncached_greedy_decode",
    "kv_bytes_per_token",
    "EvictionPolicy",
    "SlidingWindow",
    "AttentionSinks",
    "HeavyHitters",
    "PerRow",
    "StreamResult",
    "stream_under_budget",
    "babi_text",
]


def kv_bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype=torch.float32) -> int:
    """The formula: 2 (keys and values) x layers x kv_heads x head_dim x bytes per element."""
    for name, n in (("num_layers", num_layers), ("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------------- the cache
class KVCache:
    """Keys and values of every layer: ``get(i)`` returns layer i's keys and values, (B, G, L, D) each.

    ``capacity`` (tokens) preallocates each layer's storage on the first append, as a server does
    when it knows the longest sequence; without it every append concatenates (the simplest
    growth, and the one Hugging Face's ``DynamicCache`` uses).
    """

    def __init__(self, num_layers: int, capacity: int | None = None):
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
            raise ValueError(f"capacity must be a positive int or None, got {capacity!r}")
        self.num_layers = num_layers
        self.capacity = capacity
        self._k: list[Tensor | None] = [None] * num_layers  # storage, possibly longer than used
        self._v: list[Tensor | None] = [None] * num_layers
        self._len = [0] * num_layers

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise IndexError(f"layer must be an int in [0, {self.num_layers}), got {layer!r}")

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add T new tokens' keys and values (B, G, T, D) to ``layer``; return all (B, G, L, D)."""
        self._check_layer(layer)
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 4:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a 4-D tensor (batch, kv_heads, tokens, head_dim), got {got}")
            if not t.is_floating_point():
                raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if k.shape != v.shape or k.dtype != v.dtype or k.device != v.device:
            raise ValueError(f"k and v must match in shape, dtype and device; got k {tuple(k.shape)} {k.dtype} "
                             f"{k.device} and v {tuple(v.shape)} {v.dtype} {v.device}")
        old = self._k[layer]
        n, t = self._len[layer], k.shape[2]
        if old is not None:
            B, G, _, D = old.shape
            if (k.shape[0], k.shape[1], k.shape[3]) != (B, G, D) or k.dtype != old.dtype or k.device != old.device:
                raise ValueError(
                    f"layer {layer} holds (batch, kv_heads, head_dim) = {(B, G, D)} of {old.dtype} on {old.device}; "
                    f"cannot append {tuple(k.shape)} of {k.dtype} on {k.device}")
        if self.capacity is not None and (old is None or old.shape[2] == self.capacity):
            if n + t > self.capacity:
                raise RuntimeError(f"the cache is full: {n} + {t} tokens exceed its capacity of {self.capacity}")
            if old is None:  # allocate the whole capacity once
                shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
                self._k[layer] = k.new_empty(shape)
                self._v[layer] = v.new_empty(shape)
            self._k[layer][:, :, n:n + t] = k
            self._v[layer][:, :, n:n + t] = v
        elif old is None:
            self._k[layer], self._v[layer] = k, v
        else:  # grow by concatenation (also after an eviction has compacted a preallocated cache)
            self._k[layer] = torch.cat([self._k[layer][:, :, :n], k], dim=2)
            self._v[layer] = torch.cat([self._v[layer][:, :, :n], v], dim=2)
        self._len[layer] = n + t
        return self.get(layer)

    def get(self, layer: int) -> tuple[Tensor, Tensor]:
        """The keys and values stored for ``layer``, (B, G, L, D) each."""
        self._check_layer(layer)
        if self._k[layer] is None:
            raise ValueError(f"layer {layer} of the cache is empty: append to it first")
        n = self._len[layer]
        return self._k[layer][:, :, :n], self._v[layer][:, :, :n]

    def set(self, layer: int, k: Tensor, v: Tensor) -> None:
        """Replace what ``layer`` holds by ``k`` and ``v`` (B, G, L, D), e.g. re-rotated keys."""
        self._check_layer(layer)
        if not (isinstance(k, Tensor) and isinstance(v, Tensor) and k.dim() == 4 and k.shape == v.shape):
            raise ValueError("k and v must be 4-D tensors (batch, kv_heads, tokens, head_dim) of the same shape")
        self._k[layer], self._v[layer], self._len[layer] = k, v, k.shape[2]

    def layer_length(self, layer: int) -> int:
        self._check_layer(layer)
        return self._len[layer]

    @property
    def length(self) -> int:
        """Tokens held (those of layer 0; every policy here keeps the same count in every layer)."""
        return self._len[0]

    def __len__(self) -> int:
        return self.length

    def nbytes(self) -> int:
        """Bytes of storage the cache's tensors actually hold (allocated, not just used)."""
        total = 0
        for t in (*self._k, *self._v):
            if t is not None:
                total += t.untyped_storage().nbytes()
        return total

    def keep(self, layer: int, index: Tensor) -> None:
        """Evict: keep only the tokens at ``index`` of ``layer``, in that order.

        ``index`` is a 1-D LongTensor (the same tokens for every sequence and head), a (B, G, n)
        LongTensor (its own tokens for each sequence and key/value head, as H2O needs) or (B, 1, n)
        (per sequence, shared by the heads).
        """
        k, v = self.get(layer)
        B, G, L, D = k.shape
        if not isinstance(index, Tensor) or index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"index must be an integer tensor, got {getattr(index, 'dtype', type(index).__name__)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= L):
            raise IndexError(f"index out of range for layer {layer}, which holds {L} tokens: "
                             f"min {int(index.min())}, max {int(index.max())}")
        index = index.to(k.device, torch.int64)
        if index.dim() == 1:
            self._k[layer], self._v[layer] = k[:, :, index], v[:, :, index]
        elif index.dim() == 3 and index.shape[0] == B and index.shape[1] in (1, G):
            idx = index[..., None].expand(B, G, index.shape[2], D)
            self._k[layer], self._v[layer] = k.gather(2, idx), v.gather(2, idx)
        else:
            raise ValueError(f"index must be 1-D or (batch, kv_heads, n) = ({B}, {G} or 1, n); got {tuple(index.shape)}")
        self._len[layer] = index.shape[-1]


# ------------------------------------------------------------------------- the model, written out
def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary position embedding: rotate each pair of channels by a position-dependent angle.

    Rotations compose, R(a) R(b) = R(a + b), which is what lets us *move* a cached key to a new
    position by rotating it by the difference."""
    return x * cos + _rotate_half(x) * sin


class CachedDecoder:
    """A Hugging Face Llama-family causal LM run layer by layer with explicit attention and a KVCache.

    Uses the model's own weights and modules for embeddings, norms, projections, rotary angles and
    MLPs; only the attention and the cache are written here. ``prefill`` runs the prompt once,
    ``step`` one token per call; both return logits of the *last* position unless asked for all.
    """

    def __init__(self, model):
        inner = getattr(model, "model", None)
        layers = getattr(inner, "layers", None)
        ok = layers is not None and all(
            hasattr(layer, "self_attn") and all(hasattr(layer.self_attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
            for layer in layers) and hasattr(inner, "rotary_emb") and hasattr(model, "lm_head")
        if not ok:
            raise ValueError(
                f"CachedDecoder needs a Llama-family causal LM (model.model.layers[i].self_attn.q_proj..., "
                f"model.model.rotary_emb, model.lm_head), such as wmlib.models.load_causal_lm('smollm2-135m'); "
                f"got {type(model).__name__}")
        cfg = model.config
        self.model = model
        self.num_layers = cfg.num_hidden_layers
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.group = self.num_heads // self.num_kv_heads  # query heads per key/value head
        self.scale = 1 / math.sqrt(self.head_dim)
        self.vocab_size = cfg.vocab_size
        self._inner = inner

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def bytes_per_token(self) -> int:
        """The formula for this model: 2 x layers x kv_heads x head_dim x bytes per element."""
        return kv_bytes_per_token(self.num_layers, self.num_kv_heads, self.head_dim, self.dtype)

    def new_cache(self, capacity: int | None = None) -> KVCache:
        return KVCache(self.num_layers, capacity)

    def rope(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin for (B, T) positions: (B, 1, T, D), broadcasting over heads."""
        dummy = torch.empty(0, device=self.device, dtype=self.dtype)
        cos, sin = self._inner.rotary_emb(dummy, positions.to(self.device))
        return cos[:, None], sin[:, None]

    def _check_ids(self, input_ids: Tensor) -> Tensor:
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            got = (f"{tuple(input_ids.shape)} {input_ids.dtype}" if isinstance(input_ids, Tensor)
                   else type(input_ids).__name__)
            raise ValueError(f"input_ids must be an integer tensor (batch, tokens), got {got}")
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids holds no tokens")
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}); got {int(input_ids.min())}..{int(input_ids.max())}")
        return input_ids.to(self.device)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Causal grouped-query attention of T new queries over the L cached keys (the last T of which
        are the new tokens themselves).

        q: (B, H, T, D); k, v: (B, G, L, D). Returns the output (B, H, T, D) and, if asked, the
        weights summed over each group's query heads, (B, G, T, L).
        """
        B, H, T, D = q.shape
        L = k.shape[2]
        if T == L and T > 1 and not need_weights:  # a prefill: the fused kernel's own causal mask is fastest
            k, v = (x.repeat_interleave(self.group, dim=1) for x in (k, v))  # one copy per query head
            return F.scaled_dot_product_attention(q, k, v, is_causal=True), None
        # Fold the H/G query heads of a group into the query axis: (B, G, group*T, D). They all read the
        # same keys, so no copy of the cache per query head is needed.
        qg = q.reshape(B, self.num_kv_heads, self.group * T, D)
        mask = None
        if T > 1:  # query t (absolute L - T + t) may see keys 0 .. L - T + t
            mask = torch.ones(T, L, dtype=torch.bool, device=q.device).tril(L - T).repeat(self.group, 1)
        if not need_weights:
            out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask)
            return out.reshape(B, H, T, D), None
        scores = (qg @ k.transpose(-2, -1)) * self.scale  # (B, G, group*T, L)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = (weights @ v).reshape(B, H, T, D)
        return out, weights.reshape(B, self.num_kv_heads, self.group, T, L).sum(2)

    @torch.inference_mode()
    def forward(self, input_ids: Tensor, cache: KVCache, positions: Tensor | None = None,
                all_logits: bool = False, need_weights: bool = False):
        """Run T new tokens (B, T) through the model, appending their keys and values to ``cache``.

        ``positions`` (B, T) are the rotary positions (default: the cache length onwards). Returns
        logits (B, V) of the last token, or (B, T, V) with ``all_logits``; with ``need_weights``
        also a list, one per layer, of attention weights (B, G, T, L).
        """
        input_ids = self._check_ids(input_ids)
        if not isinstance(cache, KVCache) or cache.num_layers != self.num_layers:
            raise ValueError(f"cache must be a KVCache with {self.num_layers} layers (decoder.new_cache())")
        B, T = input_ids.shape
        if positions is None:
            positions = torch.arange(cache.length, cache.length + T, device=self.device).expand(B, T)
        elif tuple(positions.shape) != (B, T):
            raise ValueError(f"positions must be (batch, tokens) = {(B, T)}, got {tuple(positions.shape)}")
        cos, sin = self.rope(positions)
        x = self._inner.embed_tokens(input_ids)  # (B, T, hidden)
        all_weights = []
        for i, layer in enumerate(self._inner.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)
            k = attn.k_proj(h).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, G, T, D)
            v = attn.v_proj(h).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            k_all, v_all = cache.append(i, k, v)  # the working memory grows by T tokens
            out, w = self.attend(q, k_all, v_all, need_weights)
            all_weights.append(w)
            x = x + attn.o_proj(out.transpose(1, 2).reshape(B, T, self.num_heads * self.head_dim))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        if not all_logits:
            x = x[:, -1]  # the vocabulary projection is costly: only the last position predicts
        logits = self.model.lm_head(self._inner.norm(x))
        return (logits, all_weights) if need_weights else logits

    def prefill(self, input_ids: Tensor, cache: KVCache, **kwargs):
        """Run the whole prompt at once: fills the cache and returns the last position's logits."""
        if cache.length:
            raise ValueError(f"prefill expects an empty cache; this one holds {cache.length} tokens")
        return self.forward(input_ids, cache, **kwargs)

    def step(self, token: Tensor, cache: KVCache, **kwargs):
        """One new token per sequence, (B,) or (B, 1), reusing everything in the cache."""
        if isinstance(token, Tensor) and token.dim() == 1:
            token = token[:, None]
        if isinstance(token, Tensor) and token.dim() == 2 and token.shape[1] != 1:
            raise ValueError(f"step takes one token per sequence, (batch,) or (batch, 1); got {tuple(token.shape)}")
        return self.forward(token, cache, **kwargs)


def _check_new_tokens(max_new_tokens) -> None:
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")


@torch.inference_mode()
def greedy_decode(decoder: CachedDecoder, input_ids: Tensor, max_new_tokens: int,
                  preallocate: bool = True) -> tuple[Tensor, KVCache]:
    """Greedy decoding with a KV cache: one prefill, then one ``step`` per new token.

    Returns the new tokens (B, max_new_tokens) and the cache. No end-of-sequence stop: every
    sequence gets exactly ``max_new_tokens`` tokens (compare with ``generate(..., eos_token_id=None)``
    or a generation that does not stop early).
    """
    _check_new_tokens(max_new_tokens)
    input_ids = decoder._check_ids(input_ids)
    # The last new token is returned, never fed back: the cache ends with prompt + new - 1 tokens.
    capacity = input_ids.shape[1] + max_new_tokens - 1 if preallocate else None
    cache = decoder.new_cache(capacity)
    logits = decoder.prefill(input_ids, cache)
    new = []
    for i in range(max_new_tokens):
        token = logits.argmax(dim=-1)  # (B,)
        new.append(token)
        if i + 1 < max_new_tokens:
            logits = decoder.step(token, cache)
    return torch.stack(new, dim=1), cache


@torch.inference_mode()
def uncached_greedy_decode(decoder: CachedDecoder, input_ids: Tensor, max_new_tokens: int) -> Tensor:
    """The same greedy decoding without keeping anything: every new token re-reads the whole prefix.

    Returns the new tokens (B, max_new_tokens)."""
    _check_new_tokens(max_new_tokens)
    ids = decoder._check_ids(input_ids)
    for _ in range(max_new_tokens):
        logits = decoder.forward(ids, decoder.new_cache())  # a fresh cache each time: nothing reused
        ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids[:, input_ids.shape[1]:]


# ------------------------------------------------------------------------- eviction under a budget
class EvictionPolicy:
    """Decides which cached tokens to keep when the cache must shrink back to ``budget`` tokens.

    ``keep(length, scores)`` returns the cache indices to keep, ascending (so the cache stays in
    reading order): a 1-D LongTensor shared by all sequences and heads, or (B, G, budget).

    ``positions`` says what rotary position a kept token has once others were evicted:
    ``"original"`` keeps its position in the text (the distances the model sees stay true; fine
    while the text fits in the model's trained context); ``"cache"`` renumbers the cached tokens
    0..L-1 as StreamingLLM does (needed to stream past the trained length).
    """

    name = "policy"
    needs_scores = False  # True when keep() reads accumulated attention (H2O)

    def __init__(self, budget: int, positions: str = "original"):
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
            raise ValueError(f"budget must be a positive int (tokens), got {budget!r}")
        if positions not in ("original", "cache"):
            raise ValueError(f"positions must be 'original' or 'cache', got {positions!r}")
        self.budget = budget
        self.positions = positions

    def keep(self, length: int, scores: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def renumbers(self, batch: int) -> Tensor:
        """(batch,) bool: which rows renumber positions within the cache."""
        return torch.full((batch,), self.positions == "cache")

    def _extra(self) -> str:
        return "" if self.positions == "original" else ", positions='cache'"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(budget={self.budget}{self._extra()})"


class SlidingWindow(EvictionPolicy):
    """Keep the ``budget`` most recent tokens."""

    name = "sliding window"

    def keep(self, length: int, scores: Tensor | None = None) -> Tensor:
        return torch.arange(max(length - self.budget, 0), length)


class AttentionSinks(EvictionPolicy):
    """StreamingLLM: keep the first ``sinks`` tokens (where attention with nothing better to do
    collects) plus the ``budget - sinks`` most recent ones."""

    name = "attention sinks"

    def __init__(self, budget: int, sinks: int = 4, positions: str = "original"):
        super().__init__(budget, positions)
        if not isinstance(sinks, int) or not 0 <= sinks < budget:
            raise ValueError(f"sinks must be an int in [0, budget={budget}), got {sinks!r}")
        self.sinks = sinks

    def keep(self, length: int, scores: Tensor | None = None) -> Tensor:
        if length <= self.budget:
            return torch.arange(length)
        recent = self.budget - self.sinks
        return torch.cat([torch.arange(self.sinks), torch.arange(length - recent, length)])

    def __repr__(self) -> str:
        return f"AttentionSinks(budget={self.budget}, sinks={self.sinks}{self._extra()})"


class HeavyHitters(EvictionPolicy):
    """H2O: keep the ``recent`` most recent tokens plus, among the others, those that have received
    the most attention so far (summed over all past queries), separately for each key/value head."""

    name = "heavy hitters (H2O)"
    needs_scores = True

    def __init__(self, budget: int, recent: int | None = None, positions: str = "original"):
        super().__init__(budget, positions)
        recent = budget // 2 if recent is None else recent
        if not isinstance(recent, int) or not 0 <= recent <= budget:
            raise ValueError(f"recent must be an int in [0, budget={budget}], got {recent!r}")
        self.recent = recent

    def keep(self, length: int, scores: Tensor | None = None) -> Tensor:
        if scores is None or scores.dim() != 3 or scores.shape[-1] != length:
            got = None if scores is None else tuple(scores.shape)
            raise ValueError(f"HeavyHitters.keep needs accumulated attention scores (batch, kv_heads, {length}), got {got}")
        B, G, _ = scores.shape
        if length <= self.budget:
            return torch.arange(length, device=scores.device).expand(B, G, length)
        n_old = length - self.recent
        heavy = scores[..., :n_old].topk(self.budget - self.recent, dim=-1).indices  # (B, G, budget - recent)
        recent = torch.arange(n_old, length, device=scores.device).expand(B, G, self.recent)
        return torch.cat([heavy.sort(dim=-1).values, recent], dim=-1)

    def __repr__(self) -> str:
        return f"HeavyHitters(budget={self.budget}, recent={self.recent}{self._extra()})"


class PerRow(EvictionPolicy):
    """Several policies with the same budget side by side in one batch: rows ``i * rows_each`` to
    ``(i + 1) * rows_each - 1`` follow ``policies[i]``. Every row's cache keeps ``budget`` tokens, so
    one forward pass serves all of them (on a CPU, a batch of a dozen rows costs little more than one)."""

    def __init__(self, policies: list[EvictionPolicy], rows_each: int):
        if not isinstance(policies, (list, tuple)) or not policies or \
                not all(isinstance(p, EvictionPolicy) and not isinstance(p, PerRow) for p in policies):
            raise ValueError("policies must be a non-empty list of (non-PerRow) EvictionPolicy objects")
        budgets = {p.budget for p in policies}
        if len(budgets) != 1:
            raise ValueError(f"all policies must share one budget, got {sorted(budgets)}")
        if not isinstance(rows_each, int) or isinstance(rows_each, bool) or rows_each < 1:
            raise ValueError(f"rows_each must be a positive int, got {rows_each!r}")
        super().__init__(budgets.pop())
        self.policies, self.rows_each = list(policies), rows_each
        self.needs_scores = any(p.needs_scores for p in policies)
        self.name = " | ".join(p.name for p in policies)

    def renumbers(self, batch: int) -> Tensor:
        if batch != self.rows_each * len(self.policies):
            raise ValueError(f"the batch has {batch} rows; {len(self.policies)} policies x {self.rows_each} rows "
                             f"each = {self.rows_each * len(self.policies)}")
        return torch.cat([p.renumbers(self.rows_each) for p in self.policies])

    def keep(self, length: int, scores: Tensor | None = None) -> Tensor:
        """(B, G, budget) indices, or (B, 1, budget) when no policy reads scores (shared by the heads)."""
        n, B = self.rows_each, self.rows_each * len(self.policies)
        if scores is not None and scores.shape[0] != B:
            raise ValueError(f"the scores have {scores.shape[0]} rows; {len(self.policies)} policies x {n} rows "
                             f"each = {B}")
        if self.needs_scores and scores is None:
            raise ValueError(f"{self.name} needs accumulated attention scores (batch, kv_heads, {length})")
        heads = 1 if scores is None else scores.shape[1]
        parts = []
        for i, p in enumerate(self.policies):
            idx = p.keep(length, scores[i * n:(i + 1) * n] if p.needs_scores else None)
            if idx.dim() == 1:
                idx = idx.expand(n, heads, idx.shape[0])
            parts.append(idx.to(parts[0].device if parts else idx.device))
        return torch.cat(parts, dim=0)

    def __repr__(self) -> str:
        return f"PerRow({self.policies}, rows_each={self.rows_each})"


@dataclass
class StreamResult:
    """What :func:`stream_under_budget` measured.

    nll: (B, N-1) negative log-likelihood of token t+1 given tokens 0..t (nats);
    predictions: (B, N-1) the model's greedy choice for token t+1;
    kept: per layer, the text positions (B, G, L) held in the cache at the end;
    max_cache_tokens: the most tokens the cache held between steps;
    cache: the cache at the end.
    """

    nll: Tensor
    predictions: Tensor
    kept: list[Tensor]
    max_cache_tokens: int
    cache: KVCache


@torch.inference_mode()
def stream_under_budget(decoder: CachedDecoder, input_ids: Tensor, policy: EvictionPolicy | None,
                        desc: str | None = None, on_step=None) -> StreamResult:
    """Read ``input_ids`` (B, N) token by token while the cache holds at most ``policy.budget`` tokens.

    Each new token attends to the cache and to itself; then the policy picks the tokens to keep.
    ``policy=None`` keeps everything. ``on_step(t, kept)``, if given, is called after token t was
    read and the cache pruned, with ``kept`` the text positions held, per layer (B, G, L).

    With ``policy.positions == "cache"``, the new token gets position L (the cache length) and,
    after an eviction, each kept key is rotated by (new position - old position): exact, because
    rotations compose, R(a) R(b) = R(a + b).
    """
    from .utils import progress

    ids = decoder._check_ids(input_ids)
    if policy is not None and not isinstance(policy, EvictionPolicy):
        raise ValueError(f"policy must be an EvictionPolicy or None, got {type(policy).__name__}")
    B, N = ids.shape
    G, dev = decoder.num_kv_heads, ids.device
    budget = N if policy is None else policy.budget
    renumber = (policy.renumbers(B) if policy is not None else torch.zeros(B, dtype=torch.bool)).to(dev)
    cache = decoder.new_cache()
    need_scores = policy is not None and policy.needs_scores
    targets = torch.cat([ids[:, 1:], ids[:, :1]], dim=1)  # token t+1 for each t (the last is a dummy)
    nlls, preds = [], []

    def read(t0: int, t1: int, pos: Tensor | None = None):
        """Read tokens t0..t1-1; record their predictions; return the attention weights (or None)."""
        out = decoder.forward(ids[:, t0:t1], cache, positions=pos, all_logits=True, need_weights=need_scores)
        logits, weights = out if need_scores else (out, None)
        logp = logits.float().log_softmax(-1)  # (B, T, V)
        nlls.append(-logp.gather(-1, targets[:, t0:t1, None])[..., 0])
        preds.append(logp.argmax(-1))
        return weights

    # Nothing is evicted before the cache is full: read those tokens in chunks of 128 (the same result
    # as one by one, and faster). scores: the attention each cached token has received so far, per
    # layer (B, G, L); where: each cached token's position in the text, per layer (B, G, L).
    first = min(budget, N)
    scores = [torch.zeros(B, G, 0, device=dev) for _ in range(decoder.num_layers)] if need_scores else None
    for t0 in range(0, first, 128):
        weights = read(t0, min(t0 + 128, first))
        if need_scores:
            scores = [F.pad(s, (0, w.shape[-1] - s.shape[-1])) + w.sum(dim=2) for s, w in zip(scores, weights)]
    where = [torch.arange(first, device=dev).expand(B, G, first).clone() for _ in range(decoder.num_layers)]
    if on_step is not None:
        for t in range(first):
            on_step(t, [w[..., :t + 1] for w in where])
    max_len = cache.length
    steps = range(first, N)
    for t in (progress(steps, desc=desc, total=len(steps)) if desc else steps):
        pos = torch.where(renumber, cache.length, t)[:, None]  # (B, 1)
        weights = read(t, t + 1, pos)
        for i in range(decoder.num_layers):
            where[i] = torch.cat([where[i], torch.full((B, G, 1), t, device=dev)], dim=-1)
            if need_scores:
                scores[i] = torch.cat([scores[i], torch.zeros(B, G, 1, device=dev)], dim=-1) + weights[i][:, :, 0]
            length = cache.layer_length(i)
            if length <= budget:
                continue
            index = policy.keep(length, scores[i] if need_scores else None).to(dev)
            full = index.expand(B, G, index.shape[-1])  # (n,), (B, 1, n) or (B, G, n) -> (B, G, n)
            cache.keep(i, index)
            if renumber.any():  # kept token j moves from position full[..., j] to j (rows that renumber)
                shift = (torch.arange(full.shape[-1], device=dev) - full) * renumber[:, None, None]  # <= 0
                cos, sin = decoder.rope(shift.reshape(B * G, -1))
                k, v = cache.get(i)
                D = k.shape[-1]
                cache.set(i, apply_rope(k, cos.reshape(B, G, -1, D), sin.reshape(B, G, -1, D)), v)
            where[i] = where[i].gather(-1, full)
            if need_scores:
                scores[i] = scores[i].gather(-1, full)
        max_len = max(max_len, cache.length)
        if on_step is not None:
            on_step(t, where)
    # position t predicts token t + 1: the last position has nothing to predict
    nll, pred = torch.cat(nlls, dim=1)[:, :-1], torch.cat(preds, dim=1)[:, :-1]
    return StreamResult(nll=nll.cpu(), predictions=pred.cpu(), kept=[w.cpu() for w in where],
                        max_cache_tokens=max_len, cache=cache)


# ----------------------------------------------------------------------------------- a long text
def babi_text(task: int = 1, split: str = "train", size: str = "1k") -> str:
    """The statements of bAbI task ``task``'s stories, in file order, as one long plain text.

    A long, simple English text that is available offline (``wmlib.data``): the stories of
    task 1 move six people between six places ("Mary moved to the bathroom.")."""
    from .data import load_babi

    stories, last = [], None
    for ex in load_babi(task, split, size):
        if last is not None and ex.lines[:len(last.lines)] != last.lines:  # a new story began
            stories.append(" ".join(last.story))
        last = ex
    if last is not None:
        stories.append(" ".join(last.story))
    return " ".join(stories)
