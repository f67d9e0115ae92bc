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

from .families import apply_rope, layout_of

__all__ = [
    "KVCache",
    "CachedDecoder",
    "greedy_decode",
    "uncached_greedy_decode",
    "first_divergence",
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
def _owned(t: Tensor) -> Tensor:
    """``t`` itself when it is the whole of its storage, else a compact copy."""
    return t if t.untyped_storage().nbytes() == t.numel() * t.element_size() else t.clone(
        memory_format=torch.contiguous_format)


class KVCache:
    """Keys and values of every layer: ``get(i)`` returns layer i's keys and values, (B, G, L, D) each.

    Beside them the cache records each key's rotary position, ``positions(i)``, (B, 1, L) (or
    (B, G, L) once heads have kept different tokens): the causal mask and a model's sliding window
    are decided by positions, which stop being 0..L-1 once tokens are evicted. The positions are
    bookkeeping, not memory the model needs: ``nbytes`` counts keys and values only.

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
        self._p: list[Tensor | None] = [None] * num_layers  # positions, (B, 1 or G, storage)
        self._len = [0] * num_layers

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise IndexError(f"layer must be an int in [0, {self.num_layers}), got {layer!r}")

    def append(self, layer: int, k: Tensor, v: Tensor, positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Add T new tokens' keys and values (B, G, T, D) to ``layer``; return all (B, G, L, D).

        ``positions`` (B, T): the new tokens' rotary positions (default: their indices in the cache)."""
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
        if positions is None:
            positions = torch.arange(n, n + t, device=k.device).expand(k.shape[0], t)
        if not isinstance(positions, Tensor) or tuple(positions.shape) != (k.shape[0], t):
            got = tuple(positions.shape) if isinstance(positions, Tensor) else type(positions).__name__
            raise ValueError(f"positions must be (batch, tokens) = {(k.shape[0], t)}, got {got}")
        pos = positions.to(k.device, torch.int64)[:, None, :]  # (B, 1, T)
        if old is not None:
            B, G, _, D = old.shape
            if (k.shape[0], k.shape[1], k.shape[3]) != (B, G, D) or k.dtype != old.dtype or k.device != old.device:
                raise ValueError(
                    f"layer {layer} holds (batch, kv_heads, head_dim) = {(B, G, D)} of {old.dtype} on {old.device}; "
                    f"cannot append {tuple(k.shape)} of {k.dtype} on {k.device}")
            pos = pos.expand(B, self._p[layer].shape[1], t)
        if self.capacity is not None and (old is None or old.shape[2] == self.capacity):
            if n + t > self.capacity:
                raise RuntimeError(f"the cache is full: {n} + {t} tokens exceed its capacity of {self.capacity}")
            if old is None:  # allocate the whole capacity once
                shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
                self._k[layer] = k.new_empty(shape)
                self._v[layer] = v.new_empty(shape)
                self._p[layer] = pos.new_zeros(k.shape[0], 1, self.capacity)
            self._k[layer][:, :, n:n + t] = k
            self._v[layer][:, :, n:n + t] = v
            self._p[layer][:, :, n:n + t] = pos
        elif old is None:  # own storage: a view of a larger tensor (a fused QKV output) would keep all of it alive
            self._k[layer], self._v[layer], self._p[layer] = _owned(k), _owned(v), pos
        else:  # grow by concatenation (also after an eviction has compacted a preallocated cache)
            self._k[layer] = torch.cat([self._k[layer][:, :, :n], k], dim=2)
            self._v[layer] = torch.cat([self._v[layer][:, :, :n], v], dim=2)
            self._p[layer] = torch.cat([self._p[layer][:, :, :n], pos], dim=2)
        self._len[layer] = n + t
        return self.get(layer)

    def get(self, layer: int) -> tuple[Tensor, Tensor]:
        """The keys and values stored for ``layer``, (B, G, L, D) each."""
        self._check_layer(layer)
        if self._k[layer] is None:
            raise ValueError(f"layer {layer} of the cache is empty: append to it first")
        n = self._len[layer]
        return self._k[layer][:, :, :n], self._v[layer][:, :, :n]

    def positions(self, layer: int) -> Tensor:
        """The rotary positions of the keys stored for ``layer``: (B, 1, L), or (B, G, L) per head."""
        self.get(layer)  # checks
        return self._p[layer][:, :, :self._len[layer]]

    def set(self, layer: int, k: Tensor, v: Tensor, positions: Tensor | None = None) -> None:
        """Replace what ``layer`` holds by ``k`` and ``v`` (B, G, L, D), e.g. re-rotated keys, and their
        ``positions`` (B, 1 or G, L); by default the positions held so far (or 0..L-1 for a new layer)."""
        self._check_layer(layer)
        if not (isinstance(k, Tensor) and isinstance(v, Tensor) and k.dim() == 4 and k.shape == v.shape):
            raise ValueError("k and v must be 4-D tensors (batch, kv_heads, tokens, head_dim) of the same shape")
        B, G, L, _ = k.shape
        if positions is None:
            if self._k[layer] is not None and self._len[layer] == L and self._p[layer].shape[0] == B:
                positions = self.positions(layer)
            else:
                positions = torch.arange(L, device=k.device).expand(B, 1, L)
        if not isinstance(positions, Tensor) or positions.dim() != 3 or positions.shape[0] != B \
                or positions.shape[1] not in (1, G) or positions.shape[2] != L:
            got = tuple(positions.shape) if isinstance(positions, Tensor) else type(positions).__name__
            raise ValueError(f"positions must be (batch, 1 or kv_heads, tokens) = ({B}, 1 or {G}, {L}), got {got}")
        self._k[layer], self._v[layer], self._p[layer], self._len[layer] = k, v, positions.to(k.device, torch.int64), L

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
        """Bytes of storage the cache's keys and values actually hold (allocated, not just used)."""
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
        p = self.positions(layer)
        B, G, L, D = k.shape
        if not isinstance(index, Tensor) or index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"index must be an integer tensor, got {getattr(index, 'dtype', type(index).__name__)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= L):
            raise IndexError(f"index out of range for layer {layer}, which holds {L} tokens: "
                             f"min {int(index.min())}, max {int(index.max())}")
        index = index.to(k.device, torch.int64)
        if index.dim() == 1:
            self._k[layer], self._v[layer], self._p[layer] = k[:, :, index], v[:, :, index], p[:, :, index]
        elif index.dim() == 3 and index.shape[0] == B and index.shape[1] in (1, G):
            idx = index[..., None].expand(B, G, index.shape[2], D)
            self._k[layer], self._v[layer] = k.gather(2, idx), v.gather(2, idx)
            heads = max(index.shape[1], p.shape[1])
            self._p[layer] = p.expand(B, heads, L).gather(2, index.expand(B, heads, index.shape[2]))
        else:
            raise ValueError(f"index must be 1-D or (batch, kv_heads, n) = ({B}, {G} or 1, n); got {tuple(index.shape)}")
        self._len[layer] = index.shape[-1]


# ------------------------------------------------------------------------- the model, written out
class CachedDecoder:
    """A Hugging Face causal LM run layer by layer with explicit attention and a :class:`KVCache`.

    Uses the model's own weights and modules for embeddings, norms, projections, rotary angles and
    MLPs; only the attention and the cache are written here. What differs between families (where
    the modules are, q/k norms, scaling, soft-capping, partial RoPE, parallel residuals, sliding
    windows) is read from the model's :class:`wmlib.families.Layout`; a model of another family is
    refused here, with the list of supported ones. ``prefill`` runs the prompt once, ``step`` one
    token per call; both return logits of the *last* position unless asked for all.
    """

    def __init__(self, model):
        self.layout = layout_of(model, "CachedDecoder")
        f, cfg = self.layout, model.config
        self.model = model
        self.num_layers = len(f.layers)
        self.num_heads, self.num_kv_heads, self.head_dim = f.num_heads, f.num_kv_heads, f.head_dim
        self.group = self.num_heads // self.num_kv_heads  # query heads per key/value head
        self.scale = f.scale
        self.vocab_size = cfg.vocab_size

    @property
    def device(self) -> torch.device:
        return self.layout.unembedding().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.layout.unembedding().weight.dtype

    def bytes_per_token(self) -> int:
        """The formula for this model: 2 x layers x kv_heads x head_dim x bytes per element."""
        return kv_bytes_per_token(self.num_layers, self.num_kv_heads, self.head_dim, self.dtype)

    def new_cache(self, capacity: int | None = None) -> KVCache:
        return KVCache(self.num_layers, capacity)

    def ropes(self, positions: Tensor) -> list[tuple[Tensor, Tensor]]:
        """cos and sin for (B, T) positions, for every layer (computed once per kind of RoPE)."""
        kinds: dict[str, tuple[Tensor, Tensor]] = {}
        out = []
        for i in range(self.num_layers):
            kind = self.layout.rope_kind(i)
            if kind not in kinds:
                kinds[kind] = self.rope(positions, i)
            out.append(kinds[kind])
        return out

    def rope(self, positions: Tensor, layer: int = 0, unit: bool = False) -> tuple[Tensor, Tensor]:
        """cos and sin for (B, T) positions in ``layer``: (B, 1, T, rotary channels), broadcasting over
        heads. ``unit``: a pure rotation, without the amplitude some RoPE variants (YaRN) multiply in."""
        like = torch.empty(0, device=self.device, dtype=self.dtype)
        cos, sin = self.layout.rope(positions.to(self.device), layer, like)
        if unit:
            a = self.layout.rope_scaling(layer)
            cos, sin = cos / a, sin / a
        return cos, sin

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

    def attend(self, q: Tensor, k: Tensor, v: Tensor, q_pos: Tensor, k_pos: Tensor, window: int | None = None,
               need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """Grouped-query attention of T new queries over the L cached keys (the last T of which
        are the new tokens themselves).

        q: (B, H, T, D); k, v: (B, G, L, D); q_pos (B, T) and k_pos (B, 1 or G, L): positions. A query
        sees the keys at its own position or before, and with a sliding ``window`` only those less
        than ``window`` positions back. Returns the output (B, H, T, D) and, if asked, the weights
        summed over each group's query heads, (B, G, T, L).
        """
        B, H, T, D = q.shape
        L = k.shape[2]
        f = self.layout
        plain = f.softcap is None and not need_weights
        if plain and T == L and T > 1 and window is None:  # a prefill: the fused kernel's causal mask is fastest
            k, v = (x.repeat_interleave(self.group, dim=1) for x in (k, v))  # one copy per query head
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=f.scale), None
        mask = None  # (B, 1 or G, T, L): which keys each query may see; None: all of them
        if T > 1 or window is not None:
            back = q_pos[:, None, :, None] - k_pos[:, :, None, :]  # how many positions back each key is
            mask = back >= 0
            if window is not None:
                mask = mask & (back < window)
            mask = mask.repeat(1, 1, self.group, 1)  # the same for every query head of a group
        # Fold the H/G query heads of a group into the query axis: (B, G, group*T, D). They all read the
        # same keys, so no copy of the cache per query head is needed.
        qg = q.reshape(B, self.num_kv_heads, self.group * T, D)
        if plain:
            out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=f.scale)
            return out.reshape(B, H, T, D), None
        scores = (qg @ k.transpose(-2, -1)) * f.scale  # (B, G, group*T, L)
        if f.softcap is not None:  # Gemma 2: scores squashed into (-cap, cap)
            scores = torch.tanh(scores / f.softcap) * f.softcap
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
        out = (weights @ v).reshape(B, H, T, D)
        if not need_weights:
            return out, None
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
        positions = positions.to(self.device)
        f = self.layout  # where this model family keeps its modules (wmlib.families)
        x = f.embed(input_ids)  # (B, T, width)
        ropes, all_weights = self.ropes(positions), []
        for i, layer in enumerate(f.layers):
            h = f.attn_norm(layer)(x)
            q, k, v = f.qkv(layer, h)  # (B, H, T, D), (B, G, T, D), (B, G, T, D)
            cos, sin = ropes[i]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            k_all, v_all = cache.append(i, k, v, positions)  # the working memory grows by T tokens
            out, w = self.attend(q, k_all, v_all, positions, cache.positions(i), f.windows[i], need_weights)
            all_weights.append(w)
            x = f.finish(layer, x, h, out.transpose(1, 2).reshape(B, T, -1))  # output projection, MLP, residual
        if not all_logits:
            x = x[:, -1]  # the vocabulary projection is costly: only the last position predicts
        logits = f.logits(x)
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


@torch.inference_mode()
def first_divergence(decoder: CachedDecoder, input_ids: Tensor, ours: Tensor, theirs: Tensor) -> tuple[int | None, float]:
    """Where two greedy continuations of ``input_ids`` (1, N) first differ, and how close a call it was.

    ``ours`` and ``theirs`` (1, n) are new tokens. Returns ``(None, 0.0)`` when they are identical,
    else ``(i, margin)``: the first differing step and by how much this decoder's logit of its own
    choice exceeded that of the other token there. In float32 two correct implementations agree
    exactly; in bfloat16 or float16 they may split where two tokens tie within rounding, which a
    margin of the dtype's precision shows.
    """
    ours, theirs = ours.reshape(1, -1).to(decoder.device), theirs.reshape(1, -1).to(decoder.device)
    n = min(ours.shape[1], theirs.shape[1])
    diff = (ours[0, :n] != theirs[0, :n]).nonzero()
    if len(diff) == 0:
        return None, 0.0
    i = int(diff[0])
    prefix = torch.cat([decoder._check_ids(input_ids), ours[:, :i]], dim=1)
    logits = decoder.forward(prefix, decoder.new_cache()).float()[0]
    return i, float(logits[ours[0, i]] - logits[theirs[0, i]])


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

    With a :class:`PerRow` policy, ``input_ids`` may hold ``rows_each`` sequences only: each is then
    read under every policy (the result has ``len(policies) * rows_each`` rows, policy by policy),
    and the first ``budget`` tokens, the same under every policy, are read once.
    """
    from .utils import progress

    ids = decoder._check_ids(input_ids)
    if policy is not None and not isinstance(policy, EvictionPolicy):
        raise ValueError(f"policy must be an EvictionPolicy or None, got {type(policy).__name__}")
    copies = len(policy.policies) if isinstance(policy, PerRow) and ids.shape[0] == policy.rows_each else 1
    B, N = ids.shape[0] * copies, ids.shape[1]
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
    scores = [torch.zeros(B // copies, G, 0, device=dev) for _ in range(decoder.num_layers)] if need_scores else None
    for t0 in range(0, first, 128):
        weights = read(t0, min(t0 + 128, first))
        if need_scores:
            scores = [F.pad(s, (0, w.shape[-1] - s.shape[-1])) + w.sum(dim=2) for s, w in zip(scores, weights)]
    if copies > 1:  # one copy of what was read so far for each policy
        ids, targets = ids.repeat(copies, 1), targets.repeat(copies, 1)
        nlls, preds = [x.repeat(copies, 1) for x in nlls], [x.repeat(copies, 1) for x in preds]
        scores = [s.repeat(copies, 1, 1) for s in scores] if need_scores else None
        for i in range(decoder.num_layers):
            k, v = cache.get(i)
            cache.set(i, k.repeat(copies, 1, 1, 1), v.repeat(copies, 1, 1, 1), cache.positions(i).repeat(copies, 1, 1))
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
            if renumber.any():  # kept token j moves from position p to j (rows that renumber)
                k, v = cache.get(i)
                p = cache.positions(i).expand(B, G, k.shape[2])
                new = torch.where(renumber[:, None, None], torch.arange(k.shape[2], device=dev), p)
                cos, sin = decoder.rope((new - p).reshape(B * G, -1), i, unit=True)  # rotate by new - p <= 0
                r = cos.shape[-1]
                cache.set(i, apply_rope(k, cos.reshape(B, G, -1, r), sin.reshape(B, G, -1, r)), v, new)
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
